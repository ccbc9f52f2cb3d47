"""Import jobs: parse → chunk → (qa) → embed, each safe to run twice.

``parse`` turns the stored file into chunks in one transaction (a rerun after a
crash finds the collection past ``parsing`` and does nothing). ``embed`` takes
batches of not-yet-embedded chunks with ``FOR UPDATE SKIP LOCKED``, so several
workers share one collection, and a batch's vectors, flags and counter commit
together: a killed worker leaves no half-embedded batch behind.

In training mode ``qa`` each parsed chunk is stored as a source text waiting for the
agent model (``embedded = AWAITING_QA``: no vectors, no postings, so search never sees
it) with one ``qa`` job of its own. The job asks the model with no transaction open,
embeds the pairs, then in one short transaction replaces the source with its Q&A
chunks (or keeps it as a plain chunk when the reply holds no pairs). Model errors go
back to the queue, which retries after the upstream's ``Retry-After``.

A collection being re-indexed gets a hidden twin (``metadata.reindex_of``) that runs
this same pipeline; when the twin is ready its chunks replace the original's in one
transaction, and searches exclude the twin until then, so nobody sees a half state.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.config import Settings
from zhiku.db.models import Chunk, Collection, Dataset, Job
from zhiku.embedding.base import Embedder
from zhiku.embedding.service import model_tokens
from zhiku.embedding.windows import split_windows
from zhiku.errors import Conflict, UnsupportedFile
from zhiku.knowledge.chunker import split_text
from zhiku.knowledge.collections import EMBED_JOB, PARSE_JOB, QA_JOB, REINDEX_OF
from zhiku.knowledge.files import BlobStore
from zhiku.knowledge.links import link_handlers
from zhiku.knowledge.parsers import ParsedDocument, Parser, parser_for
from zhiku.knowledge.parsers.remote import RemoteParser
from zhiku.knowledge.qa import MAX_PAIRS, generate_pairs
from zhiku.knowledge.qa_table import qa_table_rows
from zhiku.retrieval import fulltext
from zhiku.retrieval.index_text import fulltext_text, vector_texts
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.segment import index_document
from zhiku.retrieval.vector_store import ChunkVectorRecord, VectorStore
from zhiku.worker import queue
from zhiku.worker.queue import ClaimedJob
from zhiku.worker.runner import JobContext, JobHandler

# Several embed jobs per collection let several workers share a big file.
MAX_EMBED_JOBS_PER_COLLECTION = 4
# ``chunks.embedded`` of a source text waiting for the agent model (training mode "qa").
AWAITING_QA = -1
# A qa-mode source chunk i sits at chunk_index i × QA_STRIDE and its pairs at the indexes after it, so Q&A
# chunks keep the document's order whichever job finishes first (a reply keeps at most MAX_PAIRS = stride).
QA_STRIDE = MAX_PAIRS
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
        rows_of = qa_table_rows if collection.type == "qa_table" else _parse_and_chunk
        doc, rows = await asyncio.to_thread(rows_of, collection, data, ctx.settings)

    async with ctx.db.sessions() as session:
        collection = (await session.execute(
            select(Collection).where(Collection.id == job.collection_id).with_for_update())).scalar_one_or_none()
        if collection is None or collection.status != "parsing":
            return
        await fulltext.unindex_collection(session, collection.id)
        await vector_store.delete_collection(session, collection.id)
        await session.execute(delete(Chunk).where(Chunk.collection_id == collection.id))
        awaiting_qa = collection.training_mode == "qa" and collection.type != "qa_table"
        for row in rows:
            row.update(dataset_id=collection.dataset_id, collection_id=collection.id)
            if awaiting_qa:
                row.update(chunk_index=row["chunk_index"] * QA_STRIDE, embedded=AWAITING_QA)
        for start in range(0, len(rows), 1000):
            await session.execute(insert(Chunk), rows[start:start + 1000])
        collection.status = "indexing"
        collection.chunk_count = len(rows)
        collection.indexed_count = 0
        collection.error = collection.error_code = None
        collection.meta = {**collection.meta, **doc.metadata, "characters": len(doc.text)}
        if awaiting_qa:
            await enqueue_qa_jobs(session, collection.id, max_attempts=ctx.settings.job_max_attempts)
        else:
            await index_new_chunks(session, collection.dataset_id, collection.id, len(rows),
                                   batch_size=ctx.settings.embed_batch_size,
                                   max_attempts=ctx.settings.job_max_attempts)
        await session.commit()


async def index_new_chunks(session: AsyncSession, dataset_id: int, collection_id: int, count: int, *,
                           batch_size: int, max_attempts: int, since_id: int = 0) -> None:
    """Full-text postings for the collection's new chunks (ids above ``since_id``) and embed jobs for them."""
    stored = await session.execute(select(Chunk.id, Chunk.fulltext).where(
        Chunk.collection_id == collection_id, Chunk.id > since_id, Chunk.embedded == 0))
    await fulltext.index_terms(session, dataset_id, [(cid, ft.split()) for cid, ft in stored])
    for _ in range(min(MAX_EMBED_JOBS_PER_COLLECTION, math.ceil(count / batch_size))):
        await queue.enqueue(session, EMBED_JOB, collection_id=collection_id, max_attempts=max_attempts)


