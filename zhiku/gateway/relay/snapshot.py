"""The in-memory view the hot path reads: tokens by key hash, users, channels, options and prices.

Loaded whole from the store on start, after every admin write, and periodically (so writes by other
processes — another gateway, the CLI — are picked up). A snapshot is never changed in place; a new one
replaces it, so a request sees one consistent view.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import select

from zhiku.gateway.domain import (
    DEFAULT_GROUP,
    ChannelInfo,
    TokenInfo,
    UserInfo,
    parse_model_list,
    parse_subnets,
)
from zhiku.gateway.relay.choice import serving
from zhiku.gateway.relay.pricing import Prices, prices_from_options
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.keybox import KeyBox
from zhiku.gateway.store.tables import GatewayChannel, GatewayOption, GatewayToken, GatewayUser

log = logging.getLogger(__name__)


@dataclass
class Snapshot:
    tokens_by_hash: dict[str, TokenInfo] = field(default_factory=dict)
    tokens: dict[int, TokenInfo] = field(default_factory=dict)
    users: dict[int, UserInfo] = field(default_factory=dict)
    channels: dict[int, ChannelInfo] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    prices: Prices = field(default_factory=Prices)
    loaded_at: float = 0.0
    # (model, group, endpoint-capable channel types) → candidates; filled lazily, dropped with the snapshot.
    _serving: dict[tuple[str, str], list[ChannelInfo]] = field(default_factory=dict)

    def serving(self, model: str, group: str) -> list[ChannelInfo]:
        key = (model, group)
        found = self._serving.get(key)
        if found is None:
            found = serving(self.channels.values(), model, group)
            self._serving[key] = found
        return found

    def models_for(self, group: str) -> list[str]:
        names: set[str] = set()
        for channel in self.channels.values():
            if channel.enabled and group in channel.groups:
                names.update(m for m in channel.models if m != "*")
        return sorted(names)

    def with_channel(self, channel: ChannelInfo) -> Snapshot:
        """A copy with one channel replaced (status changes found on the hot path)."""
        channels = dict(self.channels)
        channels[channel.id] = channel
        return replace(self, channels=channels, _serving={})


def token_info(row: GatewayToken) -> TokenInfo:
    models = parse_model_list(row.models) if row.models not in (None, "") else None
    try:
        subnets = parse_subnets(row.subnets)
    except ValueError:
        log.warning("token %s has an invalid subnet list %r; refusing every client", row.id, row.subnets)
        subnets = ()
    return TokenInfo(id=row.id, user_id=row.user_id, name=row.name, status=row.status, expires_at=row.expires_at,
                     remain_quota=row.remain_quota, unlimited_quota=bool(row.unlimited_quota),
                     models=frozenset(models) if models is not None else None, subnets=subnets,
                     rpm_limit=row.rpm_limit or 0, tpm_limit=row.tpm_limit or 0, internal=bool(row.internal))


def user_info(row: GatewayUser) -> UserInfo:
    return UserInfo(id=row.id, username=row.username, role=row.role, status=row.status,
                    group=row.group_name or DEFAULT_GROUP, quota=row.quota)


def channel_info(row: GatewayChannel, keybox: KeyBox) -> ChannelInfo:
    mapping: Any = row.model_mapping if isinstance(row.model_mapping, dict) else {}
    return ChannelInfo(id=row.id, type=row.type, name=row.name, base_url=row.base_url or "",
                       models=tuple(parse_model_list(row.models)),
                       groups=tuple(parse_model_list(row.groups)) or (DEFAULT_GROUP,),
                       model_mapping={str(k): str(v) for k, v in mapping.items() if v},
                       config=row.config if isinstance(row.config, dict) else {},
                       priority=int(row.priority or 0), weight=int(row.weight if row.weight is not None else 1),
                       status=row.status, timeout_seconds=float(row.timeout_seconds or 0.0),
                       key=keybox.decrypt(row.key_encrypted) if row.key_encrypted else "")


async def load_snapshot(store: GatewayStore, keybox: KeyBox) -> Snapshot:
    async with store.sessions() as session:
        users = {r.id: user_info(r) for r in (await session.execute(select(GatewayUser))).scalars()}
        token_rows = list((await session.execute(select(GatewayToken))).scalars())
        channels = {r.id: channel_info(r, keybox) for r in (await session.execute(select(GatewayChannel))).scalars()}
        options = {r.key: r.value for r in (await session.execute(select(GatewayOption))).scalars()}
    tokens = {r.id: token_info(r) for r in token_rows}
    return Snapshot(tokens_by_hash={r.key_hash: tokens[r.id] for r in token_rows}, tokens=tokens, users=users,
                    channels=channels, options=options, prices=prices_from_options(options),
                    loaded_at=time.monotonic())


async def token_exists(store: GatewayStore, key_hash: str) -> bool:
    """One indexed lookup, used only for keys the snapshot does not know (a token made elsewhere)."""
    async with store.sessions() as session:
        found = await session.execute(select(GatewayToken.id).where(GatewayToken.key_hash == key_hash))
        return found.first() is not None
