"""The text of a chunk that gets embedded (q, and a when there is one)."""

from __future__ import annotations


def chunk_text(q: str, a: str) -> str:
    return f"{q}\n{a}" if a.strip() else q
