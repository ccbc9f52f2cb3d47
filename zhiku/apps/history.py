"""Stored chats of an app: list them, read one back, rename, delete, and feedback on an answer.

The turns themselves are written by :mod:`zhiku.apps.chat`; this module only reads and edits them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.apps.service import load_app
from zhiku.auth.service import Principal
from zhiku.db.models import Chat, ChatItem
from zhiku.errors import NotFound

Feedback = Literal["good", "bad"]
MAX_TITLE = 100  # as the title a turn gives its chat


@dataclass(frozen=True)
class ChatSummary:
    chat_id: str
    title: str
    updated_at: datetime


@dataclass(frozen=True)
class StoredItem:
    id: int
    role: str  # user | assistant
    content: str
    quotes: list[dict[str, Any]]
    feedback: str | None


@dataclass(frozen=True)
class StoredChat:
    title: str
    variables: dict[str, Any]
    items: list[StoredItem]


async def _chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> Chat:
    await load_app(session, principal, app_id)
    chat = (await session.execute(select(Chat).where(Chat.app_id == app_id, Chat.chat_id == chat_id))
            ).scalar_one_or_none()
    if chat is None:
        raise NotFound(f"chat {chat_id!r} does not exist", code="chat_not_found")
    return chat


async def list_chats(session: AsyncSession, principal: Principal, app_id: int, *, offset: int = 0,
                     limit: int = 50) -> tuple[list[ChatSummary], int]:
    """A page of the app's chats, the latest first, and how many there are."""
    await load_app(session, principal, app_id)
    total = (await session.execute(select(func.count()).select_from(Chat).where(Chat.app_id == app_id))).scalar_one()
    rows = await session.execute(select(Chat.chat_id, Chat.title, Chat.updated_at).where(Chat.app_id == app_id)
                                 .order_by(Chat.updated_at.desc(), Chat.id.desc()).offset(offset).limit(limit))
    return [ChatSummary(chat_id=c, title=t, updated_at=u) for c, t, u in rows.all()], total


async def load_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> StoredChat:
    """The chat's variables and its questions and answers in order (an unknown chat id is a new chat)."""
    await load_app(session, principal, app_id)
    chat = (await session.execute(select(Chat).where(Chat.app_id == app_id, Chat.chat_id == chat_id))
            ).scalar_one_or_none()
    if chat is None:
        return StoredChat(title="", variables={}, items=[])
    rows = await session.execute(select(ChatItem.id, ChatItem.role, ChatItem.content, ChatItem.quotes,
                                        ChatItem.feedback).where(ChatItem.chat_pk == chat.id).order_by(ChatItem.id))
    return StoredChat(title=chat.title, variables=dict(chat.variables or {}),
                      items=[StoredItem(id=i, role=r, content=c, quotes=q or [], feedback=f)
                             for i, r, c, q, f in rows.all()])


async def rename_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, title: str) -> None:
    chat = await _chat(session, principal, app_id, chat_id)
    chat.title = title.strip()[:MAX_TITLE]
    await session.commit()


async def delete_chat(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> None:
    chat = await _chat(session, principal, app_id, chat_id)
    await session.delete(chat)
    await session.commit()


async def last_answer_id(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> int:
    """The id of the chat's latest answer (what a client that just streamed one gives feedback on)."""
    chat = await _chat(session, principal, app_id, chat_id)
    item = (await session.execute(select(func.max(ChatItem.id)).where(ChatItem.chat_pk == chat.id,
                                                                      ChatItem.role == "assistant"))).scalar_one()
    if item is None:
        raise NotFound(f"chat {chat_id!r} has no answer yet", code="chat_item_not_found")
    return item


async def set_feedback(session: AsyncSession, principal: Principal, app_id: int, chat_id: str, item_id: int,
                       feedback: Feedback | None) -> None:
    """Mark an answer good or bad (``None`` clears it)."""
    chat = await _chat(session, principal, app_id, chat_id)
    result = await session.execute(update(ChatItem).where(ChatItem.id == item_id, ChatItem.chat_pk == chat.id,
                                                          ChatItem.role == "assistant").values(feedback=feedback))
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound(f"answer {item_id} is not in chat {chat_id!r}", code="chat_item_not_found")
    await session.commit()

