// The chat page: asks the app's chat API itself (POST /api/v1/chat/completions, stream + detail) and shows
// the answer as it streams, with each tool call (the toolCall / toolParams / toolResponse events, or the
// stored answer's `tool` value items) as a collapsible block where it happened in the answer; citations under
// each answer with the [n] markers linked to them; stop, copy and good/bad feedback; the conversation stored
// under the page's chat id. Everything the model, a tool or a document wrote is set with textContent only
// (CSS keeps the line breaks).
//
// Who asks is the page's backend: a login (the session cookie and the CSRF header; history, feedback and the
// stored chat through the chat pages' own routes, the history list drawn by htmx) or, on a share link's page,
// the link's visitor (chat_share.js: FastGPT's share-link API, the history list drawn there).
// A citation whose quote says its collection has a source document (its `sourceKind`: "file", an upload that
// downloads, or "url", a web page; decided on the server, zhiku.db.collection_types) gets an "open source"
// link: for a login, the collection's source route itself; for a visitor, only where the link shows raw
// sources, through FastGPT's collection/read, which answers a short-lived link. A quote stored before quotes
// carried `sourceKind` gets no link: the page asks nothing about collections.
// A workflow that pauses to ask the user (an `interactive` event, or a stored answer whose last item is an
// unanswered interaction) shows its question in the answer (chat_interactive.js); the reply is the chat's next
// message, as an API client sends it, and the resumed run streams on into the same answer, as the server
// merges it into the same stored answer. While a question waits, a typed message answers it too (the server
// takes the next message as the reply whatever it is).

// The history panel's toggle needs nothing else: wired before the imports below are awaited, so it works
// from the moment the page shows (a module's top-level await lets the page finish loading without it).
const toggle = document.getElementById("history-toggle");
toggle.addEventListener("click", () => {
  const open = document.getElementById("chat-page").classList.toggle("show-history");
  toggle.setAttribute("aria-expanded", String(open));
});

// app.js is imported with this module's own ?v= so the page keeps a single instance of it.
const version = new URL(import.meta.url).search;
const { t, apiFetch, copyText, randomId } = await import(`./app.js${version}`);
const { interactionView, isAnswered } = await import(`./chat_interactive.js${version}`);

const CHAT_SAVED = "chat-saved";
const data = JSON.parse(document.getElementById("chat-data").textContent);
const backend = data.share ? (await import(`./chat_share.js${version}`)).shareBackend(data) : loginBackend();
const chatId = backend.chatId;
const messages = document.getElementById("messages");
const composer = document.getElementById("composer");
const question = document.getElementById("question");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const welcome = document.getElementById("welcome");
let answerCount = 0;
let running = null; // the AbortController of the turn in flight
let pending = null; // { answer, view }: the question the chat waits on; the next message answers it

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** A logged-in user's chat: the app's chat API with the session, and the chat page's own routes. */
function loginBackend() {
  const chatPath = `/chat/${data.appId}/${encodeURIComponent(data.chatId)}`;
  return {
    chatId: data.chatId,
    chatPath,
    async load() {
      return { variables: data.variables, items: data.items };
    },
    stream(body, signal) {
      return apiFetch("/api/v1/chat/completions", { method: "POST", signal,
                                                    body: JSON.stringify({ appId: data.appId, ...body }) });
    },
    async answerId() {
      const last = await apiFetch(`${chatPath}/last-answer`);
      return last.ok ? (await last.json()).id : null;
    },
    feedback(itemId, value) {
      return apiFetch(`${chatPath}/feedback`, { method: "POST",
                                                body: JSON.stringify({ itemId: Number(itemId), feedback: value }) });
    },
    saved() {
      document.body.dispatchEvent(new CustomEvent(CHAT_SAVED));
    },
    /** How a login opens the quote's source: the file downloads, a page opens in a new tab; null when the
     *  quote says there is none (pasted text) or does not say (a quote stored before it did). */
    sourceLink(quote) {
      if (!quote.collectionId) return null;
      const href = `/api/collections/${encodeURIComponent(quote.collectionId)}/source`;
      if (quote.sourceKind === "file") return { href, download: true };
      if (quote.sourceKind === "url") return { href, newTab: true };
      return null;
    },
  };
}

// ---- one message -----------------------------------------------------------------------------------

function addQuestion(text) {
  const item = node("li", "message message-user");
  item.append(node("div", "message-role offscreen", t("chat.you")), node("div", "bubble", text));
  messages.append(item);
  return item;
}

/** An empty answer: its status line, its body (text parts with the tool calls between them), and a place
 *  for citations and tools. */
