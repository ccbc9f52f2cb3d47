"""Chunks ("data" in FastGPT): list, get, edit q/a (re-embedded at once), delete."""

from __future__ import annotations

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.auth.service import Principal
from zhiku.db.models import Chunk, Collection, Dataset
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.errors import InvalidInput, NotFound
from zhiku.knowledge.collections import load_collection
from zhiku.knowledge.indexing import embed_chunk_rows
from zhiku.knowledge.schemas import ChunkPublic, ChunkUpdate, Page
from zhiku.retrieval import fulltext
from zhiku.retrieval.index_text import chunk_text
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.segment import index_document
from zhiku.retrieval.vector_store import VectorStore


def _public(chunk: Chunk) -> ChunkPublic:
    return ChunkPublic(id=chunk.id, dataset_id=chunk.dataset_id, collection_id=chunk.collection_id,
                       chunk_index=chunk.chunk_index, q=chunk.q, a=chunk.a, headings=list(chunk.headings or []),
                       embedded=bool(chunk.embedded), updated_at=chunk.updated_at)


async def load_chunk(session: AsyncSession, principal: Principal, chunk_id: int) -> Chunk:
    chunk = (await session.execute(
        select(Chunk).join(Dataset, Dataset.id == Chunk.dataset_id)
        .where(Chunk.id == chunk_id, Dataset.team_id == principal.team_id))).scalar_one_or_none()
    if chunk is None:
        raise NotFound(f"chunk {chunk_id} does not exist", code="chunk_not_found")
    return chunk


async def list_chunks(session: AsyncSession, principal: Principal, collection_id: int, *,
                      offset: int = 0, limit: int = 100) -> Page:
    await load_collection(session, principal, collection_id)
    total = (await session.execute(
        select(func.count()).select_from(Chunk).where(Chunk.collection_id == collection_id))).scalar_one()
    rows = await session.execute(select(Chunk).where(Chunk.collection_id == collection_id)
                                 .order_by(Chunk.chunk_index).offset(offset).limit(limit))
    return Page(total=total, items=[_public(c) for c in rows.scalars()])


async def get_chunk(session: AsyncSession, principal: Principal, chunk_id: int) -> ChunkPublic:
    return _public(await load_chunk(session, principal, chunk_id))


async def update_chunk(session: AsyncSession, principal: Principal, embedders: EmbedderRegistry,
                       chunk_id: int, data: ChunkUpdate, *,
                       vector_store: VectorStore = PGVECTOR_STORE) -> ChunkPublic:
    """Change q and/or a; the new text is segmented and re-embedded in the same transaction."""
    chunk = await load_chunk(session, principal, chunk_id)
    q = chunk.q if data.q is None else data.q
    a = chunk.a if data.a is None else data.a
    if not q.strip():
        raise InvalidInput("q cannot be empty", code="empty_text")
    dataset = await session.get(Dataset, chunk.dataset_id)
    assert dataset is not None
    was_embedded = bool(chunk.embedded)
    chunk.q, chunk.a = q, a
    chunk.fulltext = index_document(chunk_text(q, a))
    chunk.updated_at = func.now()
    await session.flush()
    await fulltext.unindex_chunks(session, [chunk.id])
    await fulltext.index_terms(session, chunk.dataset_id, [(chunk.id, chunk.fulltext.split())])
    await embed_chunk_rows(session, embedders.get(dataset.embedding_model), dataset.id, [(chunk.id, q, a)],
                           vector_store=vector_store)
    if not was_embedded:
        await session.execute(update(Collection).where(Collection.id == chunk.collection_id)
                              .values(indexed_count=Collection.indexed_count + 1))
    await session.commit()
    await session.refresh(chunk)
    return _public(chunk)


async def delete_chunk(session: AsyncSession, principal: Principal, chunk_id: int, *,
                       vector_store: VectorStore = PGVECTOR_STORE) -> None:
    chunk = await load_chunk(session, principal, chunk_id)
    await vector_store.delete_chunks(session, [chunk.id])
    await session.execute(update(Collection).where(Collection.id == chunk.collection_id).values(
        chunk_count=Collection.chunk_count - 1,
        indexed_count=Collection.indexed_count - (1 if chunk.embedded else 0)))
    await session.delete(chunk)
    await session.commit()
