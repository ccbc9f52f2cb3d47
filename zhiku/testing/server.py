"""Run a whole Zhiku server (``zhiku.process.serve.run_server``) in a background thread, for tests and demos."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn

from zhiku.config import Settings
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.process.serve import run_server
from zhiku.wiring import Platform


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    def __init__(self, settings: Settings, embedders: EmbedderRegistry | None = None) -> None:
        self.settings = settings
        self.embedders = embedders
        self.platform: Platform | None = None
        self._server: uvicorn.Server | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="zhiku-test-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    def start(self, timeout: float = 120) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the Zhiku test server did not start in time")
        if self._error is not None:
            raise RuntimeError("the Zhiku test server failed to start") from self._error
        return self

    def _main(self) -> None:
        def ready(platform: Platform, server: uvicorn.Server) -> None:
            self.platform, self._server = platform, server
            self._ready.set()

        try:
            asyncio.run(run_server(self.settings, on_ready=ready, announce=lambda _: None,
                                   embedders=self.embedders))
        except BaseException as exc:  # surfaced by start()
            self._error = exc
            self._ready.set()

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
