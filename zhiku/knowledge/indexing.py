"""Import jobs: parse → chunk → embed, each safe to run twice.

``parse`` turns the stored file into chunks in one transaction (a rerun after a
crash finds the collection past ``parsing`` and does nothing). ``embed`` takes
batches of not-yet-embedded chunks with ``FOR UPDATE SKIP LOCKED``, so several
workers share one collection, and a batch's vectors, flags and counter commit
together: a killed worker leaves no half-embedded batch behind.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.config import Settings
from zhiku.db.models import Chunk, Collection, Dataset
from zhiku.embedding.base import Embedder
from zhiku.embedding.service import model_tokens
from zhiku.embedding.windows import split_windows
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.chunker import split_text
from zhiku.knowledge.collections import EMBED_JOB, PARSE_JOB
from zhiku.knowledge.files import BlobStore
from zhiku.knowledge.links import link_handlers
from zhiku.knowledge.parsers import ParsedDocument, Parser, parser_for
from zhiku.knowledge.parsers.remote import RemoteParser
from zhiku.retrieval import fulltext
from zhiku.retrieval.index_text import chunk_text
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.segment import index_document
from zhiku.retrieval.vector_store import ChunkVectorRecord, VectorStore
from zhiku.worker import queue
from zhiku.worker.queue import ClaimedJob
from zhiku.worker.runner import JobContext, JobHandler

# Several embed jobs per collection let several workers share a big file.
MAX_EMBED_JOBS_PER_COLLECTION = 4
# Files parsed at once in this process: each holds its bytes and text in memory while it is parsed.
PARSE_CONCURRENCY = 2
_PARSE_SLOTS = threading.BoundedSemaphore(PARSE_CONCURRENCY)


def _parse_and_chunk(collection: Collection, data: bytes,
                     settings: Settings) -> tuple[ParsedDocument, list[dict[str, Any]]]:
    """Parse the file and chunk each of its sections (a page, a slide, a sheet) on its own, so no
    chunk crosses one and each carries where it came from (``Chunk.meta``)."""
    filename = collection.meta.get("filename") or collection.name
    with _PARSE_SLOTS:
        started = time.perf_counter()
        if collection.type == "text":
            doc = ParsedDocument(text=data.decode("utf-8"), format="markdown", metadata={"encoding": "utf-8"})
        elif not data:
            raise UnsupportedFile(f"{filename} is empty (0 bytes).", code="empty_file")
        else:
            doc = _parser(filename, settings).parse(data, filename)
        if len(doc.text) > settings.import_max_chars:
            raise UnsupportedFile(
                f"{filename} holds {len(doc.text):,} characters of text; one file may hold at most "
                f"{settings.import_max_chars:,} (ZHIKU_IMPORT_MAX_CHARS). Split it into smaller files.",
                code="text_too_long", detail={"characters": len(doc.text), "limit": settings.import_max_chars})
        rows: list[dict[str, Any]] = []
        for section in doc.parts():
            for piece in split_text(section.text, chunk_size=collection.chunk_size,
                                    overlap_ratio=0.0 if collection.training_mode == "qa" else 0.2,
                                    markdown=doc.format == "markdown"):
                rows.append({"chunk_index": len(rows), "q": piece.text, "a": "", "headings": list(piece.headings),
                             "meta": dict(section.meta), "fulltext": index_document(piece.text)})
        if not rows:
            raise UnsupportedFile(f"{filename} contains no text to index", code="empty_file")
        doc = replace(doc, metadata={**doc.metadata, "parse_seconds": round(time.perf_counter() - started, 3)})
        return doc, rows


def _parser(filename: str, settings: Settings) -> Parser:
    """The configured document-parser service for its types, else the built-in parser."""
    if settings.parser_url:
        remote = RemoteParser(settings.parser_url, settings.parser_types.split(","), key=settings.parser_key,
                              timeout=settings.parser_timeout_seconds)
        if remote.handles(filename):
            return remote
    return parser_for(filename)


async def run_parse(ctx: JobContext, job: ClaimedJob, *, vector_store: VectorStore = PGVECTOR_STORE) -> None:
    blobs = BlobStore(ctx.settings.files_dir)
    async with ctx.db.sessions() as session:
        collection = await session.get(Collection, job.collection_id)
        if collection is None or collection.status not in ("pending", "parsing"):
            return  # deleted, or an earlier run of this job already chunked it
        collection.status = "parsing"
        await session.commit()
        data = blobs.read(collection.file_id) if collection.file_id else b""
        doc, rows = await asyncio.to_thread(_parse_and_chunk, collection, data, ctx.settings)

    async with ctx.db.sessions() as session:
        collection = (await session.execute(
            select(Collection).where(Collection.id == job.collection_id).with_for_update())).scalar_one_or_none()
        if collection is None or collection.status != "parsing":
            return
        await fulltext.unindex_collection(session, collection.id)
        await vector_store.delete_collection(session, collection.id)
        await session.execute(delete(Chunk).where(Chunk.collection_id == collection.id))
        for row in rows:
            row.update(dataset_id=collection.dataset_id, collection_id=collection.id)
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Chunk), rows[start:start + 1000])
        stored = await session.execute(select(Chunk.id, Chunk.fulltext).where(Chunk.collection_id == collection.id))
        await fulltext.index_terms(session, collection.dataset_id, [(cid, ft.split()) for cid, ft in stored])
        collection.status = "indexing"
        collection.chunk_count = len(rows)
        collection.indexed_count = 0
        collection.error = collection.error_code = None
        collection.meta = {**collection.meta, **doc.metadata, "characters": len(doc.text)}
        jobs = min(MAX_EMBED_JOBS_PER_COLLECTION, math.ceil(len(rows) / ctx.settings.embed_batch_size))
        for _ in range(jobs):
            await queue.enqueue(session, EMBED_JOB, collection_id=collection.id,
                                max_attempts=ctx.settings.job_max_attempts)
        await session.commit()


async def embed_chunk_rows(session: AsyncSession, embedder: Embedder, dataset_id: int,
                           rows: Sequence[tuple[int, str, str]], *,
                           vector_store: VectorStore = PGVECTOR_STORE) -> None:
    """Replace the default vectors of these chunks (id, q, a) and mark them embedded, in the caller's transaction."""
    def tokens(piece: str) -> int:
        return model_tokens(embedder, piece, "passage")

    texts: list[str] = []
    owners: list[tuple[int, int]] = []
    for chunk_id, q, a in rows:
        # A chunk longer than the model's input gets one vector per window, never a truncated one.
        for part, window in enumerate(split_windows(chunk_text(q, a), tokens, embedder.max_tokens)):
            texts.append(window)
            owners.append((chunk_id, part))
    vectors = await asyncio.to_thread(embedder.embed, texts, "passage")
    ids = [r[0] for r in rows]
    await vector_store.upsert(session, dataset_id, embedder.model_name, ids, [
        ChunkVectorRecord(chunk_id=cid, part=part, text=t, embedding=vec)
        for (cid, part), t, vec in zip(owners, texts, vectors)])
    await session.execute(update(Chunk).where(Chunk.id.in_(ids)).values(embedded=1))


