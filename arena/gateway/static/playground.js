// The playground: the gateway's own /v1 API called from the page, one panel per chosen model.
// The credential is a visitor token from the page, or a gateway key kept in sessionStorage only
// (never in a URL or a cookie); either goes out as an Authorization: Bearer header.
"use strict";
(function () {
  const root = document.getElementById("playground");
  const $ = (id) => document.getElementById(id);
  const KEY_STORE = "arena-gateway-key";
  const status = $("status");
  const pickers = [$("model-a"), $("model-b")];
  let visitorToken = root.dataset.token || null;
  let models = [];
  let busy = false;
  const results = []; // blob: URLs of the shown images, revoked when the next ones come
  let sourceUrl = null;

  function storedKey() {
    try { return sessionStorage.getItem(KEY_STORE); } catch (e) { return null; }
  }
  function credential() { return storedKey() || visitorToken; }
  function announce(text) { status.textContent = text; }

  async function call(path, options) {
    const headers = Object.assign({}, (options && options.headers) || {});
    const cred = credential();
    if (cred) headers.Authorization = "Bearer " + cred;
    let reply;
    try {
      reply = await fetch(path, Object.assign({ credentials: "omit", cache: "no-store" }, options || {}, { headers: headers }));
    } catch (e) {
      return { status: 0, data: { error: { message: "The gateway did not answer (network error)." } }, headers: new Headers() };
    }
    let data = null;
    try { data = await reply.json(); } catch (e) { data = null; }
    return { status: reply.status, data: data || {}, headers: reply.headers };
  }

  function errorMessage(reply) {
    const error = reply.data && reply.data.error;
    if (error && error.message) return error.message;
    return "The gateway answered " + reply.status + " without a message.";
  }

  async function renewToken() {
    // A page left open past midnight UTC: its token has expired, the server signs a new one.
    if (!visitorToken || storedKey()) return false;
    const reply = await fetch("/playground/token", { credentials: "omit", cache: "no-store" }).catch(() => null);
    if (!reply || !reply.ok) return false;
    const data = await reply.json().catch(() => ({}));
    if (!data.token || data.token === visitorToken) return false;
    visitorToken = data.token;
    return true;
  }

  function tasksOf(model) {
    const found = [];
    [model.tasks, model.capabilities && model.capabilities.tasks, model.arena && model.arena.tasks].forEach((list) => {
      if (Array.isArray(list)) list.forEach((t) => found.push(String(t)));
    });
    return found;
  }
  function canEdit(model) { return tasksOf(model).indexOf("edit") >= 0; }
  function canGenerate(model) {
    const tasks = tasksOf(model);
    return tasks.length === 0 || tasks.some((t) => t !== "edit");
  }
  function modelById(id) { return models.find((m) => m.id === id) || null; }

  function describe(model) {
    const parts = [];
    const tasks = tasksOf(model);
    if (tasks.length) parts.push(tasks.join(", "));
    const price = model.starting_price_usd !== undefined ? model.starting_price_usd : (model.pricing && model.pricing.starting_price_usd);
    if (price === 0) parts.push("free");
    else if (typeof price === "number") parts.push("from $" + price.toFixed(3) + " per image");
    return parts.join(" · ");
  }

  function fillPickers() {
    const [a, b] = pickers;
    const keepA = a.value, keepB = b.value;
    a.textContent = ""; b.textContent = "";
    const none = document.createElement("option");
    none.value = ""; none.textContent = "None";
    b.appendChild(none);
    models.forEach((m) => {
      [a, b].forEach((select) => {
        const option = document.createElement("option");
        option.value = m.id;
        const about = describe(m);
        const label = m.baseline ? m.id + ", baseline" : m.id;
        option.textContent = about ? label + " (" + about + ")" : label;
        select.appendChild(option);
      });
    });
    if (modelById(keepA)) a.value = keepA;
    if (modelById(keepB)) b.value = keepB;
    a.disabled = b.disabled = models.length === 0;
    $("generate").disabled = models.length === 0;
    showHints();
  }

  function showHints() {
    const hasSource = Boolean($("source").files && $("source").files[0]);
    pickers.forEach((select, i) => {
      const hint = $(i ? "hint-b" : "hint-a");
      const model = modelById(select.value);
      if (!model) { hint.textContent = ""; return; }
      if (canEdit(model) && !canGenerate(model)) hint.textContent = hasSource ? "Edits your source image." : "An edit model: choose a source image.";
      else if (canEdit(model)) hint.textContent = hasSource ? "Edits your source image." : "Generates from the prompt; with a source image, edits it.";
      else hint.textContent = hasSource ? "Text to image: the source image is not sent to it." : "Text to image.";
    });
  }

  async function loadModels() {
    // The model list is public on the gateway (as the credential is sent when there is one, a
    // gateway that guards it works too); generating needs the key or the visitor token.
    announce("Loading the models…");
    let reply = await call("/v1/models");
    if (reply.status === 401 && await renewToken()) reply = await call("/v1/models");
    if (reply.status !== 200) {
      models = [];
      fillPickers();
      const option = document.createElement("option");
      option.value = ""; option.textContent = credential() ? "No models loaded" : "Enter a gateway key first";
      pickers[0].appendChild(option);
      announce((credential() ? "Could not load the models: " + errorMessage(reply) : "Enter a gateway key to load the models."));
      if (!credential()) $("key").focus();
      return;
    }
    models = (reply.data.data || []).filter((m) => m && m.id);
    fillPickers();
    const count = models.length + (models.length === 1 ? " model" : " models") + " available.";
    announce(credential() ? count + " Pick one, type a prompt and press Generate." : count + " Enter a gateway key to generate.");
  }

  function showKeyState() {
    const has = Boolean(storedKey());
    $("key-forget").hidden = !has;
    $("key").value = "";
    $("key").placeholder = has ? "a key is set for this tab" : "arena-…";
  }

  // Keeps the typed key for this tab; false (and says why) when there is none or it cannot be kept.
  function keepKey() {
    const value = $("key").value.trim();
    if (!value) { announce("Type a gateway key first."); $("key").focus(); return false; }
    try { sessionStorage.setItem(KEY_STORE, value); } catch (e) { announce("This browser keeps no session storage; the key cannot be kept."); return false; }
    showKeyState();
    return true;
  }
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (keepKey()) loadModels();
  });
  $("key-forget").addEventListener("click", () => {
    try { sessionStorage.removeItem(KEY_STORE); } catch (e) { /* nothing kept */ }
    showKeyState();
    announce("The key is forgotten.");
    loadModels();
  });

  function sourceFile() { return ($("source").files && $("source").files[0]) || null; }
  $("source").addEventListener("change", () => {
    const file = sourceFile();
    const preview = $("source-preview");
    if (!file) { preview.hidden = true; $("source-clear").hidden = true; showHints(); return; }
    if (sourceUrl) URL.revokeObjectURL(sourceUrl);
    sourceUrl = URL.createObjectURL(file);
    $("source-img").src = sourceUrl;
    $("source-caption").textContent = file.name + " · " + (file.size < 10240 ? file.size + " bytes" : Math.round(file.size / 1024) + " KB");
    preview.hidden = false;
    $("source-clear").hidden = false;
    showHints();
  });
  $("source-clear").addEventListener("click", () => {
    $("source").value = "";
    $("source-preview").hidden = true;
    $("source-clear").hidden = true;
    showHints();
    $("source").focus();
  });
  pickers.forEach((s) => s.addEventListener("change", showHints));

  function panelFor(modelId, side) {
    const panel = $("result-template").content.firstElementChild.cloneNode(true);
    panel.dataset.model = modelId;
    panel.id = "result-" + side;
    panel.querySelector(".model").textContent = modelId;
    const model = modelById(modelId);
    if (model && model.baseline) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "baseline";
      panel.querySelector(".model").appendChild(badge);
    }
    panel.querySelector(".state").textContent = "Generating…";
    return panel;
  }

  function imageSrc(item) {
    if (item.b64_json) {
      const bytes = Uint8Array.from(atob(item.b64_json), (c) => c.charCodeAt(0));
      const url = URL.createObjectURL(new Blob([bytes]));
      results.push(url);
      return url;
    }
    return item.url || null;
  }

  function ms(value) { return value < 1000 ? Math.round(value) + " ms" : (value / 1000).toFixed(2) + " s"; }

  function showReply(panel, reply, wallMs, prompt) {
    const meta = reply.data.metadata || {};
    const attempts = Array.isArray(meta.attempts) ? meta.attempts : [];
    const provider = meta.provider || reply.headers.get("X-Arena-Provider") || "";
    const requestId = reply.headers.get("X-Arena-Request-Id") || "";
    panel.querySelector(".request-id").textContent = requestId || "—";
    const trail = attempts.map((a) => {
      const what = a.failure_class ? a.failure_class : "served";
      const took = typeof a.generation_ms === "number" ? ", " + ms(a.generation_ms) : "";
      return a.provider + ": " + what + took;
    });
    panel.querySelector(".attempts").textContent = trail.length ? trail.join(" → ") : "—";
    const facts = panel.querySelector(".facts");
    if (reply.status !== 200) {
      const error = panel.querySelector(".error");
      error.textContent = errorMessage(reply);
      error.hidden = false;
      panel.querySelector(".state").textContent = "Failed (" + reply.status + ") after " + ms(wallMs) + ".";
      panel.querySelector(".provider").textContent = provider || "—";
      panel.querySelector(".time").textContent = ms(wallMs) + " wall";
      panel.querySelector(".cost").textContent = "—";
      facts.hidden = !(trail.length || requestId);
      panel.classList.add("failed");
      return "failed: " + errorMessage(reply);
    }
    const served = attempts.filter((a) => !a.failure_class).pop();
    const generation = served && typeof served.generation_ms === "number" ? served.generation_ms : null;
    panel.querySelector(".provider").textContent = provider + (meta.model_id ? " (" + meta.model_id + ")" : "");
    panel.querySelector(".time").textContent = (generation !== null ? ms(generation) + " generation · " : "") + ms(wallMs) + " wall";
    const cost = typeof meta.cost_usd === "number" ? "$" + meta.cost_usd.toFixed(4) : "not priced";
    panel.querySelector(".cost").textContent = cost;
    const fallbacks = attempts.filter((a) => a.failure_class).length;
    const items = Array.isArray(reply.data.data) ? reply.data.data : [];
    const src = items.length ? imageSrc(items[0]) : null;
    const figure = panel.querySelector(".shot");
    if (src) {
      const img = figure.querySelector("img");
      img.src = src;
      img.alt = (meta.model || panel.dataset.model) + " for: " + prompt;
      figure.querySelector("figcaption").textContent = items[0].revised_prompt || "";
      figure.hidden = false;
    }
    facts.hidden = false;
    panel.querySelector(".state").textContent = "Done in " + ms(wallMs) + " via " + provider + (fallbacks ? " after " + fallbacks + (fallbacks === 1 ? " fallback" : " fallbacks") : "") + ".";
    return "done in " + ms(wallMs) + " via " + provider + ", " + cost + (fallbacks ? ", " + fallbacks + " fallback(s)" : "");
  }

  async function runOne(modelId, side, prompt, file) {
    const model = modelById(modelId);
    const panel = panelFor(modelId, side);
    $("results").appendChild(panel);
    const editing = Boolean(file) && model && canEdit(model);
    if (!editing && model && !canGenerate(model)) {
      const error = panel.querySelector(".error");
      error.textContent = modelId + " edits an image: choose a source image first.";
      error.hidden = false;
      panel.querySelector(".state").textContent = "Not sent.";
      panel.classList.add("failed");
      return modelId + ": not sent (needs a source image)";
    }
    const send = () => {
      if (editing) {
        const form = new FormData();
        form.append("model", modelId);
        form.append("prompt", prompt);
        form.append("image", file, file.name);
        form.append("response_format", "b64_json");
        return call("/v1/images/edits", { method: "POST", body: form });
      }
      return call("/v1/images/generations", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ model: modelId, prompt: prompt, n: 1, response_format: "b64_json" }),
      });
    };
    const started = performance.now();
    let reply = await send();
    if (reply.status === 401 && await renewToken()) reply = await send();
    return modelId + ": " + showReply(panel, reply, performance.now() - started, prompt);
  }

  async function generate() {
    if (busy) return;
    const prompt = $("prompt").value.trim();
    if (!prompt) { announce("Type a prompt first."); $("prompt").focus(); return; }
    // a key typed but not yet kept with "Use key" is what the person means to use
    if (!credential() && $("key").value.trim() && !keepKey()) return;
    if (!credential()) { announce("Enter a gateway key first."); $("key").focus(); return; }
    const chosen = [pickers[0].value, pickers[1].value].filter(Boolean);
    if (!chosen.length) { announce("Pick a model first."); pickers[0].focus(); return; }
    busy = true;
    $("generate").disabled = true;
    while (results.length) URL.revokeObjectURL(results.pop());
    $("results").textContent = "";
    $("results").classList.toggle("two", chosen.length === 2);
    announce("Generating with " + chosen.join(" and ") + "…");
    try {
      const file = sourceFile();
      const outcomes = await Promise.all(chosen.map((id, i) => runOne(id, i ? "b" : "a", prompt, file)));
      announce(outcomes.join(". ") + ".");
    } finally {
      busy = false;
      $("generate").disabled = false;
    }
  }

  $("generate-form").addEventListener("submit", (event) => { event.preventDefault(); generate(); });
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); generate(); }
  });

  showKeyState();
  loadModels();
})();
