"""Collection operations: tags and the collection/tag search filter, CSV export and its import as a Q&A
table (over HTTP); retry, re-index without a half state and delete during a running embed (driven step
by step with a worker of the test's own on a fresh database)."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openpyxl
import pytest
from sqlalchemy import select, text

from tests.conftest import ROOT_PASSWORD, unique
from tests.integration.helpers import add_text, create_dataset, push, wait_collection
from zhiku.auth.service import Principal, ensure_root, root_principal
from zhiku.config import Settings
from zhiku.db.engine import Database, open_database
from zhiku.db.migrate import migrate
from zhiku.db.models import Chunk, Collection, Dataset
from zhiku.embedding.base import Embedder, EmbedKind
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.knowledge.collections import (
    create_text_collection,
    delete_collection,
    list_collections,
    reindex_collection,
    retry_collection,
)
from zhiku.knowledge.datasets import create_dataset as create_dataset_service
from zhiku.knowledge.files import BlobStore
from zhiku.knowledge.indexing import import_handlers
from zhiku.knowledge.schemas import CollectionReindex, DatasetCreate, TextCollectionCreate
from zhiku.retrieval.search import search
from zhiku.retrieval.settings import SearchSettings
from zhiku.worker.runner import JobContext, Worker

pytestmark = pytest.mark.integration

HARBOUR = "\n\n".join(
    f"Section {i}. The harbour master logs every ship that enters port number {i}, with its cargo, its crew and "
    f"the hour of arrival. Pilots guide the larger vessels past the sandbanks at the river mouth." for i in range(8))


# ---- over HTTP -----------------------------------------------------------------------------------


def _search(client: httpx.Client, dataset_id: int, query: str, mode: str, **filters: object) -> list[dict]:
    r = client.post(f"/api/datasets/{dataset_id}/search",
                    json={"text": query, "searchMode": mode, "similarity": 0, "limit": 20000, **filters})
    assert r.status_code == 200, r.text
    return r.json()["quotes"]


def test_tags_and_the_collection_filter_apply_inside_the_search(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("ops"))
    r = client.post(f"/api/datasets/{dataset_id}/collections/text",
                    json={"name": "kettles", "text": "The kettle boils water.", "tags": ["alpha", "alpha"]})
    assert r.status_code == 201 and r.json()["tags"] == ["alpha"], r.text
    kettles = wait_collection(client, r.json()["id"])["id"]
    # 150 chunks closer to the query than anything in "bikes": an unfiltered search's candidates are all these.
    for start in (0, 75):
        assert push(client, kettles, [{"q": f"The kettle boils water quickly, note {i}."}
                                      for i in range(start, start + 75)]).status_code == 201
    bikes = add_text(client, dataset_id, "bikes", "Rinse the bicycle with water, then oil the chain.")["id"]
    wait_collection(client, kettles)
    r = client.patch(f"/api/collections/{bikes}", json={"tags": ["beta", "gamma"]})
    assert r.status_code == 200 and r.json()["tags"] == ["beta", "gamma"], r.text

    for mode in ("embedding", "fullText", "mixedRecall"):
        unfiltered = _search(client, dataset_id, "kettle boils water", mode)
        assert unfiltered and {q["collectionId"] for q in unfiltered} == {str(kettles)}, mode
        for filters in ({"tags": ["beta"]}, {"collectionIds": [bikes]}, {"collectionIds": [bikes], "tags": ["gamma"]}):
            quotes = _search(client, dataset_id, "kettle boils water", mode, **filters)
            assert [q["collectionId"] for q in quotes] == [str(bikes)], (mode, filters, quotes)
    assert _search(client, dataset_id, "kettle boils water", "mixedRecall", tags=["nobody"]) == []
    assert _search(client, dataset_id, "kettle boils water", "mixedRecall", collectionIds=[bikes], tags=["alpha"]) == []
    r = client.patch(f"/api/collections/{bikes}", json={"tags": ["x" * 101]})
    assert r.status_code == 422


def test_export_csv_imports_back_as_the_same_chunks(client: httpx.Client) -> None:
    source = create_dataset(client, unique("export"))
    collection = add_text(client, source, "seed.md", "Seed paragraph about tea.")["id"]
    items = [
        {"q": "Plain question?", "a": "Plain answer."},
        {"q": 'Quotes "inside", and, commas', "a": "line one\nline two", "indexes": [{"text": "索引一"}]},
        {"q": "龙井茶产于哪里？", "a": "杭州西湖。", "indexes": [{"text": "龙井"}, {"text": "西湖 绿茶"},
                                                             {"type": "question", "text": "Where is Longjing from?"}]},
        {"q": "=1+1 stays text"},
    ]
    assert push(client, collection, items).status_code == 201
    wait_collection(client, collection)

    r = client.get(f"/api/datasets/{source}/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), r.text
    assert "backup.csv" in r.headers["content-disposition"]
    assert r.content.startswith("\ufeffq,a,indexes\r\n".encode())

    target = create_dataset(client, unique("import"))
    r = client.post(f"/api/datasets/{target}/collections/qa-table", files={"file": ("backup.csv", r.content)},
                    data={"tags": ["restored"]})
    assert r.status_code == 201 and r.json()["type"] == "qa_table" and r.json()["tags"] == ["restored"], r.text
    imported = wait_collection(client, r.json()["id"])
    assert imported["status"] == "ready", imported

    def chunks(dataset_id: int) -> list[tuple[str, str, list[str]]]:
        out = []
        for col in client.get(f"/api/datasets/{dataset_id}/collections").json()["items"]:
            for c in client.get(f"/api/collections/{col['id']}/chunks").json()["items"]:
                out.append((c["q"], c["a"], [i["text"] for i in c["indexes"]]))
        return sorted(out)

    assert chunks(target) == chunks(source)
    assert _search(client, target, "西湖", "fullText")[0]["q"] == "龙井茶产于哪里？"

    r = client.get(f"/api/datasets/{10**12}/export.csv")
    assert r.status_code == 404 and r.json()["code"] == "dataset_not_found"


def test_an_xlsx_qa_table_is_one_chunk_per_row_with_its_index_columns(client: httpx.Client) -> None:
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "FAQ"
    for row in (["Question", "Answer", "Index 1", "Index 2"], ["How do I reset my password?", "Use the link.", "forgot"],
                ["What are the opening hours?", "Nine to five.", "schedule", "times"], [None, "no question: skipped"]):
        sheet.append(row)
    data = io.BytesIO()
    book.save(data)
    dataset_id = create_dataset(client, unique("qatable"))
    r = client.post(f"/api/datasets/{dataset_id}/collections/qa-table", files={"file": ("faq.xlsx", data.getvalue())})
    assert r.status_code == 201, r.text
    collection = wait_collection(client, r.json()["id"])
    assert collection["status"] == "ready" and collection["chunk_count"] == 2, collection
    items = client.get(f"/api/collections/{collection['id']}/chunks").json()["items"]
    assert [(c["q"], c["a"], c["indexes"], c["metadata"]) for c in items] == [
        ("How do I reset my password?", "Use the link.", [{"type": "custom", "text": "forgot"}], {"sheet": "FAQ"}),
        ("What are the opening hours?", "Nine to five.",
         [{"type": "custom", "text": "schedule"}, {"type": "custom", "text": "times"}], {"sheet": "FAQ"})]

    r = client.post(f"/api/datasets/{dataset_id}/collections/qa-table", files={"file": ("faq.md", b"# no")})
    assert r.status_code == 400 and r.json()["code"] == "unsupported_file_type"


# ---- step by step, with the test's own worker ------------------------------------------------------


class GatedEmbedder:
    """The real embedder, except that passage call number ``stop_at`` waits until ``release`` is set."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.model_name, self.dim, self.max_tokens = inner.model_name, inner.dim, inner.max_tokens
        self.stop_at: int | None = None
        self.calls = 0
        self.reached = threading.Event()
        self.release = threading.Event()

    def __getattr__(self, name: str) -> Any:  # count_tokens, prefix_tokens: the real model's
        return getattr(self.inner, name)

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> np.ndarray:
        if kind == "passage":
            self.calls += 1
            if self.calls == self.stop_at:
                self.reached.set()
                assert self.release.wait(120), "the test never released the embedder"
        return self.inner.embed(texts, kind)


