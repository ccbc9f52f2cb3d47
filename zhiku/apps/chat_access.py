"""Whose chats a caller may see and continue: the one rule the chat turn and the history functions share.

An admin's login or a team-wide key: every chat of the team's app; a plain member's login: only the chats
that member started; an app key: every chat of its own app; a share-link visitor: only the chats of that
link and visitor id.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import Chat


def sees_only_own_chats(principal: Principal) -> bool:
    """A plain member's login: only the chats that member started."""
    return principal.kind == "session" and not principal.is_admin


def owned(principal: Principal, app_id: int) -> list[ColumnElement[bool]]:
    """Clauses for the chats of ``app_id`` the caller may touch."""
    clauses: list[ColumnElement[bool]] = [Chat.app_id == app_id]
    if principal.share is not None:
        clauses += [Chat.share_id == principal.share.share_id, Chat.out_link_uid == principal.share.uid]
    elif sees_only_own_chats(principal):
        clauses.append(Chat.user_id == principal.user_id)
    return clauses


async def may_continue(session: AsyncSession, principal: Principal, app_id: int, chat_id: str) -> bool:
    """Whether a chat id is free or one of the caller's chats (a share visitor or a plain member may not
    continue someone else's chat)."""
    exists = (await session.execute(select(Chat.id).where(Chat.app_id == app_id, Chat.chat_id == chat_id))).first()
    if exists is None:
        return True
    return (await session.execute(select(Chat.id).where(Chat.chat_id == chat_id, *owned(principal, app_id)))
            ).first() is not None
