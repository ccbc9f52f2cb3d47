"""Retrieval quality: nDCG@10 and recall@10 of fullText, embedding and mixed search on labelled data.

    .venv/bin/python bench/retrieval.py                                  # both datasets, all modes
    .venv/bin/python bench/retrieval.py --dataset cmrc
    .venv/bin/python bench/retrieval.py --dataset scifact --modes fullText
    .venv/bin/python bench/retrieval.py --dataset scifact --limit-queries 300 --limit-docs 1782
    (300 claims, their 282 relevant abstracts and 1,500 others)

Data (``shared/data/eval``, see its README):

* SciFact: 5,183 abstracts, each ``title + " " + text`` as one chunk; 809 training claims.
* CMRC 2018 trial: 256 paragraphs, 1,000 questions (2 of the 1,002 are blank), in two settings.
  "sentence": paragraphs are split after 。！？!? (and line ends) and the sentence holding an answer's
  ``answer_start`` is the relevant chunk (the union over a question's answers). "paragraph": each
  paragraph is one chunk.

Each document or sentence is exactly one chunk (the chunker is not run), written the way the import
job writes chunks: a ``chunks`` row with ``fulltext = index_document(q)``, postings through
``fulltext.index_terms``, vectors through ``embed_chunk_rows`` with the bundled embedder. Identical
texts become one chunk (the pipeline's dedup would drop repeats anyway), relevant to every query that
points at any copy. Queries run through ``zhiku.retrieval.search.search`` with the default settings
except a token budget large enough never to cut the list; the first 10 quotes are scored.

``--limit-queries N`` picks N queries at random (seeded); ``--limit-docs N`` keeps every document
(CMRC: paragraph) relevant to the chosen queries plus random others up to N in all.

Vectors are cached in ``bench/.cache/<model>-<embedder>-<corpus>.npy`` (with a ``.keys.npy`` of
hex SHA-1s of kind + text beside it), so a rerun, or a full run after a limited one, only embeds what
is new. Query vectors are computed before the timed searches, so "ms/query" excludes the model.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import hashlib
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert, select, text, update

from zhiku.auth.service import root_principal
from zhiku.config import Settings
from zhiku.db.models import Chunk, Collection, Dataset
from zhiku.embedding.registry import EmbedderRegistry, build_embedders
from zhiku.embedding.service import model_tokens
from zhiku.embedding.windows import split_windows
from zhiku.knowledge import datasets
from zhiku.knowledge.indexing import embed_chunk_rows
from zhiku.knowledge.schemas import DatasetCreate
from zhiku.retrieval import fulltext
from zhiku.retrieval.index_text import chunk_text
from zhiku.retrieval.search import search
from zhiku.retrieval.segment import index_document
from zhiku.retrieval.settings import SearchSettings
from zhiku.wiring import Platform, open_platform

EVAL = ROOT.parent / "shared" / "data" / "eval"
SCIFACT_CORPUS = EVAL / "scifact" / "corpus.jsonl"
SCIFACT_QUERIES = EVAL / "scifact" / "queries-train.jsonl"
CMRC = EVAL / "cmrc2018" / "trial.json"
CACHE_DIR = Path(__file__).resolve().parent / ".cache"

MODES = ("fullText", "embedding", "mixed")
K = 10
EMBED_BATCH = 32  # chunks per embed_chunk_rows call (and per commit)
NO_BUDGET = 10**9  # tokens: the budget never cuts the quote list

# nDCG@10 figures from shared/data/eval/README.md, beside ours in the table.
REFERENCES: dict[tuple[str, str], str] = {
    ("scifact", "fullText"): "BM25 ≈ 0.665 (BEIR test)",
    ("scifact", "embedding"): "e5-small ≈ 0.65–0.68",
    ("cmrc-sentence", "fullText"): "jieba BM25 ≈ 0.66 (no seg. ≈ 0.02)",
}


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    relevant: frozenset[int]  # positions in Corpus.chunks


@dataclass(frozen=True)
class Corpus:
    name: str  # scifact | cmrc-sentence | cmrc-paragraph
    chunks: list[str]
    queries: list[Query]


class _Interner:
    """Distinct chunk texts in first-seen order; a repeat maps to the first copy's position."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self._pos: dict[str, int] = {}

    def add(self, chunk: str) -> int:
        if chunk not in self._pos:
            self._pos[chunk] = len(self.texts)
            self.texts.append(chunk)
        return self._pos[chunk]


