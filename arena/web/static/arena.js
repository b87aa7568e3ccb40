// The voting page: buttons wake only after both images have decoded; a vote reveals who made each.
"use strict";
(function () {
  const root = document.getElementById("arena");
  const csrf = root.dataset.csrf;
  const $ = (id) => document.getElementById(id);
  const buttons = Array.from(document.querySelectorAll("#choices button"));
  const status = $("status");
  const next = $("next");
  let battleId = root.dataset.battle || null;
  let phase = battleId ? "loading" : "empty"; // loading -> ready -> sending -> revealed

  function setButtons(enabled) {
    buttons.forEach((b) => { b.disabled = !enabled; b.classList.remove("chosen"); });
  }

  async function post(path, body) {
    const reply = await fetch(path, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    return { status: reply.status, data: data || {} };
  }

  function waitForImages() {
    phase = "loading";
    setButtons(false);
    $("pair").classList.remove("ready");
    status.textContent = "Loading both images…";
    const images = [$("img-a"), $("img-b")];
    if (!$("source").hidden) images.push($("img-source"));
    const mine = battleId;
    Promise.all(images.map((img) => img.decode())).then(() => {
      if (mine !== battleId) return;
      $("pair").classList.add("ready");
      phase = "ready";
      setButtons(true);
      status.textContent = "Which is better? Click, or press A, B, T (tie) or N (both bad).";
    }, () => {
      if (mine !== battleId) return;
      status.textContent = "An image did not load. Try the next battle.";
      next.hidden = false;
    });
  }

  function showBattle(battle) {
    battleId = battle.battle_id;
    root.dataset.battle = battleId;
    $("challenge-title").textContent = battle.challenge.title;
    $("challenge-task").textContent = battle.challenge.task === "edit" ? "Edit of the source image" : "Text to image";
    $("challenge-prompt").textContent = battle.challenge.prompt;
    ["a", "b"].forEach((side) => { $("reveal-" + side).textContent = ""; });
    $("source").hidden = !battle.images.source;
    if (battle.images.source) $("img-source").src = battle.images.source;
    $("pair").classList.remove("ready");
    $("img-a").src = battle.images.a;
    $("img-b").src = battle.images.b;
    ["challenge", "pair", "choices"].forEach((id) => { $(id).hidden = false; });
    next.hidden = true;
    waitForImages();
  }

  function showReveal(reveal) {
    ["a", "b"].forEach((side) => {
      const who = reveal[side];
      const span = $("reveal-" + side);
      span.textContent = who.model + " · " + who.provider;
      if (who.baseline) {
        const badge = document.createElement("span");
        badge.className = "badge";
        badge.textContent = "baseline";
        span.appendChild(badge);
      }
    });
  }

  async function vote(choice) {
    if (phase !== "ready") return;
    phase = "sending";
    buttons.forEach((b) => { b.disabled = true; if (b.dataset.choice === choice) b.classList.add("chosen"); });
    status.textContent = "Saving your vote…";
    const reply = await post("/api/votes", { battle_id: battleId, choice: choice });
    if (reply.status === 200) {
      showReveal(reply.data.reveal);
      status.textContent = "Thanks! Here is who made each image.";
    } else if (reply.status === 429) {
      phase = "ready";
      setButtons(true);
      status.textContent = reply.data.message || "Too many votes; wait a moment.";
      return;
    } else {
      status.textContent = reply.data.message || "The vote was not taken.";
    }
    phase = "revealed";
    next.hidden = false;
    next.focus();
  }

  async function nextBattle() {
    if (phase === "fetching") return;
    phase = "fetching";
    next.hidden = true;
    status.textContent = "Finding the next battle…";
    const reply = await post("/api/battles", {});
    if (reply.status === 200) {
      showBattle(reply.data);
    } else {
      ["challenge", "pair", "choices"].forEach((id) => { $(id).hidden = true; });
      phase = "empty";
      status.textContent = reply.data.message || "No battle right now.";
      if (reply.status === 429) next.hidden = false;
    }
  }

  buttons.forEach((b) => b.addEventListener("click", () => vote(b.dataset.choice)));
  next.addEventListener("click", nextBattle);
  const keys = { a: "a", b: "b", t: "tie", n: "both_bad" };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    const key = event.key.toLowerCase();
    if (keys[key] && phase === "ready") { event.preventDefault(); vote(keys[key]); }
    else if (key === "enter" && !next.hidden) { event.preventDefault(); nextBattle(); }
  });
  if (battleId) waitForImages();
})();
