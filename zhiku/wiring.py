"""Process wiring: everything a Zhiku process holds, built once from settings.

The web app, the worker and the CLI commands all start from ``open_platform``,
so they share one way of reaching the database, the embedders and the models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from zhiku.auth.service import RootBootstrap, ensure_root
from zhiku.chat_model import ChatModel
from zhiku.config import Settings
from zhiku.db.engine import Database, open_database
from zhiku.db.migrate import migrate
from zhiku.embedding.base import Reranker
from zhiku.embedding.registry import EmbedderRegistry, build_embedders, build_rerankers
from zhiku.knowledge.files import BlobStore
from zhiku.worker.runner import JobContext, Worker

log = logging.getLogger(__name__)


@dataclass
class Platform:
    settings: Settings
    db: Database
    embedders: EmbedderRegistry
    blobs: BlobStore
    chat_model: ChatModel | None
    root: RootBootstrap = field(default_factory=lambda: RootBootstrap(created=False, generated_password=None))
    gateway: Any = None  # zhiku.gateway.runtime.Gateway when ZHIKU_GATEWAY_ENABLED (the default)
    reranker: Reranker | None = None  # ZHIKU_RERANK_MODEL; search runs without rerank when None

    def job_context(self) -> JobContext:
        return JobContext(db=self.db, settings=self.settings, embedders=self.embedders)

    def worker(self) -> Worker:
        from zhiku.knowledge.indexing import import_handlers

        return Worker(self.job_context(), import_handlers())

    async def close(self) -> None:
        aclose = getattr(self.chat_model, "aclose", None)
        if aclose is not None:
            await aclose()
        if self.gateway is not None:
            await self.gateway.close()
        await self.db.dispose()


def build_chat_model(settings: Settings, gateway: Any = None) -> ChatModel | None:
    """With a gateway, model calls go through it (its channel bootstrapped from OPENAI_BASE_URL)."""
    if not settings.chat_model_configured:
        return None
    if gateway is not None:
        from zhiku.gateway.chat_model import GatewayChatModel

        return GatewayChatModel(gateway)
    from zhiku.apps.openai_chat import OpenAIChatModel

    return OpenAIChatModel(settings.openai_base_url, settings.chat_api_key, timeout=settings.chat_timeout_seconds)


async def open_platform(settings: Settings, *, embedders: EmbedderRegistry | None = None) -> Platform:
    """Start or join the database, apply migrations, make sure root exists, load the models."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = open_database(settings)
    try:
        await migrate(db)
        async with db.sessions() as session:
            root = await ensure_root(session, settings.root_password)
        embedders = embedders or build_embedders(settings)
        gateway = None
        if settings.gateway_enabled:
            from zhiku.gateway.runtime import open_gateway

            gateway = await open_gateway(settings, engine=db.engine, embedders=embedders)
    except BaseException:
        await db.dispose()
        raise
    return Platform(settings=settings, db=db, embedders=embedders, blobs=BlobStore(settings.files_dir),
                    chat_model=build_chat_model(settings, gateway), root=root, gateway=gateway,
                    reranker=next(iter(build_rerankers(settings).values()), None))
