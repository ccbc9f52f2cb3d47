"""Whether the database can be reached, and one way to say it cannot.

A connection that cannot be made raises :class:`DatabaseUnavailable` (503 ``database_unavailable``)
instead of the driver's error, and a statement cut off by a lost connection is recognised by
:func:`is_database_unavailable`, so callers answer 503 or wait instead of logging a traceback. The
log says "database unavailable" once when the database goes away and once when it is back
(:class:`Availability`), however many requests and loops meet the outage in between.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from zhiku.errors import ServiceUnavailable

log = logging.getLogger(__name__)

# SQLSTATEs that mean "no server to talk to": class 08 (connection exception), and the server going
# down or not yet up (admin shutdown, crash shutdown, "the database system is starting up").
_UNAVAILABLE_STATES = ("57P01", "57P02", "57P03")


class DatabaseUnavailable(ServiceUnavailable):
    """The client sees the plain message; ``str()`` adds the driver's reason, for logs and start-up errors."""

    code = "database_unavailable"

    def __init__(self, message: str = "the database is unavailable; try again shortly", *, reason: str = "",
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.message} ({self.reason})" if self.reason else self.message


def is_connection_failure(exc: BaseException) -> bool:
    """A driver error (raw, or as SQLAlchemy wraps it in ``.orig``) that says the server is not there."""
    if isinstance(exc, OSError):  # refused, no socket file, reset, timed out
        return True
    state = str(getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None) or "")
    return state.startswith("08") or state in _UNAVAILABLE_STATES


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (not that it refused a statement)."""
    if isinstance(exc, DatabaseUnavailable):
        return True
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or (exc.orig is not None and is_connection_failure(exc.orig))
    return False


class Availability:
    """Whether this process reaches its database; each change is logged once. Failures before the first
    connection are not an outage but a start-up error, which the start-up check reports itself."""

    def __init__(self) -> None:
        self._down_since: float | None = None
        self._was_up = False
        self.reason = ""

    @property
    def available(self) -> bool:
        return self._down_since is None

    def lost(self, reason: str) -> None:
        if self._down_since is not None:
            return
        self._down_since = time.time()
        self.reason = reason
        if self._was_up:
            log.error("database unavailable: %s; until it is back requests answer 503 database_unavailable "
                      "and jobs wait", reason)

    def regained(self) -> None:
        if self._down_since is not None and self._was_up:
            log.warning("database available again after %.0f s", time.time() - self._down_since)
        self._down_since = None
        self._was_up = True
        self.reason = ""

    def status(self) -> dict[str, Any]:
        """For the public health check: the state and since when, not the reason (paths, addresses)."""
        if self._down_since is None:
            return {"database": "ok"}
        return {"database": "unavailable",
                "since": datetime.fromtimestamp(self._down_since, UTC).isoformat(timespec="seconds")}


def guard_connections(engine: AsyncEngine, availability: Availability) -> None:
    """Every new connection of ``engine`` reports to ``availability``; one that cannot be made raises
    :class:`DatabaseUnavailable` rather than the driver's error."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def connect(dialect: Any, _record: Any, cargs: Any, cparams: Any) -> Any:
        try:
            connection = dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if not is_connection_failure(exc):
                raise  # a wrong password or database name is a configuration error, not an outage
            reason = f"cannot connect ({type(exc).__name__}: {exc})"
            availability.lost(reason)
            raise DatabaseUnavailable(reason=reason) from exc
        availability.regained()
        return connection