function addAnswer() {
  answerCount += 1;
  const item = node("li", "message message-assistant");
  item.dataset.answer = String(answerCount);
  const bubble = node("div", "bubble");
  const status = node("div", "answer-status muted");
  const body = node("div", "answer-body");
  bubble.append(status, body);
  item.append(node("div", "message-role offscreen", t("chat.assistant")), bubble);
  messages.append(item);
  // text: the answer's whole text (what copy copies); quotes: its citations; sentId: the id it was asked under
  return { item, bubble, status, body, number: answerCount, calls: new Map(), text: "", quotes: [], sentId: null };
}

/** Text at the end of the answer: its last text part grows, or a new part starts after a tool call. */
function appendText(answer, text) {
  let part = answer.body.lastElementChild;
  if (!part?.classList.contains("answer-text")) {
    part = node("div", "answer-text");
    answer.body.append(part);
  }
  if (part.lastChild?.nodeType === Node.TEXT_NODE) part.lastChild.appendData(text);
  else part.append(document.createTextNode(text));
}

/** A tool call as a closed block: the tool's name, then its arguments and its response (text only). */
function addToolCall(answer, tool) {
  const block = node("details", "tool-call");
  const summary = node("summary");
  summary.append(node("span", "tool-call-label", t("chat.tool_call")),
                 node("span", "tool-call-name", tool.toolName || tool.functionName || ""),
                 node("span", "tool-call-running muted", t("chat.tool_running")));
  const params = node("pre", "tool-call-params", tool.params || "");
  const response = node("pre", "tool-call-response", tool.response || "");
  block.append(summary, node("div", "tool-call-heading", t("chat.tool_arguments")), params,
               node("div", "tool-call-heading", t("chat.tool_response")), response);
  const last = answer.body.lastElementChild; // an empty text part (the streaming cursor) stays last
  if (last?.classList.contains("answer-text") && !last.textContent) last.before(block);
  else answer.body.append(block);
  answer.calls.set(tool.id, { block, params, response });
  return block;
}

/** A toolCall / toolParams / toolResponse event: a new block, more of its arguments, or its response. */
function showToolEvent(answer, name, tool) {
  if (!tool) return;
  if (name === "toolCall") {
    addToolCall(answer, tool).classList.add("running");
    return;
  }
  const call = answer.calls.get(tool.id);
  if (!call) return;
  if (name === "toolParams") {
    call.params.append(document.createTextNode(tool.params || ""));
  } else {
    call.response.textContent = tool.response || "";
    call.block.classList.remove("running");
  }
}

/** A workflow's question at the end of the answer's body (before the streaming cursor); live: the chat's next
 *  message answers it, else it is shown locked (answered, or asked again since). */
function addInteraction(answer, interactive, live) {
  const view = interactionView(interactive, { t, onReply: (reply) => replyTo(answer, view, reply) });
  const last = answer.body.lastElementChild;
  if (last?.classList.contains("answer-text") && !last.textContent) last.before(view.element);
  else answer.body.append(view.element);
  if (live && !isAnswered(interactive)) pending = { answer, view };
  else if (!isAnswered(interactive)) view.lock(null);
  return view;
}

/** The answer's text parts with each [n] that names a quote made a link to that citation. */
function linkCitations(answer, quotes) {
  for (const part of answer.body.querySelectorAll(".answer-text")) linkPart(answer, part, quotes);
}

function linkPart(answer, part, quotes) {
  const text = part.textContent;
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(/\[(\d{1,3})\]/g)) {
    const index = Number(match[1]);
    if (index < 1 || index > quotes.length) continue;
    parts.push(document.createTextNode(text.slice(last, match.index)));
    const link = node("a", "cite-marker", `[${index}]`);
    link.href = `#cite-${answer.number}-${index}`;
    link.title = t("chat.citation_open");
    link.addEventListener("click", (event) => {
      event.preventDefault();
      openCitation(answer.number, index);
    });
    parts.push(link);
    last = match.index + match[0].length;
  }
  parts.push(document.createTextNode(text.slice(last)));
  part.replaceChildren(...parts);
}

function openCitation(number, index) {
  const entry = document.getElementById(`cite-${number}-${index}`);
  if (!entry) return;
  entry.querySelector("details").open = true;
  entry.scrollIntoView({ block: "nearest" });
  entry.classList.add("flash");
  setTimeout(() => entry.classList.remove("flash"), 1200);
}

function scoreText(scores) {
  return (scores || []).map((s) => `${s.type} ${Number(s.value).toFixed(3)}`).join(" · ");
}

