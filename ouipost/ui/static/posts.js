// The composer's live per-network counters: the form's fields go to the page's validate endpoint
// (the same check as POST /api/posts/validate, run on the server), debounced; the answer is drawn
// as counters, red past a network's limit, and the thread's and first comment's errors next to
// their fields. "Add a part" and "Remove" change the thread's part fields in the page. Without this
// file the form checks everything on submit, and those buttons ask the server for the form again.
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

  // Follow-up errors by the form's field names (`fields` of the answer): each under its field, as
  // the server draws them after a submit (ouipost/ui/views/posts.py followup_field_errors).
  const FOLLOWUP_KEY = /^(thread|thread_mode|first_comment)(\.\d+)?$/;

  function fieldErrors(name, messages) {
    const input = form.querySelector(`textarea[name="${name}"]`);
    const holder = input ? input.closest(".field") : form.querySelector(`[data-errors-for="${name}"]`);
    if (!holder) return;
    const id = `${name.replace(/\./g, "-")}-errors`;
    let list = Array.from(holder.children).find((el) => el.id === id);
    const described = input || holder;  // a textarea, or the fieldset of the thread or its mode
    if (!messages.length) {
      if (list) list.remove();
      holder.classList.remove("has-error");
      described.removeAttribute("aria-describedby");
      if (input) input.removeAttribute("aria-invalid");
      return;
    }
    if (!list) {
      list = document.createElement("ul");
      list.className = "field-errors";
      list.id = id;
      holder.append(list);
    }
    list.replaceChildren(...messages.map((message) => item(message, false)));
    holder.classList.add("has-error");
    described.setAttribute("aria-describedby", id);
    if (input) input.setAttribute("aria-invalid", "true");
  }

  function drawFollowups(fields) {
    const names = ["thread", "thread_mode", "first_comment"];
    for (const area of form.querySelectorAll('textarea[name^="thread."]')) names.push(area.name);
    for (const name of names) fieldErrors(name, fields[name] || []);
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
      if (FOLLOWUP_KEY.test(network)) continue;  // drawn at its field
      for (const message of messages) problems.append(item(`${network}: ${message}`, false));
    }
    drawFollowups(answer.fields || {});
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

  // The thread's parts: one textarea each, sent as thread.0, thread.1... in the page's order.
  const thread = document.getElementById("thread");
  const partList = thread && thread.querySelector(".thread-parts");
  if (thread && partList) {
    const maxParts = Number(thread.dataset.maxParts || "25");
    const addButton = thread.querySelector('button[name="thread_add"]');

    function renumber() {
      const parts = partList.querySelectorAll("[data-part]");
      parts.forEach((part, i) => {
        const area = part.querySelector("textarea");
        const label = part.querySelector("label");
        const errors = part.querySelector(".field-errors");
        area.name = `thread.${i}`;
        area.id = `f-thread-${i}`;
        label.htmlFor = area.id;
        label.textContent = `Part ${i + 1}`;
        if (errors) {
          errors.id = `thread-${i}-errors`;
          area.setAttribute("aria-describedby", errors.id);
        }
        const media = part.querySelector('input[type="hidden"]');
        if (media) media.name = `thread.${i}.media_ids`;
        const remove = part.querySelector('button[name="thread_remove"]');
        remove.value = String(i);
        const hidden = remove.querySelector(".visually-hidden");
        if (hidden) hidden.textContent = ` part ${i + 1}`;
      });
      if (addButton) addButton.hidden = parts.length >= maxParts;
    }

    function emptied(part) {
      const fresh = part.cloneNode(true);
      for (const extra of fresh.querySelectorAll('.field-errors, input[type="hidden"], .part-media')) extra.remove();
      const area = fresh.querySelector("textarea");
      area.value = "";
      area.removeAttribute("aria-invalid");
      area.removeAttribute("aria-describedby");
      area.removeAttribute("autofocus");
      fresh.querySelector(".field").classList.remove("has-error");
      return fresh;
    }

    thread.addEventListener("click", (event) => {
      const button = event.target.closest("button");
      if (!button || !thread.contains(button)) return;
      if (button.name === "thread_add") {
        event.preventDefault();
        const parts = partList.querySelectorAll("[data-part]");
        if (parts.length >= maxParts) return;
        const fresh = emptied(parts[parts.length - 1]);
        partList.append(fresh);
        renumber();
        fresh.querySelector("textarea").focus();
        changed();
      } else if (button.name === "thread_remove") {
        event.preventDefault();
        const part = button.closest("[data-part]");
        const parts = partList.querySelectorAll("[data-part]");
        const index = Array.from(parts).indexOf(part);
        if (parts.length > 1) {
          part.remove();
        } else {
          part.replaceWith(emptied(part));  // the last one is emptied: a thread field is always there
        }
        renumber();
        const left = partList.querySelectorAll("[data-part] textarea");
        left[Math.min(index, left.length - 1)].focus();
        changed();
      }
    });
  }

  showOverrides();
  if (targeted().size) check();
});
