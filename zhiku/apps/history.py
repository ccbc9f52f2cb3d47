"""Stored chats of an app: list them, read one back, rename, pin, delete, records, response data, feedback
and an admin's correction saved as a chunk.

The turns themselves are written by :mod:`zhiku.apps.chat`; this module only reads and edits them. The web
UI's chat page and FastGPT's ``/api/core/chat/…`` routes both call these functions.

Whose chats a caller sees: an admin's login or a team-wide key, every chat of the team's app; a plain
member's login, only the chats that member started; an app key, every chat of its own app (clearing them
removes only the chats the API made, as FastGPT does); a share-link visitor, only the chats of that link
and visitor id, and in lists only those used within the last month (FastGPT's rule). Every function here
takes the caller and applies that rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.chat_access import may_continue, owned
from zhiku.apps.chat_values import message_value, without_tools
from zhiku.apps.service import load_app
from zhiku.apps.share_links import public_response_data
from zhiku.auth.service import Principal
from zhiku.db.models import Chat, ChatItem, Chunk
from zhiku.errors import Forbidden, NotFound
from zhiku.knowledge.collections import load_collection
from zhiku.knowledge.push import push_data
from zhiku.knowledge.schemas import PushItem

Feedback = Literal["good", "bad"]
MAX_TITLE = 100  # as the title a turn gives its chat
SHARE_HISTORY_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class ChatSummary:
    chat_id: str
    title: str  # what to show: the custom title when there is one, else the one the first question gave
    updated_at: datetime
    auto_title: str = ""
    custom_title: str = ""
    top: bool = False
    app_id: int = 0
    source: str = "api"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredItem:
    id: int
    role: str  # user | assistant
    content: str
    quotes: list[dict[str, Any]]
    feedback: str | None
    value: list[Any] = field(default_factory=list)  # an answer's FastGPT value items (text, tool calls)


@dataclass(frozen=True)
class StoredChat:
    title: str
    variables: dict[str, Any]
    items: list[StoredItem]
    metadata: dict[str, Any] = field(default_factory=dict)
    someone_elses: bool = False  # the chat id is another member's chat (shown empty; not to be continued)


@dataclass(frozen=True)
class ChatRecord:
    """One stored message with what FastGPT's record APIs show of it."""

    id: int
    data_id: str
    role: str  # user | assistant
    content: str
    created_at: datetime
    quotes: list[dict[str, Any]] = field(default_factory=list)
    feedback: str | None = None
    feedback_text: str | None = None
    response_data: list[dict[str, Any]] = field(default_factory=list)
    custom_feedbacks: list[Any] = field(default_factory=list)
    admin_feedback: dict[str, Any] | None = None
    value: list[Any] = field(default_factory=list)  # an answer's FastGPT value items (text, tool, interactive)


@dataclass(frozen=True)
class TimeRange:
    start: datetime | None = None
    end: datetime | None = None

    def clauses(self, column: Any) -> list[ColumnElement[bool]]:
        return [c for c in (column >= self.start if self.start else None,
                            column <= self.end if self.end else None) if c is not None]


# ---- whose chats -------------------------------------------------------------------------------

async def _chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> Chat:
    await load_app(session, principal, app_id)
    chat = (await session.execute(select(Chat).where(Chat.chat_id == chat_id, *owned(principal, app_id)))
            ).scalar_one_or_none()
    if chat is None:
        raise NotFound(f"chat {chat_id!r} does not exist", code="chat_not_found")
    return chat


# ---- histories ---------------------------------------------------------------------------------

async def list_chats(session: AsyncSession, principal: Principal, app_id: int, *, offset: int = 0,
                     limit: int = 50, source: str | None = None, created: TimeRange = TimeRange(),
                     updated: TimeRange = TimeRange()) -> tuple[list[ChatSummary], int]:
    """A page of the caller's chats of the app, pinned first, then the latest, and how many there are."""
    await load_app(session, principal, app_id)
    where = owned(principal, app_id) + created.clauses(Chat.created_at) + updated.clauses(Chat.updated_at)
    if principal.share is not None:
        where.append(Chat.updated_at >= func.now() - SHARE_HISTORY_WINDOW)
    if source:
        where.append(Chat.source == source)
    total = (await session.execute(select(func.count()).select_from(Chat).where(*where))).scalar_one()
    rows = await session.execute(select(Chat).where(*where)
                                 .order_by(Chat.top.desc(), Chat.updated_at.desc(), Chat.id.desc())
                                 .offset(offset).limit(limit))
    return [ChatSummary(chat_id=c.chat_id, title=c.custom_title or c.title, updated_at=c.updated_at,
                        auto_title=c.title, custom_title=c.custom_title, top=c.top, app_id=c.app_id,
                        source=c.source, metadata=dict(c.meta or {})) for c in rows.scalars()], total