function showCitations(answer, quotes) {
  if (!quotes.length) return;
  const section = node("div", "citations");
  section.append(node("div", "citations-title", `${t("chat.citations")} (${quotes.length})`));
  const list = node("ol", "citation-list");
  quotes.forEach((quote, i) => {
    const entry = node("li", "citation");
    entry.id = `cite-${answer.number}-${i + 1}`;
    const details = node("details");
    const summary = node("summary");
    summary.append(node("span", "cite-index", `[${i + 1}]`), node("span", "cite-source", quote.sourceName || ""));
    if (quote.page !== null && quote.page !== undefined) {
      summary.append(node("span", "cite-page", t("chat.page", { page: quote.page })));
    }
    const scores = scoreText(quote.score);
    if (scores) summary.append(node("span", "cite-score", t("chat.score", { score: scores })));
    const text = quote.a ? `${quote.q}\n${quote.a}` : quote.q;
    details.append(summary, node("div", "quote-text", text || ""));
    entry.append(details);
    showSourceLink(entry, quote);
    list.append(entry);
  });
  section.append(list);
  answer.bubble.append(section);
}

/** The citation's "open source" link, where the backend offers one for the quote. */
function showSourceLink(entry, quote) {
  const source = backend.sourceLink(quote);
  if (!source) return;
  const link = node("a", "cite-open", t("chat.open_source"));
  link.href = source.href || "#";
  if (source.download) link.setAttribute("download", "");
  if (source.newTab) {
    link.target = "_blank";
    link.rel = "noopener noreferrer";
  }
  if (source.open) {
    const status = node("span", "cite-open-status muted");
    status.setAttribute("role", "status");
    link.addEventListener("click", (event) => {
      event.preventDefault();
      openSource(source, status);
    });
    entry.append(link, status);
  } else {
    entry.append(link);
  }
}

/** A source the server answers a URL for (a visitor's): opened in a new tab, http(s) only. */
async function openSource(source, status) {
  status.textContent = t("chat.opening_source");
  try {
    const url = new URL(await source.open(), window.location.href);
    if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error(url.protocol);
    status.textContent = "";
    window.open(url.href, "_blank", "noopener");
  } catch (error) {
    status.textContent = error.body ? failureText(error.body, error.message) : t("chat.network_error");
  }
}

function showError(answer, text) {
  const box = node("div", "answer-error", `${t("chat.error")} ${text}`);
  box.setAttribute("role", "alert");
  answer.bubble.append(box);
}

function flash(button, key) {
  const before = button.textContent;
  button.textContent = t(key);
  setTimeout(() => {
    button.textContent = before;
  }, 1200);
}

/** Copy, and good/bad once the stored answer's id is known. */
function showTools(answer, text, itemId, feedback) {
  const tools = node("div", "message-tools");
  const copy = node("button", "btn btn-small copy-answer", t("chat.copy"));
  copy.type = "button";
  copy.addEventListener("click", async () => {
    try {
      await copyText(text);
      flash(copy, "common.copied");
    } catch {
      flash(copy, "common.copy_failed");
    }
  });
  tools.append(copy);
  if (itemId) {
    answer.item.dataset.itemId = String(itemId);
    for (const [value, label] of [["good", t("chat.good")], ["bad", t("chat.bad")]]) {
      const button = node("button", `btn btn-small feedback feedback-${value}`, label);
      button.type = "button";
      button.dataset.feedback = value;
      button.setAttribute("aria-pressed", String(feedback === value));
      button.addEventListener("click", () => sendFeedback(answer, tools, button));
      tools.append(button);
    }
  }
  tools.append(node("span", "tool-status muted"));
  answer.bubble.append(tools);
}

async function sendFeedback(answer, tools, button) {
  const pressed = button.getAttribute("aria-pressed") === "true";
  const status = tools.querySelector(".tool-status");
  const response = await backend.feedback(answer.item.dataset.itemId, pressed ? null : button.dataset.feedback);
  if (!response.ok) {
    status.textContent = t("chat.feedback_failed");
    return;
  }
  for (const other of tools.querySelectorAll("[data-feedback]")) {
    other.setAttribute("aria-pressed", String(other === button && !pressed));
  }
  status.textContent = t("chat.feedback_saved");
}

/** A stored answer (a continued chat), shown like a finished streamed one: its value items in order (text
 *  and tool calls; an answer stored before it had them, its text). */