async def enqueue_qa_jobs(session: AsyncSession, collection_id: int, *, max_attempts: int,
                          since_id: int = 0, qa_prompt: str | None = None) -> None:
    """One ``qa`` job per source text of the collection waiting for the model (ids above ``since_id``);
    ``qa_prompt`` replaces the collection's instructions to the model for these."""
    ids = (await session.execute(select(Chunk.id).where(
        Chunk.collection_id == collection_id, Chunk.id > since_id, Chunk.embedded == AWAITING_QA)
        .order_by(Chunk.chunk_index))).scalars()
    extra = {"qa_prompt": qa_prompt} if qa_prompt else {}
    await queue.enqueue_many(session, QA_JOB, [{"chunk_id": cid, **extra} for cid in ids],
                             collection_id=collection_id, max_attempts=max_attempts)


@dataclass(frozen=True)
class ChunkTexts:
    """What gets embedded of one chunk: its text (q, a) and its index texts."""

    chunk_id: int
    q: str
    a: str
    indexes: Sequence[Mapping[str, Any]] = ()


async def vector_records(embedder: Embedder, chunks: Sequence[ChunkTexts],
                         stored: Sequence[ChunkVectorRecord] = ()) -> list[ChunkVectorRecord]:
    """Every vector of these chunks: one per window of each text (``vector_texts``; a text longer than the
    model's input gets one vector per window, never a truncated one). A window whose text a ``stored``
    vector already embeds keeps that vector; only the others go to the model, in one call."""
    def tokens(piece: str) -> int:
        return model_tokens(embedder, piece, "passage")

    known = {r.text: r.embedding for r in stored}
    planned: list[tuple[int, str, int, str]] = []  # chunk id, kind, part, window
    for chunk in chunks:
        for kind, body in vector_texts(chunk.q, chunk.a, chunk.indexes):
            for part, window in enumerate(split_windows(body, tokens, embedder.max_tokens)):
                planned.append((chunk.chunk_id, kind, part, window))
    missing = list(dict.fromkeys(window for *_, window in planned if window not in known))
    if missing:
        known.update(zip(missing, await asyncio.to_thread(embedder.embed, missing, "passage")))
    return [ChunkVectorRecord(chunk_id=cid, part=part, text=window, embedding=known[window], kind=kind)
            for cid, kind, part, window in planned]


