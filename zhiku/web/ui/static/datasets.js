// Drag-and-drop upload for the dataset page: every form marked data-upload-zone takes files dropped on it
// (or chosen with its file input), several at once, and posts each to the JSON API's upload route named by
// data-endpoint, with the form's other fields, the session cookie and the CSRF header. Each file gets a
// line with its own progress bar and, at the end, "added" or the API's error message. When a file is
// added, <body> gets the event the collections table reloads on.
// Strings come from the page's i18n block (through app.js); file names and messages are set as text only.

// app.js is imported with this module's own ?v= so the page keeps a single instance of it.
const { t, csrfToken } = await import(`./app.js${new URL(import.meta.url).search}`);

const COLLECTIONS_CHANGED = "collections-changed";
const PARALLEL_UPLOADS = 3;

function fileLine(list, file) {
  const item = document.createElement("li");
  const name = document.createElement("span");
  name.className = "upload-name";
  name.textContent = file.name;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = 0;
  const state = document.createElement("span");
  state.className = "upload-state";
  state.textContent = t("datasets.upload_waiting");
  item.append(name, " ", bar, " ", state);
  list.append(item);
  return { item, bar, state };
}

function errorText(xhr) {
  try {
    const body = JSON.parse(xhr.responseText);
    if (body && typeof body.message === "string") return body.message;
  } catch (_) { /* not JSON: fall through */ }
  return `${xhr.status} ${xhr.statusText}`;
}

// XMLHttpRequest rather than fetch: only it reports upload progress.
function send(zone, file, line) {
  return new Promise((resolve) => {
    const body = new FormData();
    for (const [key, value] of new FormData(zone)) {
      if (!(value instanceof File)) body.append(key, value);
    }
    body.append("file", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", zone.dataset.endpoint);
    xhr.setRequestHeader("X-CSRF-Token", csrfToken());
    xhr.setRequestHeader("Accept", "application/json");
    line.state.textContent = t("datasets.upload_sending");
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) line.bar.value = Math.round((event.loaded / event.total) * 100);
    });
    xhr.addEventListener("load", () => {
      const ok = xhr.status >= 200 && xhr.status < 300;
      line.bar.value = ok ? 100 : line.bar.value;
      line.item.classList.add(ok ? "upload-done" : "upload-failed");
      line.state.textContent = ok ? t("datasets.upload_done") : `${t("datasets.upload_failed")} ${errorText(xhr)}`;
      if (ok) document.body.dispatchEvent(new CustomEvent(COLLECTIONS_CHANGED));
      resolve(ok);
    });
    xhr.addEventListener("error", () => {
      line.item.classList.add("upload-failed");
      line.state.textContent = t("datasets.upload_failed");
      resolve(false);
    });
    xhr.send(body);
  });
}

async function uploadAll(zone, files) {
  const list = zone.querySelector("[data-upload-list]");
  const limit = Number(zone.dataset.maxBytes || 0);
  const queue = [];
  for (const file of files) {
    const line = fileLine(list, file);
    if (limit && file.size > limit) {
      line.item.classList.add("upload-failed");
      line.state.textContent = t("datasets.upload_too_large");
    } else {
      queue.push([file, line]);
    }
  }
  const workers = Array.from({ length: Math.min(PARALLEL_UPLOADS, queue.length) }, async () => {
    while (queue.length) {
      const [file, line] = queue.shift();
      await send(zone, file, line);
    }
  });
  await Promise.all(workers);
}

for (const zone of document.querySelectorAll("[data-upload-zone]")) {
  const input = zone.querySelector("input[type=file]");
  zone.addEventListener("submit", (event) => event.preventDefault());
  input.addEventListener("change", () => {
    const files = Array.from(input.files);
    input.value = "";
    uploadAll(zone, files);
  });
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add("drop-active");
    });
  }
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("drop-active");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("drop-active");
    uploadAll(zone, Array.from(event.dataTransfer.files));
  });
}
