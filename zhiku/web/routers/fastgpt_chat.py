"""FastGPT's chat history, record and share-link APIs: ``/api/core/chat/…`` and ``/api/support/outLink/…``.

Each route takes FastGPT's request, calls :mod:`zhiku.apps.history` or :mod:`zhiku.apps.share_links`, and
answers in FastGPT's envelope (``zhiku.web.fastgpt_envelope``). A caller is a login, an API key (an app
key for its own app; a team key with ``appId``), or a share link's visitor (``shareId`` + ``outLinkUid``
instead of credentials). The older paths and the newer ``history/``/``record/`` ones both answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from zhiku.apps import history, share_links
from zhiku.apps.service import load_app
from zhiku.apps.history import ChatRecord, ChatSummary, Correction, TimeRange
from zhiku.apps.share_links import ShareLimit, ShareLinkCreate, ShareLinkPublic, ShareLinkUpdate
from zhiku.apps.workflow_apps import app_graph
from zhiku.auth.service import SESSION_COOKIE, Principal
from zhiku.errors import InvalidInput
from zhiku.safetext import Name, StoredText
from zhiku.web.deps import SessionDep, SettingsDep, TeamPrincipal, get_principal, hook_policy
from zhiku.web.fastgpt_envelope import MAX_PAGE_SIZE, IdRef, internal_id, ok, page_bounds

router = APIRouter(tags=["FastGPT chat history and share links"])

CHAT = "/api/core/chat"
OUTLINK = "/api/support/outLink"
PATH_PREFIXES = (CHAT + "/", OUTLINK + "/")
MAX_OFFSET = 10**9
ChatIdText = Field(max_length=200)


class Body(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")


class Caller(Body):
    """The fields every call may carry besides credentials: the app, or a share link's visitor."""

    app_id: IdRef | None = Field(None, alias="appId")
    share_id: str | None = Field(None, alias="shareId", max_length=64)
    out_link_uid: str | None = Field(None, alias="outLinkUid", max_length=1024)


async def _who(request: Request, session: Any, settings: Any, caller: Caller) -> tuple[Principal, int]:
    """The principal and the app: credentials first; without them a share link's visitor."""
    has_credentials = request.headers.get("authorization") or request.cookies.get(SESSION_COOKIE)
    if not has_credentials and caller.share_id:
        principal = await share_links.visitor(session, caller.share_id, caller.out_link_uid or "",
                                              hook_policy(settings))
    else:
        principal = await get_principal(request, session)
    if caller.app_id:
        app_id = internal_id(caller.app_id, "app")
    elif principal.app_id is not None:
        app_id = principal.app_id
    else:
        raise InvalidInput("appId is required (or use an app key or a share link)", code="app_required")
    return principal, app_id


def _query_caller(app_id: str | None = Query(None, alias="appId", max_length=64),
                  share_id: str | None = Query(None, alias="shareId", max_length=64),
                  out_link_uid: str | None = Query(None, alias="outLinkUid", max_length=1024)) -> Caller:
    return Caller(appId=app_id, shareId=share_id, outLinkUid=out_link_uid)


QueryCaller = Annotated[Caller, Depends(_query_caller)]


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


# ---- histories ---------------------------------------------------------------------------------

class HistoriesBody(Caller):
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET)
    page_num: int | None = Field(None, alias="pageNum", ge=1, le=MAX_OFFSET)
    page_size: int = Field(20, alias="pageSize", ge=1, le=10_000)
    source: str | None = Field(None, max_length=30)
    start_create_time: datetime | None = Field(None, alias="startCreateTime")
    end_create_time: datetime | None = Field(None, alias="endCreateTime")
    start_update_time: datetime | None = Field(None, alias="startUpdateTime")
    end_update_time: datetime | None = Field(None, alias="endUpdateTime")


def history_item(chat: ChatSummary) -> dict[str, Any]:
    return {"chatId": chat.chat_id, "updateTime": _time(chat.updated_at), "appId": str(chat.app_id),
            "customTitle": chat.custom_title, "title": chat.auto_title, "top": chat.top, "metadata": chat.metadata}