async def load_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> StoredChat:
    """The chat's variables and its questions and answers in order (an unknown chat id is a new chat; a
    chat the caller may not see is empty and says it is someone else's)."""
    await load_app(session, principal, app_id)
    chat = (await session.execute(select(Chat).where(Chat.chat_id == chat_id, *owned(principal, app_id)))
            ).scalar_one_or_none()
    if chat is None:
        return StoredChat(title="", variables={}, items=[],
                          someone_elses=not await may_continue(session, principal, app_id, chat_id))
    rows = await session.execute(select(ChatItem.id, ChatItem.role, ChatItem.content, ChatItem.quotes,
                                        ChatItem.feedback, ChatItem.interactive, ChatItem.value)
                                 .where(ChatItem.chat_pk == chat.id).order_by(ChatItem.id))
    return StoredChat(title=chat.custom_title or chat.title, variables=dict(chat.variables or {}),
                      items=[StoredItem(id=i, role=r, content=c, quotes=q or [], feedback=f,
                                        value=message_value(r, c, pending, value))
                             for i, r, c, q, f, pending, value in rows.all()], metadata=dict(chat.meta or {}))


async def update_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, *,
                      custom_title: str | None = None, title: str | None = None, top: bool | None = None) -> None:
    """Rename (``custom_title``; empty shows the automatic title again), retitle or pin a chat. Its place
    among the latest chats stays: only a new turn moves it."""
    chat = await _chat(session, principal, app_id, chat_id)
    values: dict[str, Any] = {"updated_at": Chat.updated_at}  # keep, not the ORM's onupdate now()
    if custom_title is not None:
        values["custom_title"] = custom_title.strip()[:MAX_TITLE]
    if title is not None:
        values["title"] = title.strip()[:MAX_TITLE]
    if top is not None:
        values["top"] = top
    await session.execute(update(Chat).where(Chat.id == chat.id).values(**values))
    await session.commit()


async def rename_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, title: str) -> None:
    await update_chat(session, principal, app_id, chat_id, custom_title=title)


async def delete_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> None:
    chat = await _chat(session, principal, app_id, chat_id)
    await session.delete(chat)
    await session.commit()


async def clear_chats(session: AsyncSession, principal: Principal, app_id: int) -> int:
    """Delete the caller's chats of the app (an app key's: only those the API made); how many went."""
    await load_app(session, principal, app_id)
    where = owned(principal, app_id)
    if principal.kind == "api_key" and principal.app_id is not None:
        where.append(Chat.source == "api")
    result = await session.execute(delete(Chat).where(*where))
    await session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# ---- records -----------------------------------------------------------------------------------

def _record(item: ChatItem, share_view: Principal) -> ChatRecord:
    response_data = list(item.response_data or [])
    quotes = list(item.quotes or [])
    admin_feedback = item.admin_feedback
    value = message_value(item.role, item.content, item.interactive, item.value)
    if share_view.share is not None:  # what the link shows (FastGPT's filterPublicNodeResponseData)
        response_data = public_response_data(response_data, response_detail=share_view.share.response_detail)
        if not share_view.share.response_detail:
            quotes, admin_feedback = [], None
        if not share_view.share.show_node_status:  # the link withholds tool events: and the stored calls
            value = without_tools(value)
    return ChatRecord(id=item.id, data_id=item.data_id or str(item.id), role=item.role, content=item.content,
                      created_at=item.created_at, quotes=quotes, feedback=item.feedback,
                      feedback_text=item.feedback_text, response_data=response_data,
                      custom_feedbacks=list(item.custom_feedbacks or []), admin_feedback=admin_feedback,
                      value=value)


async def list_records(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, *,
                       offset: int = 0, limit: int = 10) -> tuple[list[ChatRecord], int]:
    """A page of the chat's messages counted from the newest (offset 0: the latest ``limit``), in
    order, and how many there are (FastGPT's getPaginationRecords)."""
    chat = await _chat(session, principal, app_id, chat_id)
    total = (await session.execute(select(func.count()).select_from(ChatItem)
                                   .where(ChatItem.chat_pk == chat.id))).scalar_one()
    rows = (await session.execute(select(ChatItem).where(ChatItem.chat_pk == chat.id)
                                  .order_by(ChatItem.id.desc()).offset(offset).limit(limit))).scalars().all()
    return [_record(item, principal) for item in reversed(rows)], total


