"""Run the platform: web app and (unless disabled) a worker task, in one process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import uvicorn

from zhiku.config import Settings
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.web.app import create_app
from zhiku.wiring import Platform, open_platform

log = logging.getLogger(__name__)


async def run_server(settings: Settings, *, on_ready: Callable[[Platform, uvicorn.Server], None] | None = None,
                     announce: Callable[[str], None] = print, embedders: EmbedderRegistry | None = None) -> None:
    platform = await open_platform(settings, embedders=embedders)
    if platform.root.generated_password:
        announce(f"Created user 'root' with password: {platform.root.generated_password}\n"
                 "This is shown once; change it with `zhiku users reset-password` or set DEFAULT_ROOT_PSW.")
    stop = asyncio.Event()
    worker_task = (asyncio.create_task(platform.worker().run_forever(stop))
                   if settings.worker_enabled else None)
    config = uvicorn.Config(create_app(platform), host=settings.host, port=settings.port,
                            log_level=settings.log_level, lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        async def notify() -> None:
            while not server.started:
                await asyncio.sleep(0.05)
            on_ready(platform, server)
        notifier = asyncio.create_task(notify())
    db_line = "embedded PostgreSQL in " + str(settings.pg_data_dir) if platform.db.embedded else platform.db.display_url
    announce(f"Zhiku on http://{settings.host}:{settings.port} (database: {db_line}; "
             f"chat model: {settings.chat_model if platform.chat_model else 'built-in extractive answerer'})")
    try:
        await server.serve()
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
        if on_ready is not None:
            notifier.cancel()
        await platform.close()
