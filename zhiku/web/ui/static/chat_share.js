// What the chat page (chat.js) does differently on a share link's page, /chat/share/<shareId>: the visitor
// has no login, only an id kept in this browser (FastGPT's outLinkUid: made on the first visit and stored in
// localStorage; an ?authToken= in the address is used instead, for links with an auth hook). Every call goes
// to FastGPT's share-link API with shareId + outLinkUid and without cookies, so a visitor who is also logged
// in still chats as the link's visitor: the stream (/api/v1/chat/completions), the visitor's history and
// records (/api/core/chat/...) and feedback. The history list is drawn here from that API.

// app.js with this module's own ?v=, as chat.js imports it: one instance of it on the page.
const { randomId, t } = await import(`./app.js${new URL(import.meta.url).search}`);

const UID_KEY = "zhiku.share.outLinkUid";
const HISTORY_PAGE = 30;
const RECORDS_PAGE = 100; // the records API's largest page

/** The visitor's id: the address's authToken, else this browser's own (made once). */
function visitorId() {
  const token = new URLSearchParams(window.location.search).get("authToken");
  if (token) return token;
  let uid = null;
  try {
    uid = window.localStorage.getItem(UID_KEY);
    if (!uid) {
      uid = `shareChat-${Date.now()}-${randomId()}`;
      window.localStorage.setItem(UID_KEY, uid);
    }
  } catch {
    uid = `shareChat-${Date.now()}-${randomId()}`; // storage refused (a sandboxed frame): this visit only
  }
  return uid;
}

function node(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined) element.textContent = text;
  return element;
}

