"""Run the gateway alone (``zhiku gateway serve``): relay and admin API on one port (3001 by default)."""

from __future__ import annotations

import asyncio
import functools
import gc
from collections.abc import Callable
from typing import Any

import uvicorn

from zhiku.config import Settings
from zhiku.gateway.domain import ENDPOINTS
from zhiku.gateway.http.app import create_gateway_app
from zhiku.gateway.http.protocol import gateway_protocol
from zhiku.gateway.http.relay_routes import RelayFirst, error_answer, relay_answer, request_too_large
from zhiku.gateway.runtime import Gateway, open_gateway


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
                             announce: Callable[[str], None] = print, embedders: Any = None) -> None:
    gateway = await open_gateway(settings, embedders=embedders)
    port = port or settings.gateway_port
    app = RelayFirst(create_gateway_app(gateway), gateway)
    config = uvicorn.Config(app, host=settings.host, port=port, log_level=settings.log_level, lifespan="off",
                            access_log=False, server_header=False)
    limit = settings.gateway_max_request_bytes
    config.http = gateway_protocol(
        config, {f"/v1/{endpoint}": functools.partial(relay_answer, gateway, endpoint) for endpoint in ENDPOINTS},
        max_body=limit, refuse_too_large=lambda: error_answer(request_too_large(limit)))
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
