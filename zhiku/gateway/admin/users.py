"""Gateway users: quota, group and role. ``root`` exists from the first start.

Inside ``zhiku serve`` the platform's root and admins manage the gateway with their login; a
standalone gateway accepts a user's access token (OneAPI's ``access_token``) — root's is set from
``ZHIKU_GATEWAY_ADMIN_TOKEN``.
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.secrets import hash_token
from zhiku.errors import Conflict, Forbidden, NotFound
from zhiku.gateway.admin.schemas import UserCreate, UserCreated, UserPublic, UserUpdate
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.tables import GatewayToken, GatewayUser

ROOT = "root"


def public(row: GatewayUser) -> UserPublic:
    return UserPublic(id=row.id, username=row.username, display_name=row.display_name, role=row.role,
                      status=row.status, group=row.group_name, quota=row.quota, used_quota=row.used_quota,
                      request_count=row.request_count, created_at=row.created_at)


async def ensure_root(store: GatewayStore, admin_token: str = "") -> int:
    """Root's id, creating root on first start; applies ``admin_token`` as root's access token."""
    async with store.sessions() as session:
        row = (await session.execute(select(GatewayUser).where(GatewayUser.username == ROOT))).scalar_one_or_none()
        if row is None:
            row = GatewayUser(username=ROOT, display_name="Root", role="root", status="enabled",
                              group_name="default", quota=0, used_quota=0, request_count=0)
            session.add(row)
            try:
                await session.flush()
            except IntegrityError:  # another process made it just now
                await session.rollback()
                row = (await session.execute(select(GatewayUser).where(GatewayUser.username == ROOT))).scalar_one()
        if admin_token and row.access_token_hash != hash_token(admin_token):
            row.access_token_hash = hash_token(admin_token)
        await session.commit()
        return row.id


async def user_by_access_token(store: GatewayStore, token: str) -> GatewayUser | None:
    async with store.sessions() as session:
        return (await session.execute(select(GatewayUser).where(
            GatewayUser.access_token_hash == hash_token(token)))).scalar_one_or_none()


async def create_user(store: GatewayStore, data: UserCreate, *, with_access_token: bool = False) -> UserCreated:
    access = "gat-" + secrets.token_urlsafe(32) if with_access_token else None
    async with store.sessions() as session:
        row = GatewayUser(username=data.username, display_name=data.display_name, role=data.role, status="enabled",
                          group_name=data.group, quota=data.quota, used_quota=0, request_count=0,
                          access_token_hash=hash_token(access) if access else None)
        session.add(row)
        try:
            await session.commit()
        except IntegrityError:
            raise Conflict(f"user {data.username!r} already exists", code="user_exists") from None
        return UserCreated(**public(row).model_dump(), access_token=access)


async def _get(session: AsyncSession, user_id: int) -> GatewayUser:
    row = await session.get(GatewayUser, user_id)
    if row is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    return row


async def get_user(store: GatewayStore, user_id: int) -> UserPublic:
    async with store.sessions() as session:
        return public(await _get(session, user_id))


async def update_user(store: GatewayStore, user_id: int, data: UserUpdate) -> UserPublic:
    changes = data.changes()
    async with store.sessions() as session:
        row = await _get(session, user_id)
        if row.role == "root" and ("role" in changes or changes.get("status") == "disabled"):
            raise Forbidden("root cannot be demoted or disabled", code="root_protected")
        add = changes.pop("add_quota", None)
        if add:
            row.quota = row.quota + add
        if "group" in changes:
            row.group_name = changes.pop("group")
        for name, value in changes.items():
            setattr(row, name, value)
        await session.commit()
        return public(row)


async def delete_user(store: GatewayStore, user_id: int) -> None:
    async with store.sessions() as session:
        row = await _get(session, user_id)
        if row.role == "root":
            raise Forbidden("root cannot be deleted", code="root_protected")
        await session.execute(delete(GatewayToken).where(GatewayToken.user_id == user_id))
        await session.execute(delete(GatewayUser).where(GatewayUser.id == user_id))
        await session.commit()


async def list_users(store: GatewayStore, *, page: int = 1, size: int = 100) -> tuple[list[UserPublic], int]:
    async with store.sessions() as session:
        total = (await session.execute(select(func.count()).select_from(GatewayUser))).scalar_one()
        rows = await session.execute(select(GatewayUser).order_by(GatewayUser.id).offset((page - 1) * size)
                                     .limit(size))
        return [public(r) for r in rows.scalars()], total