def _pick(rng: random.Random, items: Sequence, limit: int | None) -> list:
    """``limit`` items at random, in their original order (all of them without a limit)."""
    if limit is None or limit >= len(items):
        return list(items)
    return [items[i] for i in sorted(rng.sample(range(len(items)), limit))]


def _keep_docs(rng: random.Random, all_ids: Sequence[str], needed: set[str], limit: int | None) -> set[str]:
    """The needed ids plus random others, ``limit`` in all (every id without a limit)."""
    if limit is None:
        return set(all_ids)
    others = [d for d in all_ids if d not in needed]
    return needed | set(rng.sample(others, max(0, min(len(others), limit - len(needed)))))


def load_scifact(limit_docs: int | None, limit_queries: int | None, seed: int) -> Corpus:
    rng = random.Random(seed)
    docs = [json.loads(line) for line in SCIFACT_CORPUS.open(encoding="utf-8")]
    all_queries = [json.loads(line) for line in SCIFACT_QUERIES.open(encoding="utf-8")]
    raw_queries = _pick(rng, all_queries, limit_queries)
    needed = {r for q in raw_queries for r in q["relevant"]}
    keep = _keep_docs(rng, [d["id"] for d in docs], needed, limit_docs)
    chunks = _Interner()
    position = {d["id"]: chunks.add(d["title"] + " " + d["text"]) for d in docs if d["id"] in keep}
    queries = [Query(q["id"], q["text"], frozenset(position[r] for r in q["relevant"] if r in position))
               for q in raw_queries]
    return Corpus("scifact", chunks.texts, [q for q in queries if q.relevant])


# A sentence ends after 。！？!? (with any closing quotes or brackets) or at a line end.
_SENTENCE = re.compile(r"[^。！？!?\n]*(?:[。！？!?]+[”’」』）)】]*|\n|$)")


