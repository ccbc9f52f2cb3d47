"""Quota, counters and log rows kept in memory and written in batches.

A request reserves its estimated cost (pre-consume), then settles the real cost or is refunded; the
spend is applied to the in-memory balances at once and to the database on the next flush, as one
UPDATE per touched row and one multi-row INSERT of log rows. Balances the hot path sees are::

    remaining = value in the loaded snapshot − flushed since that load − not yet flushed − reserved

so a burst of requests costs a burst of dictionary updates, not of database writes.
"""

from __future__ import annotations

import functools
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Update, bindparam, case, insert, update

from zhiku.errors import QuotaExhausted
from zhiku.gateway.domain import TokenInfo, UserInfo
from zhiku.gateway.store.engine import GatewayStore
from zhiku.gateway.store.tables import GatewayChannel, GatewayLog, GatewayToken, GatewayUser

log = logging.getLogger(__name__)
MAX_BUFFERED_LOGS = 5000  # past this a flush is asked for before the interval ends


@dataclass(frozen=True)
class Reservation:
    token_id: int
    user_id: int
    amount: int


@dataclass
class _Counts:
    spent: int = 0
    requests: int = 0
    latency_ms: int | None = None  # channels: the latest response time


@dataclass
class Batch:
    tokens: dict[int, _Counts] = field(default_factory=dict)
    users: dict[int, _Counts] = field(default_factory=dict)
    channels: dict[int, _Counts] = field(default_factory=dict)
    logs: list[dict[str, Any]] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.tokens or self.users or self.channels or self.logs)


class Ledger:
    def __init__(self) -> None:
        self._pending = Batch()
        self._reserved_token: dict[int, int] = defaultdict(int)
        self._reserved_user: dict[int, int] = defaultdict(int)
        self._flushed_token: dict[int, int] = defaultdict(int)  # spent flushed since the snapshot load
        self._flushed_user: dict[int, int] = defaultdict(int)
        self.wants_flush = False

    # ---- balances ----------------------------------------------------------------------------

    def token_remaining(self, token: TokenInfo) -> int | None:
        if token.unlimited_quota:
            return None
        pending = self._pending.tokens.get(token.id)
        return (token.remain_quota - self._flushed_token.get(token.id, 0) - (pending.spent if pending else 0)
                - self._reserved_token.get(token.id, 0))

    def user_remaining(self, user: UserInfo) -> int | None:
        if user.role == "root":
            return None
        pending = self._pending.users.get(user.id)
        return (user.quota - self._flushed_user.get(user.id, 0) - (pending.spent if pending else 0)
                - self._reserved_user.get(user.id, 0))

    def reserve(self, token: TokenInfo, user: UserInfo, amount: int) -> Reservation:
        """Pre-consume ``amount``, or raise 403 when the token or its user cannot cover it."""
        token_left = self.token_remaining(token)
        if token_left is not None and (token_left <= 0 or token_left < amount):
            raise QuotaExhausted(f"token {token.name!r} has not enough quota left ({max(token_left, 0)}, "
                                 f"this request needs about {amount})", detail={"remaining": max(token_left, 0)})
        user_left = self.user_remaining(user)
        if user_left is not None and (user_left <= 0 or user_left < amount):
            raise QuotaExhausted(f"user {user.username!r} has not enough quota left ({max(user_left, 0)}, "
                                 f"this request needs about {amount})", code="user_quota_exhausted",
                                 detail={"remaining": max(user_left, 0)})
        self._reserved_token[token.id] += amount
        self._reserved_user[user.id] += amount
        return Reservation(token.id, user.id, amount)

    def _release(self, reservation: Reservation) -> None:
        for reserved, key in ((self._reserved_token, reservation.token_id), (self._reserved_user, reservation.user_id)):
            left = reserved.get(key, 0) - reservation.amount
            if left > 0:
                reserved[key] = left
            else:
                reserved.pop(key, None)

    def refund(self, reservation: Reservation) -> None:
        self._release(reservation)

    def settle(self, reservation: Reservation, spent: int, channel_id: int | None, latency_ms: int | None) -> None:
        self._release(reservation)
        for table, key in ((self._pending.tokens, reservation.token_id), (self._pending.users, reservation.user_id)):
            counts = table.get(key)
            if counts is None:
                counts = table[key] = _Counts()
            counts.spent += spent
            counts.requests += 1
        if channel_id is not None:
            counts = self._pending.channels.get(channel_id)
            if counts is None:
                counts = self._pending.channels[channel_id] = _Counts()
            counts.spent += spent
            counts.requests += 1
            if latency_ms is not None:
                counts.latency_ms = latency_ms

    def add_log(self, row: dict[str, Any]) -> None:
        self._pending.logs.append(row)
        if len(self._pending.logs) >= MAX_BUFFERED_LOGS:
            self.wants_flush = True

    def snapshot_loaded(self) -> None:
        """A fresh snapshot includes everything flushed so far."""
        self._flushed_token.clear()
        self._flushed_user.clear()

    # ---- flushing ----------------------------------------------------------------------------

    def take(self) -> Batch:
        batch, self._pending = self._pending, Batch()
        self.wants_flush = False
        return batch

    def _restore(self, batch: Batch) -> None:
        """Put back a batch whose write failed, merged with what arrived meanwhile."""
        for name in ("tokens", "users", "channels"):
            pending: dict[int, _Counts] = getattr(self._pending, name)
            for key, counts in getattr(batch, name).items():
                into = pending.setdefault(key, _Counts())
                into.spent += counts.spent
                into.requests += counts.requests
                into.latency_ms = into.latency_ms if into.latency_ms is not None else counts.latency_ms
        self._pending.logs[:0] = batch.logs[-MAX_BUFFERED_LOGS * 4:]  # bounded if the database stays down

    async def flush(self, store: GatewayStore) -> int:
        """Write everything pending; returns the number of log rows written."""
        batch = self.take()
        if batch.empty():
            return 0
        # Counted as flushed before the write is awaited: while it is in flight the batch is neither
        # pending nor in the snapshot, and balances must not look higher than they are meanwhile.
        self._count_flushed(batch, 1)
        try:
            await write_batch(store, batch)
        except Exception:
            log.exception("gateway: writing %d log rows and counters failed; will retry", len(batch.logs))
            self._count_flushed(batch, -1)
            self._restore(batch)
            raise
        return len(batch.logs)

    def _count_flushed(self, batch: Batch, sign: int) -> None:
        for key, counts in batch.tokens.items():
            self._flushed_token[key] += sign * counts.spent
        for key, counts in batch.users.items():
            self._flushed_user[key] += sign * counts.spent


