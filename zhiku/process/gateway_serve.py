"""Run the gateway alone (``zhiku gateway serve``): relay and admin API on one port (3001 by default).

A plain ASGI app on uvicorn (httptools parser, uvloop loop when the CLI installs it): relay POSTs go
straight to their endpoint (:class:`~zhiku.gateway.http.relay_routes.RelayFirst`), everything else to
the FastAPI app. Keep-alive, pipelining, ``Expect: 100-continue``, trusted proxies' ``X-Forwarded-For``
and graceful shutdown are uvicorn's own.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable

import uvicorn

from zhiku.config import Settings
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.gateway.http.relay_routes import RelayFirst
from zhiku.gateway.runtime import Gateway, open_gateway
from zhiku.web.gateway_app import create_gateway_app


def tune_gc_for_serving() -> None:
    """Once started, keep the garbage collector off the hot path (a process-wide choice: the CLI's).

    Everything loaded at start (FastAPI, SQLAlchemy, pydantic: several hundred thousand objects) is
    moved out of the collector's sight, so a full collection no longer walks it — those walks were
    the relay's worst latency spikes — and young collections run less often under load.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


async def run_gateway_server(settings: Settings, *, port: int | None = None,
                             on_ready: Callable[[Gateway, uvicorn.Server], None] | None = None,
                             announce: Callable[[str], None] = print, embedders: EmbedderRegistry | None = None) -> None:
    gateway = await open_gateway(settings, embedders=embedders)
    port = port or settings.gateway_port
    app = RelayFirst(create_gateway_app(gateway), gateway)
    config = uvicorn.Config(app, host=settings.host, port=port, log_level=settings.log_level, lifespan="off",
                            access_log=False, server_header=False, http="httptools")
    server = uvicorn.Server(config)
    notifier = None
    if on_ready is not None:
        async def notify() -> None:
            while not server.started:
                await asyncio.sleep(0.05)
            on_ready(gateway, server)
        notifier = asyncio.create_task(notify())
    announce(f"Zhiku gateway on http://{settings.host}:{port} (database: {gateway.store.display_url}; "
             f"{len(gateway.snapshot.channels)} channels)")
    try:
        await server.serve()
    finally:
        if notifier is not None:
            notifier.cancel()
        await gateway.close()
