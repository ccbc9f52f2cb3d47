"""A dataset's chunks as FastGPT's export CSV (q, a, then one column per index text)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zhiku.auth.service import Principal
from zhiku.db.models import Chunk, Collection
from zhiku.knowledge.collections import REINDEX_OF
from zhiku.knowledge.datasets import load_dataset
from zhiku.knowledge.indexing import AWAITING_QA
from zhiku.knowledge.qa_table import csv_header, csv_row

EXPORT_BATCH = 500


async def export_name(session: AsyncSession, principal: Principal, dataset_id: int) -> str:
    """The download's file name; raises ``dataset_not_found`` for a dataset the caller cannot see."""
    return f"{(await load_dataset(session, principal, dataset_id)).name}-backup.csv"


async def dataset_csv(sessions: async_sessionmaker[AsyncSession], dataset_id: int) -> AsyncIterator[str]:
    """The CSV, streamed from the database in batches (memory stays flat for any dataset size). Source
    texts still waiting for the agent model, and collections being re-indexed, are left out."""
    yield csv_header()
    async with sessions() as session:
        result = await session.stream(
            select(Chunk.q, Chunk.a, Chunk.indexes).join(Collection, Collection.id == Chunk.collection_id)
            .where(Chunk.dataset_id == dataset_id, Chunk.embedded != AWAITING_QA,
                   ~Collection.meta.has_key(REINDEX_OF))
            .order_by(Chunk.collection_id, Chunk.chunk_index).execution_options(yield_per=EXPORT_BATCH))
        async for rows in result.partitions():
            yield "".join(csv_row(q, a, indexes or []) for q, a, indexes in rows)
