"""Gateway fixtures: the three databases, a standalone gateway on loopback, fake upstreams, an admin client."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from tests.gateway.mariadb import MariaDB
from zhiku.config import Settings
from zhiku.gateway.runtime import Gateway
from zhiku.process.serve import run_gateway_server
from zhiku.testing.fake_upstream import FakeUpstream
from zhiku.testing.server import free_port

ADMIN_TOKEN = "gateway-admin-token-for-tests"


@pytest.fixture(scope="session")
def mariadb() -> Iterator[MariaDB]:
    server = MariaDB().start()
    yield server
    server.stop()


@pytest.fixture(params=["postgresql", "sqlite", "mariadb"])
def gateway_dsn(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each supported kind, as an operator would write its DSN."""
    if request.param == "postgresql":
        return request.getfixturevalue("fresh_db")
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'gateway.db'}"
    return request.getfixturevalue("mariadb").fresh_database()


class GatewayThread:
    """``zhiku gateway serve`` in a background thread."""

    def __init__(self, settings: Settings, embedders: Any = None) -> None:
        self.settings = settings
        self.embedders = embedders
        self.port = free_port()
        self.gateway: Gateway | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="zhiku-test-gateway", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _main(self) -> None:
        def ready(gateway: Gateway, server: uvicorn.Server) -> None:
            self.gateway, self._server = gateway, server
            self._loop = asyncio.get_running_loop()
            self._ready.set()

        try:
            asyncio.run(run_gateway_server(self.settings, port=self.port, on_ready=ready, announce=lambda _: None,
                                           embedders=self.embedders))
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    def start(self) -> GatewayThread:
        self._thread.start()
        if not self._ready.wait(120) or self._error is not None:
            raise RuntimeError("the test gateway did not start") from self._error
        return self

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the gateway's loop (e.g. ``gateway.flush()``) and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=30)


def gateway_settings(tmp: Path, dsn: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(data_dir=tmp, gateway_database_url=dsn, gateway_admin_token=ADMIN_TOKEN,
                                  host="127.0.0.1", gateway_flush_interval_seconds=0.2,
                                  gateway_refresh_seconds=60.0, gateway_channel_test_seconds=0,
                                  gateway_retry_count=2, gateway_timeout_seconds=10.0, openai_base_url="",
                                  chat_api_key="", log_level="warning", secret_key="test-secret-key-0123456789")
    values.update(overrides)
    return Settings(**values)


class Admin:
    """The admin API, and helpers that build a test's channels and tokens."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=30,
                                 headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def add_channel(self, fake: FakeUpstream | str, models: list[str], **fields: Any) -> dict[str, Any]:
        base_url = fake if isinstance(fake, str) else fake.base_url
        body = {"type": "openai", "name": unique("ch"), "base_url": base_url,
                "key": getattr(fake, "api_key", None) or "sk-upstream", "models": models, **fields}
        r = self.http.post("/api/channel/", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def channel(self, channel_id: int) -> dict[str, Any]:
        r = self.http.get(f"/api/channel/{channel_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def add_token(self, **fields: Any) -> str:
        body: dict[str, Any] = {"name": unique("tok"), **fields}
        if isinstance(body.get("expires_at"), datetime):
            body["expires_at"] = body["expires_at"].isoformat()
        r = self.http.post("/api/token/", json=body)
        assert r.status_code == 201, r.text
        return r.json()["key"]

    def logs(self, **filters: Any) -> list[dict[str, Any]]:
        r = self.http.get("/api/log/", params={"size": 200, **filters})
        assert r.status_code == 200, r.text
        return r.json()["items"]

    def close(self) -> None:
        self.http.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def gateway_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    """A standalone gateway on its own SQLite database, shared by the relay tests (each uses its own models)."""
    tmp = tmp_path_factory.mktemp("gw")
    with_short_timeouts = gateway_settings(tmp, f"sqlite:///{tmp / 'gateway.db'}", gateway_timeout_seconds=3.0)
    running = GatewayThread(with_short_timeouts).start()
    yield running
    running.stop()


@pytest.fixture
def admin(gateway_server: GatewayThread) -> Iterator[Admin]:
    client = Admin(gateway_server.base_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def upstreams() -> Iterator[list[FakeUpstream]]:
    fakes = [FakeUpstream(api_key=f"sk-upstream-{i}").start() for i in range(3)]
    yield fakes
    for fake in fakes:
        fake.stop()


@pytest.fixture
def fakes(upstreams: list[FakeUpstream]) -> Iterator[list[FakeUpstream]]:
    for fake in upstreams:
        fake.reset()
    yield upstreams
    for fake in upstreams:
        fake.reset()
