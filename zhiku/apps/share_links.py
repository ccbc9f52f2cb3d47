"""Share links (FastGPT's outLinks of type ``share``): a public chat with one app, without a login.

A link is created by someone who may edit the app; its ``shareId`` is 24 random characters from
``secrets`` (about 124 bits), so links cannot be guessed. A visitor chats with ``shareId`` plus an
``outLinkUid`` (the browser's own random id, or, with an auth hook, the token the hook vouches for) and
sees only their own chats.

The link's ``limit`` is **enforced** on every chat start, in this order, each with its own error:

- ``expiredTime`` passed: 403 ``share_link_expired``;
- ``maxUsagePoints`` (``-1``: none) reached: 403 ``share_link_usage_exceeded``. A chat's usage points are
  its model tokens / 1000 (Zhiku has no per-model prices; FastGPT's points are prices per 1,000 tokens);
- ``QPM`` chats started in this clock minute exceeded: 429 ``share_link_rate_limited`` with ``Retry-After``.
  The count lives in the link's row (``minute_start``/``minute_count``, one atomic UPDATE), not in process
  memory: ``zhiku app`` may run as several processes behind a load balancer, and a per-process count would
  let each of them allow the full QPM;
- the auth hook (``hookUrl``): ``POST <hookUrl>/shareAuth/start {token, question}`` must answer
  ``{success: true, data: {uid}}``, else 403 ``share_link_auth_failed`` with the hook's message. History
  calls ask ``/shareAuth/init {token}`` instead; a finished chat is reported to ``/shareAuth/finish {token,
  appName, responseData}`` without waiting. The hook is called through the platform's one safe fetcher
  (:mod:`zhiku.knowledge.fetch`): private addresses are refused unless ``ZHIKU_ALLOW_PRIVATE_URLS``.

What a visitor sees is filtered as FastGPT filters it (:func:`public_response_data`): node responses only
of the kinds a visitor may see, few fields, quotes only with ``responseDetail``; node status events
and tool-call events only with ``showNodeStatus``; citation markers only with ``responseDetail``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import string
from collections.abc import AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import case, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zhiku.apps.chat import ChatEvent, TurnDone, TurnFailed
from zhiku.apps.chat_values import without_tools
from zhiku.apps.service import load_app
from zhiku.apps.workflow.events import NodeResponse, NodeStatus, ToolActivity
from zhiku.auth.service import Principal, ShareGrant
from zhiku.db.models import App, Chat, ShareLink
from zhiku.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthorized, ZhikuError
from zhiku.knowledge.fetch import FetchPolicy, FetchRequest, fetch, parse_url

log = logging.getLogger(__name__)

SHARE_ID_ALPHABET = string.ascii_lowercase + string.digits  # FastGPT's nanoid alphabet and length
SHARE_ID_LENGTH = 24
MAX_UID_BYTES = 255
_UID_FORBIDDEN = set('|/"\\')
# FastGPT's filterPublicNodeResponseData: the node kinds, and their fields, a visitor may see.
PUBLIC_NODE_KINDS = frozenset({"datasetSearchNode", "pluginModule", "tools", "pluginOutput"})
PUBLIC_FIELDS = ("moduleType", "runningTime", "pluginOutput")
MAX_HOOK_MESSAGE = 500
MAX_HOOK_RESPONSE_BYTES = 64 * 1024


# ---- schemas -----------------------------------------------------------------------------------

class ShareLimit(BaseModel):
    """FastGPT's ``limit`` object."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    expired_time: datetime | None = Field(None, alias="expiredTime")
    qpm: int = Field(1000, alias="QPM", ge=1, le=1_000_000)
    max_usage_points: float = Field(-1, alias="maxUsagePoints", ge=-1, le=1e12)
    hook_url: str | None = Field(None, alias="hookUrl", max_length=2048)


