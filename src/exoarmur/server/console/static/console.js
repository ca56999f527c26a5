// ExoArmur console: live inbox (server-sent events), countdowns, copy buttons.
// Our own code, no dependencies; the server escapes every fragment it sends.
"use strict";

function startCountdowns() {
  const started = Date.now();
  const spans = () => document.querySelectorAll(".countdown[data-seconds]");
  for (const span of spans()) span.dataset.since = String(started);
  setInterval(() => {
    for (const span of spans()) {
      const since = Number(span.dataset.since || Date.now());
      const left = Math.max(0, Number(span.dataset.seconds) - Math.floor((Date.now() - since) / 1000));
      const minutes = Math.floor(left / 60);
      span.textContent = (minutes ? minutes + " min " : "") + (left % 60) + " s";
    }
  }, 1000);
}

function keepTyped(container) {
  // What an operator typed survives a refresh of the list it sits in.
  const kept = {};
  for (const input of container.querySelectorAll("input[data-keep]")) {
    if (input.value) kept[input.dataset.keep] = input.value;
  }
  return kept;
}

function restoreTyped(container, kept) {
  for (const input of container.querySelectorAll("input[data-keep]")) {
    if (kept[input.dataset.keep]) input.value = kept[input.dataset.keep];
  }
  const now = Date.now();
  for (const span of container.querySelectorAll(".countdown[data-seconds]")) span.dataset.since = String(now);
}

function startLiveInbox() {
  const inbox = document.getElementById("inbox");
  if (!inbox || !window.EventSource) return;
  const state = document.getElementById("live-state");
  const pending = document.getElementById("pending");
  let fetching = false;
  let again = false;
  async function refresh() {
    if (fetching) { again = true; return; }
    fetching = true;
    try {
      const answer = await fetch(inbox.dataset.list, { credentials: "same-origin", redirect: "error" });
      if (answer.ok) {
        const kept = keepTyped(pending);
        const parsed = new DOMParser().parseFromString(await answer.text(), "text/html");
        pending.replaceChildren(...parsed.body.childNodes);
        restoreTyped(pending, kept);
        document.body.dataset.refreshedAt = String(Date.now());
      }
    } finally {
      fetching = false;
      if (again) { again = false; refresh(); }
    }
  }
  const source = new EventSource(inbox.dataset.live);
  source.addEventListener("hello", () => { state.textContent = "live updates: on"; });
  source.addEventListener("changed", refresh);
  source.addEventListener("signedout", () => { source.close(); state.textContent = "signed out"; });
  source.onerror = () => { state.textContent = "live updates: reconnecting…"; };
}

function startCopyButtons() {
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    button.addEventListener("click", async () => {
      const text = document.getElementById(button.dataset.copy).textContent;
      try { await navigator.clipboard.writeText(text); button.textContent = "Copied"; }
      catch (e) { button.textContent = "Select and copy by hand"; }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  startCountdowns();
  startLiveInbox();
  startCopyButtons();
});
