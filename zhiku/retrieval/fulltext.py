"""BM25 full-text search over jieba terms, in plain PostgreSQL.

Each chunk's terms become postings ``(dataset_id, term, chunk_id, weight)`` where ``weight`` is the
BM25 term-frequency part, precomputed at index time. A query reads, for each of its terms, the best
postings first from one b-tree (``ix_chunk_terms_lookup``), at most ``POSTINGS_PER_TERM`` of them,
and sums ``idf × weight``. Rare terms are read completely; very common terms contribute only their
strongest chunks, which is where their small IDF matters anyway. The cost is bounded by the number
of query terms, not by how many chunks match — unlike ranking every ``tsvector`` match.

Document frequencies (``fulltext_terms``) and per-dataset counts (``fulltext_stats``) are kept by
statement-level triggers on ``chunk_terms`` (migration 0001), so every insert and delete, cascades
included, keeps them exact.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncSession

from zhiku.retrieval.chunk_filter import NO_FILTER, ChunkFilter, filter_sql

K1 = 1.2
B = 0.75
POSTINGS_PER_TERM = 1000
MAX_QUERY_TERMS = 32


def term_weights(terms: Sequence[str], avgdl: float) -> dict[str, float]:
    """BM25's term-frequency factor for each distinct term of one chunk (length = distinct terms)."""
    counts = Counter(terms)
    length = len(counts)
    if not length:
        return {}
    norm = K1 * (1 - B + B * length / max(avgdl, 1.0))
    return {term: tf * (K1 + 1) / (tf + norm) for term, tf in counts.items()}


def idf(docs: int, df: int) -> float:
    return math.log(1.0 + (docs - df + 0.5) / (df + 0.5))


async def _avgdl(session: AsyncSession, dataset_id: int, batch: Iterable[dict[str, float]]) -> float:
    row = (await session.execute(text("SELECT docs, postings FROM fulltext_stats WHERE dataset_id = :d"),
                                 {"d": dataset_id})).first()
    if row and row[0]:
        return row[1] / row[0]
    lengths = [len(w) for w in batch]
    return sum(lengths) / len(lengths) if lengths else 1.0


async def index_terms(session: AsyncSession, dataset_id: int, chunks: Sequence[tuple[int, Sequence[str]]]) -> None:
    """Write the postings of these (chunk_id, terms) in the caller's transaction (one statement)."""
    counted = [(chunk_id, Counter(terms)) for chunk_id, terms in chunks]
    avgdl = await _avgdl(session, dataset_id, [dict(c) for _, c in counted])
    ids: list[int] = []
    words: list[str] = []
    weights: list[float] = []
    for chunk_id, counts in counted:
        for term, weight in term_weights(list(counts.elements()), avgdl).items():
            ids.append(chunk_id)
            words.append(term)
            weights.append(weight)
    if not ids:
        return
    # Sorted by term so concurrent imports into one dataset take the df rows' locks in the same order.
    await session.execute(text(
        "INSERT INTO chunk_terms (dataset_id, term, chunk_id, weight) "
        "SELECT :d, t.term, t.chunk_id, t.weight FROM unnest(CAST(:terms AS text[]), CAST(:ids AS bigint[]), "
        "CAST(:weights AS real[])) AS t(term, chunk_id, weight) ORDER BY t.term"),
        {"d": dataset_id, "terms": words, "ids": ids, "weights": weights})


async def unindex_chunks(session: AsyncSession, chunk_ids: Sequence[int]) -> None:
    """Remove postings of these chunks in one statement (cheaper than per-row FK cascades)."""
    if chunk_ids:
        await session.execute(text("DELETE FROM chunk_terms WHERE chunk_id = ANY(:ids)"), {"ids": list(chunk_ids)})


async def unindex_collection(session: AsyncSession, collection_id: int) -> None:
    await session.execute(text(
        "DELETE FROM chunk_terms WHERE chunk_id IN (SELECT id FROM chunks WHERE collection_id = :c)"),
        {"c": collection_id})


async def drop_dataset(session: AsyncSession, dataset_id: int) -> None:
    for table in ("chunk_terms", "fulltext_terms", "fulltext_stats"):
        await session.execute(text(f"DELETE FROM {table} WHERE dataset_id = :d"), {"d": dataset_id})


_SEARCH = """
WITH stats AS MATERIALIZED (
    SELECT coalesce(sum(docs), 0)::float8 AS n FROM fulltext_stats WHERE dataset_id = ANY(:ids)),
q AS MATERIALIZED (
    SELECT t.term, ln(1.0 + (s.n - sum(ft.df) + 0.5) / (sum(ft.df) + 0.5))::float8 AS idf
    FROM unnest(CAST(:terms AS text[])) AS t(term)
    JOIN fulltext_terms ft ON ft.term = t.term AND ft.dataset_id = ANY(:ids) AND ft.df > 0
    CROSS JOIN stats s
    GROUP BY t.term, s.n)
SELECT p.chunk_id, sum(q.idf * p.weight) AS score
FROM q CROSS JOIN unnest(CAST(:ids AS bigint[])) AS d(id)
CROSS JOIN LATERAL (
    SELECT ct.chunk_id, ct.weight FROM chunk_terms ct
    WHERE ct.dataset_id = d.id AND ct.term = q.term{conditions}
    ORDER BY ct.weight DESC LIMIT :per_term) p
GROUP BY p.chunk_id
ORDER BY score DESC, p.chunk_id
LIMIT :limit
"""
_SEARCH_UNFILTERED = text(_SEARCH.format(conditions=""))


def _search_statement(chunk_filter: ChunkFilter) -> tuple[TextClause, dict[str, object]]:
    if chunk_filter == NO_FILTER:
        return _SEARCH_UNFILTERED, {}
    # Inside the per-term read, so each term still contributes its best postings among the allowed chunks.
    conditions, params = filter_sql(chunk_filter, "ct.chunk_id")
    return text(_SEARCH.format(conditions=conditions)), params


async def search_terms(session: AsyncSession, dataset_ids: Sequence[int], terms: Sequence[str],
                       limit: int, chunk_filter: ChunkFilter = NO_FILTER) -> list[tuple[int, float]]:
    """Top chunks by BM25 for these query terms across the datasets, among those ``chunk_filter`` allows."""
    terms = list(dict.fromkeys(terms))[:MAX_QUERY_TERMS]
    if not terms or not dataset_ids:
        return []
    statement, params = _search_statement(chunk_filter)
    rows = await session.execute(statement, {"ids": list(dataset_ids), "terms": terms,
                                             "per_term": POSTINGS_PER_TERM, "limit": limit, **params})
    return [(int(r[0]), float(r[1])) for r in rows]
