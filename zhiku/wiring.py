"""Process wiring: the parts a Zhiku process holds, built once from settings and handed on explicitly.

``zhiku serve``, ``zhiku worker`` and the CLI commands that answer or import start from
:func:`open_platform`; commands that only read or write rows (``apps create``, ``keys create`` …) use
:func:`open_database`, which loads no model. Services never see this object: they receive the parts
they use (a session factory, the embedders, a chat model) — :meth:`Platform.chat_deps` and
:meth:`Platform.job_context` hand them out.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zhiku.auth.service import RootBootstrap, ensure_root
from zhiku.config import Settings
from zhiku.db.engine import Database
from zhiku.db.engine import open_database as connect_database
from zhiku.db.migrate import migrate

# The rest is imported where it is built, so that a command which only opens the database (``apps
# create``, ``keys create``) imports no search, model or gateway code: it starts in well under a second.
if TYPE_CHECKING:
    from zhiku.apps.chat import ChatDeps
    from zhiku.chat_model import ChatModel
    from zhiku.embedding.base import Reranker
    from zhiku.embedding.registry import EmbedderRegistry
    from zhiku.gateway.runtime import Gateway
    from zhiku.knowledge.files import BlobStore
    from zhiku.retrieval.vector_store import VectorStore
    from zhiku.worker.runner import JobContext, Worker

log = logging.getLogger(__name__)


@dataclass
class Platform:
    settings: Settings
    db: Database
    embedders: EmbedderRegistry
    blobs: BlobStore
    chat_model: ChatModel | None  # None: the built-in extractive answerer
    vector_store: VectorStore  # ZHIKU_VECTOR_STORE
    root: RootBootstrap = field(default_factory=lambda: RootBootstrap(created=False, generated_password=None))
    gateway: Gateway | None = None  # ZHIKU_GATEWAY_ENABLED (the default)
    reranker: Reranker | None = None  # ZHIKU_RERANK_MODEL; search runs without rerank when None

    def chat_deps(self) -> ChatDeps:
        from zhiku.apps.chat import ChatDeps
        from zhiku.knowledge.fetch import FetchPolicy

        return ChatDeps(sessions=self.db.sessions, embedders=self.embedders, chat_model=self.chat_model,
                        default_model=self.settings.chat_model, reranker=self.reranker,
                        vector_store=self.vector_store, fetch_policy=FetchPolicy.from_settings(self.settings),
                        blobs=self.blobs)

    def job_context(self) -> JobContext:
        from zhiku.worker.runner import JobContext

        return JobContext(db=self.db, settings=self.settings, embedders=self.embedders,
                          chat_model=self.chat_model)

    def worker(self) -> Worker:
        from zhiku.knowledge.indexing import import_handlers
        from zhiku.worker.runner import Worker

        return Worker(self.job_context(), import_handlers(vector_store=self.vector_store))

    async def close(self) -> None:
        from zhiku.gateway.chat_model import ChannelChatModel

        if isinstance(self.chat_model, ChannelChatModel):  # it owns its upstream client (the gateway's: below)
            await self.chat_model.aclose()
        if self.gateway is not None:
            await self.gateway.close()
        await self.db.dispose()


@dataclass
class DatabaseOnly:
    """The database, migrated, with root in place: what a command that loads no model needs."""

    db: Database
    root: RootBootstrap


async def _open_db(settings: Settings, *, serving: bool) -> tuple[Database, RootBootstrap]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = connect_database(settings)
    try:
        await migrate(db)
        async with db.sessions() as session:
            # a process that serves applies DEFAULT_ROOT_PSW; a one-shot command only creates a missing root
            root = await ensure_root(session, settings.root_password, apply_to_existing=serving)
    except BaseException:
        await db.dispose()
        raise
    if serving:  # a process that keeps running brings a dead embedded PostgreSQL back (and stops watching on close)
        db.supervise(settings)
    return db, root


@asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[DatabaseOnly]:
    """Start or join the database, apply migrations, make sure root exists; no model is loaded."""
    db, root = await _open_db(settings, serving=False)
    try:
        yield DatabaseOnly(db=db, root=root)
    finally:
        await db.dispose()


async def open_platform(settings: Settings, *, embedders: EmbedderRegistry | None = None) -> Platform:
    """The database (as :func:`open_database`), the embedders, the gateway and the chat model."""
    from zhiku.embedding.registry import build_embedders, build_rerankers
    from zhiku.gateway.chat_model import ChannelChatModel, GatewayChatModel
    from zhiku.gateway.runtime import open_gateway
    from zhiku.knowledge.files import BlobStore
    from zhiku.retrieval.vector_store_registry import create_vector_store

    db, root = await _open_db(settings, serving=True)
    try:
        embedders = embedders or build_embedders(settings)
        gateway = (await open_gateway(settings, engine=db.engine, embedders=embedders)
                   if settings.gateway_enabled else None)
    except BaseException:
        await db.dispose()
        raise
    chat_model: ChatModel | None = None
    if settings.chat_model_configured:
        if gateway is not None:  # model calls go through the gateway (its channel made from OPENAI_BASE_URL)
            chat_model = GatewayChatModel(gateway)
        else:
            chat_model = ChannelChatModel.for_base_url(
                settings.openai_base_url, settings.chat_api_key, timeout=settings.chat_timeout_seconds)
    return Platform(settings=settings, db=db, embedders=embedders, blobs=BlobStore(settings.files_dir),
                    chat_model=chat_model, root=root, gateway=gateway,
                    reranker=next(iter(build_rerankers(settings).values()), None),
                    vector_store=create_vector_store(settings.vector_store))