def _item_ref(ref: int | str) -> ColumnElement[bool]:
    """An item by its id (the web UI) or FastGPT's dataId (items stored before dataIds: their id as text)."""
    if isinstance(ref, int):
        return ChatItem.id == ref
    by_id = and_(ChatItem.data_id.is_(None), ChatItem.id == int(ref)) \
        if ref.isascii() and ref.isdigit() and len(ref) < 19 else None
    return or_(ChatItem.data_id == ref, by_id) if by_id is not None else ChatItem.data_id == ref


async def _item(session: AsyncSession, chat: Chat, ref: int | str, *, answer: bool = False) -> ChatItem:
    where = [ChatItem.chat_pk == chat.id, _item_ref(ref)]
    if answer:
        where.append(ChatItem.role == "assistant")
    item = (await session.execute(select(ChatItem).where(*where).order_by(ChatItem.id.desc()).limit(1))
            ).scalar_one_or_none()
    if item is None:
        what = "answer" if answer else "message"
        raise NotFound(f"{what} {ref!r} is not in chat {chat.chat_id!r}", code="chat_item_not_found")
    return item


async def get_record(session: AsyncSession, principal: Principal, app_id: int, chat_id: str,
                     ref: int | str) -> ChatRecord:
    chat = await _chat(session, principal, app_id, chat_id)
    return _record(await _item(session, chat, ref), principal)


async def delete_record(session: AsyncSession, principal: Principal, app_id: int, chat_id: str,
                        ref: int | str) -> None:
    chat = await _chat(session, principal, app_id, chat_id)
    await session.delete(await _item(session, chat, ref))
    await session.commit()


async def last_answer_id(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> int:
    """The id of the chat's latest answer (what a client that just streamed one gives feedback on)."""
    chat = await _chat(session, principal, app_id, chat_id)
    item = (await session.execute(select(func.max(ChatItem.id)).where(ChatItem.chat_pk == chat.id,
                                                                      ChatItem.role == "assistant"))).scalar_one()
    if item is None:
        raise NotFound(f"chat {chat_id!r} has no answer yet", code="chat_item_not_found")
    return item


async def set_feedback(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, item_id: int | str,
                       feedback: Feedback | None, text: str | None = None) -> None:
    """Mark an answer good or bad, with the user's words if any (``None`` clears it)."""
    chat = await _chat(session, principal, app_id, chat_id)
    item = await _item(session, chat, item_id, answer=True)
    await session.execute(update(ChatItem).where(ChatItem.id == item.id)
                          .values(feedback=feedback, feedback_text=text if feedback else None))
    await session.commit()


# ---- an admin's correction ---------------------------------------------------------------------

@dataclass(frozen=True)
class Correction:
    """The right answer to a question, kept as a chunk ``q``/``a`` of a collection (FastGPT's adminFeedback).
    ``chunk_id`` names a chunk the caller already wrote; without it one is pushed into ``collection_id``."""

    dataset_id: int
    q: str
    a: str = ""
    collection_id: int | None = None
    chunk_id: int | None = None


async def correct_answer(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, ref: int | str,
                         correction: Correction) -> dict[str, Any]:
    """Save the correction as a chunk (through :func:`zhiku.knowledge.push.push_data`, so it is indexed and
    searchable like any pushed chunk) and record it on the answer; the answer's ``adminFeedback``."""
    if principal.share is not None or principal.app_id is not None:
        raise Forbidden("correcting an answer needs a login or a team-wide key", code="admin_feedback_forbidden")
    chat = await _chat(session, principal, app_id, chat_id)
    item = await _item(session, chat, ref, answer=True)
    chunk_id = correction.chunk_id
    collection_id = correction.collection_id
    if chunk_id is None:
        if collection_id is None:
            raise NotFound("a correction needs the collection to save it in (collectionId)",
                           code="collection_not_found")
        collection = await load_collection(session, principal, collection_id)
        if collection.dataset_id != correction.dataset_id:
            raise NotFound(f"collection {collection_id} is not in dataset {correction.dataset_id}",
                           code="collection_not_found")
        await push_data(session, principal, collection_id, [PushItem(q=correction.q, a=correction.a)])
        chunk_id = (await session.execute(select(func.max(Chunk.id)).where(
            Chunk.collection_id == collection_id, Chunk.q == correction.q.strip()))).scalar_one()
    feedback = {"datasetId": str(correction.dataset_id), "collectionId": str(collection_id) if collection_id else None,
                "dataId": str(chunk_id), "q": correction.q, "a": correction.a}
    await session.execute(update(ChatItem).where(ChatItem.id == item.id).values(admin_feedback=feedback))
    await session.commit()
    return feedback