async def embed_chunk_rows(session: AsyncSession, embedder: Embedder, dataset_id: int,
                           chunks: Sequence[ChunkTexts], *, vector_store: VectorStore = PGVECTOR_STORE,
                           reuse_stored: bool = False) -> None:
    """Replace every vector of these chunks and mark them embedded, in the caller's transaction. With
    ``reuse_stored`` (an edit), texts the chunks' stored vectors already embed are not embedded again."""
    ids = [c.chunk_id for c in chunks]
    stored = await vector_store.vectors(session, ids) if reuse_stored else []
    records = await vector_records(embedder, chunks, stored)
    await vector_store.upsert(session, dataset_id, embedder.model_name, ids, records)
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
                select(Chunk.id, Chunk.q, Chunk.a, Chunk.indexes)
                .where(Chunk.collection_id == collection.id, Chunk.embedded == 0)
                .order_by(Chunk.chunk_index).limit(ctx.settings.embed_batch_size)
                .with_for_update(skip_locked=True))).all()
            if not rows:
                break
            await embed_chunk_rows(session, embedder, dataset.id,
                                   [ChunkTexts(r.id, r.q, r.a, r.indexes or ()) for r in rows],
                                   vector_store=vector_store)
            await session.execute(update(Collection).where(Collection.id == collection.id)
                                  .values(indexed_count=Collection.indexed_count + len(rows)))
            await session.commit()
    async with ctx.db.sessions() as session:
        await mark_ready_if_done(session, job.collection_id, vector_store=vector_store)
        await session.commit()


async def mark_ready_if_done(session: AsyncSession, collection_id: int | None, *,
                             vector_store: VectorStore = PGVECTOR_STORE) -> None:
    """``ready`` once every chunk is embedded (no batch left, no source text waiting for the model); a
    re-index twin instead hands its chunks to the collection it re-indexes."""
    done = (await session.execute(text(
        "UPDATE collections SET status = 'ready', updated_at = now() WHERE id = :id AND status = 'indexing' "
        "AND NOT EXISTS (SELECT 1 FROM chunks WHERE collection_id = :id AND embedded <> 1) "
        "RETURNING metadata ->> :key"), {"id": collection_id, "key": REINDEX_OF})).first()
    if done is not None and done[0] is not None and collection_id is not None:
        await _swap_in(session, collection_id, int(done[0]), vector_store=vector_store)


async def _swap_in(session: AsyncSession, twin_id: int, target_id: int, *, vector_store: VectorStore) -> None:
    """The re-indexed chunks replace the target's, in the caller's transaction; the twin goes."""
    target = (await session.execute(
        select(Collection).where(Collection.id == target_id).with_for_update())).scalar_one_or_none()
    twin = (await session.execute(select(Collection).where(Collection.id == twin_id))).scalar_one()
    if target is not None:
        await fulltext.unindex_collection(session, target.id)
        await vector_store.delete_collection(session, target.id)
        await session.execute(delete(Chunk).where(Chunk.collection_id == target.id))
        await session.execute(delete(Job).where(Job.collection_id == target.id))  # failed steps of the old chunks
        await session.execute(update(Chunk).where(Chunk.collection_id == twin.id).values(collection_id=target.id))
        target.status, target.error, target.error_code = "ready", None, None
        target.chunk_size, target.training_mode = twin.chunk_size, twin.training_mode
        target.meta = {k: v for k, v in twin.meta.items() if k != REINDEX_OF}
        target.chunk_count, target.indexed_count = twin.chunk_count, twin.indexed_count
    else:  # the target was deleted meanwhile: its twin goes too
        await fulltext.unindex_collection(session, twin.id)
        await vector_store.delete_collection(session, twin.id)
    await session.delete(twin)


async def mark_collection_failed(ctx: JobContext, job: ClaimedJob, code: str, reason: str) -> None:
    """The collection shows the error; a failed re-index shows it on the collection it re-indexes."""
    async with ctx.db.sessions() as session:
        meta = (await session.execute(
            update(Collection).where(Collection.id == job.collection_id)
            .values(status="error", error_code=code, error=reason).returning(Collection.meta))).scalar_one_or_none()
        if meta and meta.get(REINDEX_OF):
            await session.execute(update(Collection).where(Collection.id == int(meta[REINDEX_OF])).values(
                status="error", error_code=code, error=f"re-indexing failed: {reason}"))
        await session.commit()