@router.post(f"{CHAT}/getHistories")
@router.post(f"{CHAT}/history/getHistories")
async def get_histories(body: HistoriesBody, request: Request, session: SessionDep, settings: SettingsDep) -> dict:
    """The caller's chats of the app, pinned first, then the latest."""
    principal, app_id = await _who(request, session, settings, body)
    offset, limit = page_bounds(body.offset, body.page_num, body.page_size)
    chats, total = await history.list_chats(
        session, principal, app_id, offset=offset, limit=limit, source=body.source,
        created=TimeRange(body.start_create_time, body.end_create_time),
        updated=TimeRange(body.start_update_time, body.end_update_time))
    return ok({"list": [history_item(c) for c in chats], "total": total})


class UpdateHistoryBody(Caller):
    chat_id: str = Field(alias="chatId", max_length=200)
    custom_title: StoredText | None = Field(None, alias="customTitle", max_length=history.MAX_TITLE * 4)
    title: StoredText | None = Field(None, max_length=history.MAX_TITLE * 4)
    top: bool | None = None


@router.post(f"{CHAT}/updateHistory")
@router.put(f"{CHAT}/history/updateHistory")
@router.post(f"{CHAT}/history/updateHistory")
async def update_history(body: UpdateHistoryBody, request: Request, session: SessionDep,
                         settings: SettingsDep) -> dict:
    """Rename (``customTitle``), retitle or pin (``top``) a chat."""
    principal, app_id = await _who(request, session, settings, body)
    await history.update_chat(session, principal, app_id, body.chat_id, custom_title=body.custom_title,
                              title=body.title, top=body.top)
    return ok(None)


@router.delete(f"{CHAT}/delHistory")
@router.delete(f"{CHAT}/history/delHistory")
async def delete_history(request: Request, session: SessionDep, settings: SettingsDep,
                         caller: QueryCaller, chat_id: str = Query(alias="chatId", max_length=200)) -> dict:
    principal, app = await _who(request, session, settings, caller)
    await history.delete_chat(session, principal, app, chat_id)
    return ok(None)


@router.delete(f"{CHAT}/clearHistories")
@router.delete(f"{CHAT}/history/clearHistories")
async def clear_histories(request: Request, session: SessionDep, settings: SettingsDep,
                          caller: QueryCaller) -> dict:
    """Every chat of the caller's (an app key: the ones the API made)."""
    principal, app = await _who(request, session, settings, caller)
    await history.clear_chats(session, principal, app)
    return ok(None)


async def _init(session: Any, principal: Principal, app_id: int, chat_id: str | None) -> dict[str, Any]:
    app = await load_app(session, principal, app_id)
    stored = await history.load_chat(session, principal, app_id, chat_id) if chat_id else None
    graph = await app_graph(session, app)
    return {"chatId": chat_id or "", "appId": str(app.id), "title": stored.title if stored else "",
            "variables": stored.variables if stored else {}, "metadata": stored.metadata if stored else {},
            "app": {"chatConfig": graph.get("chatConfig") or dict(app.chat_config or {}), "chatModels": [],
                    "name": app.name, "avatar": "", "intro": "", "type": app.type, "pluginInputs": []}}


@router.get(f"{CHAT}/init")
async def init_chat(request: Request, session: SessionDep, settings: SettingsDep,
                    caller: QueryCaller, chat_id: str | None = Query(None, alias="chatId", max_length=200)) -> dict:
    principal, app = await _who(request, session, settings, caller)
    return ok(await _init(session, principal, app, chat_id))


@router.get(f"{CHAT}/outLink/init")
async def init_share_chat(request: Request, session: SessionDep, settings: SettingsDep,
                          share_id: str = Query(alias="shareId", max_length=64),
                          out_link_uid: str = Query(alias="outLinkUid", max_length=1024),
                          chat_id: str | None = Query(None, alias="chatId", max_length=200)) -> dict:
    """A share page's start: the app's chat settings and, with ``chatId``, that chat's variables."""
    principal = await share_links.visitor(session, share_id, out_link_uid, hook_policy(settings))
    assert principal.app_id is not None
    return ok(await _init(session, principal, principal.app_id, chat_id))


# ---- records -----------------------------------------------------------------------------------

