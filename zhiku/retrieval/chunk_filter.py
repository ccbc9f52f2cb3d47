"""Which chunks of the searched datasets a search may return, and that rule as a SQL condition.

Both PostgreSQL searches (pgvector and BM25 full text) put the condition inside their query, next to
the dataset filter, so a filtered search still fills its limit instead of trimming a full one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ChunkFilter:
    """Only chunks of ``collection_ids`` (``None``: every collection), never chunks of
    ``exclude_collection_ids`` (collections being re-indexed in the background)."""

    collection_ids: tuple[int, ...] | None = None
    exclude_collection_ids: tuple[int, ...] = ()

    @property
    def matches_nothing(self) -> bool:
        return self.collection_ids is not None and not self.collection_ids


NO_FILTER = ChunkFilter()


def filter_sql(chunk_filter: ChunkFilter, column: str) -> tuple[str, dict[str, Any]]:
    """`` AND …`` conditions on the chunk id ``column`` (empty without a filter), and their parameters.

    The subqueries are uncorrelated, so PostgreSQL runs each once and probes a hash per candidate row.
    """
    sql, params = "", {}
    if chunk_filter.collection_ids is not None:
        sql += f" AND {column} IN (SELECT id FROM chunks WHERE collection_id = ANY(:filter_collections))"
        params["filter_collections"] = list(chunk_filter.collection_ids)
    if chunk_filter.exclude_collection_ids:
        sql += f" AND {column} NOT IN (SELECT id FROM chunks WHERE collection_id = ANY(:filter_excluded))"
        params["filter_excluded"] = list(chunk_filter.exclude_collection_ids)
    return sql, params