/** The shared chat's calls, in the shape chat.js asks them of its backend. */
export function shareBackend(data) {
  const { shareId } = data.share;
  const outLinkUid = visitorId();
  const query = new URLSearchParams(window.location.search);
  const authToken = query.get("authToken");
  const chatId = query.get("chatId") || randomId();
  const pagePath = `/chat/share/${encodeURIComponent(shareId)}`;
  const historyList = document.getElementById("share-history");
  const noHistory = document.getElementById("no-history");

  function pageUrl(id) {
    const params = new URLSearchParams();
    if (id) params.set("chatId", id);
    if (authToken) params.set("authToken", authToken);
    const text = params.toString();
    return text ? `${pagePath}?${text}` : pagePath;
  }

  function call(url, options = {}) {
    const headers = new Headers(options.headers || {});
    if (options.body) headers.set("Content-Type", "application/json");
    return fetch(url, { ...options, headers, credentials: "omit" });
  }

  function post(url, body, signal) {
    return call(url, { method: "POST", signal, body: JSON.stringify({ shareId, outLinkUid, ...body }) });
  }

  function withVisitor(url, params) {
    return `${url}?${new URLSearchParams({ shareId, outLinkUid, ...params })}`;
  }

  async function envelope(response) {
    const body = await response.json();
    if (!response.ok || (body.code && body.code !== 200)) throw Object.assign(new Error(body.message), { body });
    return body.data;
  }

  // ---- the history list --------------------------------------------------------------------------

  function entry(chat) {
    const id = chat.chatId;
    const title = chat.customTitle || chat.title || t("chat.untitled");
    const item = node("li", `history-entry${id === chatId ? " current" : ""}`);
    item.dataset.chatId = id;
    const link = node("a", "", title);
    link.href = pageUrl(id);
    link.title = title;
    if (id === chatId) link.setAttribute("aria-current", "page");
    const actions = node("details", "history-actions");
    const summary = node("summary", "", "⋯");
    summary.setAttribute("aria-label", t("chat.chat_actions"));
    const rename = node("form", "rename-form");
    const field = node("input");
    field.name = "title";
    field.value = title;
    field.maxLength = 100;
    field.required = true;
    field.setAttribute("aria-label", t("chat.title"));
    const save = node("button", "btn btn-small", t("chat.rename"));
    save.type = "submit";
    rename.append(field, save);
    rename.addEventListener("submit", async (event) => {
      event.preventDefault();
      const response = await post("/api/core/chat/updateHistory", { chatId: id, customTitle: field.value.trim() });
      if (response.ok) await showHistory();
    });
    const remove = node("button", "btn btn-small btn-danger delete-chat", t("chat.delete"));
    remove.type = "button";
    remove.addEventListener("click", async () => {
      if (!window.confirm(t("chat.delete_confirm", { title }))) return;
      const response = await call(withVisitor("/api/core/chat/delHistory", { chatId: id }), { method: "DELETE" });
      if (!response.ok) return;
      if (id === chatId) window.location.assign(pageUrl(null));
      else await showHistory();
    });
    actions.append(summary, rename, remove);
    item.append(link, actions);
    return item;
  }

  async function historyPage(offset) {
    return envelope(await post("/api/core/chat/getHistories", { offset, pageSize: HISTORY_PAGE }));
  }

  function appendPage(page, offset) {
    historyList.append(...page.list.map(entry));
    if (offset + page.list.length < page.total) {
      const more = node("li", "history-more");
      const button = node("button", "btn btn-small", t("chat.more"));
      button.type = "button";
      button.addEventListener("click", async () => {
        const next = offset + HISTORY_PAGE;
        more.remove();
        appendPage(await historyPage(next), next);
      });
      more.append(button);
      historyList.append(more);
    }
  }

  async function showHistory() {
    const page = await historyPage(0);
    historyList.replaceChildren();
    noHistory.hidden = page.list.length > 0;
    appendPage(page, 0);
  }

  // ---- what chat.js asks -------------------------------------------------------------------------

  return {
    chatId,
    chatPath: pageUrl(chatId),
    newChatPath: pageUrl(null),

    /** The stored chat: its variables and its messages as the chat page shows them. */
    async load() {
      showHistory().catch(() => {}); // the list stays empty when it cannot be read; the chat does not wait
      if (!query.get("chatId")) return { variables: {}, items: [] };
      const init = await envelope(await call(withVisitor("/api/core/chat/outLink/init", { chatId })));
      let records = { list: [] };
      try {
        records = await envelope(await post("/api/core/chat/getPaginationRecords",
                                            { chatId, offset: 0, pageSize: RECORDS_PAGE }));
      } catch (error) {
        if (error.body?.statusText !== "chat_not_found") throw error; // a chat id not used yet: a new chat
      }
      const items = records.list.map((record) => ({
        id: record.dataId,
        dataId: record.dataId, // a paused answer's reply is sent under it again
        role: record.obj === "Human" ? "user" : "assistant",
        content: (record.value || []).filter((v) => v.type === "text").map((v) => v.text.content).join(""),
        value: record.value || [], // text and tool calls in order (none when the link hides node status)
        quotes: record.totalQuoteList || [],
        feedback: record.userGoodFeedback ? "good" : record.userBadFeedback ? "bad" : null,
      }));
      return { variables: init.variables || {}, items };
    },

    stream(body, signal) {
      return post("/api/v1/chat/completions", { ...body, retainDatasetCite: data.share.responseDetail }, signal);
    },

    /** The answer's id for feedback: the one this page gave it when asking. */
    async answerId(sent) {
      return sent;
    },

    feedback(itemId, value) {
      const body = { chatId, dataId: itemId };
      if (value === "good") body.userGoodFeedback = "yes";
      if (value === "bad") body.userBadFeedback = "yes";
      return post("/api/core/chat/feedback/updateUserFeedback", body);
    },

    saved() {
      showHistory().catch(() => {});
    },

    /** Where the link shows raw sources and the quote has a document (its `sourceKind`): a source opened
     *  through FastGPT's collection/read (a short-lived link to the file, or the page's address); the server
     *  checks the collection is one the app searches. */
    sourceLink(quote) {
      if (!data.share.showRawSource || !quote.collectionId || !quote.sourceKind) return null;
      const open = async () => (await envelope(await post("/api/core/dataset/collection/read",
                                                          { collectionId: quote.collectionId, chatId }))).value;
      return { open };
    },
  };
}
