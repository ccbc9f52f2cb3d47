"""An app's or a search test's search settings, in FastGPT's names and ours. Pure: stored apps are
validated with it without loading the search machinery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zhiku.errors import InvalidInput, PayloadTooLarge

# The longest search text or chat question taken, in characters. Longer text is refused before any
# segmentation or embedding runs (413 ``query_too_long``): it is not a question, and its cost would
# fall on every other request.
MAX_QUERY_CHARS = 20_000
# Of a longer question, retrieval reads the first this many characters: the embedding model takes
# 512 tokens anyway, and BM25 over a pasted page only costs time (jieba on 20,000 characters of
# dense Chinese takes seconds). The whole question still goes to the chat model.
RETRIEVAL_QUERY_CHARS = 2_000


def check_query_length(text: str) -> None:
    if len(text) > MAX_QUERY_CHARS:
        raise PayloadTooLarge(f"the question is {len(text)} characters long; at most {MAX_QUERY_CHARS} "
                              "are taken", code="query_too_long")

SearchMode = Literal["embedding", "fullText", "mixed"]
# FastGPT's names for the same modes.
MODE_ALIASES: dict[str, SearchMode] = {
    "embedding": "embedding", "fullText": "fullText", "fullTextRecall": "fullText",
    "mixed": "mixed", "mixedRecall": "mixed",
}
@dataclass(frozen=True)
class SearchSettings:
    mode: SearchMode = "mixed"
    similarity: float = 0.4
    max_tokens: int = 5000
    embedding_weight: float = 0.5
    rerank: bool = False
    rerank_weight: float = 0.5

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> SearchSettings:
        raw = raw or {}
        mode = raw.get("mode", raw.get("searchMode", cls.mode))
        if mode not in MODE_ALIASES:
            raise InvalidInput(f"unknown search mode {mode!r} (use embedding, fullText or mixed)",
                               code="invalid_search_mode")
        return cls(mode=MODE_ALIASES[mode],
                   similarity=float(raw.get("similarity", cls.similarity)),
                   max_tokens=int(raw.get("max_tokens", raw.get("limit", cls.max_tokens))),
                   embedding_weight=float(raw.get("embedding_weight", raw.get("embeddingWeight",
                                                                               cls.embedding_weight))),
                   rerank=bool(raw.get("rerank", raw.get("usingReRank", cls.rerank))),
                   rerank_weight=float(raw.get("rerank_weight", raw.get("rerankWeight", cls.rerank_weight))))

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "similarity": self.similarity, "max_tokens": self.max_tokens,
                "embedding_weight": self.embedding_weight, "rerank": self.rerank,
                "rerank_weight": self.rerank_weight}