async def write_batch(store: GatewayStore, batch: Batch) -> None:
    now = datetime.now(UTC)
    tokens_update, users_update, channels_update, channel_time_update = _counter_updates()
    async with store.sessions() as session:
        if batch.tokens:
            await session.execute(tokens_update, [{"k": k, "spent": c.spent, "n": c.requests, "at": now}
                                                  for k, c in batch.tokens.items()])
        if batch.users:
            await session.execute(users_update, [{"k": k, "spent": c.spent, "n": c.requests}
                                                 for k, c in batch.users.items()])
        if batch.channels:
            await session.execute(channels_update, [{"k": k, "spent": c.spent, "n": c.requests}
                                                    for k, c in batch.channels.items()])
            timed = [{"k": k, "ms": c.latency_ms} for k, c in batch.channels.items() if c.latency_ms is not None]
            if timed:
                await session.execute(channel_time_update, timed)
        if batch.logs:
            conn = await session.connection()
            statement = _log_insert(conn.dialect)
            for start in range(0, len(batch.logs), LOG_CHUNK):
                await conn.exec_driver_sql(statement.sql, statement.rows(batch.logs[start:start + LOG_CHUNK]))
        await session.commit()


# Log rows per INSERT. The rows are turned into parameters in the event loop's thread (a few µs each),
# so a flush is many short turns of the loop rather than one long one that holds up every request.
LOG_CHUNK = 100


@functools.cache
def _counter_updates() -> tuple[Update, Update, Update, Update]:
    """The counter UPDATEs, built once (building them is ~0.2 ms each, on every flush otherwise)."""
    tokens = GatewayToken.__table__
    users = GatewayUser.__table__
    channels = GatewayChannel.__table__
    return (
        update(tokens).where(tokens.c.id == bindparam("k"))
        .values(remain_quota=case((tokens.c.unlimited_quota == True, tokens.c.remain_quota),  # noqa: E712 SQL
                                  else_=tokens.c.remain_quota - bindparam("spent")),
                used_quota=tokens.c.used_quota + bindparam("spent"),
                request_count=tokens.c.request_count + bindparam("n"), accessed_at=bindparam("at")),
        update(users).where(users.c.id == bindparam("k"))
        .values(quota=case((users.c.role == "root", users.c.quota), else_=users.c.quota - bindparam("spent")),
                used_quota=users.c.used_quota + bindparam("spent"),
                request_count=users.c.request_count + bindparam("n")),
        update(channels).where(channels.c.id == bindparam("k"))
        .values(used_quota=channels.c.used_quota + bindparam("spent"),
                request_count=channels.c.request_count + bindparam("n")),
        update(channels).where(channels.c.id == bindparam("k")).values(response_time_ms=bindparam("ms")),
    )


@dataclass(frozen=True)
class _LogInsert:
    """The log INSERT compiled once per dialect, and rows turned into its positional parameters.

    SQLAlchemy's own executemany processes every row's parameters in the event loop's thread (a large
    flush held every in-flight request up); here
    the rows are picked column by column in C, and only the columns whose type needs it (times,
    booleans on some backends) go through their processor.
    """

    sql: str
    columns: tuple[str, ...]
    processors: tuple[tuple[int, Any], ...]  # (position, bind processor)

    def rows(self, logs: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        columns = self.columns
        picked = [tuple(map(log_row.get, columns)) for log_row in logs]
        if not self.processors or not picked:
            return picked
        by_column = list(zip(*picked))
        for position, process in self.processors:
            by_column[position] = tuple(map(process, by_column[position]))
        return list(zip(*by_column))


_LOG_INSERTS: dict[tuple[str, str, str], _LogInsert] = {}


def _log_insert(dialect: Any) -> _LogInsert:
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    found = _LOG_INSERTS.get(key)
    if found is None:
        table = GatewayLog.__table__
        names = [c.name for c in table.columns if c.name != "id"]
        compiled = insert(table).compile(dialect=dialect, column_keys=names)
        order = tuple(compiled.positiontup or names)
        processors = []
        for position, name in enumerate(order):
            process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                processors.append((position, process))
        found = _LOG_INSERTS[key] = _LogInsert(str(compiled), order, tuple(processors))
    return found