async def run_embed(ctx: JobContext, job: ClaimedJob, *, vector_store: VectorStore = PGVECTOR_STORE) -> None:
    while True:
        async with ctx.db.sessions() as session:
            collection = await session.get(Collection, job.collection_id)
            if collection is None:
                return
            dataset = await session.get(Dataset, collection.dataset_id)
            assert dataset is not None
            embedder = ctx.embedders.get(dataset.embedding_model)
            rows = (await session.execute(
                select(Chunk.id, Chunk.q, Chunk.a)
                .where(Chunk.collection_id == collection.id, Chunk.embedded == 0)
                .order_by(Chunk.chunk_index).limit(ctx.settings.embed_batch_size)
                .with_for_update(skip_locked=True))).all()
            if not rows:
                break
            await embed_chunk_rows(session, embedder, dataset.id, [tuple(r) for r in rows],
                                   vector_store=vector_store)
            await session.execute(update(Collection).where(Collection.id == collection.id)
                                  .values(indexed_count=Collection.indexed_count + len(rows)))
            await session.commit()
    async with ctx.db.sessions() as session:
        await mark_ready_if_done(session, job.collection_id)
        await session.commit()


async def mark_ready_if_done(session: AsyncSession, collection_id: int | None) -> None:
    await session.execute(text(
        "UPDATE collections SET status = 'ready', updated_at = now() WHERE id = :id AND status = 'indexing' "
        "AND NOT EXISTS (SELECT 1 FROM chunks WHERE collection_id = :id AND embedded = 0)"), {"id": collection_id})


async def mark_collection_failed(ctx: JobContext, job: ClaimedJob, code: str, reason: str) -> None:
    async with ctx.db.sessions() as session:
        await session.execute(update(Collection).where(Collection.id == job.collection_id)
                              .values(status="error", error_code=code, error=reason))
        await session.commit()


def import_handlers(*, vector_store: VectorStore = PGVECTOR_STORE) -> dict[str, JobHandler]:
    return {
        PARSE_JOB: JobHandler(run=partial(run_parse, vector_store=vector_store),
                              on_final_failure=mark_collection_failed),
        EMBED_JOB: JobHandler(run=partial(run_embed, vector_store=vector_store),
                              on_final_failure=mark_collection_failed),
        **link_handlers(on_final_failure=mark_collection_failed),
    }
