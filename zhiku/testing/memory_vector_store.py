"""A ``VectorStore`` in process memory, for tests and demos that should not depend on pgvector.

Search is exact cosine similarity over every stored vector. Writes are not part of
the caller's transaction: they stay even if it rolls back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.db.models import Chunk
from zhiku.retrieval.chunk_filter import NO_FILTER, ChunkFilter
from zhiku.retrieval.vector_store import ChunkVectorRecord, VectorHit


@dataclass(frozen=True)
class StoredVector:
    dataset_id: int
    model: str
    part: int
    text: str
    embedding: np.ndarray
    kind: str = "default"


class MemoryVectorStore:
    name = "memory"

    def __init__(self) -> None:
        self.vectors: dict[int, list[StoredVector]] = {}  # by chunk id
        self.indexes: set[tuple[str, int]] = set()

    async def ensure_index(self, session: AsyncSession, model: str, dim: int) -> None:
        self.indexes.add((model, dim))

    async def upsert(self, session: AsyncSession, dataset_id: int, model: str, chunk_ids: Sequence[int],
                     records: Sequence[ChunkVectorRecord]) -> None:
        for chunk_id in chunk_ids:
            self.vectors.pop(chunk_id, None)
        for r in records:
            self.vectors.setdefault(r.chunk_id, []).append(StoredVector(
                dataset_id=dataset_id, model=model, part=r.part, text=r.text, kind=r.kind,
                embedding=np.asarray(r.embedding, dtype=np.float32)))

    async def vectors(self, session: AsyncSession, chunk_ids: Sequence[int]) -> list[ChunkVectorRecord]:
        return [ChunkVectorRecord(chunk_id=chunk_id, part=r.part, text=r.text, embedding=r.embedding, kind=r.kind)
                for chunk_id in chunk_ids for r in self.vectors.get(chunk_id, [])]

    async def delete_chunks(self, session: AsyncSession, chunk_ids: Sequence[int]) -> None:
        for chunk_id in chunk_ids:
            self.vectors.pop(chunk_id, None)

    async def delete_collection(self, session: AsyncSession, collection_id: int) -> None:
        # The chunk rows are still there: deletes come before them.
        ids = (await session.execute(select(Chunk.id).where(Chunk.collection_id == collection_id))).scalars()
        await self.delete_chunks(session, list(ids))

    async def delete_dataset(self, session: AsyncSession, dataset_id: int) -> None:
        for chunk_id in [cid for cid, rows in self.vectors.items() if rows[0].dataset_id == dataset_id]:
            del self.vectors[chunk_id]

    async def search(self, session: AsyncSession, model: str, query: Sequence[float], dataset_ids: Sequence[int],
                     limit: int, chunk_filter: ChunkFilter = NO_FILTER) -> list[VectorHit]:
        q = np.asarray(query, dtype=np.float32)
        q = q / (np.linalg.norm(q) or 1.0)
        wanted = set(dataset_ids)
        allowed = await self._allowed(session, chunk_filter)
        hits = []
        for chunk_id, rows in self.vectors.items():
            if allowed is not None and not allowed(chunk_id):
                continue
            scores = [float(np.dot(q, r.embedding) / (np.linalg.norm(r.embedding) or 1.0))
                      for r in rows if r.model == model and r.dataset_id in wanted]
            if scores:
                hits.append(VectorHit(chunk_id=chunk_id, score=max(scores)))
        hits.sort(key=lambda h: (-h.score, h.chunk_id))
        return hits[:limit]

    @staticmethod
    async def _allowed(session: AsyncSession, chunk_filter: ChunkFilter) -> Callable[[int], bool] | None:
        """Which chunk ids the filter lets through (None: all)."""
        if chunk_filter == NO_FILTER:
            return None
        included = excluded = None
        if chunk_filter.collection_ids is not None:
            included = set((await session.execute(select(Chunk.id).where(
                Chunk.collection_id.in_(chunk_filter.collection_ids)))).scalars())
        if chunk_filter.exclude_collection_ids:
            excluded = set((await session.execute(select(Chunk.id).where(
                Chunk.collection_id.in_(chunk_filter.exclude_collection_ids)))).scalars())
        return lambda chunk_id: (included is None or chunk_id in included) and (excluded is None
                                                                                or chunk_id not in excluded)
