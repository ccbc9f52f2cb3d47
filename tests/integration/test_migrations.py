"""Migrations are the only source of schema: an empty database upgraded to head matches the models."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from zhiku.config import Settings
from zhiku.db.engine import open_database
from zhiku.db.migrate import include_object, migrate
from zhiku.db.models import Base
from zhiku.errors import StartupError

pytestmark = pytest.mark.integration


async def test_upgrade_empty_database_matches_models(pg_url: str) -> None:
    name = f"mig_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    url = pg_url.replace("/postgres?", f"/{name}?")
    db = open_database(Settings(database_url=url))
    try:
        await migrate(db)
        await migrate(db)  # a second start is a no-op

        def diff(sync_conn):
            ctx = MigrationContext.configure(sync_conn, opts={"include_object": include_object,
                                                              "compare_type": True})
            return compare_metadata(ctx, Base.metadata)

        async with db.engine.connect() as conn:
            changes = await conn.run_sync(diff)
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
            ext = (await conn.execute(text("SELECT extversion FROM pg_extension WHERE extname = 'vector'"))).scalar()
        assert changes == [], changes
        assert version and ext
    finally:
        await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()


async def test_unreachable_database_is_one_clear_line() -> None:
    db = open_database(Settings(database_url="postgresql://nobody:secret@127.0.0.1:9/none"))
    try:
        with pytest.raises(StartupError) as err:
            await migrate(db)
    finally:
        await db.dispose()
    message = str(err.value)
    assert "cannot connect to PostgreSQL at postgresql+asyncpg://nobody:***@127.0.0.1:9/none" in message
    assert "secret" not in message and "ZHIKU_DATABASE_URL" in message


def test_the_recorded_head_revisions_are_alembics() -> None:
    """Databases at these revisions skip alembic on start; a new migration must move them too."""
    from alembic.script import ScriptDirectory

    from zhiku.db import migrate as platform
    from zhiku.gateway.store import engine as gateway

    for module in (platform, gateway):
        assert ScriptDirectory.from_config(module.alembic_config()).get_current_head() == module.HEAD_REVISION


async def test_servers_apply_the_configured_root_password_one_shot_commands_only_create_root(pg_url: str) -> None:
    from zhiku.auth.secrets import verify_password
    from zhiku.auth.service import ROOT_USERNAME, ensure_root

    name = f"root_{uuid.uuid4().hex[:8]}"
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f"CREATE DATABASE {name}"))
    db = open_database(Settings(database_url=pg_url.replace("/postgres?", f"/{name}?")))

    async def root_hash() -> str:
        async with db.sessions() as session:
            return (await session.execute(text("SELECT password_hash FROM users WHERE username = :u"),
                                          {"u": ROOT_USERNAME})).scalar_one()

    try:
        await migrate(db)
        async with db.sessions() as session:  # a one-shot command on a fresh database still creates root
            assert (await ensure_root(session, "first-password", apply_to_existing=False)).created
        async with db.sessions() as session:
            await ensure_root(session, "second-password", apply_to_existing=False)
        assert verify_password(await root_hash(), "first-password")
        async with db.sessions() as session:  # a server start applies DEFAULT_ROOT_PSW
            await ensure_root(session, "second-password")
        assert verify_password(await root_hash(), "second-password")
    finally:
        await db.dispose()
        async with admin.connect() as conn:
            await conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        await admin.dispose()
