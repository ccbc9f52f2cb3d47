"""The vector-store seam: where chunk vectors are kept and searched.

A store is anything with the methods of ``VectorStore``. Built-in stores register
through ``register_vector_store``, exactly as a third-party one would; a new store
(Milvus) is a new module that calls it, chosen by name with ``ZHIKU_VECTOR_STORE``.

Every method takes the caller's ``AsyncSession``: pgvector writes in that
transaction, so a batch's vectors commit or roll back with its chunk rows; a store
outside PostgreSQL may use the session to read what it needs (the chunk ids of a
collection) and otherwise ignores it. Deletes are called before the chunk rows go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.retrieval.chunk_filter import NO_FILTER, ChunkFilter


@dataclass(frozen=True)
class ChunkVectorRecord:
    """One index text of a chunk and its vector; a text longer than the model's input has several parts.

    ``kind`` is ``default`` for the chunk's own text (q + a), else the type of the index text it
    embeds (``custom``, ``question``, ``summary``).
    """

    chunk_id: int
    part: int
    text: str
    embedding: Sequence[float]
    kind: str = "default"




@dataclass(frozen=True)
class VectorHit:
    """A chunk found by vector search; ``score`` is the cosine similarity of its best vector."""

    chunk_id: int
    score: float


class VectorStore(Protocol):
    name: str

    async def ensure_index(self, session: AsyncSession, model: str, dim: int) -> None:
        """Be ready to store and search ``dim``-dimensional vectors of ``model`` (safe to call again)."""
        ...

    async def upsert(self, session: AsyncSession, dataset_id: int, model: str, chunk_ids: Sequence[int],
                     records: Sequence[ChunkVectorRecord]) -> None:
        """Replace every vector of ``chunk_ids`` (all kinds) with ``records`` (a chunk without a record keeps
        none)."""
        ...

    async def vectors(self, session: AsyncSession, chunk_ids: Sequence[int]) -> list[ChunkVectorRecord]:
        """The stored vectors of ``chunk_ids``, so an edit re-embeds only the texts that changed."""
        ...

    async def delete_chunks(self, session: AsyncSession, chunk_ids: Sequence[int]) -> None: ...

    async def delete_collection(self, session: AsyncSession, collection_id: int) -> None: ...

    async def delete_dataset(self, session: AsyncSession, dataset_id: int) -> None: ...

    async def search(self, session: AsyncSession, model: str, query: Sequence[float], dataset_ids: Sequence[int],
                     limit: int, chunk_filter: ChunkFilter = NO_FILTER) -> list[VectorHit]:
        """At most ``limit`` chunks of ``model``'s vectors in these datasets that pass ``chunk_filter``, one hit
        per chunk (its best vector of any kind), best first; equal scores by chunk id."""
        ...