class RecordsBody(Caller):
    chat_id: str = Field(alias="chatId", max_length=200)
    offset: int | None = Field(None, ge=0, le=MAX_OFFSET)
    page_num: int | None = Field(None, alias="pageNum", ge=1, le=MAX_OFFSET)
    page_size: int = Field(10, alias="pageSize", ge=1, le=10_000)
    load_custom_feedbacks: bool = Field(False, alias="loadCustomFeedbacks")


def _quotes(record: ChatRecord) -> list[dict[str, Any]]:
    found = [q for node in record.response_data for q in node.get("quoteList") or []]
    return found or record.quotes


def record_item(record: ChatRecord, *, custom_feedbacks: bool = False) -> dict[str, Any]:
    """A stored message in FastGPT's record shape (an answer with the summary of its run)."""
    item: dict[str, Any] = {"_id": str(record.id), "dataId": record.data_id,
                            "obj": "Human" if record.role == "user" else "AI",
                            "value": record.value,
                            "time": _time(record.created_at)}
    if record.role != "user":
        if record.feedback == "good":
            item["userGoodFeedback"] = record.feedback_text or "yes"
        elif record.feedback == "bad":
            item["userBadFeedback"] = record.feedback_text or "yes"
        if record.admin_feedback:
            item["adminFeedback"] = record.admin_feedback
        if custom_feedbacks:
            item["customFeedbacks"] = record.custom_feedbacks
        nodes = record.response_data
        item.update(llmModuleAccount=sum(1 for n in nodes if n.get("model")), totalQuoteList=_quotes(record),
                    totalRunningTime=round(sum(float(n.get("runningTime") or 0) for n in nodes), 2),
                    historyPreviewLength=max([len(n.get("historyPreview") or []) for n in nodes] or [0]))
    return item


@router.post(f"{CHAT}/getPaginationRecords")
@router.post(f"{CHAT}/record/getPaginationRecords")
async def get_pagination_records(body: RecordsBody, request: Request, session: SessionDep,
                                 settings: SettingsDep) -> dict:
    """A page of the chat's messages counted from the newest (``offset`` 0: the latest ``pageSize``)."""
    principal, app_id = await _who(request, session, settings, body)
    offset, limit = page_bounds(body.offset, body.page_num, min(body.page_size, MAX_PAGE_SIZE))
    records, total = await history.list_records(session, principal, app_id, body.chat_id, offset=offset,
                                                limit=limit)
    custom = body.load_custom_feedbacks and principal.share is None
    return ok({"list": [record_item(r, custom_feedbacks=custom) for r in records], "total": total})


@router.get(f"{CHAT}/getResData")
@router.get(f"{CHAT}/record/getResData")
async def get_response_data(request: Request, session: SessionDep, settings: SettingsDep,
                            caller: QueryCaller, chat_id: str = Query(alias="chatId", max_length=200),
                            data_id: str = Query(alias="dataId", max_length=200)) -> dict:
    """The answer's per-node responseData (as a share link shows it, for its visitors)."""
    principal, app = await _who(request, session, settings, caller)
    return ok((await history.get_record(session, principal, app, chat_id, data_id)).response_data)


@router.delete(f"{CHAT}/item/delete")
@router.delete(f"{CHAT}/record/delete")
async def delete_record(request: Request, session: SessionDep, settings: SettingsDep,
                        caller: QueryCaller, chat_id: str = Query(alias="chatId", max_length=200),
                        content_id: str = Query(alias="contentId", max_length=200)) -> dict:
    principal, app = await _who(request, session, settings, caller)
    await history.delete_record(session, principal, app, chat_id, content_id)
    return ok(None)


# ---- feedback ----------------------------------------------------------------------------------

class UserFeedbackBody(Caller):
    chat_id: str = Field(alias="chatId", max_length=200)
    data_id: str = Field(validation_alias=AliasChoices("dataId", "chatItemId"), max_length=200)
    good: StoredText | None = Field(None, alias="userGoodFeedback", max_length=2000)
    bad: StoredText | None = Field(None, alias="userBadFeedback", max_length=2000)


