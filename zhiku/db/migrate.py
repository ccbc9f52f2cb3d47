"""Apply alembic migrations on start, safely when several processes start at once."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from zhiku.db.engine import Database
from zhiku.errors import StartupError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# Any constant works; it only has to be the same in every Zhiku process.
_MIGRATION_LOCK = 0x7A68696B75


def include_object(obj, name, type_, reflected, compare_to) -> bool:
    """Leave out what the platform's migrations do not own: the per-embedding-model HNSW indexes (made at
    run time) and the gateway's tables (their own migration chain, possibly in the same database)."""
    if type_ == "index" and name and name.startswith("ix_chunk_vectors_hnsw_"):
        return False
    return not (type_ == "table" and name and name.startswith("gateway_"))


# The newest revision in ``migrations/versions`` (a test checks it is alembic's head). A database already
# there is not handed to alembic at all: a command that only reads or writes rows skips importing it.
HEAD_REVISION = "0008"


def at_head(connection: Connection, version_table: str, head: str) -> bool:
    """Whether the schema's recorded revision is ``head`` (no version table: not yet)."""
    if not inspect(connection).has_table(version_table):
        return False
    return connection.execute(text(f"SELECT version_num FROM {version_table}")).scalar() == head


def alembic_config(connection: Connection | None = None, *, script_location: Path = MIGRATIONS_DIR) -> Config:
    """Alembic's configuration for a migration chain (the platform's unless another is named), run on
    ``connection`` when given."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(script_location))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


async def check_database(db: Database) -> None:
    """Fail with one clear line if the server is unreachable or lacks pgvector."""
    try:
        async with db.engine.connect() as conn:
            available = (await conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"))).first()
    except Exception as exc:
        raise StartupError(
            f"cannot connect to PostgreSQL at {db.display_url}: {type(exc).__name__}: {exc}. "
            "Check ZHIKU_DATABASE_URL (or PG_URL), or unset it to use the embedded database.") from exc
    if available is None:
        raise StartupError(
            f"PostgreSQL at {db.display_url} has no pgvector extension: install pgvector >= 0.8 on that "
            "server (e.g. the postgresql-NN-pgvector package or the pgvector/pgvector image), "
            "or unset ZHIKU_DATABASE_URL to use the embedded database, which ships it.")


def _upgrade(connection: Connection) -> None:
    if at_head(connection, "alembic_version", HEAD_REVISION):
        return
    from alembic import command

    connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
    try:
        command.upgrade(alembic_config(connection), "head")
    finally:
        connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})


async def migrate(db: Database) -> None:
    await check_database(db)
    async with db.engine.connect() as conn:
        await conn.run_sync(_upgrade)
        await conn.commit()
