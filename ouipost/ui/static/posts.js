// The composer's live per-network counters: the form's fields go to the page's validate endpoint
// (the same check as POST /api/posts/validate, run on the server), debounced; the answer is drawn
// as counters, red past a network's limit. Without this file the form checks everything on submit.
"use strict";

// A form marked data-once is sent once: publishing waits a few seconds for the networks, and a
// second click would only be refused (the post is already publishing).
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-once]")) return;
  if (form.dataset.sent) {
    event.preventDefault();
    return;
  }
  form.dataset.sent = "1";
  form.setAttribute("aria-busy", "true");
});
window.addEventListener("pageshow", () => {
  for (const form of document.querySelectorAll("form[data-once]")) {
    delete form.dataset.sent;
    form.removeAttribute("aria-busy");
  }
});

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("composer");
  if (!form || !form.dataset.validateUrl) return;
  const box = document.getElementById("counters");
  const problems = document.getElementById("network-errors");
  const overrides = form.querySelectorAll("details.override");
  let timer = null;
  let sequence = 0;

  function targeted() {
    const networks = new Set();
    for (const box of form.querySelectorAll('input[name="platforms"]:checked')) networks.add(box.dataset.network);
    return networks;
  }

  // Only the targeted networks' versions are offered (a filled one stays, so its error can show).
  function showOverrides() {
    const networks = targeted();
    for (const details of overrides) {
      const filled = Array.from(details.querySelectorAll("input, textarea")).some((f) => f.value.trim() !== "");
      details.hidden = !networks.has(details.dataset.network) && !filled;
    }
  }

  function item(text, muted) {
    const li = document.createElement("li");
    li.textContent = text;
    if (muted) li.className = "muted";
    return li;
  }

  function draw(answer) {
    box.replaceChildren();
    problems.replaceChildren();
    if (!answer.success) {
      const note = document.createElement("span");
      note.className = "muted small";
      note.textContent = answer.error ? answer.error.message : "Cannot count yet.";
      box.append(note);
      const details = (answer.error && answer.error.details) || {};
      if (details.platforms) for (const message of details.platforms) problems.append(item(message, false));
      return;
    }
    if (!answer.counters.length) {
      const note = document.createElement("span");
      note.className = "muted small";
      note.textContent = "Choose targets to see each network's count.";
      box.append(note);
    }
    for (const counter of answer.counters) {
      const span = document.createElement("span");
      span.className = counter.over ? "counter over" : "counter";
      span.dataset.network = counter.network;
      span.title = `${counter.name} ${counter.counting}`;
      span.textContent = `${counter.name} ${counter.characters}/${counter.max_characters}`;
      box.append(span);
      for (const message of counter.errors) problems.append(item(`${counter.name}: ${message}`, false));
      for (const message of counter.publish_errors) problems.append(item(`To publish on ${counter.name}: ${message}`, true));
    }
    for (const [network, messages] of Object.entries(answer.data.errors)) {
      if (answer.counters.some((c) => c.network === network)) continue;  // not targeted: an override's error
      for (const message of messages) problems.append(item(`${network}: ${message}`, false));
    }
  }

  async function check() {
    const mine = ++sequence;
    const body = new URLSearchParams(new FormData(form));
    body.delete("action");
    let answer;
    try {
      const response = await fetch(form.dataset.validateUrl, {
        method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" },
      });
      answer = await response.json();
    } catch (err) {
      return;  // signed out or offline: the form still checks everything on submit
    }
    if (mine === sequence) draw(answer);
  }

  function changed() {
    showOverrides();
    clearTimeout(timer);
    timer = setTimeout(check, 250);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  showOverrides();
  if (targeted().size) check();
});
