"""Keeps the embedded PostgreSQL running under a long-lived process (``serve``, ``worker``, ``import``).

Every second it checks that the server's postmaster still runs. When it has died (killed, crashed),
the outage is logged once, requests answer 503 ``database_unavailable`` meanwhile, and after
``ZHIKU_DB_RESTART_BACKOFF_SECONDS`` the oldest live process holding the server starts it again
(doubling the wait after each failed try, up to a minute); other processes wait for it. Once the
server runs again the pool is emptied, so the web app, the worker and the gateway (which shares the
engine) reconnect on their next query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from zhiku.db.availability import Availability
from zhiku.db.embedded import EmbeddedServer

log = logging.getLogger(__name__)
WATCH_SECONDS = 1.0
MAX_BACKOFF_SECONDS = 60.0


class EmbeddedSupervisor:
    def __init__(self, server: EmbeddedServer, engine: AsyncEngine, availability: Availability, *,
                 restart_backoff_seconds: float, watch_seconds: float = WATCH_SECONDS) -> None:
        self.server = server
        self.engine = engine
        self.availability = availability
        self.restart_backoff_seconds = restart_backoff_seconds
        self.watch_seconds = watch_seconds
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="embedded-postgres-supervisor")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_seconds)
            if self.server.running():
                continue
            self.availability.lost(f"the embedded PostgreSQL in {self.server.pg_dir} stopped")
            await self._bring_back()
            await self.engine.dispose()  # connections to the old server are dead: every part opens new ones
            await self._probe()

    async def _bring_back(self) -> None:
        """Until the server runs: the oldest holder starts it after the backoff, the others wait."""
        loop = asyncio.get_running_loop()
        backoff = self.restart_backoff_seconds
        next_try = loop.time() + backoff
        while not self.server.running():
            if loop.time() < next_try:
                await asyncio.sleep(min(self.watch_seconds, next_try - loop.time()))
                continue
            try:
                if await asyncio.to_thread(self.server.restart):
                    log.warning("embedded PostgreSQL in %s started again (pid %s)", self.server.pg_dir,
                                self.server.postmaster_pid())
                next_try = loop.time() + self.watch_seconds  # another holder starts it: look again soon
            except Exception as exc:
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                next_try = loop.time() + backoff
                log.warning("could not start the embedded PostgreSQL again (%s: %s); next try in %.0f s; "
                            "see %s", type(exc).__name__, exc, backoff, self.server.log_file)

    async def _probe(self) -> None:
        """One query, so the log says the database is back as soon as it is (not at the next request)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception as exc:  # not up yet: the next query that connects says it is back
            log.debug("database probe after the restart failed: %s", exc)
