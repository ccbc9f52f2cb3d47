// Shared helpers for every page (an ES module; a page's own module imports what it needs from here).
//
//   import { t, csrfToken, apiFetch } from "/static/app.js";
//
// What it wires up by itself, by attribute, so templates need no script of their own:
//   <button data-copy="text">          copies "text";  data-copy-target="#id" copies that element's text
//   <button data-dialog-open="id">     opens <dialog id="id">;  [data-dialog-close] inside closes it
//   <form data-confirm="question">     asks before submitting (also for htmx forms and buttons)
// User text is only ever set with textContent, never innerHTML.

function readJson(id) {
  try {
    return JSON.parse(document.getElementById(id)?.textContent || "{}");
  } catch {
    return {};
  }
}

/** The layout's shared strings and those the page put in <script type="application/json" id="i18n">
 *  (base.html's `i18n` block). */
const strings = { ...readJson("i18n-common"), ...readJson("i18n") };

/** The text of a catalogue key the page handed over; {name} placeholders are filled from params. */
export function t(key, params = {}) {
  const text = strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** The session's CSRF token, which every state-changing request made with the cookie must carry. */
export function csrfToken() {
  return document.querySelector('meta[name="csrf-token"]')?.content ?? "";
}

/** fetch() with the CSRF header and same-origin credentials: how page scripts call the JSON API. */
export function apiFetch(url, options = {}) {
  const headers = new Headers(options.headers || {});
  headers.set("X-CSRF-Token", csrfToken());
  if (options.body && typeof options.body === "string" && !headers.has("Content-Type")) {
    headers.set("Content-Type", "application/json");
  }
  return fetch(url, { credentials: "same-origin", ...options, headers });
}

/** 32 random hex digits (crypto.randomUUID exists only in secure contexts; plain http on a LAN is not one). */
export function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Copy text to the clipboard; falls back to a hidden textarea where the Clipboard API is missing
 *  (plain http on a LAN address is not a secure context). */
export async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.className = "offscreen";
  document.body.append(area);
  area.select();
  document.execCommand("copy");
  area.remove();
}

function flash(button, key) {
  const before = button.textContent;
  button.textContent = t(key);
  button.disabled = true;
  setTimeout(() => {
    button.textContent = before;
    button.disabled = false;
  }, 1200);
}

document.addEventListener("click", async (event) => {
  const copy = event.target.closest("[data-copy], [data-copy-target]");
  if (copy) {
    const source = copy.dataset.copyTarget ? document.querySelector(copy.dataset.copyTarget) : null;
    const text = source ? (source.value ?? source.textContent) : copy.dataset.copy;
    try {
      await copyText(text ?? "");
      flash(copy, "common.copied");
    } catch {
      flash(copy, "common.copy_failed");
    }
    return;
  }
  const opener = event.target.closest("[data-dialog-open]");
  if (opener) {
    document.getElementById(opener.dataset.dialogOpen)?.showModal();
    return;
  }
  const closer = event.target.closest("[data-dialog-close]");
  if (closer) {
    closer.closest("dialog")?.close();
  }
});

// Forms and buttons that ask first: plain submissions here, htmx requests through htmx's own event.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset?.confirm;
  if (question && !event.target.hasAttribute("hx-post") && !window.confirm(question)) {
    event.preventDefault();
  }
});
document.addEventListener("htmx:confirm", (event) => {
  const question = event.target.closest("[data-confirm]")?.dataset.confirm;
  if (!question) return;
  event.preventDefault();
  if (window.confirm(question)) event.detail.issueRequest(true);
});

// <dialog data-show-modal> opens by itself when it reaches the page (with it, or swapped in by htmx) and
// leaves the page when closed: how a secret is shown once (a new API key).
function openShowModalDialogs(root) {
  for (const dialog of root.querySelectorAll("dialog[data-show-modal]")) {
    if (dialog.open) continue;
    dialog.addEventListener("close", () => dialog.remove(), { once: true });
    dialog.showModal();
  }
}
document.addEventListener("htmx:afterSwap", (event) => openShowModalDialogs(event.detail.target.parentNode || document));
openShowModalDialogs(document);