function showStored(item) {
  const answer = addAnswer();
  const quotes = item.quotes || [];
  answer.text = item.content || "";
  answer.quotes = quotes;
  answer.sentId = item.dataId || null;
  const value = item.value?.length ? item.value : [{ type: "text", text: { content: item.content || "" } }];
  value.forEach((entry, i) => {
    if (entry.type === "text" && entry.text?.content) appendText(answer, entry.text.content);
    else if (entry.type === "tool") for (const tool of entry.tools || []) addToolCall(answer, tool);
    else if (entry.type === "interactive" && entry.interactive) {
      addInteraction(answer, entry.interactive, i === value.length - 1); // only the last may still wait
    }
  });
  if (item.content) {
    linkCitations(answer, quotes);
  } else if (!answer.calls.size && !answer.body.querySelector(".interaction")) {
    answer.body.append(node("div", "answer-text muted", t("chat.no_answer")));
  }
  showCitations(answer, quotes);
  showTools(answer, item.content, item.id, item.feedback);
}

// ---- the stream ------------------------------------------------------------------------------------

/** The events of a text/event-stream body as [event name or null, data text]. */
async function* serverEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = null;
      const lines = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) lines.push(line.slice(line.startsWith("data: ") ? 6 : 5));
      }
      if (lines.length) yield [name, lines.join("\n")];
      end = buffer.indexOf("\n\n");
    }
  }
}

/** Why a call was refused: the page's own words for the error's code where it has them (a share link
 *  expired, used up, rate limited, revoked), else the server's message. */
function failureText(body, fallback) {
  const code = body?.error?.code || body?.statusText;
  const key = `chat.failure.${code}`;
  if (code && t(key) !== key) return t(key);
  return body?.error?.message || body?.message || body?.detail || fallback;
}

