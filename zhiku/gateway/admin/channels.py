"""Channel administration: create, change, list, delete; keys encrypted; abilities kept in step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.errors import NotFound
from zhiku.gateway.admin.schemas import ChannelCreate, ChannelPublic, ChannelUpdate
from zhiku.gateway.domain import AUTO_DISABLED, ENABLED, parse_model_list
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.keybox import KeyBox, mask_key
from zhiku.gateway.store.tables import GatewayAbility, GatewayChannel


def public(row: GatewayChannel) -> ChannelPublic:
    return ChannelPublic(id=row.id, type=row.type, name=row.name, base_url=row.base_url, key=row.key_hint,
                         models=parse_model_list(row.models), groups=parse_model_list(row.groups),
                         model_mapping=row.model_mapping or {}, config=row.config or {}, priority=row.priority,
                         weight=row.weight, status=row.status, status_reason=row.status_reason,
                         timeout_seconds=row.timeout_seconds, response_time_ms=row.response_time_ms,
                         used_quota=row.used_quota, request_count=row.request_count, tested_at=row.tested_at,
                         created_at=row.created_at)


async def sync_abilities(session: AsyncSession, row: GatewayChannel) -> None:
    await session.execute(delete(GatewayAbility).where(GatewayAbility.channel_id == row.id))
    rows = [{"group_name": g[:32], "model": m[:190], "channel_id": row.id, "enabled": row.status == ENABLED,
             "priority": row.priority}
            for g in parse_model_list(row.groups) for m in parse_model_list(row.models)]
    if rows:
        await session.execute(insert(GatewayAbility), rows)


def _apply_key(row: GatewayChannel, keybox: KeyBox, key: str) -> None:
    row.key_encrypted = keybox.encrypt(key) if key else ""
    row.key_hint = mask_key(key) if key else ""


async def create_channel(store: GatewayStore, keybox: KeyBox, data: ChannelCreate,
                         external_ref: str | None = None) -> ChannelPublic:
    async with store.sessions() as session:
        row = GatewayChannel(type=data.type, name=data.name, base_url=data.base_url.strip(), models=data.models,
                             groups=data.groups or ["default"], model_mapping=data.model_mapping or None,
                             config=data.config or None, priority=data.priority, weight=data.weight,
                             status=data.status, timeout_seconds=data.timeout_seconds, external_ref=external_ref,
                             response_time_ms=0, used_quota=0, request_count=0)
        _apply_key(row, keybox, data.key)
        session.add(row)
        await session.flush()
        await sync_abilities(session, row)
        await session.commit()
        return public(row)


async def _get(session: AsyncSession, channel_id: int) -> GatewayChannel:
    row = await session.get(GatewayChannel, channel_id)
    if row is None:
        raise NotFound(f"channel {channel_id} does not exist", code="channel_not_found")
    return row


async def get_channel(store: GatewayStore, channel_id: int) -> ChannelPublic:
    async with store.sessions() as session:
        return public(await _get(session, channel_id))


async def update_channel(store: GatewayStore, keybox: KeyBox, channel_id: int, data: ChannelUpdate) -> ChannelPublic:
    changes: dict[str, Any] = data.changes()
    async with store.sessions() as session:
        row = await _get(session, channel_id)
        key = changes.pop("key", None)
        if key:
            _apply_key(row, keybox, key)
        for name, value in changes.items():
            if name == "base_url" and value is not None:
                value = value.strip()
            setattr(row, name, value)
        if "status" in changes and changes["status"] != AUTO_DISABLED:
            row.status_reason = None
        await sync_abilities(session, row)
        await session.commit()
        return public(row)


async def delete_channel(store: GatewayStore, channel_id: int) -> None:
    async with store.sessions() as session:
        await _get(session, channel_id)
        await session.execute(delete(GatewayAbility).where(GatewayAbility.channel_id == channel_id))
        await session.execute(delete(GatewayChannel).where(GatewayChannel.id == channel_id))
        await session.commit()


async def list_channels(store: GatewayStore, *, page: int = 1, size: int = 100,
                        status: str | None = None) -> tuple[list[ChannelPublic], int]:
    async with store.sessions() as session:
        query = select(GatewayChannel)
        counting = select(func.count()).select_from(GatewayChannel)
        if status:
            query = query.where(GatewayChannel.status == status)
            counting = counting.where(GatewayChannel.status == status)
        total = (await session.execute(counting)).scalar_one()
        rows = await session.execute(query.order_by(GatewayChannel.priority.desc(), GatewayChannel.id)
                                     .offset((page - 1) * size).limit(size))
        return [public(r) for r in rows.scalars()], total


async def set_status(store: GatewayStore, channel_id: int, status: str, reason: str | None) -> None:
    """Switch a channel on or off (auto-disable, a passing test); abilities follow."""
    async with store.sessions() as session:
        await session.execute(update(GatewayChannel).where(GatewayChannel.id == channel_id)
                              .values(status=status, status_reason=reason))
        await session.execute(update(GatewayAbility).where(GatewayAbility.channel_id == channel_id)
                              .values(enabled=status == ENABLED))
        await session.commit()


async def record_test(store: GatewayStore, channel_id: int, latency_ms: int) -> None:
    async with store.sessions() as session:
        await session.execute(update(GatewayChannel).where(GatewayChannel.id == channel_id)
                              .values(response_time_ms=latency_ms, tested_at=datetime.now(UTC)))
        await session.commit()


async def channel_ids_with_status(store: GatewayStore, status: str) -> list[int]:
    async with store.sessions() as session:
        rows = await session.execute(select(GatewayChannel.id).where(GatewayChannel.status == status))
        return [r for (r,) in rows.all()]


async def upsert_by_ref(store: GatewayStore, keybox: KeyBox, external_ref: str, data: ChannelCreate) -> int:
    """Create the channel known by ``external_ref``, or bring it in line with ``data``; returns its id."""
    async with store.sessions() as session:
        row = (await session.execute(select(GatewayChannel).where(GatewayChannel.external_ref == external_ref)
                                     )).scalar_one_or_none()
        if row is not None:
            row.base_url, row.type, row.timeout_seconds = data.base_url, data.type, data.timeout_seconds
            merged = parse_model_list(list(row.models or []) + data.models)
            row.models = merged
            if not row.key_encrypted or keybox.decrypt(row.key_encrypted) != data.key:
                _apply_key(row, keybox, data.key)
            await sync_abilities(session, row)
            await session.commit()
            return row.id
    try:
        return (await create_channel(store, keybox, data, external_ref=external_ref)).id
    except Exception:
        # Another process created it at the same moment (the unique external_ref): use theirs.
        async with store.sessions() as session:
            found = (await session.execute(select(GatewayChannel.id).where(
                GatewayChannel.external_ref == external_ref))).scalar_one_or_none()
        if found is None:
            raise
        return found
