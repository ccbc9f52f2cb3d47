"""pgvector storage: per-model partial HNSW indexes so any dimension is stored as is."""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

# FastGPT's pgvector settings (REFERENCE.md): m 32, ef_construction 128, ef_search 100.
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 128
HNSW_EF_SEARCH = 100


def index_name(model: str, dim: int) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", model.lower()).strip("_")[:40]
    return f"ix_chunk_vectors_hnsw_{slug}_{dim}"


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


async def ensure_vector_index(conn: AsyncSession | AsyncConnection, model: str, dim: int) -> None:
    """Create the HNSW index for one (model, dimension) pair if it does not exist yet."""
    if not 0 < dim <= 16000:
        raise ValueError(f"unsupported vector dimension {dim}")
    # halfvec would be needed past 2000 dimensions for HNSW; 2000 covers every common model.
    cast = f"vector({dim})" if dim <= 2000 else f"halfvec({dim})"
    await conn.execute(text(
        f"CREATE INDEX IF NOT EXISTS {index_name(model, dim)} ON chunk_vectors "
        f"USING hnsw ((embedding::{cast}) {'vector' if dim <= 2000 else 'halfvec'}_cosine_ops) "
        f"WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION}) "
        f"WHERE model = {_literal(model)}"))


def vector_cast(dim: int) -> str:
    return f"vector({dim})" if dim <= 2000 else f"halfvec({dim})"
