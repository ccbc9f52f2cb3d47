"""The servers: what ``zhiku serve``, ``zhiku gateway serve`` and ``zhiku embed-server`` run, each on
:func:`zhiku.process.bootstrap.serve_asgi`.

The standalone gateway is a plain ASGI app on uvicorn (httptools parser, uvloop): relay POSTs go straight
to their endpoint (:class:`~zhiku.gateway.http.relay_routes.RelayFirst`), everything else to the FastAPI
app. Keep-alive, pipelining, ``Expect: 100-continue``, trusted proxies' ``X-Forwarded-For`` and graceful
shutdown are uvicorn's own.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Callable
from typing import Any

from zhiku.config import Settings
from zhiku.embedding.registry import EmbedderRegistry, build_embedders, build_rerankers
from zhiku.gateway.http.relay_routes import RelayFirst
from zhiku.gateway.runtime import Gateway, open_gateway
from zhiku.process.bootstrap import serve_asgi
from zhiku.web.app import create_app
from zhiku.web.embed_server import check_embed_settings, create_embed_app
from zhiku.web.gateway_app import create_gateway_app
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
    db_line = ("embedded PostgreSQL in " + str(settings.pg_data_dir) if platform.db.embedded
               else platform.db.display_url)
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
             f"(models: {', '.join(app.state.service.model_names())}; "
             f"rerank: {', '.join(rerankers) or 'none'})")
    await serve_asgi(app, settings, host=settings.embed_host, port=settings.embed_port, on_ready=on_ready,
                     lifespan="on")


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
                             on_ready: Callable[[Gateway, Any], None] | None = None,
                             announce: Callable[[str], None] = print,
                             embedders: EmbedderRegistry | None = None) -> None:
    gateway = await open_gateway(settings, embedders=embedders)
    port = port or settings.gateway_port
    app = RelayFirst(create_gateway_app(gateway), gateway)
    announce(f"Zhiku gateway on http://{settings.host}:{port} (database: {gateway.store.display_url}; "
             f"{len(gateway.snapshot.channels)} channels)")
    try:
        await serve_asgi(app, settings, host=settings.host, port=port,
                         on_ready=(lambda server: on_ready(gateway, server)) if on_ready else None,
                         server_header=False, http="httptools")
    finally:
        await gateway.close()
