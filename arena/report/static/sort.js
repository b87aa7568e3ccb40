// Sortable tables: click a heading to sort by it; cells sort by their data-value (numbers as numbers).
// Copy buttons of the API examples: shown only where the browser offers a clipboard.
(function () {
  "use strict";
  function key(cell) {
    if (!cell) return "";
    var raw = cell.hasAttribute("data-value") ? cell.getAttribute("data-value") : cell.textContent.trim();
    var number = raw === "" ? NaN : Number(raw);
    return isNaN(number) ? raw.toLowerCase() : number;
  }
  function compare(a, b) {
    var emptyA = a === "", emptyB = b === "";
    if (emptyA || emptyB) return emptyA === emptyB ? 0 : (emptyA ? 1 : -1);
    if (typeof a === typeof b) return a < b ? -1 : (a > b ? 1 : 0);
    return typeof a === "number" ? -1 : 1;
  }
  function sortBy(table, header, index) {
    var descending = header.getAttribute("aria-sort") === "ascending";
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (r1, r2) {
      var order = compare(key(r1.cells[index]), key(r2.cells[index]));
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(header.parentNode.cells, function (th) { th.removeAttribute("aria-sort"); });
    header.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
      th.setAttribute("tabindex", "0");
      th.addEventListener("click", function () { sortBy(table, th, index); });
      th.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sortBy(table, th, index); }
      });
    });
  });
})();
(function () {
  "use strict";
  if (!navigator.clipboard) return;
  document.querySelectorAll("figure.example").forEach(function (figure) {
    var button = figure.querySelector("button.copy"), code = figure.querySelector("pre code");
    if (!button || !code) return;
    button.hidden = false;
    button.addEventListener("click", function () {
      navigator.clipboard.writeText(code.textContent).then(function () {
        button.textContent = "copied";
        setTimeout(function () { button.textContent = "copy"; }, 1500);
      });
    });
  });
})();
