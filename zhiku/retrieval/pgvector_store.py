"""The pgvector store: vectors in ``chunk_vectors``, in the caller's transaction.

Each embedding model gets a partial HNSW index on ``embedding::vector(dim)``, so
datasets of any model and dimension share one table and nothing is padded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from zhiku.db.models import ChunkVector
from zhiku.retrieval.chunk_filter import NO_FILTER, ChunkFilter, filter_sql
from zhiku.retrieval.vector_store import ChunkVectorRecord, VectorHit

# FastGPT's pgvector settings (REFERENCE.md): m 32, ef_construction 128, ef_search 100.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 100


def index_name(model: str, dim: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40]
    return f"ix_chunk_vectors_hnsw_{slug}_{dim}"


def vector_cast(dim: int) -> str:
    # halfvec would be needed past 2000 dimensions for HNSW; 2000 covers every common model.
    return f"vector({dim})" if dim <= 2000 else f"halfvec({dim})"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class PgVectorStore:
    name = "pgvector"

    async def ensure_index(self, session: AsyncSession | AsyncConnection, model: str, dim: int) -> None:
        """Create the HNSW index for one (model, dimension) pair if it does not exist yet."""
        if not 0 < dim <= 16000:
            raise ValueError(f"unsupported vector dimension {dim}")
        ops = "vector_cosine_ops" if dim <= 2000 else "halfvec_cosine_ops"
        await session.execute(text(
            f"CREATE INDEX IF NOT EXISTS {index_name(model, dim)} ON chunk_vectors "
            f"USING hnsw ((embedding::{vector_cast(dim)}) {ops}) "
            f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
            f"WHERE model = {_literal(model)}"))

    async def upsert(self, session: AsyncSession, dataset_id: int, model: str, chunk_ids: Sequence[int],
                     records: Sequence[ChunkVectorRecord]) -> None:
        await session.execute(delete(ChunkVector).where(ChunkVector.chunk_id.in_(chunk_ids)))
        if records:
            await session.execute(insert(ChunkVector), [
                {"chunk_id": r.chunk_id, "dataset_id": dataset_id, "model": model, "kind": r.kind,
                 "part": r.part, "text": r.text, "embedding": r.embedding} for r in records])

    async def vectors(self, session: AsyncSession, chunk_ids: Sequence[int]) -> list[ChunkVectorRecord]:
        rows = await session.execute(
            select(ChunkVector.chunk_id, ChunkVector.part, ChunkVector.text, ChunkVector.embedding,
                   ChunkVector.kind).where(ChunkVector.chunk_id.in_(chunk_ids)))
        return [ChunkVectorRecord(chunk_id=r.chunk_id, part=r.part, text=r.text, embedding=r.embedding,
                                  kind=r.kind) for r in rows]

    # The foreign keys would cascade these deletes too; deleting first keeps one way for every store.
    async def delete_chunks(self, session: AsyncSession, chunk_ids: Sequence[int]) -> None:
        await session.execute(delete(ChunkVector).where(ChunkVector.chunk_id.in_(chunk_ids)))

    async def delete_collection(self, session: AsyncSession, collection_id: int) -> None:
        await session.execute(text(
            "DELETE FROM chunk_vectors WHERE chunk_id IN (SELECT id FROM chunks WHERE collection_id = :c)"),
            {"c": collection_id})

    async def delete_dataset(self, session: AsyncSession, dataset_id: int) -> None:
        await session.execute(delete(ChunkVector).where(ChunkVector.dataset_id == dataset_id))

    async def search(self, session: AsyncSession, model: str, query: Sequence[float], dataset_ids: Sequence[int],
                     limit: int, chunk_filter: ChunkFilter = NO_FILTER) -> list[VectorHit]:
        cast = vector_cast(len(query))
        literal = "[" + ",".join(f"{float(x):.7g}" for x in query) + "]"
        # Transaction-local: relaxed iterative scan keeps going when the dataset filter drops HNSW hits.
        await session.execute(text(
            "SELECT set_config('hnsw.ef_search', :ef, true), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', true)"), {"ef": str(HNSW_EF_SEARCH)})
        # A chunk has several vectors (its text's windows, its index texts), so twice the limit in rows is read
        # and each chunk scores as its best one. The collection filter sits inside the HNSW scan, which keeps
        # going (iterative scan) until the limit fills.
        conditions, params = filter_sql(chunk_filter, "chunk_id")
        result = await session.execute(text(
            f"WITH hits AS MATERIALIZED ("
            f"  SELECT chunk_id, embedding::{cast} <=> CAST(:q AS {cast}) AS dist FROM chunk_vectors"
            f"  WHERE model = :model AND dataset_id = ANY(:ids){conditions}"
            f"  ORDER BY embedding::{cast} <=> CAST(:q AS {cast}) LIMIT :windows) "
            f"SELECT chunk_id, 1 - min(dist) AS score FROM hits "
            f"GROUP BY chunk_id ORDER BY score DESC, chunk_id LIMIT :limit"),
            {"q": literal, "model": model, "ids": list(dataset_ids), "windows": limit * 2, "limit": limit,
             **params})
        return [VectorHit(chunk_id=chunk_id, score=float(score)) for chunk_id, score in result.all()]



# The store callers get when they are not handed one.
PGVECTOR_STORE = PgVectorStore()
