"""A lease-based job queue in one PostgreSQL table.

A worker claims the oldest ready job with ``FOR UPDATE SKIP LOCKED`` and holds
it for a lease it keeps renewing while the job runs. A job whose worker died is
claimed again once the lease runs out. Handlers must be safe to run twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_CLAIM = text("""
UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_by = :worker,
       locked_until = now() + make_interval(secs => :lease), updated_at = now()
WHERE id = (
    SELECT id FROM jobs
    WHERE (status = 'queued' AND run_after <= now())
       OR (status = 'running' AND locked_until < now())
    ORDER BY id
    LIMIT 1
    FOR UPDATE SKIP LOCKED)
RETURNING id, kind, payload, collection_id, attempts, max_attempts, last_error
""")


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: str
    payload: dict[str, Any]
    collection_id: int | None
    attempts: int
    max_attempts: int
    last_error: str | None


async def enqueue(session: AsyncSession, kind: str, payload: dict[str, Any] | None = None, *,
                  collection_id: int | None = None, max_attempts: int = 5, delay_seconds: float = 0) -> None:
    """Add a job inside the caller's transaction, so it exists exactly when the caller's writes do.
    ``delay_seconds``: not claimed before then (a scheduled job)."""
    await session.execute(
        text("INSERT INTO jobs (kind, payload, collection_id, max_attempts, status, attempts, run_after, "
             "created_at, updated_at) VALUES (:kind, CAST(:payload AS jsonb), :cid, :max, 'queued', 0, "
             "now() + make_interval(secs => :delay), now(), now())"),
        {"kind": kind, "payload": _json(payload or {}), "cid": collection_id, "max": max_attempts,
         "delay": float(delay_seconds)})


async def enqueue_many(session: AsyncSession, kind: str, payloads: Sequence[dict[str, Any]], *,
                       collection_id: int | None = None, max_attempts: int = 5) -> None:
    """``enqueue`` for many jobs of one kind in one statement (one job per payload, in order)."""
    if not payloads:
        return
    await session.execute(
        text("INSERT INTO jobs (kind, payload, collection_id, max_attempts, status, attempts, run_after, "
             "created_at, updated_at) SELECT :kind, p, :cid, :max, 'queued', 0, now(), now(), now() "
             "FROM unnest(CAST(:payloads AS jsonb[])) WITH ORDINALITY AS t(p, n) ORDER BY n"),
        {"kind": kind, "payloads": [_json(p) for p in payloads], "cid": collection_id, "max": max_attempts})


async def claim(session: AsyncSession, worker: str, lease_seconds: float) -> ClaimedJob | None:
    row = (await session.execute(_CLAIM, {"worker": worker, "lease": lease_seconds})).mappings().first()
    await session.commit()
    if row is None:
        return None
    return ClaimedJob(id=row["id"], kind=row["kind"], payload=row["payload"] or {},
                      collection_id=row["collection_id"], attempts=row["attempts"],
                      max_attempts=row["max_attempts"], last_error=row["last_error"])


async def renew(session: AsyncSession, job_id: int, worker: str, lease_seconds: float) -> bool:
    """Extend the lease; False means another worker took the job over (our lease had lapsed)."""
    result = await session.execute(
        text("UPDATE jobs SET locked_until = now() + make_interval(secs => :lease) "
             "WHERE id = :id AND locked_by = :worker AND status = 'running'"),
        {"id": job_id, "worker": worker, "lease": lease_seconds})
    await session.commit()
    return bool(result.rowcount)


async def complete(session: AsyncSession, job_id: int, worker: str) -> None:
    await session.execute(text("DELETE FROM jobs WHERE id = :id AND locked_by = :worker"),
                          {"id": job_id, "worker": worker})
    await session.commit()


async def fail(session: AsyncSession, job: ClaimedJob, worker: str, error: str, *, retry: bool,
               retry_after: float | None = None) -> bool:
    """Record a failure. Returns True when the job is finally failed (no retry left). A retry waits
    ``retry_after`` seconds when given (an upstream's ``Retry-After``), else backs off exponentially."""
    final = not retry or job.attempts >= job.max_attempts
    if final:
        await session.execute(
            text("UPDATE jobs SET status = 'failed', last_error = :err, locked_until = NULL, updated_at = now() "
                 "WHERE id = :id"), {"id": job.id, "err": error})
    else:
        backoff = retry_after if retry_after is not None else min(2 ** job.attempts, 60)
        await session.execute(
            text("UPDATE jobs SET status = 'queued', last_error = :err, locked_until = NULL, locked_by = NULL, "
                 "run_after = now() + make_interval(secs => :backoff), updated_at = now() WHERE id = :id"),
            {"id": job.id, "err": error, "backoff": backoff})
    await session.commit()
    return final


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)
