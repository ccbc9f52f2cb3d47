"""Request logs: filtered pages, and usage statistics per day, model, channel or token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, String, cast, func, select

from zhiku.errors import InvalidInput
from zhiku.gateway.admin.schemas import LogPublic
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.tables import GatewayLog

STAT_GROUPS = ("day", "model", "channel", "token")


@dataclass(frozen=True)
class LogFilter:
    user_id: int | None = None
    token_id: int | None = None
    token_name: str | None = None
    channel_id: int | None = None
    model: str | None = None
    type: str | None = None
    status: int | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        conditions = []
        if self.user_id is not None:
            conditions.append(GatewayLog.user_id == self.user_id)
        if self.token_id is not None:
            conditions.append(GatewayLog.token_id == self.token_id)
        if self.token_name:
            conditions.append(GatewayLog.token_name == self.token_name)
        if self.channel_id is not None:
            conditions.append(GatewayLog.channel_id == self.channel_id)
        if self.model:
            conditions.append(GatewayLog.model == self.model)
        if self.type:
            conditions.append(GatewayLog.type == self.type)
        if self.status is not None:
            conditions.append(GatewayLog.status == self.status)
        if self.since is not None:
            conditions.append(GatewayLog.created_at >= self.since)
        if self.until is not None:
            conditions.append(GatewayLog.created_at < self.until)
        return query.where(*conditions) if conditions else query


def public(row: GatewayLog) -> LogPublic:
    return LogPublic.model_validate(row, from_attributes=True)


async def list_logs(store: GatewayStore, where: LogFilter, *, page: int = 1,
                    size: int = 50) -> tuple[list[LogPublic], int]:
    async with store.sessions() as session:
        total = (await session.execute(where.apply(select(func.count()).select_from(GatewayLog)))).scalar_one()
        rows = await session.execute(where.apply(select(GatewayLog)).order_by(GatewayLog.id.desc())
                                     .offset((page - 1) * size).limit(size))
        return [public(r) for r in rows.scalars()], total


async def usage_stats(store: GatewayStore, group_by: str, where: LogFilter) -> list[dict[str, Any]]:
    """Requests, errors, tokens, quota and mean latency per ``group_by`` key."""
    if group_by not in STAT_GROUPS:
        raise InvalidInput(f"group_by must be one of {', '.join(STAT_GROUPS)}", code="invalid_group_by")
    key: Any
    if group_by == "day":
        key = cast(func.date(GatewayLog.created_at), String)
    elif group_by == "model":
        key = GatewayLog.model
    elif group_by == "channel":
        key = GatewayLog.channel_id
    else:
        key = GatewayLog.token_id
    query = select(key.label("key"), func.count().label("requests"),
                   func.sum(GatewayLog.prompt_tokens).label("prompt_tokens"),
                   func.sum(GatewayLog.completion_tokens).label("completion_tokens"),
                   func.sum(GatewayLog.quota).label("quota"),
                   func.avg(GatewayLog.latency_ms).label("avg_latency_ms"))
    async with store.sessions() as session:
        rows = (await session.execute(where.apply(query).group_by(key).order_by(key))).all()
        # Every failed request is logged with type "error".
        errors = dict((await session.execute(where.apply(select(key.label("key"), func.count())
                                                         .where(GatewayLog.type == "error")).group_by(key))).all())
    extra: dict[str, Any] = {}
    if group_by in ("channel", "token"):
        async with store.sessions() as session:
            column = GatewayLog.channel_name if group_by == "channel" else GatewayLog.token_name
            names = (await session.execute(select(key, func.max(column)).group_by(key))).all()
            extra = {k: n for k, n in names}
    return [{group_by: _key(r.key), "name": extra.get(r.key), "requests": int(r.requests),
             "errors": int(errors.get(r.key, 0)), "prompt_tokens": int(r.prompt_tokens or 0),
             "completion_tokens": int(r.completion_tokens or 0), "quota": int(r.quota or 0),
             "avg_latency_ms": round(float(r.avg_latency_ms or 0), 1)} for r in rows]


def _key(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value
