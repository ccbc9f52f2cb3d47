"""The job runner shared by every queue: ``zhiku worker``, and a task inside ``zhiku serve``."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from zhiku.chat_model import ChatModel
from zhiku.config import Settings
from zhiku.db.availability import is_database_unavailable
from zhiku.db.engine import Database
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.errors import ZhikuError
from zhiku.worker import queue
from zhiku.worker.queue import ClaimedJob

log = logging.getLogger(__name__)

# The longest wait a job accepts from a ``Retry-After``; a longer one is treated as this.
MAX_RETRY_AFTER_SECONDS = 600.0
# While the database is unavailable a job loop waits twice as long after each try, up to this.
DATABASE_RETRY_MAX_SECONDS = 10.0


@dataclass
class JobContext:
    db: Database
    settings: Settings
    embedders: EmbedderRegistry
    chat_model: ChatModel | None = None  # for jobs that ask a model (training mode "qa"); None: none configured


@dataclass(frozen=True)
class JobHandler:
    run: Callable[[JobContext, ClaimedJob], Awaitable[None]]
    # Called once when a job has failed for good: (code, human-readable reason).
    on_final_failure: Callable[[JobContext, ClaimedJob, str, str], Awaitable[None]] | None = None


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(self, ctx: JobContext, handlers: dict[str, JobHandler], name: str | None = None) -> None:
        self.ctx = ctx
        self.handlers = handlers
        self.name = name or worker_name()

    async def run_once(self) -> bool:
        """Claim and run one job. Returns False when nothing was ready."""
        settings = self.ctx.settings
        async with self.ctx.db.sessions() as session:
            job = await queue.claim(session, self.name, settings.job_lease_seconds)
        if job is None:
            return False
        if job.attempts > job.max_attempts:
            # Its workers kept dying (lease ran out each time): stop retrying, say so.
            reason = f"gave up after {job.max_attempts} attempts; last error: {job.last_error or 'worker lost'}"
            await self._fail(job, "job_failed", reason, retry=False)
            return True
        handler = self.handlers.get(job.kind)
        if handler is None:
            await self._fail(job, "unknown_job", f"no handler for job kind {job.kind!r}", retry=False)
            return True
        renewer = asyncio.create_task(self._keep_lease(job))
        try:
            await handler.run(self.ctx, job)
        except ZhikuError as exc:
            # 4xx-type domain errors (bad file, missing dataset) will not get better by retrying; a rate
            # limit (429) will, after the wait it asked for.
            await self._fail(job, exc.code, exc.message, retry=exc.status >= 500 or exc.status == 429,
                             retry_after=retry_after(exc))
        except Exception as exc:  # a bug or a transient failure: retry with backoff
            if is_database_unavailable(exc):
                raise  # nothing can be recorded now: the lease runs out and the job runs again once it is back
            log.exception("job %s (%s) failed", job.id, job.kind)
            await self._fail(job, "job_failed", f"{type(exc).__name__}: {exc}", retry=True)
        else:
            async with self.ctx.db.sessions() as session:
                await queue.complete(session, job.id, self.name)
        finally:
            renewer.cancel()
        return True

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run ``worker_concurrency`` job loops, so one job's database work overlaps another's embedding."""
        log.info("worker %s started", self.name)
        loops = max(1, self.ctx.settings.worker_concurrency)
        await asyncio.gather(*(self._loop(stop) for _ in range(loops)))

    async def _loop(self, stop: asyncio.Event) -> None:
        poll = self.ctx.settings.worker_poll_seconds
        wait = poll
        while not stop.is_set():
            try:
                worked = await self.run_once()
                wait = poll
            except Exception as exc:  # keep the worker alive
                worked = False
                if is_database_unavailable(exc):  # logged once by the database's availability: wait longer
                    wait = min(max(wait * 2, poll), DATABASE_RETRY_MAX_SECONDS)
                else:
                    log.exception("worker loop error")
                    wait = poll
            if not worked:
                try:
                    await asyncio.wait_for(stop.wait(), timeout=wait)
                except TimeoutError:
                    pass

    async def _keep_lease(self, job: ClaimedJob) -> None:
        lease = self.ctx.settings.job_lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            try:
                async with self.ctx.db.sessions() as session:
                    await queue.renew(session, job.id, self.name, lease)
            except Exception as exc:
                if not is_database_unavailable(exc):
                    raise  # while the database is away there is nothing to renew against: try again later

    async def _fail(self, job: ClaimedJob, code: str, reason: str, *, retry: bool,
                    retry_after: float | None = None) -> None:
        async with self.ctx.db.sessions() as session:
            final = await queue.fail(session, job, self.name, f"{code}: {reason}", retry=retry,
                                     retry_after=retry_after)
        handler = self.handlers.get(job.kind)
        if final and handler is not None and handler.on_final_failure is not None:
            await handler.on_final_failure(self.ctx, job, code, reason)


def retry_after(error: ZhikuError) -> float | None:
    """The seconds an error's ``Retry-After`` header asks for (delta-seconds), capped; None without one."""
    for name, value in (error.headers or {}).items():
        if name.lower() == "retry-after":
            try:
                return min(max(float(value), 0.0), MAX_RETRY_AFTER_SECONDS)
            except ValueError:
                return None
    return None
