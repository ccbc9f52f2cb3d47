"""The platform's and the embedding server's processes: what ``zhiku serve`` and ``zhiku embed-server`` run.

(``zhiku gateway serve`` runs :func:`zhiku.process.gateway_serve.run_gateway_server`.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from zhiku.config import Settings
from zhiku.embedding.registry import EmbedderRegistry, build_embedders, build_rerankers
from zhiku.process.bootstrap import serve_asgi
from zhiku.web.app import create_app
from zhiku.web.embed_server import check_embed_settings, create_embed_app
from zhiku.wiring import Platform, open_platform

log = logging.getLogger(__name__)


async def run_server(settings: Settings, *, on_ready: Callable[[Platform, Any], None] | None = None,
                     announce: Callable[[str], None] = print, embedders: EmbedderRegistry | None = None) -> None:
    """The whole platform: web app and (unless ``ZHIKU_WORKER_ENABLED=false``) a worker task."""
    platform = await open_platform(settings, embedders=embedders)
    if platform.root.generated_password:
        announce(f"Created user 'root' with password: {platform.root.generated_password}\n"
                 "This is shown once; change it with `zhiku users reset-password` or set DEFAULT_ROOT_PSW.")
    stop = asyncio.Event()
    worker_task = (asyncio.create_task(platform.worker().run_forever(stop))
                   if settings.worker_enabled else None)
    db_line = "embedded PostgreSQL in " + str(settings.pg_data_dir) if platform.db.embedded else platform.db.display_url
    announce(f"Zhiku on http://{settings.host}:{settings.port} (database: {db_line}; "
             f"chat model: {settings.chat_model if platform.chat_model else 'built-in extractive answerer'})")
    try:
        await serve_asgi(create_app(platform), settings, host=settings.host, port=settings.port,
                         on_ready=(lambda server: on_ready(platform, server)) if on_ready else None)
    finally:
        stop.set()
        if worker_task is not None:
            await worker_task
        await platform.close()


async def run_embed_server(settings: Settings, *, announce: Callable[[str], None] = print,
                           on_ready: Callable[[Any], None] | None = None) -> None:
    """Only the embedding server (the seed's m3e container): /v1/embeddings, /v1/rerank, /v1/models."""
    check_embed_settings(settings)
    registry = build_embedders(settings)
    rerankers = build_rerankers(settings)
    for name in registry.names():
        load = getattr(registry.get(name), "load", None)
        if load is not None:
            load()  # pay the load before the first request, not during it
    app = create_embed_app(settings, registry, rerankers)
    announce(f"embedding server on http://{settings.embed_host}:{settings.embed_port}/v1 "
             f"(models: {', '.join(app.state.service.model_names())}; rerank: {', '.join(rerankers) or 'none'})")
    await serve_asgi(app, settings, host=settings.embed_host, port=settings.embed_port, on_ready=on_ready,
                     lifespan="on")
