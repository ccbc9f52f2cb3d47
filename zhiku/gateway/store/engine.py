"""The gateway's database: an engine on PostgreSQL, MySQL/MariaDB or SQLite, and its migrations.

By default the gateway shares the platform's engine (same PostgreSQL); ``SQL_DSN`` /
``ZHIKU_GATEWAY_DATABASE_URL`` gives it its own. Migrations run on start under a lock (PostgreSQL
advisory lock, MySQL ``GET_LOCK``; SQLite serialises writers itself), on their own version table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from zhiku.db.migrate import alembic_config as platform_alembic_config
from zhiku.db.migrate import at_head
from zhiku.errors import StartupError
from zhiku.gateway.store.dsn import dialect_of, gateway_database_url, redact_dsn

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_PG_LOCK = 0x7A6B6777  # any constant, the same in every Zhiku process; differs from the platform's
_MYSQL_LOCK = "zhiku_gateway_migrations"


@dataclass
class GatewayStore:
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    dialect: str  # postgresql | mysql | sqlite
    owns_engine: bool

    @property
    def display_url(self) -> str:
        return redact_dsn(self.engine.url.render_as_string(hide_password=False))

    async def dispose(self) -> None:
        if self.owns_engine:
            await self.engine.dispose()


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_store(dsn: str, *, pool_size: int = 10) -> GatewayStore:
    """A store on its own engine for ``dsn`` (any spelling ``zhiku.gateway.store.dsn`` accepts)."""
    url = gateway_database_url(dsn)
    dialect = dialect_of(url)
    if dialect == "sqlite":
        engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                     pool_recycle=3600, hide_parameters=True)  # no values in error logs
    return GatewayStore(engine=engine, sessions=async_sessionmaker(engine, expire_on_commit=False),
                        dialect=dialect, owns_engine=True)


def store_on(engine: AsyncEngine) -> GatewayStore:
    """A store sharing an engine someone else owns (the platform's)."""
    return GatewayStore(engine=engine, sessions=async_sessionmaker(engine, expire_on_commit=False),
                        dialect=engine.dialect.name, owns_engine=False)


# The newest revision of the gateway's chain (a test checks it is alembic's head); a database already
# there skips alembic entirely.
HEAD_REVISION = "g0001"
VERSION_TABLE = "gateway_alembic_version"


def alembic_config(connection: Connection | None = None) -> Config:
    return platform_alembic_config(connection, script_location=MIGRATIONS_DIR)


def _upgrade(connection: Connection) -> None:
    if at_head(connection, VERSION_TABLE, HEAD_REVISION):
        return
    from alembic import command

    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK})
    elif dialect == "mysql":
        got = connection.execute(text("SELECT GET_LOCK(:k, 120)"), {"k": _MYSQL_LOCK}).scalar()
        if got != 1:
            raise StartupError("timed out waiting for another process to finish the gateway migrations")
    try:
        command.upgrade(alembic_config(connection), "head")
    finally:
        if dialect == "postgresql":
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK})
        elif dialect == "mysql":
            connection.execute(text("SELECT RELEASE_LOCK(:k)"), {"k": _MYSQL_LOCK})


async def migrate(store: GatewayStore) -> None:
    """Bring the gateway tables to head; a no-op when they already are."""
    try:
        async with store.engine.connect() as conn:
            await conn.run_sync(_upgrade)
            await conn.commit()
    except StartupError:
        raise
    except OSError as exc:
        raise StartupError(f"cannot reach the gateway database at {store.display_url}: {exc}. "
                           "Check SQL_DSN / ZHIKU_GATEWAY_DATABASE_URL.") from exc
    except Exception as exc:
        if "connect" in str(exc).lower() or "can't" in str(exc).lower():
            raise StartupError(f"cannot use the gateway database at {store.display_url}: "
                               f"{type(exc).__name__}: {exc}. Check SQL_DSN / ZHIKU_GATEWAY_DATABASE_URL.") from exc
        raise