@dataclass
class Parts:
    db: Database
    settings: Settings
    principal: Principal
    embedder: GatedEmbedder
    registry: EmbedderRegistry
    worker: Worker
    blobs: BlobStore

    async def run_all(self) -> None:
        while await self.worker.run_once():
            pass

    async def count(self, sql: str, **params: object) -> int:
        async with self.db.sessions() as session:
            return int((await session.execute(text(sql), params)).scalar_one())


@pytest.fixture
async def parts(fresh_db: str, tmp_path: Path, embedders: EmbedderRegistry) -> AsyncIterator[Parts]:
    settings = Settings(database_url=fresh_db, data_dir=tmp_path, embed_batch_size=2, job_lease_seconds=30)
    db = open_database(settings)
    await migrate(db)
    async with db.sessions() as session:
        await ensure_root(session, ROOT_PASSWORD)
        principal = await root_principal(session)
    gated = GatedEmbedder(embedders.get())
    registry = EmbedderRegistry(default=gated.model_name)
    registry.register(gated)  # type: ignore[arg-type]
    worker = Worker(JobContext(db=db, settings=settings, embedders=registry), import_handlers())
    try:
        yield Parts(db, settings, principal, gated, registry, worker, BlobStore(settings.files_dir))
    finally:
        gated.release.set()
        await db.dispose()