async function errorText(response) {
  try {
    return failureText(await response.json(), response.statusText);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

function quotesOf(nodes) {
  const search = (Array.isArray(nodes) ? nodes : []).find((n) => Array.isArray(n.quoteList));
  return search ? search.quoteList : [];
}

const NODE_STATUS = { "Dataset search": "chat.searching", "AI chat": "chat.answering" };

function variables() {
  const values = {};
  for (const field of document.querySelectorAll("[data-variable]")) {
    if (field.required && !field.value.trim()) {
      document.getElementById("chat-vars").open = true;
      field.focus();
      field.setCustomValidity(t("chat.variable_required"));
      field.reportValidity();
      field.addEventListener("input", () => field.setCustomValidity(""), { once: true });
      return null;
    }
    if (field.value !== "") values[field.dataset.variable] = field.value;
  }
  return values;
}

function setRunning(controller) {
  running = controller;
  sendButton.hidden = Boolean(controller);
  stopButton.hidden = !controller;
  messages.parentElement.classList.toggle("streaming", Boolean(controller));
}

async function ask(text) {
  await loaded;
  if (running) return;
  if (pending) { // the question the workflow waits on takes this message as its reply
    replyTo(pending.answer, pending.view, text);
    return;
  }
  const vars = variables();
  if (vars === null) return;
  welcome.hidden = true;
  addQuestion(text);
  await runTurn(addAnswer(), text, vars, null);
}

/** The reply to a workflow's question, sent as the chat's next message; false when it cannot go now. */
function replyTo(answer, view, reply) {
  if (running || !reply) return false;
  const vars = variables();
  if (vars === null) return false;
  pending = null;
  view.lock(reply);
  runTurn(answer, reply, vars, view);
  return true;
}

/** One turn streamed into `answer`: a new question's, or (`resumed`: the question's view) the reply to the
 *  question the answer asked, which the server appends to the same stored answer. */
async function runTurn(answer, text, vars, resumed) {
  if (resumed) { // the whole answer's citations and tools come again at its end
    for (const old of answer.bubble.querySelectorAll(":scope > .citations, :scope > .message-tools")) old.remove();
  }
  answer.item.classList.add("streaming");
  answer.status.textContent = t("chat.thinking");
  appendText(answer, ""); // the part the text streams into (the cursor shows there)
  answer.item.scrollIntoView({ block: "end" });
  const controller = new AbortController();
  const answerId = (resumed && answer.sentId) || randomId();
  answer.sentId = answerId;
  setRunning(controller);
  let answerText = "";
  let quotes = [];
  let failure = null;
  let stopped = false;
  let reached = false; // the server took the turn (it keeps it from here on)
  let asked = null; // the question this turn ends with
  try {
    const response = await backend.stream({ chatId, responseChatItemId: answerId, stream: true, detail: true,
                                            variables: vars, messages: [{ role: "user", content: text }] },
                                          controller.signal);
    if (!response.ok) {
      failure = await errorText(response);
    } else {
      reached = true;
      for await (const [name, payload] of serverEvents(response.body)) {
        if (payload === "[DONE]") continue; // the body ends once the turn is stored: read on to its end
        const event = JSON.parse(payload);
        if (name === "flowNodeStatus") {
          answer.status.textContent = t(NODE_STATUS[event.name] || "chat.thinking");
        } else if (name === "error") {
          failure = failureText(event, event.message || t("chat.no_answer"));
        } else if (name === "toolCall" || name === "toolParams" || name === "toolResponse") {
          showToolEvent(answer, name, event.tool);
        } else if (name === "interactive") {
          if (event.interactive) asked = addInteraction(answer, event.interactive, true);
        } else if (name === "flowResponses") {
          quotes = quotesOf(event);
        } else if (name === "answer" || name === "fastAnswer" || name === null) { // fastAnswer: a fixed reply
          const delta = event.choices?.[0]?.delta?.content;
          if (delta) {
            answerText += delta;
            appendText(answer, delta);
          }
        }
      }
    }
  } catch (error) {
    if (error.name === "AbortError") stopped = true;
    else failure = t("chat.network_error");
  }
  if (resumed && !reached) { // the reply never reached the server: the question still waits
    resumed.unlock();
    pending = { answer, view: resumed };
  }
  answer.text = [answer.text, answerText].filter(Boolean).join("\n"); // as the server joins a resumed answer
  answer.quotes = [...answer.quotes, ...quotes];
  answer.item.classList.remove("streaming");
  answer.status.textContent = stopped ? t("chat.stopped") : "";
  for (const call of answer.calls.values()) call.block.classList.remove("running"); // stopped or failed meanwhile
  const cursor = answer.body.lastElementChild; // an empty last part, as the stored answer has none
  if (cursor?.classList.contains("answer-text") && !cursor.textContent && answer.body.childElementCount > 1) {
    cursor.remove();
  }
  if (answer.text) linkCitations(answer, answer.quotes);
  showCitations(answer, answer.quotes);
  if (failure) showError(answer, failure);
  else if (!answerText && !asked && !stopped) showError(answer, t("chat.no_answer"));
  const itemId = answer.text && !stopped && reached ? await backend.answerId(answerId) : null;
  if (answer.text) showTools(answer, answer.text, itemId, null);
  if (reached || stopped) {
    const here = window.location.pathname + window.location.search;
    if (here !== backend.chatPath) {
      window.history.replaceState(null, "", backend.chatPath);
      keepChatOnLanguageSwitch(backend.chatPath);
    }
    backend.saved();
  }
  setRunning(null); // the turn is over once its answer has its tools
}

// The language links were written for the address the page loaded at; a new chat has its own address now.
function keepChatOnLanguageSwitch(path) {
  for (const link of document.querySelectorAll(".lang-switch a[data-lang]")) {
    link.href = `/lang/${encodeURIComponent(link.dataset.lang)}?next=${encodeURIComponent(path)}`;
  }
}

// ---- the page --------------------------------------------------------------------------------------

/** A refusal that concerns the whole page (a share link that expired or was revoked meanwhile). */
function showPageError(text) {
  const banner = document.getElementById("chat-error");
  banner.textContent = text;
  banner.hidden = false;
}

/** The stored chat (a continued one) shown; a question asked meanwhile waits for it. */
async function showStoredChat() {
  try {
    const stored = await backend.load();
    for (const item of stored.items) {
      pending = null; // only the last answer's question may still wait
      if (item.role === "user") addQuestion(item.content);
      else if (item.role === "assistant") showStored(item);
    }
    for (const [key, value] of Object.entries(stored.variables || {})) {
      const field = document.querySelector(`[data-variable="${CSS.escape(key)}"]`);
      if (field) field.value = String(value);
    }
    if (stored.items.length) {
      welcome.hidden = true;
      messages.lastElementChild?.scrollIntoView({ block: "end" });
    }
    if (data.someoneElses) { // another member's chat: shown empty by the server, and not to be continued
      welcome.hidden = true;
      showError(addAnswer(), t("chat.failure.chat_forbidden"));
    }
  } catch (error) {
    showPageError(error.body ? failureText(error.body, error.message) : t("chat.network_error"));
  }
}

const loaded = showStoredChat();
composer.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = question.value.trim();
  if (!text || running) return;
  question.value = "";
  ask(text);
});
question.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    composer.requestSubmit();
  }
});
stopButton.addEventListener("click", () => running?.abort());
for (const button of document.querySelectorAll(".opening-question")) {
  button.addEventListener("click", () => ask(button.textContent.trim()));
}
loaded.then(() => {
  sendButton.disabled = false; // disabled in the page until here, so nothing is sent before the chat is shown
  document.body.dataset.chatReady = "true";
});