# ---- training mode "qa" ----------------------------------------------------------------------------


async def run_qa(ctx: JobContext, job: ClaimedJob, *, vector_store: VectorStore = PGVECTOR_STORE) -> None:
    """One source text → Q&A chunks (see the module docstring)."""
    chunk_id = int(job.payload["chunk_id"])
    async with ctx.db.sessions() as session:
        source = (await session.execute(select(Chunk).where(
            Chunk.id == chunk_id, Chunk.embedded == AWAITING_QA))).scalar_one_or_none()
        if source is None:
            return  # done by an earlier run of this job, or deleted
        dataset = (await session.execute(select(Dataset).where(Dataset.id == source.dataset_id))).scalar_one()
        qa_prompt = job.payload.get("qa_prompt") or (await session.execute(
            select(Collection.meta["qa_prompt"].astext).where(Collection.id == source.collection_id))).scalar_one_or_none()
    if ctx.chat_model is None:
        raise Conflict("training mode qa needs a chat model: set OPENAI_BASE_URL and CHAT_API_KEY (or add a "
                       "gateway channel), then retry the collection", code="chat_model_missing")
    # No transaction is open while the model answers; its errors go back to the queue as raised.
    pairs = await generate_pairs(ctx.chat_model, dataset.agent_model or ctx.settings.chat_model, source.q,
                                 qa_prompt)
    new = ([ChunkTexts(i, p.q, p.a) for i, p in enumerate(pairs)] if pairs
           else [ChunkTexts(0, source.q, source.a, source.indexes or ())])  # nothing parsed: a plain chunk
    embedder = ctx.embedders.get(dataset.embedding_model)
    records = await vector_records(embedder, new)
    terms = await asyncio.to_thread(lambda: [index_document(fulltext_text(c.q, c.a, c.indexes)) for c in new])

    async with ctx.db.sessions() as session:
        collection = (await session.execute(select(Collection).where(
            Collection.id == source.collection_id).with_for_update())).scalar_one_or_none()
        waiting = (await session.execute(select(Chunk.id).where(
            Chunk.id == chunk_id, Chunk.embedded == AWAITING_QA).with_for_update())).scalar_one_or_none()
        if collection is None or waiting is None:
            return  # deleted meanwhile, or another run got here first
        await session.execute(delete(Chunk).where(Chunk.id == chunk_id))
        rows = [{"dataset_id": source.dataset_id, "collection_id": source.collection_id,
                 "chunk_index": source.chunk_index + i, "q": c.q, "a": c.a, "indexes": list(c.indexes),
                 "headings": list(source.headings or []), "meta": dict(source.meta or {}),
                 "fulltext": fulltext, "embedded": 1}
                for i, (c, fulltext) in enumerate(zip(new, terms))]
        ids = list((await session.execute(insert(Chunk).returning(Chunk.id, sort_by_parameter_order=True),
                                         rows)).scalars())
        await fulltext.index_terms(session, source.dataset_id,
                                   [(cid, row["fulltext"].split()) for cid, row in zip(ids, rows)])
        await vector_store.upsert(session, source.dataset_id, embedder.model_name, ids,
                                  [replace(r, chunk_id=ids[r.chunk_id]) for r in records])
        collection.chunk_count += len(ids) - 1
        collection.indexed_count += len(ids)
        await session.flush()
        await mark_ready_if_done(session, collection.id, vector_store=vector_store)
        await session.commit()


def import_handlers(*, vector_store: VectorStore = PGVECTOR_STORE) -> dict[str, JobHandler]:
    return {
        PARSE_JOB: JobHandler(run=partial(run_parse, vector_store=vector_store),
                              on_final_failure=mark_collection_failed),
        EMBED_JOB: JobHandler(run=partial(run_embed, vector_store=vector_store),
                              on_final_failure=mark_collection_failed),
        QA_JOB: JobHandler(run=partial(run_qa, vector_store=vector_store),
                           on_final_failure=mark_collection_failed),
        **link_handlers(on_final_failure=mark_collection_failed),
    }
