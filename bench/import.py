"""Import benchmark: 500 SciFact abstracts end to end, split into parse / chunk / embed / store.

    .venv/bin/python bench/import.py [--docs 500]

Each abstract becomes one ``.txt`` upload, imported through the product's real path: collection and
job rows, the worker's ``parse`` and ``embed`` jobs, PostgreSQL writes, until every collection is
ready. Time inside the embedder is measured by wrapping it; parsing (decode), chunking and jieba
segmentation are timed on the same inputs with the same functions; "store and queue" is the rest of
the wall time (database writes, job claims, commits).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text

from zhiku.auth.service import root_principal
from zhiku.config import Settings
from zhiku.embedding.registry import EmbedderRegistry, build_embedders
from zhiku.knowledge import collections, datasets
from zhiku.knowledge.chunker import split_text
from zhiku.knowledge.parsers import parser_for
from zhiku.knowledge.schemas import DatasetCreate
from zhiku.retrieval.segment import index_document
from zhiku.wiring import open_platform

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "scifact" / "corpus.jsonl"


class TimedEmbedder:
    """Delegates to the real embedder and measures the wall time during which any embed call runs.

    The worker runs several jobs at once, so calls overlap; the union of their intervals (not the sum)
    is the time the import spent embedding.
    """

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        self.seconds = 0.0
        self._active = 0
        self._since = 0.0
        self._lock = threading.Lock()
        for name in ("prefix_tokens",):  # optional Embedder extras the indexer may use
            if hasattr(inner, name):
                setattr(self, name, getattr(inner, name))

    def embed(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        with self._lock:
            if self._active == 0:
                self._since = time.perf_counter()
            self._active += 1
        try:
            return self.inner.embed(texts, kind)
        finally:
            with self._lock:
                self._active -= 1
                if self._active == 0:
                    self.seconds += time.perf_counter() - self._since

    def count_tokens(self, text_: str) -> int:
        return self.inner.count_tokens(text_)


async def open_timed_platform(url: str | None, wrapper: type[TimedEmbedder]):  # noqa: ANN201
    """A platform on a temporary data directory (and a temporary embedded PostgreSQL unless ``url``) whose
    embedder is wrapped by ``wrapper``: (platform, registry, the real embedder, the wrapped one)."""
    settings = Settings(database_url=url or "", data_dir=Path(tempfile.mkdtemp(prefix="zkimport-")),
                        worker_poll_seconds=0.05)
    real = build_embedders(settings).get()
    timed = wrapper(real)
    registry = EmbedderRegistry(default=real.model_name)
    registry.register(timed)
    return await open_platform(settings, embedders=registry), registry, real, timed


async def import_files(platform, principal, dataset_id: int, files: Sequence[tuple[str, bytes]]) -> float:  # noqa: ANN001
    """Upload ``files`` into the dataset through the real path, run the worker until every collection is
    ready or failed, and return the wall seconds that took."""
    started = time.perf_counter()
    for name, data in files:
        async with platform.db.sessions() as session:
            await collections.create_file_collection(session, principal, platform.blobs, dataset_id, name, data,
                                                     max_bytes=platform.settings.upload_max_bytes)
    stop = asyncio.Event()
    worker = asyncio.create_task(platform.worker().run_forever(stop))
    while True:
        async with platform.db.sessions() as session:
            left = (await session.execute(text(
                "SELECT count(*) FROM collections WHERE dataset_id = :d AND status NOT IN ('ready', 'error')"),
                {"d": dataset_id})).scalar_one()
        if left == 0:
            break
        await asyncio.sleep(0.2)
    total_s = time.perf_counter() - started
    stop.set()
    await worker
    return total_s


async def main(docs: int, url: str | None) -> None:
    abstracts = [json.loads(line) for line, _ in zip(CORPUS.open(), range(docs))]
    files = [(f"{a['id']}.txt", (a["title"] + "\n\n" + a["text"]).encode()) for a in abstracts]
    platform, registry, real, timed = await open_timed_platform(url, TimedEmbedder)
    try:
        # Stage timings on the same inputs, outside the database.
        t = time.perf_counter()
        docs_parsed = [parser_for(name).parse(data, name) for name, data in files]
        parse_s = time.perf_counter() - t
        t = time.perf_counter()
        pieces = [split_text(d.text, chunk_size=1000, overlap_ratio=0.2, markdown=False) for d in docs_parsed]
        chunk_s = time.perf_counter() - t
        t = time.perf_counter()
        for ps in pieces:
            for p in ps:
                index_document(p.text)
        segment_s = time.perf_counter() - t

        # End to end through the real import path.
        async with platform.db.sessions() as session:
            principal = await root_principal(session)
            ds = await datasets.create_dataset(session, principal, registry,
                                               DatasetCreate(name=f"scifact-{time.time():.0f}"))
        total_s = await import_files(platform, principal, ds.id, files)
        async with platform.db.sessions() as session:
            chunks, vectors, failed = (await session.execute(text(
                "SELECT (SELECT count(*) FROM chunks WHERE dataset_id = :d), "
                "(SELECT count(*) FROM chunk_vectors WHERE dataset_id = :d), "
                "(SELECT count(*) FROM collections WHERE dataset_id = :d AND status = 'error')"),
                {"d": ds.id})).one()
    finally:
        await platform.close()

    tokens = sum(real.count_tokens(p.text) for ps in pieces for p in ps)
    embed_s = timed.seconds
    rest = total_s - embed_s
    store_s = rest - parse_s - chunk_s - segment_s
    print(f"imported {len(files)} abstracts: {chunks} chunks, {vectors} vectors, {failed} failed, "
          f"{tokens} model tokens")
    print(f"{'stage':<22} {'seconds':>8} {'share':>7}")
    for name, secs in [("parse (decode)", parse_s), ("chunk", chunk_s), ("segment (jieba)", segment_s),
                       ("embed", embed_s), ("store + queue", store_s)]:
        print(f"{name:<22} {secs:8.2f} {secs / total_s:7.1%}")
    print(f"{'total (wall)':<22} {total_s:8.2f}")
    print(f"everything but embedding: {rest:.2f}s = {rest / total_s:.1%} of the total "
          f"(embedding throughput {tokens / embed_s:.0f} tokens/s)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=500)
    ap.add_argument("--database-url", default=None, help="external PostgreSQL (default: a temporary embedded one)")
    args = ap.parse_args()
    asyncio.run(main(args.docs, args.database_url))