async def _dataset_with_text(parts: Parts, body: str = HARBOUR, chunk_size: int = 1000) -> tuple[int, int]:
    async with parts.db.sessions() as session:
        dataset = await create_dataset_service(session, parts.principal, parts.registry,
                                               DatasetCreate(name=unique("steps")))
        collection = await create_text_collection(
            session, parts.principal, parts.blobs, dataset.id,
            TextCollectionCreate(name="harbour.md", text=body, chunk_size=chunk_size),
            max_bytes=parts.settings.upload_max_bytes)
    return dataset.id, collection.id


async def _found(parts: Parts, dataset_id: int, mode: str) -> set[int]:
    async with parts.db.sessions() as session:
        dataset = (await session.execute(select(Dataset).where(Dataset.id == dataset_id))).scalar_one()
    result = await search(parts.db.sessions, parts.registry, [dataset], "harbour master ships pilots sandbanks",
                          SearchSettings(mode=mode, similarity=0, max_tokens=100_000))
    return {q.chunk_id for q in result.quotes}


async def _chunk_ids(parts: Parts, collection_id: int) -> set[int]:
    async with parts.db.sessions() as session:
        return set((await session.execute(select(Chunk.id).where(Chunk.collection_id == collection_id))).scalars())


async def test_retry_runs_a_failed_parse_again(parts: Parts) -> None:
    _, collection_id = await _dataset_with_text(parts)
    async with parts.db.sessions() as session:
        file_id = (await session.get(Collection, collection_id)).file_id  # type: ignore[union-attr]
    blob = parts.blobs.path_for(file_id).read_bytes()
    parts.blobs.path_for(file_id).unlink()
    await parts.run_all()
    async with parts.db.sessions() as session:
        failed = await session.get(Collection, collection_id)
        assert failed is not None and (failed.status, failed.error_code) == ("error", "file_missing")
        retried = await retry_collection(session, parts.principal, collection_id)
    assert retried.status == "pending" and retried.error is None
    assert await parts.count("SELECT count(*) FROM jobs WHERE status = 'queued' AND kind = 'parse'") == 1
    parts.blobs.write(blob)
    await parts.run_all()
    async with parts.db.sessions() as session:
        done = await session.get(Collection, collection_id)
        assert done is not None and done.status == "ready" and done.chunk_count == done.indexed_count >= 1


