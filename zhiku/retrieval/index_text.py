"""The texts of a chunk that get indexed: its own text (q, and a when there is one) and its index texts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_KIND = "default"


def chunk_text(q: str, a: str) -> str:
    return f"{q}\n{a}" if a.strip() else q


def vector_texts(q: str, a: str, indexes: Iterable[Mapping[str, Any]] = ()) -> list[tuple[str, str]]:
    """``(kind, text)`` for every vector a chunk gets: ``default`` for its own text, then one per index text
    (its type as the kind). A repeated index text, or one equal to the chunk's text, is embedded once."""
    own = chunk_text(q, a)
    texts = [(DEFAULT_KIND, own)]
    seen = {own}
    for index in indexes:
        body = str(index.get("text") or "")
        if body.strip() and body not in seen:
            seen.add(body)
            texts.append((str(index.get("type") or "custom"), body))
    return texts


def fulltext_text(q: str, a: str, indexes: Iterable[Mapping[str, Any]] = ()) -> str:
    """What BM25 indexes for a chunk: its text and its index texts.

    FastGPT segments q + a only. Index texts are included here because they are how people say "find
    this chunk by these words" (synonyms, product codes, the questions a passage answers); exact terms
    like those are where full text finds what vectors miss, and mixed search would otherwise see an
    index text on its vector side only.
    """
    return "\n".join(text for _, text in vector_texts(q, a, indexes))
