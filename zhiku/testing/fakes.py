"""Small in-process fakes of Zhiku's protocols, shared by tests and demos."""

from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+")


class KeywordReranker:
    """A ``Reranker``: the share of the query's distinct words that the document contains (0–1)."""

    model_name = "keyword-reranker"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        self.calls.append((query, list(documents)))
        words = set(_WORD.findall(query.lower()))
        if not words:
            return [0.0] * len(documents)
        return [len(words & set(_WORD.findall(doc.lower()))) / len(words) for doc in documents]