class ShareLinkCreate(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    name: str = Field(min_length=1, max_length=200)
    type: Literal["share"] = "share"
    response_detail: bool = Field(False, alias="responseDetail")
    show_node_status: bool = Field(True, alias="showNodeStatus")
    show_raw_source: bool = Field(False, alias="showRawSource")
    limit: ShareLimit = Field(default_factory=ShareLimit)


class ShareLinkUpdate(BaseModel):
    """Fields left out stay as they are."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")
    name: str | None = Field(None, min_length=1, max_length=200)
    response_detail: bool | None = Field(None, alias="responseDetail")
    show_node_status: bool | None = Field(None, alias="showNodeStatus")
    show_raw_source: bool | None = Field(None, alias="showRawSource")
    limit: ShareLimit | None = None


@dataclass(frozen=True)
class ShareLinkPublic:
    id: int
    share_id: str
    app_id: int
    type: str
    name: str
    response_detail: bool
    show_node_status: bool
    show_raw_source: bool
    expired_at: datetime | None
    qpm: int
    max_usage_points: float
    hook_url: str | None
    usage_points: float
    last_time: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class SharedApp:
    """What the public share page shows: the link and its app's name and chat settings."""

    link: ShareLinkPublic
    app_name: str
    chat_config: dict[str, Any]


def _public(link: ShareLink) -> ShareLinkPublic:
    return ShareLinkPublic(id=link.id, share_id=link.share_id, app_id=link.app_id, type=link.type, name=link.name,
                           response_detail=link.response_detail, show_node_status=link.show_node_status,
                           show_raw_source=link.show_raw_source, expired_at=link.expired_at, qpm=link.qpm,
                           max_usage_points=link.max_usage_points, hook_url=link.hook_url,
                           usage_points=link.usage_points, last_time=link.last_time, created_at=link.created_at)


def new_share_id() -> str:
    return "".join(secrets.choice(SHARE_ID_ALPHABET) for _ in range(SHARE_ID_LENGTH))


def _apply_limit(link: ShareLink, limit: ShareLimit) -> None:
    hook = (limit.hook_url or "").strip() or None
    if hook is not None:
        parse_url(hook)  # http(s) with a host; where it points is checked on every call
    expired = limit.expired_time
    link.expired_at = expired.replace(tzinfo=UTC) if expired and expired.tzinfo is None else expired
    link.qpm, link.max_usage_points, link.hook_url = limit.qpm, limit.max_usage_points, hook


# ---- managing links ----------------------------------------------------------------------------

def _manager(principal: Principal) -> None:
    if principal.share is not None or principal.app_id is not None:
        raise Forbidden("share links are managed with a login or a team-wide key", code="share_link_forbidden")


async def create_link(session: AsyncSession, principal: Principal, app_id: int, data: ShareLinkCreate) -> ShareLinkPublic:
    _manager(principal)
    app = await load_app(session, principal, app_id)
    link = ShareLink(share_id=new_share_id(), team_id=app.team_id, app_id=app.id, created_by=principal.user_id,
                     type=data.type, name=data.name.strip(), response_detail=data.response_detail,
                     show_node_status=data.show_node_status, show_raw_source=data.show_raw_source)
    _apply_limit(link, data.limit)
    session.add(link)
    await session.commit()
    await session.refresh(link)
    return _public(link)


async def list_links(session: AsyncSession, principal: Principal, app_id: int) -> list[ShareLinkPublic]:
    """The app's links, the newest first."""
    _manager(principal)
    await load_app(session, principal, app_id)
    rows = await session.execute(select(ShareLink).where(ShareLink.app_id == app_id).order_by(ShareLink.id.desc()))
    return [_public(link) for link in rows.scalars()]


async def _managed(session: AsyncSession, principal: Principal, link_id: int) -> ShareLink:
    _manager(principal)
    link = await session.get(ShareLink, link_id)
    if link is None or link.team_id != principal.team_id:
        raise NotFound(f"share link {link_id} does not exist", code="share_link_not_found")
    return link


async def update_link(session: AsyncSession, principal: Principal, link_id: int,
                      data: ShareLinkUpdate) -> ShareLinkPublic:
    link = await _managed(session, principal, link_id)
    for name in ("response_detail", "show_node_status", "show_raw_source"):
        value = getattr(data, name)
        if value is not None:
            setattr(link, name, value)
    if data.name is not None:
        link.name = data.name.strip()
    if data.limit is not None:
        _apply_limit(link, data.limit)
    await session.commit()
    await session.refresh(link)
    return _public(link)


async def delete_link(session: AsyncSession, principal: Principal, link_id: int) -> None:
    """Revoke the link: it stops working at once (its visitors' chats stay with the app)."""
    await session.delete(await _managed(session, principal, link_id))
    await session.commit()


# ---- visitors ----------------------------------------------------------------------------------

async def _link(session: AsyncSession, share_id: str) -> ShareLink:
    link = (await session.execute(select(ShareLink).where(ShareLink.share_id == share_id))).scalar_one_or_none() \
        if share_id and len(share_id) <= 64 else None
    if link is None:
        raise Unauthorized("this share link does not exist or was revoked", code="share_link_invalid")
    return link


def _check_open(link: ShareLink) -> None:
    if link.expired_at is not None and link.expired_at <= datetime.now(UTC):
        raise Forbidden(f"this share link expired at {link.expired_at.isoformat()}", code="share_link_expired",
                        detail={"expiredTime": link.expired_at.isoformat()})


def checked_uid(uid: object) -> str:
    """A visitor id as FastGPT allows it: text of 1-255 bytes without ``| / " \\``."""
    if not isinstance(uid, str) or not uid.strip() or len(uid.encode()) > MAX_UID_BYTES \
            or _UID_FORBIDDEN & set(uid):
        raise Unauthorized("Invalid UID: outLinkUid must be 1-255 bytes without | / \" or \\", code="invalid_uid")
    return uid.strip()


async def shared_app(session: AsyncSession, share_id: str) -> SharedApp:
    """The link behind a public share page, with its app (an expired or revoked link is refused)."""
    link = await _link(session, share_id)
    _check_open(link)
    app = await session.get(App, link.app_id)
    assert app is not None  # the link goes with its app
    return SharedApp(link=_public(link), app_name=app.name, chat_config=dict(app.chat_config or {}))


def _grant(link: ShareLink, uid: str, token: str) -> Principal:
    return Principal(kind="share_link", team_id=link.team_id, user_id=None, role="user", app_id=link.app_id,
                     share=ShareGrant(share_id=link.share_id, link_id=link.id, uid=uid, token=token,
                                      response_detail=link.response_detail,
                                      show_node_status=link.show_node_status, hook_url=link.hook_url))


async def visitor(session: AsyncSession, share_id: str, out_link_uid: str, policy: FetchPolicy) -> Principal:
    """A visitor reading their chats (FastGPT's authOutLink: the hook's ``init`` gives the uid)."""
    link = await _link(session, share_id)
    _check_open(link)
    token = checked_uid(out_link_uid)
    uid = await _hook_uid(link, "init", {"token": token}, policy) if link.hook_url else token
    return _grant(link, uid, token)


async def start_chat(session: AsyncSession, share_id: str, out_link_uid: str, *, question: str,
                     chat_id: str | None, policy: FetchPolicy) -> Principal:
    """A visitor starting a chat turn: every limit checked (see the module's text), the hook asked."""
    link = await _link(session, share_id)
    _check_open(link)
    if link.max_usage_points >= 0 and link.usage_points >= link.max_usage_points:
        raise Forbidden(f"this share link has used its {link.max_usage_points:g} usage points",
                        code="share_link_usage_exceeded",
                        detail={"maxUsagePoints": link.max_usage_points, "usagePoints": link.usage_points})
    token = checked_uid(out_link_uid)
    await _count_minute(session, link)
    uid = await _hook_uid(link, "start", {"token": token, "question": question}, policy) if link.hook_url else token
    if chat_id:
        owner = (await session.execute(select(Chat.share_id, Chat.out_link_uid)
                                       .where(Chat.app_id == link.app_id, Chat.chat_id == chat_id))).first()
        if owner is not None and tuple(owner) != (link.share_id, uid):
            raise Forbidden(f"chat {chat_id!r} belongs to someone else", code="chat_forbidden")
    return _grant(link, uid, token)


async def _count_minute(session: AsyncSession, link: ShareLink) -> None:
    minute = func.date_trunc("minute", func.now())
    count, window = (await session.execute(
        update(ShareLink).where(ShareLink.id == link.id)
        .values(minute_count=case((ShareLink.minute_start == minute, ShareLink.minute_count + 1), else_=1),
                minute_start=minute, updated_at=ShareLink.updated_at)
        .returning(ShareLink.minute_count, func.extract("epoch", minute + func.make_interval(0, 0, 0, 0, 0, 1)
                                                             - func.now())))).one()
    await session.commit()
    if count > link.qpm:
        wait = max(1, int(float(window)) + 1)
        raise RateLimited(f"this share link allows {link.qpm} chats a minute; try again in {wait} s",
                          code="share_link_rate_limited", detail={"QPM": link.qpm},
                          headers={"Retry-After": str(wait)})


async def _call_hook(hook_url: str, step: str, payload: dict[str, Any], policy: FetchPolicy) -> Any:
    url = hook_url.rstrip("/") + f"/shareAuth/{step}"
    page = await fetch(url, policy, request=FetchRequest(
        method="POST", headers=(("Content-Type", "application/json"), ("Accept", "application/json")),
        body=json.dumps(payload, ensure_ascii=False, default=str).encode()))
    try:
        return json.loads(page.body or b"null")
    except ValueError:
        return None


async def _hook_uid(link: ShareLink, step: str, payload: dict[str, Any], policy: FetchPolicy) -> str:
    assert link.hook_url is not None
    try:
        answer = await _call_hook(link.hook_url, step, payload, replace(policy, max_bytes=MAX_HOOK_RESPONSE_BYTES))
    except ZhikuError as exc:  # unreachable, refused address, an HTTP error: no chat without the hook's yes
        raise Forbidden(f"the share link's auth hook could not be asked: {exc.message}",
                        code="share_link_auth_failed", detail={"reason": exc.code}) from None
    if not isinstance(answer, dict) or answer.get("success") is not True:
        said = answer.get("message") or answer.get("msg") if isinstance(answer, dict) else None
        message = str(said)[:MAX_HOOK_MESSAGE] if said else "the share link's auth hook refused"
        raise Forbidden(message, code="share_link_auth_failed")
    data = answer.get("data")
    uid = data.get("uid") if isinstance(data, dict) else None
    return checked_uid(uid) if uid is not None else payload["token"]


# ---- what a visitor's chat turn shows, and what it costs ---------------------------------------

def public_response_data(items: Sequence[dict[str, Any]], *, response_detail: bool) -> list[dict[str, Any]]:
    """Node responses as a visitor sees them: only the public node kinds, with few fields, quotes only
    when the link shows response detail."""
    public = []
    for item in items:
        if item.get("moduleType") not in PUBLIC_NODE_KINDS:
            continue
        kept = {key: item[key] for key in PUBLIC_FIELDS if key in item}
        if response_detail and "quoteList" in item:
            kept["quoteList"] = item["quoteList"]
        public.append(kept)
    return public


def usage_points(total_tokens: int) -> float:
    return total_tokens / 1000


async def add_usage(sessions: async_sessionmaker[AsyncSession], link_id: int, points: float) -> None:
    async with sessions() as session:
        await session.execute(update(ShareLink).where(ShareLink.id == link_id).values(
            usage_points=ShareLink.usage_points + points, last_time=func.now(), updated_at=ShareLink.updated_at))
        await session.commit()


_pending_reports: set[asyncio.Task[None]] = set()


async def _report_finish(grant: ShareGrant, app_name: str, response_data: list[dict[str, Any]],
                         policy: FetchPolicy) -> None:
    assert grant.hook_url is not None
    try:
        await _call_hook(grant.hook_url, "finish", {"token": grant.token, "appName": app_name,
                                                    "responseData": response_data}, policy)
    except ZhikuError as exc:  # fire and forget, as FastGPT: the chat is already answered
        log.warning("share link %s: reporting a finished chat to its hook failed: %s", grant.share_id, exc)


async def shared_turn(sessions: async_sessionmaker[AsyncSession], grant: ShareGrant,
                      events: AsyncIterator[ChatEvent], policy: FetchPolicy) -> AsyncIterator[ChatEvent]:
    """A chat turn's events (``zhiku.apps.chat.run_chat_turn``) as the link shows them; when the turn
    ends, its usage is added to the link and the hook hears of it."""
    async with aclosing(events):  # closing this closes the turn (which then stores what it has)
        async for event in events:
            if isinstance(event, (NodeStatus, ToolActivity)) and not grant.show_node_status:
                continue
            if isinstance(event, NodeResponse):
                public = public_response_data([event.item], response_detail=grant.response_detail)
                if public:
                    yield NodeResponse(public[0])
                continue
            if isinstance(event, (TurnDone, TurnFailed)):
                full = event.response_data
                usage = event.usage if isinstance(event, TurnDone) else None
                await add_usage(sessions, grant.link_id, usage_points(usage.total_tokens) if usage else 0.0)
                if grant.hook_url:
                    async with sessions() as session:
                        app_name = (await session.execute(select(App.name).join(ShareLink, ShareLink.app_id == App.id)
                                                          .where(ShareLink.id == grant.link_id))).scalar() or ""
                    task = asyncio.ensure_future(_report_finish(grant, app_name, full, policy))
                    _pending_reports.add(task)
                    task.add_done_callback(_pending_reports.discard)
                event = replace(event, response_data=public_response_data(full, response_detail=grant.response_detail))
                if isinstance(event, TurnDone) and not grant.show_node_status:
                    event = replace(event, value=without_tools(event.value))
            yield event


def question_of(messages: object) -> str:
    """The last message's text (the hook's ``question``), from FastGPT's request body as sent."""
    if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
        return ""
    content = messages[-1].get("content")
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return content if isinstance(content, str) else ""


def share_body_fields(body: object) -> tuple[str, str] | None:
    """``(shareId, outLinkUid)`` when a request body authenticates as a share link, else None."""
    if not isinstance(body, dict) or "shareId" not in body:
        return None
    share_id, uid = body.get("shareId"), body.get("outLinkUid")
    if not isinstance(share_id, str) or not isinstance(uid, str):
        raise InvalidInput("a share-link request needs shareId and outLinkUid as text", code="share_link_invalid")
    return share_id, uid
