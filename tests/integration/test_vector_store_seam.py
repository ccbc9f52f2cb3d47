"""A second vector store is one module: registered by name, it stores and serves an import's vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from zhiku.auth.service import ensure_root, root_principal
from zhiku.config import Settings
from zhiku.db.engine import open_database
from zhiku.db.migrate import migrate
from zhiku.db.models import ChunkVector, Collection, Dataset
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.knowledge.collections import create_text_collection, delete_collection
from zhiku.knowledge.datasets import create_dataset
from zhiku.knowledge.files import BlobStore
from zhiku.knowledge.indexing import import_handlers
from zhiku.knowledge.schemas import DatasetCreate, TextCollectionCreate
from zhiku.retrieval.search import search
from zhiku.retrieval.settings import SearchSettings
from zhiku.retrieval.vector_store_registry import create_vector_store, register_vector_store
from zhiku.testing.memory_vector_store import MemoryVectorStore
from zhiku.worker.runner import JobContext, Worker

pytestmark = pytest.mark.integration

DOCS = {
    "kettle.md": "The kettle boils water in three minutes.",
    "teapot.md": "Warm the teapot, add green tea leaves, pour water at eighty degrees.",
    "bike.md": "Oil the bicycle chain after riding in the rain.",
}


async def test_search_uses_the_store_it_is_given(fresh_db: str, tmp_path: Path,
                                                 embedders: EmbedderRegistry) -> None:
    register_vector_store("memory", MemoryVectorStore)
    store = create_vector_store("memory")
    assert isinstance(store, MemoryVectorStore)
    settings = Settings(database_url=fresh_db, data_dir=tmp_path)
    db = open_database(settings)
    try:
        await migrate(db)
        async with db.sessions() as session:
            await ensure_root(session, "test-root-password")
            principal = await root_principal(session)
            dataset_id = (await create_dataset(session, principal, embedders, DatasetCreate(name="seam"),
                                               vector_store=store)).id
            for name, body in DOCS.items():
                await create_text_collection(session, principal, BlobStore(settings.files_dir), dataset_id,
                                             TextCollectionCreate(name=name, text=body),
                                             max_bytes=settings.upload_max_bytes)
        worker = Worker(JobContext(db=db, settings=settings, embedders=embedders),
                        import_handlers(vector_store=store))
        while await worker.run_once():
            pass

        async with db.sessions() as session:
            dataset = (await session.execute(select(Dataset).where(Dataset.id == dataset_id))).scalar_one()
            assert {c.status for c in (await session.execute(select(Collection))).scalars()} == {"ready"}
            # Nothing went to pgvector: no rows, and no HNSW index for the model.
            assert (await session.execute(select(func.count()).select_from(ChunkVector))).scalar_one() == 0
            assert (await session.execute(text(
                "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_chunk_vectors_hnsw_%'"))).scalar_one() == 0
        assert store.indexes == {(dataset.embedding_model, dataset.vector_dim)}
        assert len(store.vectors) == len(DOCS)

        found = await search(db.sessions, embedders, [dataset], "brewing green tea in a teapot",
                             SearchSettings(mode="embedding"), vector_store=store)
        assert found.quotes and found.quotes[0].source_name == "teapot.md"
        assert [s.type for s in found.quotes[0].scores] == ["embedding"]
        # pgvector, holding nothing, finds nothing for the same query.
        assert not (await search(db.sessions, embedders, [dataset], "brewing green tea in a teapot",
                                 SearchSettings(mode="embedding"))).quotes

        async with db.sessions() as session:
            teapot = (await session.execute(
                select(Collection.id).where(Collection.name == "teapot.md"))).scalar_one()
            await delete_collection(session, principal, teapot, vector_store=store, blobs=BlobStore(settings.files_dir))
        assert len(store.vectors) == len(DOCS) - 1
        found = await search(db.sessions, embedders, [dataset], "brewing green tea in a teapot",
                             SearchSettings(mode="embedding"), vector_store=store)
        assert "teapot.md" not in {q.source_name for q in found.quotes}
    finally:
        await db.dispose()