@router.post(f"{CHAT}/feedback/updateUserFeedback")
async def update_user_feedback(body: UserFeedbackBody, request: Request, session: SessionDep,
                               settings: SettingsDep) -> dict:
    """``userGoodFeedback`` or ``userBadFeedback`` (its text kept); neither clears the answer's feedback."""
    principal, app_id = await _who(request, session, settings, body)
    feedback, text = ("bad", body.bad) if body.bad is not None else ("good", body.good) \
        if body.good is not None else (None, None)
    await history.set_feedback(session, principal, app_id, body.chat_id, body.data_id, feedback,  # type: ignore[arg-type]
                               text if text and text not in ("yes", "true") else None)
    return ok(None)


class AdminFeedbackBody(Caller):
    chat_id: str = Field(alias="chatId", max_length=200)
    data_id: str = Field(alias="dataId", max_length=200)
    dataset_id: IdRef = Field(alias="datasetId")
    collection_id: IdRef | None = Field(None, alias="collectionId")
    feedback_data_id: IdRef | None = Field(None, alias="feedbackDataId")
    q: StoredText = Field(min_length=1)
    a: StoredText = ""


@router.post(f"{CHAT}/feedback/adminUpdate")
async def admin_feedback(body: AdminFeedbackBody, request: Request, session: SessionDep,
                         settings: SettingsDep) -> dict:
    """An admin's correction of an answer: pushed as a chunk into ``collectionId`` (searchable once indexed)
    and kept as the answer's ``adminFeedback``; with ``feedbackDataId`` (a chunk already written, as
    FastGPT's page does) only recorded."""
    principal, app_id = await _who(request, session, settings, body)
    correction = Correction(dataset_id=internal_id(body.dataset_id, "dataset"), q=body.q, a=body.a,
                            collection_id=internal_id(body.collection_id, "collection") if body.collection_id else None,
                            chunk_id=internal_id(body.feedback_data_id, "data") if body.feedback_data_id else None)
    return ok(await history.correct_answer(session, principal, app_id, body.chat_id, body.data_id, correction))


# ---- share links -------------------------------------------------------------------------------

def link_item(link: ShareLinkPublic) -> dict[str, Any]:
    return {"_id": str(link.id), "shareId": link.share_id, "appId": str(link.app_id), "type": link.type,
            "name": link.name, "responseDetail": link.response_detail, "showNodeStatus": link.show_node_status,
            "showRawSource": link.show_raw_source, "usagePoints": link.usage_points,
            "lastTime": _time(link.last_time), "createTime": _time(link.created_at),
            "limit": {"expiredTime": _time(link.expired_at), "QPM": link.qpm,
                      "maxUsagePoints": link.max_usage_points, "hookUrl": link.hook_url}}


class OutLinkCreateBody(ShareLinkCreate):
    app_id: IdRef = Field(alias="appId")
    name: Name = Field(min_length=1, max_length=200)


@router.post(f"{OUTLINK}/create")
async def create_share_link(body: OutLinkCreateBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    """``data``: the new link's ``shareId`` (the page: ``/chat/share?shareId=…``)."""
    link = await share_links.create_link(session, principal, internal_id(body.app_id, "app"), body)
    return ok(link.share_id)


@router.get(f"{OUTLINK}/list")
async def list_share_links(session: SessionDep, principal: TeamPrincipal,
                           app_id: str = Query(alias="appId", max_length=64),
                           type: str = Query("share", max_length=20)) -> dict:
    if type != "share":
        return ok([])
    return ok([link_item(link) for link in await share_links.list_links(session, principal,
                                                                        internal_id(app_id, "app"))])


class OutLinkUpdateBody(ShareLinkUpdate):
    id: IdRef = Field(validation_alias=AliasChoices("_id", "id"))
    limit: ShareLimit | None = None


@router.put(f"{OUTLINK}/update")
@router.post(f"{OUTLINK}/update")
async def update_share_link(body: OutLinkUpdateBody, session: SessionDep, principal: TeamPrincipal) -> dict:
    await share_links.update_link(session, principal, internal_id(body.id, "share_link"), body)
    return ok(None)


@router.delete(f"{OUTLINK}/delete")
async def delete_share_link(session: SessionDep, principal: TeamPrincipal,
                            id: str = Query(max_length=64)) -> dict:
    """Revoke the link: its visitors are refused from now on."""
    await share_links.delete_link(session, principal, internal_id(id, "share_link"))
    return ok(None)
