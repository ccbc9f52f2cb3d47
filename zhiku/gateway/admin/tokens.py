"""Gateway tokens (``sk-…``): created with the key shown once, stored as a SHA-256 hash.

A OneAPI key (48 characters, used as ``sk-<key>``) imports by hashing ``sk-<key>``, so clients keep it.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.secrets import hash_token
from zhiku.errors import NotFound
from zhiku.gateway.admin.schemas import TokenCreate, TokenCreated, TokenPublic, TokenUpdate
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.tables import GatewayToken

TOKEN_PREFIX = "sk-"
INTERNAL_REF = "internal:platform"


def new_key() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(36)  # 48 characters after the prefix, as OneAPI's


def key_prefix(key: str) -> str:
    return key[:8]


def public(row: GatewayToken) -> TokenPublic:
    return TokenPublic(id=row.id, user_id=row.user_id, name=row.name, key_prefix=row.key_prefix, status=row.status,
                       expires_at=row.expires_at, remain_quota=row.remain_quota,
                       unlimited_quota=bool(row.unlimited_quota), used_quota=row.used_quota,
                       request_count=row.request_count, models=row.models, subnets=row.subnets,
                       rpm_limit=row.rpm_limit, tpm_limit=row.tpm_limit, internal=bool(row.internal),
                       created_at=row.created_at, accessed_at=row.accessed_at)


def _row(user_id: int, data: TokenCreate, key: str, **extra: Any) -> GatewayToken:
    return GatewayToken(user_id=user_id, name=data.name, key_hash=hash_token(key), key_prefix=key_prefix(key),
                        status="enabled", expires_at=data.expires_at, remain_quota=data.remain_quota,
                        unlimited_quota=data.unlimited_quota, used_quota=0, request_count=0,
                        models=data.models or None, subnets=data.subnets or None, rpm_limit=data.rpm_limit,
                        tpm_limit=data.tpm_limit, internal=False, **extra)


async def create_token(store: GatewayStore, user_id: int, data: TokenCreate, *, key: str | None = None,
                       external_ref: str | None = None) -> TokenCreated:
    key = key or new_key()
    async with store.sessions() as session:
        row = _row(user_id, data, key, external_ref=external_ref)
        session.add(row)
        await session.commit()
        return TokenCreated(**public(row).model_dump(), key=key)


async def _get(session: AsyncSession, token_id: int, owner_id: int | None) -> GatewayToken:
    row = await session.get(GatewayToken, token_id)
    if row is None or (owner_id is not None and row.user_id != owner_id):
        raise NotFound(f"token {token_id} does not exist", code="token_not_found")
    return row


async def get_token(store: GatewayStore, token_id: int, owner_id: int | None = None) -> TokenPublic:
    async with store.sessions() as session:
        return public(await _get(session, token_id, owner_id))


async def update_token(store: GatewayStore, token_id: int, data: TokenUpdate,
                       owner_id: int | None = None) -> TokenPublic:
    changes = data.changes()
    async with store.sessions() as session:
        row = await _get(session, token_id, owner_id)
        if changes.pop("clear_expiry", False):
            row.expires_at = None
        for name, value in changes.items():
            if name in ("models", "subnets"):
                value = value or None
            setattr(row, name, value)
        await session.commit()
        return public(row)


async def delete_token(store: GatewayStore, token_id: int, owner_id: int | None = None) -> None:
    async with store.sessions() as session:
        await _get(session, token_id, owner_id)
        await session.execute(delete(GatewayToken).where(GatewayToken.id == token_id))
        await session.commit()


async def list_tokens(store: GatewayStore, *, owner_id: int | None = None, page: int = 1,
                      size: int = 100) -> tuple[list[TokenPublic], int]:
    async with store.sessions() as session:
        query = select(GatewayToken)
        counting = select(func.count()).select_from(GatewayToken)
        if owner_id is not None:
            query = query.where(GatewayToken.user_id == owner_id)
            counting = counting.where(GatewayToken.user_id == owner_id)
        total = (await session.execute(counting)).scalar_one()
        rows = await session.execute(query.order_by(GatewayToken.id).offset((page - 1) * size).limit(size))
        return [public(r) for r in rows.scalars()], total


async def ensure_token(store: GatewayStore, user_id: int, external_ref: str, data: TokenCreate, *,
                       key: str | None = None, internal: bool = False) -> int:
    """The token known by ``external_ref``, created if missing; with ``key``, its hash is kept equal to it."""
    async with store.sessions() as session:
        row = (await session.execute(select(GatewayToken).where(GatewayToken.external_ref == external_ref)
                                     )).scalar_one_or_none()
        if row is not None:
            if key is not None and row.key_hash != hash_token(key):
                row.key_hash, row.key_prefix = hash_token(key), key_prefix(key)
                await session.commit()
            return row.id
        row = _row(user_id, data, key or new_key(), external_ref=external_ref)
        row.internal = internal
        session.add(row)
        try:
            await session.commit()
        except Exception:
            await session.rollback()
            found = (await session.execute(select(GatewayToken.id).where(
                GatewayToken.external_ref == external_ref))).scalar_one_or_none()
            if found is None:
                raise
            return found
        return row.id
