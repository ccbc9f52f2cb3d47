"""Run the gateway alone (``zhiku gateway serve``): relay and admin API on one port (3001 by default)."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

import uvicorn

from zhiku.config import Settings
from zhiku.gateway.app import create_gateway_app
from zhiku.gateway.runtime import Gateway, open_gateway


async def run_gateway_server(settings: Settings, *, port: int | None = None,
                             on_ready: Callable[[Gateway, uvicorn.Server], None] | None = None,
                             announce: Callable[[str], None] = print, embedders: Any = None) -> None:
    gateway = await open_gateway(settings, embedders=embedders)
    port = port or settings.gateway_port
    config = uvicorn.Config(create_gateway_app(gateway), host=settings.host, port=port,
                            log_level=settings.log_level, lifespan="off", access_log=False)
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