def sentence_spans(paragraph: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the sentences of ``paragraph``, covering it completely, in order."""
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(paragraph) if m.end() > m.start()]


def _answer_offset(context: str, answer: dict) -> int:
    """``answer_start``, or where the answer text really is when the offset is off (a few trial answers)."""
    start, answer_text = answer["answer_start"], answer["text"]
    if context[start:start + len(answer_text)] == answer_text or answer_text not in context:
        return start
    found = [m.start() for m in re.finditer(re.escape(answer_text), context)]
    return min(found, key=lambda s: abs(s - start))


def load_cmrc(limit_docs: int | None, limit_queries: int | None, seed: int) -> list[Corpus]:
    rng = random.Random(seed)
    paragraphs = [p for article in json.loads(CMRC.read_text(encoding="utf-8"))["data"]
                  for p in article["paragraphs"]]
    # Two trial questions are blank; the search API refuses an empty query, so they are left out.
    questions = _pick(rng, [(p["id"], qa) for p in paragraphs for qa in p["qas"] if qa["question"].strip()],
                      limit_queries)
    keep = _keep_docs(rng, [p["id"] for p in paragraphs], {pid for pid, _ in questions}, limit_docs)
    sentences, whole = _Interner(), _Interner()
    sentence_of: dict[str, list[tuple[int, int, int]]] = {}  # paragraph id -> (start, end, chunk position)
    paragraph_pos: dict[str, int] = {}
    for p in paragraphs:
        if p["id"] not in keep:
            continue
        context = p["context"]
        paragraph_pos[p["id"]] = whole.add(context.strip())
        spans = []
        for start, end in sentence_spans(context):
            if context[start:end].strip():
                spans.append((start, end, sentences.add(context[start:end].strip())))
        sentence_of[p["id"]] = spans
    contexts = {p["id"]: p["context"] for p in paragraphs}
    by_sentence, by_paragraph = [], []
    for pid, qa in questions:
        relevant = set()
        for answer in qa["answers"]:
            offset = _answer_offset(contexts[pid], answer)
            # the sentence holding the offset; whitespace between sentences belongs to the next one
            spans = sentence_of[pid]
            relevant.add(next((pos for _, end, pos in spans if offset < end), spans[-1][2]))
        by_sentence.append(Query(qa["id"], qa["question"], frozenset(relevant)))
        by_paragraph.append(Query(qa["id"], qa["question"], frozenset({paragraph_pos[pid]})))
    return [Corpus("cmrc-sentence", sentences.texts, by_sentence),
            Corpus("cmrc-paragraph", whole.texts, by_paragraph)]


class CachedEmbedder:
    """The real embedder behind a vector cache on disk; only texts never seen before reach the model.

    Rows are keyed by SHA-1 of kind + text, so limited and full runs share one file per corpus.
    """

    def __init__(self, inner, corpus: str) -> None:
        self.inner = inner
        self.model_name = inner.model_name
        self.dim = inner.dim
        self.max_tokens = inner.max_tokens
        if hasattr(inner, "prefix_tokens"):  # windowing (model_tokens) counts the query/passage prefix
            self.prefix_tokens = inner.prefix_tokens
        stem = re.sub(r"[^A-Za-z0-9.]+", "-", f"{inner.model_name}-{type(inner).__name__}-{corpus}")
        self.path = CACHE_DIR / f"{stem}.npy"
        self.keys_path = CACHE_DIR / f"{stem}.keys.npy"
        self._rows: dict[bytes, int] = {}
        self._vectors: list[np.ndarray] = []
        if self.path.exists() and self.keys_path.exists():
            vectors, keys = np.load(self.path), np.load(self.keys_path)
            if len(vectors) == len(keys) and vectors.shape[1:] == (self.dim,):
                for key, vector in zip(keys, vectors):
                    self._rows.setdefault(bytes(key), len(self._rows))
                    if len(self._rows) > len(self._vectors):
                        self._vectors.append(vector)
        self.cached_at_start = len(self._rows)
        self._unsaved = 0
        self._saved_at = time.monotonic()
        self.tokens = 0  # model tokens and seconds spent on cache misses
        self.seconds = 0.0

    @staticmethod
    def _key(kind: str, text_: str) -> bytes:
        # hex, not the raw digest: numpy's bytes arrays drop trailing NUL bytes
        return hashlib.sha1(f"{kind}\0{text_}".encode()).hexdigest().encode()

    def has(self, text_: str, kind: str = "passage") -> bool:
        return self._key(kind, text_) in self._rows

    def embed(self, texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        keys = [self._key(kind, t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._rows))
        if missing:
            todo = dict(zip(keys, texts))
            started = time.perf_counter()
            vectors = self.inner.embed([todo[k] for k in missing], kind)
            self.seconds += time.perf_counter() - started
            self.tokens += sum(self.inner.count_tokens(todo[k]) for k in missing)
            for k, v in zip(missing, vectors):
                self._rows[k] = len(self._vectors)
                self._vectors.append(np.asarray(v, dtype=np.float32))
            self._unsaved += len(missing)
            if time.monotonic() - self._saved_at > 30:
                self.save()
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vectors[self._rows[k]] for k in keys])

    def count_tokens(self, text_: str) -> int:
        return self.inner.count_tokens(text_)

    def save(self) -> None:
        if not self._unsaved:
            return
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        keys = np.empty(len(self._rows), dtype="S40")
        for k, i in self._rows.items():
            keys[i] = k
        for path, array in ((self.path, np.stack(self._vectors)), (self.keys_path, keys)):
            partial = path.with_name(path.name + ".partial")
            with partial.open("wb") as f:
                np.save(f, array)
            os.replace(partial, path)
        self._unsaved = 0
        self._saved_at = time.monotonic()


def ndcg_at_k(ranked: Sequence[int], relevant: frozenset[int], k: int = K) -> float:
    dcg = sum(1.0 / math.log2(rank + 2) for rank, pos in enumerate(ranked[:k]) if pos in relevant)
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(k, len(relevant))))
    return dcg / ideal if ideal else 0.0


def recall_at_k(ranked: Sequence[int], relevant: frozenset[int], k: int = K) -> float:
    return len(set(ranked[:k]) & relevant) / len(relevant) if relevant else 0.0


def _batches(items: Sequence, size: int) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f}s"


async def load_corpus(platform: Platform, registry: EmbedderRegistry, corpus: Corpus,
                      embedder: CachedEmbedder | None) -> Dataset:
    """A dataset holding the corpus, one chunk per text, indexed by the import job's own functions."""
    started = time.perf_counter()
    async with platform.db.sessions() as session:
        principal = await root_principal(session)
        ds = await datasets.create_dataset(session, principal, registry,
                                           DatasetCreate(name=f"{corpus.name}-{time.time():.0f}"))
        collection = Collection(dataset_id=ds.id, name=corpus.name, type="text", status="indexing",
                                chunk_count=len(corpus.chunks), meta={"bench": "retrieval"})
        session.add(collection)
        await session.flush()
        rows = [{"dataset_id": ds.id, "collection_id": collection.id, "chunk_index": i, "q": chunk, "a": "",
                 "headings": [], "fulltext": index_document(chunk)} for i, chunk in enumerate(corpus.chunks)]
        for batch in _batches(rows, 1000):
            await session.execute(insert(Chunk), list(batch))
        stored = (await session.execute(select(Chunk.id, Chunk.fulltext, Chunk.q)
                                        .where(Chunk.collection_id == collection.id)
                                        .order_by(Chunk.chunk_index))).all()
        await fulltext.index_terms(session, ds.id, [(cid, ft.split()) for cid, ft, _ in stored])
        await session.commit()
        collection_id = collection.id
    print(f"[{corpus.name}] {len(stored)} chunks and their postings stored in "
          f"{time.perf_counter() - started:.1f}s", flush=True)

    if embedder is not None:
        await _embed(platform, embedder, corpus, ds.id, [(cid, q, "") for cid, _, q in stored])
    async with platform.db.sessions() as session:
        await session.execute(update(Collection).where(Collection.id == collection_id)
                              .values(status="ready", indexed_count=len(stored)))
        await session.commit()
    async with platform.db.engine.connect() as conn:
        await conn.execute(text("ANALYZE chunks"))
        await conn.execute(text("ANALYZE chunk_terms"))
        await conn.execute(text("ANALYZE chunk_vectors"))
    async with platform.db.sessions() as session:
        dataset = await session.get(Dataset, ds.id)
    assert dataset is not None
    return dataset


async def _embed(platform: Platform, embedder: CachedEmbedder, corpus: Corpus, dataset_id: int,
                 rows: list[tuple[int, str, str]]) -> None:
    started = time.perf_counter()

    def count(piece: str) -> int:
        return model_tokens(embedder, piece, "passage")

    # The texts embed_chunk_rows will embed: a chunk over the model's input limit is several windows.
    texts = [w for _, q, a in rows for w in split_windows(chunk_text(q, a), count, embedder.max_tokens)]
    tokens = [count(t) for t in texts]
    todo_tokens = sum(n for n, t in zip(tokens, texts) if not embedder.has(t))
    print(f"[{corpus.name}] embedding {len(rows)} chunks as {len(texts)} texts ({sum(tokens):,} tokens, "
          f"{todo_tokens:,} not cached; cache {embedder.path.name} holds {embedder.cached_at_start} vectors)",
          flush=True)
    printed = time.monotonic()
    done = 0
    for batch in _batches(rows, EMBED_BATCH):
        async with platform.db.sessions() as session:
            await embed_chunk_rows(session, embedder, dataset_id, list(batch))
            await session.commit()
        done += len(batch)
        if embedder.tokens and (time.monotonic() - printed > 15 or done == len(rows)):
            rate = embedder.tokens / embedder.seconds
            left = max(0, todo_tokens - embedder.tokens)
            print(f"[{corpus.name}]   {done}/{len(rows)} chunks, {embedder.tokens:,} new tokens "
                  f"at {rate:,.0f} tokens/s, about {_minutes(left / rate)} left", flush=True)
            printed = time.monotonic()
    embedder.save()
    print(f"[{corpus.name}] vectors stored in {time.perf_counter() - started:.1f}s", flush=True)


async def evaluate(platform: Platform, registry: EmbedderRegistry, dataset: Dataset, corpus: Corpus,
                   modes: Sequence[str], embedder: CachedEmbedder | None) -> list[dict]:
    if embedder is not None:  # query vectors first, in batches, so the timed searches hit the cache
        texts = [q.text.strip() for q in corpus.queries]
        for batch in _batches([t for t in texts if not embedder.has(t, "query")], 64):
            embedder.embed(list(batch), "query")
        embedder.save()
    results = []
    for mode in modes:
        settings = SearchSettings(mode=mode, max_tokens=NO_BUDGET)  # type: ignore[arg-type]
        ndcg, recall, ms, empty = [], [], [], 0
        for query in corpus.queries:
            t = time.perf_counter()
            found = await search(platform.db.sessions, registry, [dataset], query.text, settings)
            ms.append((time.perf_counter() - t) * 1000)
            ranked = [c.chunk_index for c in found.quotes[:K]]
            empty += not ranked
            ndcg.append(ndcg_at_k(ranked, query.relevant))
            recall.append(recall_at_k(ranked, query.relevant))
        results.append({"corpus": corpus.name, "mode": mode, "chunks": len(corpus.chunks),
                        "queries": len(corpus.queries), "ndcg": statistics.mean(ndcg),
                        "recall": statistics.mean(recall), "ms": statistics.median(ms), "empty": empty})
        print(f"[{corpus.name}] {mode}: nDCG@10 {results[-1]['ndcg']:.3f}, "
              f"recall@10 {results[-1]['recall']:.3f}", flush=True)
    return results


def print_table(results: list[dict], embedder_name: str | None) -> None:
    header = (f"{'corpus':<15} {'chunks':>6} {'queries':>7} {'mode':<9} {'nDCG@10':>7} {'R@10':>6} "
              f"{'ms/q':>6} {'empty':>5}  reference nDCG@10")
    print()
    print(header)
    print("-" * (len(header) + 16))
    for r in results:
        print(f"{r['corpus']:<15} {r['chunks']:>6} {r['queries']:>7} {r['mode']:<9} {r['ndcg']:>7.3f} "
              f"{r['recall']:>6.3f} {r['ms']:>6.1f} {r['empty']:>5}  "
              f"{REFERENCES.get((r['corpus'], r['mode']), '')}")
    print()
    print("ms/q: median search time, query embedding excluded (precomputed); empty: queries with no quote.")
    if embedder_name:
        print(f"vectors: {embedder_name}")


async def main(args: argparse.Namespace) -> None:
    corpora: list[Corpus] = []
    if args.dataset in ("scifact", "both"):
        corpora.append(load_scifact(args.limit_docs, args.limit_queries, args.seed))
    if args.dataset in ("cmrc", "both"):
        corpora.extend(load_cmrc(args.limit_docs, args.limit_queries, args.seed))
    need_vectors = any(m != "fullText" for m in args.modes)

    url = args.database_url
    tmp = Path(tempfile.mkdtemp(prefix="zkretrieval-"))
    # Registered before the server starts, so it runs after the server's own exit hook has stopped it.
    atexit.register(shutil.rmtree, tmp, True)
    settings = Settings(database_url=url or "", data_dir=tmp, gateway_enabled=False)
    platform = await open_platform(settings, embedders=build_embedders(settings))
    real = platform.embedders.get()
    results: list[dict] = []
    try:
        for corpus in corpora:
            # Each corpus gets its own vector cache; datasets and searches resolve the model through it.
            embedder = CachedEmbedder(real, corpus.name) if need_vectors else None
            registry = EmbedderRegistry(default=real.model_name)
            registry.register(embedder or real)
            try:
                dataset = await load_corpus(platform, registry, corpus, embedder)
                results.extend(await evaluate(platform, registry, dataset, corpus, args.modes, embedder))
            finally:
                if embedder is not None:
                    embedder.save()
    finally:
        await platform.close()
    print_table(results, f"{real.model_name} ({type(real).__name__})" if need_vectors else None)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("scifact", "cmrc", "both"), default="both")
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--limit-docs", type=int, default=None,
                    help="documents (CMRC: paragraphs) to index: the relevant ones plus random others")
    ap.add_argument("--limit-queries", type=int, default=None, help="queries to run, picked at random")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--database-url", default=None,
                    help="external PostgreSQL (default: a temporary embedded one)")
    asyncio.run(main(ap.parse_args()))
