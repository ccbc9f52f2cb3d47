"""The search pipeline: query embedding and jieba full text in parallel → RRF → filters → quotes.

Candidate counts, the RRF k formula, the similarity threshold, dedup and the
token budget follow FastGPT (REFERENCE.md); the pure parts live in ``fusion``.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from zhiku.db.collection_types import source_kind
from zhiku.db.models import Dataset
from zhiku.embedding.base import Reranker
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.errors import InvalidInput, ServiceUnavailable
from zhiku.retrieval import fulltext
from zhiku.retrieval.chunk_filter import NO_FILTER, ChunkFilter
from zhiku.retrieval.fusion import (
    Candidate,
    ScoreItem,
    ScoreType,
    apply_token_budget,
    dedup,
    filter_similarity,
    iter_dedup,
    rrf_fuse,
    rrf_k,
)
from zhiku.retrieval.index_text import chunk_text
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE
from zhiku.retrieval.segment import query_terms
from zhiku.retrieval.settings import RETRIEVAL_QUERY_CHARS, SearchMode, SearchSettings, check_query_length
from zhiku.retrieval.vector_store import VectorHit, VectorStore
from zhiku.tokencount import count_tokens

# Candidate counts per list (FastGPT: 100 / 100 / 80 vector + 60 full text).
EMBEDDING_ONLY_LIMIT = 100
FULLTEXT_ONLY_LIMIT = 100
MIXED_VECTOR_LIMIT = 80
MIXED_FULLTEXT_LIMIT = 60


# How many deduplicated candidates go to the rerank model.
RERANK_CANDIDATES = 50


@dataclass(frozen=True)
class SearchResult:
    quotes: list[Candidate]
    mode: SearchMode
    duration_ms: float
    reranked: bool = False
    timings: dict[str, float] = field(default_factory=dict)


async def _load_candidates(session: AsyncSession, ranked: Sequence[tuple[int, float]],
                           score_type: ScoreType) -> list[Candidate]:
    """Chunks ranked best first as (id, score), with their text and source, as candidates ranked 0, 1, 2…"""
    if not ranked:
        return []
    result = await session.execute(text(
        "SELECT c.id, c.q, c.a, c.dataset_id, c.collection_id, c.chunk_index, c.metadata, col.name, "
        "col.type AS collection_type, r.score "
        "FROM unnest(CAST(:ids AS bigint[]), CAST(:scores AS float8[])) "
        "WITH ORDINALITY AS r(id, score, pos) JOIN chunks c ON c.id = r.id "
        "JOIN collections col ON col.id = c.collection_id ORDER BY r.pos"),
        {"ids": [cid for cid, _ in ranked], "scores": [score for _, score in ranked]})
    return [Candidate(chunk_id=r.id, q=r.q, a=r.a, dataset_id=r.dataset_id, collection_id=r.collection_id,
                      chunk_index=r.chunk_index, source_name=r.name, collection_type=r.collection_type,
                      meta=r.metadata or {},
                      scores=(ScoreItem(type=score_type, value=float(r.score), index=rank),))
            for rank, r in enumerate(result.all())]


# A question of more than this many tokens (estimated without the tokenizer, which takes milliseconds on
# a long text: each non-ASCII character about one token, four ASCII characters about one) is long: its
# vector is the embedding of its first LONG_QUERY_TOKENS or so, and it is embedded in the long-question
# lane, one at a time per server, so a burst of them queues behind itself instead of in front of
# everyone's short questions, which share the model's run lock. A full 512-token forward pass costs
# about 5x a 128-token one (0.30 s against 0.065 s on two idle cores), and a pasted page's opening says
# what it is about; full-text search still reads the first RETRIEVAL_QUERY_CHARS characters. A
# 200-character English question (about 50 tokens) is short; 200 Chinese characters are long.
LONG_QUERY_TOKENS = 128
# At most this many long questions wait for the lane; one more is refused at once with 503
# ``long_questions_busy`` and ``Retry-After`` instead of joining a queue that grows faster than it drains
# (3 maximal questions a second on two busy cores) until its clients time out.
LONG_QUERY_QUEUE = 4
LONG_QUERY_RETRY_AFTER_SECONDS = 2


class _LongQueryLane:
    def __init__(self) -> None:
        self._turn = asyncio.Semaphore(1)
        self._waiting = 0

    async def embed(self, embed: Any, query: str) -> Any:
        if self._turn.locked() and self._waiting >= LONG_QUERY_QUEUE:
            raise ServiceUnavailable(
                f"{LONG_QUERY_QUEUE} long questions are already waiting to be embedded; retry shortly",
                code="long_questions_busy", headers={"Retry-After": str(LONG_QUERY_RETRY_AFTER_SECONDS)})
        self._waiting += 1
        try:
            await self._turn.acquire()
        finally:
            self._waiting -= 1
        try:
            return (await asyncio.to_thread(lambda: embed([leading_tokens(query, LONG_QUERY_TOKENS)], "query")))[0]
        finally:
            self._turn.release()


_long_query_lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LongQueryLane] = \
    weakref.WeakKeyDictionary()


def estimated_tokens(text: str) -> int:
    ascii_chars = len(text.encode("ascii", "ignore"))
    return len(text) - ascii_chars + ascii_chars // 4


def leading_tokens(text: str, tokens: int) -> str:
    """The start of ``text`` whose estimated tokens (:func:`estimated_tokens`) are at most ``tokens``."""
    cost = 0
    for end, char in enumerate(text):
        cost += 1 if char.isascii() else 4  # in quarter tokens
        if cost > 4 * tokens:
            return text[:end]
    return text


async def _embed_query(embedders: EmbedderRegistry, model: str, query: str) -> Any:
    embed = embedders.get(model).embed
    if estimated_tokens(query) <= LONG_QUERY_TOKENS:
        return (await asyncio.to_thread(embed, [query], "query"))[0]
    lane = _long_query_lanes.setdefault(asyncio.get_running_loop(), _LongQueryLane())
    return await lane.embed(embed, query)


async def _vector_candidates(sessions: async_sessionmaker[AsyncSession], embedders: EmbedderRegistry,
                             vector_store: VectorStore, datasets: list[Dataset], query: str,
                             limit: int, chunk_filter: ChunkFilter = NO_FILTER) -> list[Candidate]:
    by_model: dict[str, list[int]] = {}
    for ds in datasets:
        by_model.setdefault(ds.embedding_model, []).append(ds.id)
    queries = {model: await _embed_query(embedders, model, query) for model in by_model}
    hits: list[VectorHit] = []
    async with sessions() as session:
        for model, ids in by_model.items():
            hits.extend(await vector_store.search(session, model, queries[model], ids, limit, chunk_filter))
        hits.sort(key=lambda h: -h.score)  # several models: merge their lists by score
        return await _load_candidates(session, [(h.chunk_id, h.score) for h in hits[:limit]], "embedding")


async def _fulltext_candidates(sessions: async_sessionmaker[AsyncSession], dataset_ids: list[int], query: str,
                               limit: int, chunk_filter: ChunkFilter = NO_FILTER) -> list[Candidate]:
    terms = await asyncio.to_thread(query_terms, query)  # jieba: CPU work, kept off the event loop
    if not terms:
        return []
    async with sessions() as session:
        ranked = await fulltext.search_terms(session, dataset_ids, terms, limit, chunk_filter)
        return await _load_candidates(session, ranked, "fullText")


async def _rerank(reranker: Reranker, query: str, candidates: list[Candidate],
                  settings: SearchSettings) -> list[Candidate]:
    """FastGPT's rerank: the model's order is fused with the search order by ``rerank_weight``, and the
    similarity threshold then applies to the rerank score."""
    pool = candidates[:RERANK_CANDIDATES]
    scores = await asyncio.to_thread(reranker.rerank, query, [chunk_text(c.q, c.a) for c in pool])
    order = sorted(range(len(pool)), key=lambda i: -scores[i])
    reranked = [replace(pool[i], scores=(ScoreItem(type="reRank", value=float(scores[i]), index=rank),))
                for rank, i in enumerate(order)]
    k_rerank, k_search = rrf_k(settings.rerank_weight)
    fused = rrf_fuse([(pool, k_search), (reranked, k_rerank)])
    return filter_similarity(fused, settings.similarity, "reRank")


async def chunk_filter_for(sessions: async_sessionmaker[AsyncSession], dataset_ids: Sequence[int],
                           collection_ids: Sequence[int] | None = None,
                           tags: Sequence[str] | None = None) -> ChunkFilter:
    """The collections a search of these datasets may return chunks from: those named (``collection_ids``)
    and/or carrying any of ``tags``; never a re-index twin (its chunks replace the original's when ready)."""
    filtered = collection_ids is not None or bool(tags)
    where = ["dataset_id = ANY(:ds)"]
    params: dict[str, Any] = {"ds": list(dataset_ids)}
    if collection_ids is not None:
        where.append("id = ANY(:ids)")
        params["ids"] = list(collection_ids)
    if tags:
        where.append("tags ?| CAST(:tags AS text[])")
        params["tags"] = list(tags)
    async with sessions() as session:
        rows = (await session.execute(text(
            f"SELECT id, metadata ? 'reindex_of' AS twin FROM collections WHERE {' AND '.join(where)}"),
            params)).all()
    twins = tuple(r.id for r in rows if r.twin)
    if filtered:
        return ChunkFilter(collection_ids=tuple(r.id for r in rows if not r.twin))
    return ChunkFilter(exclude_collection_ids=twins) if twins else NO_FILTER


async def search(sessions: async_sessionmaker[AsyncSession], embedders: EmbedderRegistry,
                 datasets: list[Dataset], query: str, settings: SearchSettings,
                 reranker: Reranker | None = None, *,
                 vector_store: VectorStore = PGVECTOR_STORE, collection_ids: Sequence[int] | None = None,
                 tags: Sequence[str] | None = None) -> SearchResult:
    """Search these datasets; ``collection_ids`` and ``tags`` narrow it to those collections (both: to the
    named ones carrying a tag), inside each search so the candidate counts still fill."""
    query = query.strip()
    if not query:
        raise InvalidInput("the search text is empty", code="empty_query")
    check_query_length(query)
    query = query[:RETRIEVAL_QUERY_CHARS]
    started = time.perf_counter()
    if not datasets:
        return SearchResult(quotes=[], mode=settings.mode, duration_ms=0.0)
    ids = [d.id for d in datasets]
    chunk_filter = await chunk_filter_for(sessions, ids, collection_ids, tags)
    if chunk_filter.matches_nothing:
        return SearchResult(quotes=[], mode=settings.mode, duration_ms=(time.perf_counter() - started) * 1000)
    will_rerank = settings.rerank and reranker is not None
    if settings.mode == "embedding":
        candidates = await _vector_candidates(sessions, embedders, vector_store, datasets, query,
                                              EMBEDDING_ONLY_LIMIT, chunk_filter)
        if not will_rerank:  # with rerank, the threshold applies to the rerank score instead
            candidates = filter_similarity(candidates, settings.similarity, "embedding")
    elif settings.mode == "fullText":
        candidates = await _fulltext_candidates(sessions, ids, query, FULLTEXT_ONLY_LIMIT, chunk_filter)
    else:
        vec, ft = await asyncio.gather(
            _vector_candidates(sessions, embedders, vector_store, datasets, query, MIXED_VECTOR_LIMIT,
                               chunk_filter),
            _fulltext_candidates(sessions, ids, query, MIXED_FULLTEXT_LIMIT, chunk_filter))
        k_vec, k_ft = rrf_k(settings.embedding_weight)
        candidates = rrf_fuse([(vec, k_vec), (ft, k_ft)])
    reranked = will_rerank and bool(candidates)
    if reranked:
        assert reranker is not None
        quotes = apply_token_budget(await _rerank(reranker, query, dedup(candidates), settings),
                                    settings.max_tokens, count_tokens)
    else:
        quotes = apply_token_budget(iter_dedup(candidates), settings.max_tokens, count_tokens)
    return SearchResult(quotes=quotes, mode=settings.mode, duration_ms=(time.perf_counter() - started) * 1000,
                        reranked=reranked)


def quote_dict(c: Candidate) -> dict[str, Any]:
    """A quote in FastGPT's quoteList shape, with the score breakdown, and where in its file it came
    from: ``page`` (PDF; None elsewhere), the chunk's ``metadata`` and the ``citation`` text
    ("handbook.pdf p. 12").

    Two fields FastGPT's quote items lack (its ``SearchDataResponseItemType`` names no source type) tell a
    page whether to offer "Open the source" without asking about the collection: ``collectionType``
    (Zhiku's type, as ``GET /api/collections/{id}`` answers it) and ``sourceKind`` (``"file"``: its
    document downloads; ``"url"``: a web page; ``None``: none to open), from
    :func:`zhiku.db.collection_types.source_kind`. Whether the reader may open it is still the source
    routes' call."""
    return {"id": str(c.chunk_id), "q": c.q, "a": c.a, "datasetId": str(c.dataset_id),
            "collectionId": str(c.collection_id), "sourceName": c.source_name, "chunkIndex": c.chunk_index,
            "collectionType": c.collection_type, "sourceKind": source_kind(c.collection_type),
            "page": c.meta.get("page"), "metadata": c.meta, "citation": c.citation,
            "score": [{"type": s.type, "value": round(s.value, 6), "index": s.index} for s in c.scores]}
