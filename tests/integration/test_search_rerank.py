"""Rerank inside the search pipeline: fused with the search order, threshold on the rerank score."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset
from zhiku.config import Settings
from zhiku.db.engine import open_database
from zhiku.db.models import Dataset
from zhiku.retrieval.search import search
from zhiku.retrieval.settings import SearchSettings
from zhiku.testing.fakes import KeywordReranker

pytestmark = pytest.mark.integration

DOCS = {
    "kettle.md": "The kettle boils water for tea in three minutes.",
    "teapot.md": "Warm the teapot, add green tea leaves, pour water at eighty degrees.",
    "bike.md": "Oil the bicycle chain after riding in the rain.",
}


async def test_rerank_scores_fuse_and_threshold(client: httpx.Client, pg_url: str, embedders) -> None:
    dataset_id = create_dataset(client, unique("rerank"))
    for name, body in DOCS.items():
        add_text(client, dataset_id, name, body)
    db = open_database(Settings(database_url=pg_url))
    try:
        async with db.sessions() as session:
            dataset = (await session.execute(select(Dataset).where(Dataset.id == dataset_id))).scalar_one()
        reranker = KeywordReranker()
        query = "green tea leaves water teapot"
        plain = await search(db.sessions, embedders, [dataset], query, SearchSettings(mode="mixed"))
        assert not plain.reranked

        ranked = await search(db.sessions, embedders, [dataset], query,
                              SearchSettings(mode="mixed", rerank=True, similarity=0.5), reranker=reranker)
        assert ranked.reranked and reranker.calls and reranker.calls[0][0] == query
        names = [q.source_name for q in ranked.quotes]
        assert names[0] == "teapot.md"
        assert "bike.md" not in names  # its rerank score (0.0) is under the 0.5 threshold
        top_types = {s.type for s in ranked.quotes[0].scores}
        assert {"reRank", "rrf"} <= top_types

        # configured but no rerank model: search still works, without rerank
        fallback = await search(db.sessions, embedders, [dataset], query,
                                SearchSettings(mode="embedding", rerank=True), reranker=None)
        assert not fallback.reranked and fallback.quotes
    finally:
        await db.dispose()
