// The gateway console: a dialog that shows a new key once opens when htmx brings it in, and leaves the
// page when closed. Copying and closing are app.js's (data-copy-target, data-dialog-close).

function openOnce(root) {
  for (const dialog of root.querySelectorAll("dialog[data-show-modal]")) {
    if (dialog.open) continue;
    dialog.addEventListener("close", () => dialog.remove(), { once: true });
    dialog.showModal();
  }
}

document.addEventListener("htmx:afterSwap", (event) => openOnce(event.detail.target.parentNode || document));
openOnce(document);