async def test_reindex_swaps_all_new_chunks_in_at_once(parts: Parts) -> None:
    dataset_id, collection_id = await _dataset_with_text(parts)
    await parts.run_all()
    old = await _chunk_ids(parts, collection_id)
    assert await _found(parts, dataset_id, "mixedRecall") <= old

    async with parts.db.sessions() as session:
        reindexing = await reindex_collection(session, parts.principal, collection_id,
                                              CollectionReindex(chunk_size=200))
        assert reindexing.status == "indexing"
        assert [c.id for c in (await list_collections(session, parts.principal, dataset_id)).items] == [collection_id]
    assert await parts.worker.run_once()  # the twin is parsed: new chunks with postings, no vectors yet
    twin_chunks = await parts.count("SELECT count(*) FROM chunks WHERE collection_id <> :c", c=collection_id)
    assert twin_chunks > len(old)
    for mode in ("fullText", "embedding", "mixedRecall"):
        assert await _found(parts, dataset_id, mode) <= old, mode

    parts.embedder.stop_at = parts.embedder.calls + 2  # let one batch commit, hold the next
    running = asyncio.create_task(parts.worker.run_once())
    assert await asyncio.to_thread(parts.embedder.reached.wait, 120)
    assert await parts.count("SELECT count(*) FROM chunks WHERE collection_id <> :c AND embedded = 1",
                             c=collection_id) > 0
    for mode in ("fullText", "embedding", "mixedRecall"):
        assert await _found(parts, dataset_id, mode) <= old, mode  # half embedded: still the old chunks only
    parts.embedder.release.set()
    assert await running
    await parts.run_all()

    new = await _chunk_ids(parts, collection_id)
    assert new and not new & old and len(new) == twin_chunks
    for mode in ("fullText", "embedding", "mixedRecall"):
        found = await _found(parts, dataset_id, mode)
        assert found and found <= new, mode
    async with parts.db.sessions() as session:
        swapped = await session.get(Collection, collection_id)
        assert swapped is not None and (swapped.status, swapped.chunk_size) == ("ready", 200)
        assert swapped.chunk_count == swapped.indexed_count == len(new) and "reindex_of" not in swapped.meta
    assert await parts.count("SELECT count(*) FROM collections") == 1
    assert await parts.count("SELECT count(*) FROM chunk_vectors v LEFT JOIN chunks c ON c.id = v.chunk_id "
                             "WHERE c.collection_id IS DISTINCT FROM :c", c=collection_id) == 0


async def test_delete_during_a_running_embed_stops_it_cleanly(parts: Parts, caplog: pytest.LogCaptureFixture) -> None:
    dataset_id, kept_id = await _dataset_with_text(parts)  # a collection of the same text shares the blob
    await parts.run_all()
    async with parts.db.sessions() as session:
        collection = await create_text_collection(
            session, parts.principal, parts.blobs, dataset_id,
            TextCollectionCreate(name="copy.md", text=HARBOUR, chunk_size=200),  # many chunks: several batches
            max_bytes=parts.settings.upload_max_bytes)
        file_id = (await session.get(Collection, kept_id)).file_id  # type: ignore[union-attr]
    assert await parts.worker.run_once()  # parsed
    parts.embedder.stop_at = parts.embedder.calls + 2  # one batch commits, the next waits inside the model
    caplog.set_level(logging.WARNING)
    embedding = asyncio.create_task(parts.worker.run_once())
    assert await asyncio.to_thread(parts.embedder.reached.wait, 120)
    assert await parts.count("SELECT count(*) FROM jobs WHERE status = 'running'") == 1

    async def delete(collection_id: int) -> None:
        async with parts.db.sessions() as session:
            await delete_collection(session, parts.principal, collection_id, blobs=parts.blobs)

    deleting = asyncio.create_task(delete(collection.id))
    while not await parts.count("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                "AND datname = current_database()"):
        assert not deleting.done(), deleting  # it waits for the running batch's row locks
        await asyncio.sleep(0.02)
    parts.embedder.release.set()
    assert await embedding
    await deleting
    await parts.run_all()

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    for table in ("chunks", "chunk_vectors", "chunk_terms"):
        assert await parts.count(f"SELECT count(*) FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM chunks c "
                                 f"WHERE c.id = t.{'id' if table == 'chunks' else 'chunk_id'} "
                                 f"AND c.collection_id = :k)", k=kept_id) == 0, table
    assert await parts.count("SELECT count(*) FROM collections") == 1
    assert await parts.count("SELECT count(*) FROM jobs") == 0
    assert parts.blobs.path_for(file_id).exists()  # still used by the other collection

    await delete(kept_id)
    for table in ("collections", "chunks", "chunk_vectors", "chunk_terms", "jobs", "files"):
        assert await parts.count(f"SELECT count(*) FROM {table}") == 0, table
    assert await parts.count("SELECT coalesce(sum(docs), 0) FROM fulltext_stats") == 0
    assert not parts.blobs.path_for(file_id).exists()
    assert not list(parts.blobs.root.rglob(".trash-*"))
