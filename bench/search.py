"""Search benchmark: latency of embedding, full-text and mixed search, and HNSW recall@10.

    .venv/bin/python bench/search.py --sizes 10000 100000

Chunks are built from real SciFact sentences (3–5 per chunk, shuffled, so every chunk is distinct
text for the full-text index). Vectors are generated — clustered unit vectors, 384-d like the bundled
model — to isolate the store from the model; the model's own query-embedding latency is measured
separately. Queries reuse the words of a random chunk and a vector near that chunk's vector.

Mixed search runs the product's own pipeline (``zhiku.retrieval.search.search``) with an embedder
that returns the prepared query vector, so fusion, candidate loading, dedup and the token budget are
all included. Recall@10 compares the HNSW answer (ef_search 100, iterative scan) with an exact scan
computed in numpy over the same vectors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text

from zhiku.config import Settings
from zhiku.db.engine import open_database
from zhiku.db.migrate import migrate
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.retrieval import fulltext
from zhiku.retrieval.pgvector_store import HNSW_EF_SEARCH, PGVECTOR_STORE
from zhiku.retrieval.search import search
from zhiku.retrieval.segment import index_document
from zhiku.retrieval.settings import SearchSettings

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "data" / "eval" / "scifact" / "corpus.jsonl"
MODEL_PREFIX = "bench-e5-shaped"
DIM = 384


class PreparedEmbedder:
    """Returns the vector prepared for each query text (the store is measured, not the model)."""

    dim = DIM
    max_tokens = 512

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self.vectors: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        return np.stack([self.vectors[t] for t in texts])

    def count_tokens(self, text: str) -> int:
        return len(text) // 4


def sentences() -> list[tuple[str, str]]:
    out = []
    for line in CORPUS.open():
        doc = json.loads(line)
        for s in doc["text"].replace("\n", " ").split(". "):
            s = s.strip()
            if len(s) > 40:
                out.append((s, index_document(s)))
    return out


def clustered_vectors(n: int, rng: np.random.Generator, clusters: int = 256) -> np.ndarray:
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    assign = rng.integers(0, clusters, n)
    v = centres[assign] + 0.9 * rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def run(size: int, url: str | None, queries: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    random.seed(seed)
    # A model name per run: each run gets its own partial HNSW index, built after its vectors are loaded.
    MODEL = f"{MODEL_PREFIX}-{size}-{int(time.time())}"
    tmp = tempfile.mkdtemp(prefix="zkbench-")
    settings = Settings(database_url=url or "", data_dir=Path(tmp))
    db = open_database(settings)
    await migrate(db)
    sents = sentences()
    vectors = clustered_vectors(size, rng)
    print(f"[{size}] building {size} chunks from {len(sents)} SciFact sentences…", flush=True)
    t0 = time.perf_counter()
    async with db.engine.begin() as conn:
        team = (await conn.execute(text("INSERT INTO teams (name) VALUES ('bench') RETURNING id"))).scalar_one()
        ds = (await conn.execute(text(
            "INSERT INTO datasets (team_id, name, description, embedding_model, vector_dim, chunk_size) "
            "VALUES (:t, :n, '', :m, :d, 1000) RETURNING id"),
            {"t": team, "n": f"bench-{size}-{seed}-{time.time()}", "m": MODEL, "d": DIM})).scalar_one()
        col = (await conn.execute(text(
            "INSERT INTO collections (dataset_id, name, type, status, training_mode, chunk_size, chunk_count, "
            "indexed_count, metadata) VALUES (:d, 'bench', 'text', 'ready', 'chunk', 1000, :n, :n, '{}') "
            "RETURNING id"), {"d": ds, "n": size})).scalar_one()
        raw = await conn.get_raw_connection()
        pg = raw.driver_connection
        chunk_rows, texts = [], []
        for i in range(size):
            picked = random.sample(sents, random.randint(3, 5))
            q = ". ".join(s for s, _ in picked) + "."
            texts.append(q)
            chunk_rows.append((ds, col, i, q, "", "[]", " ".join(f for _, f in picked), 1))
        await pg.copy_records_to_table(
            "chunks", records=chunk_rows,
            columns=["dataset_id", "collection_id", "chunk_index", "q", "a", "headings", "fulltext", "embedded"])
        ids = [r["id"] for r in await pg.fetch("SELECT id FROM chunks WHERE collection_id = $1 ORDER BY chunk_index",
                                                 col)]
        fulltexts = [row[6] for row in chunk_rows]
        vec_rows = [(cid, ds, MODEL, "default", 0, "", "[" + ",".join(f"{x:.6f}" for x in v) + "]")
                    for cid, v in zip(ids, vectors)]
        await pg.execute("CREATE TEMP TABLE v_in (chunk_id bigint, dataset_id bigint, model text, kind text, "
                         "part int, text text, embedding text) ON COMMIT DROP")
        await pg.copy_records_to_table("v_in", records=vec_rows)
        await pg.execute("INSERT INTO chunk_vectors (chunk_id, dataset_id, model, kind, part, text, embedding) "
                         "SELECT chunk_id, dataset_id, model, kind, part, text, embedding::vector FROM v_in")
    # full-text postings through the product's own indexer, in batches
    for start in range(0, size, 5000):
        async with db.sessions() as session:
            await fulltext.index_terms(session, ds, [(ids[i], fulltexts[i].split())
                                                     for i in range(start, min(size, start + 5000))])
            await session.commit()
    load_s = time.perf_counter() - t0
    print(f"[{size}] loaded in {load_s:.1f}s; building HNSW index…", flush=True)
    t0 = time.perf_counter()
    async with db.engine.begin() as conn:
        await conn.execute(text("SET maintenance_work_mem = '1GB'"))
        await PGVECTOR_STORE.ensure_index(conn, MODEL, DIM)
        await conn.execute(text("ANALYZE chunks"))
        await conn.execute(text("ANALYZE chunk_terms"))
        await conn.execute(text("ANALYZE chunk_vectors"))
    index_s = time.perf_counter() - t0

    # queries: words of a random chunk, a vector near that chunk's vector
    embedder = PreparedEmbedder(MODEL)
    registry = EmbedderRegistry(default=MODEL)
    registry.register(embedder)
    qs = []
    for _ in range(queries):
        i = int(rng.integers(0, size))
        words = texts[i].split()
        start = int(rng.integers(0, max(1, len(words) - 8)))
        qtext = " ".join(words[start:start + 8]) + f" #{len(qs)}"
        qv = vectors[i] + 0.6 * rng.standard_normal(DIM).astype(np.float32) / np.sqrt(DIM) * 4
        qv = (qv / np.linalg.norm(qv)).astype(np.float32)
        embedder.vectors[qtext] = qv
        qs.append((qtext, qv))

    from zhiku.db.models import Dataset

    async with db.sessions() as s:
        dataset = await s.get(Dataset, ds)

    async def timed(mode: str) -> list[float]:
        st = SearchSettings(mode=mode)  # type: ignore[arg-type]
        out = []
        for qtext, _ in qs[:5]:  # warm caches
            await search(db.sessions, registry, [dataset], qtext, st)
        for qtext, _ in qs:
            t = time.perf_counter()
            await search(db.sessions, registry, [dataset], qtext, st)
            out.append((time.perf_counter() - t) * 1000)
        return out

    results = {mode: await timed(mode) for mode in ("embedding", "fullText", "mixed")}

    # recall@10 of the HNSW path against exact search
    recalls = []
    id_of_row = np.array(ids)
    async with db.sessions() as s:
        for qtext, qv in qs[:200]:
            await s.execute(text(f"SET LOCAL hnsw.ef_search = {HNSW_EF_SEARCH}"))
            await s.execute(text("SET LOCAL hnsw.iterative_scan = relaxed_order"))
            lit = "[" + ",".join(f"{x:.7g}" for x in qv.tolist()) + "]"
            got = [r[0] for r in await s.execute(text(
                f"SELECT chunk_id FROM chunk_vectors WHERE model = :m AND dataset_id = ANY(:ids) "
                f"ORDER BY embedding::vector({DIM}) <=> CAST(:q AS vector({DIM})) LIMIT 10"),
                {"m": MODEL, "ids": [ds], "q": lit})]
            exact = id_of_row[np.argsort(-(vectors @ qv))[:10]]
            recalls.append(len(set(got) & set(exact.tolist())) / 10)
            await s.commit()
    await db.dispose()
    return {"size": size, "load_s": load_s, "index_s": index_s, "latency_ms": results,
            "recall_at_10": statistics.mean(recalls)}


def query_embedding_latency(n: int = 50) -> tuple[float, float]:
    from zhiku.embedding.registry import build_embedders

    embedder = build_embedders(Settings()).get()
    embedder.embed(["warm up"], "query")
    times = []
    for i in range(n):
        t = time.perf_counter()
        embedder.embed([f"how do statins affect cholesterol {i}"], "query")
        times.append((time.perf_counter() - t) * 1000)
    return pct(times, 50), pct(times, 95)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--database-url", default=None, help="external PostgreSQL (default: a temporary embedded one)")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    url = args.database_url
    if url is None:
        from zhiku.db.embedded import start_embedded

        url = start_embedded(Path(tempfile.mkdtemp(prefix="zkbpg-")) / "pg")
    rows = [asyncio.run(run(size, url, args.queries, args.seed)) for size in args.sizes]
    q50, q95 = query_embedding_latency()
    print()
    print(f"{'chunks':>8} | {'mode':<9} | {'p50 ms':>7} | {'p95 ms':>7}")
    print("-" * 42)
    for row in rows:
        for mode, values in row["latency_ms"].items():
            print(f"{row['size']:>8} | {mode:<9} | {pct(values, 50):7.2f} | {pct(values, 95):7.2f}")
    print()
    for row in rows:
        print(f"{row['size']:>8} chunks: HNSW recall@10 = {row['recall_at_10']:.3f} "
              f"(load {row['load_s']:.0f}s, index build {row['index_s']:.0f}s)")
    print(f"query embedding with the bundled model (not included above): p50 {q50:.1f} ms, p95 {q95:.1f} ms")


if __name__ == "__main__":
    main()
