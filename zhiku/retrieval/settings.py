"""An app's or a search test's search settings, in FastGPT's names and ours. Pure: stored apps are
validated with it without loading the search machinery."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
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
# The largest token budget for a search's quotes (FastGPT's own search test cuts at 20,000).
MAX_SEARCH_TOKENS = 100_000


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
    def from_dict(cls, raw: dict[str, Any] | None, *, base: SearchSettings | None = None, where: str = "search",
                  strict: bool = True) -> SearchSettings:
        """Settings in our names or FastGPT's; a missing or null value is ``base``'s (an update), else the
        default. A value of the wrong
        type or out of range is a 400 (``invalid_search_mode``, ``invalid_search_settings``) whose
        ``detail.field`` is ``where.<name>`` (an app's settings are its ``search`` field); with ``strict``
        off (settings stored before they were checked) it is the default instead."""
        raw = raw or {}
        fields: dict[str, Any] = {}
        for name, parse in _FIELDS.items():
            try:
                value = parse(raw, where)
            except InvalidInput:
                if strict:
                    raise
                continue
            if value is not None:
                fields[name] = value
        return replace(base or cls(), **fields)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "similarity": self.similarity, "max_tokens": self.max_tokens,
                "embedding_weight": self.embedding_weight, "rerank": self.rerank,
                "rerank_weight": self.rerank_weight}



def _given(raw: dict[str, Any], *names: str) -> tuple[str, Any]:
    """The first of ``names`` with a value, and the value (the first name and None when none has one)."""
    return next(((name, raw[name]) for name in names if raw.get(name) is not None), (names[0], None))


def _refused(where: str, name: str, given: str, message: str, code: str = "invalid_search_settings") -> InvalidInput:
    """``name``: the setting (the field the error points at); ``given``: the key the client sent it as."""
    return InvalidInput(f"search setting {given} {message}", code=code,
                        detail={"field": f"{where}.{name}" if where else name})


def _mode(raw: dict[str, Any], where: str) -> SearchMode | None:
    given, mode = _given(raw, "mode", "searchMode")
    if mode is None:
        return None
    if not isinstance(mode, str) or mode not in MODE_ALIASES:
        raise _refused(where, "mode", given, f"{str(mode)[:40]!r} is unknown (use embedding, fullText or mixed)",
                       code="invalid_search_mode")
    return MODE_ALIASES[mode]


def _number(name: str, names: tuple[str, ...], low: float, high: float, *,
            whole: bool = False) -> Callable[[dict[str, Any], str], float | None]:
    def parse(raw: dict[str, Any], where: str) -> float | None:
        given, value = _given(raw, *names)
        if value is None:
            return None
        try:
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            number = float(value)
        except (ValueError, OverflowError):
            raise _refused(where, name, given, f"must be a number, not {str(value)[:40]!r}") from None
        if not math.isfinite(number) or not low <= number <= high or (whole and not number.is_integer()):
            raise _refused(where, name, given, f"must be {'a whole number' if whole else 'a number'} from "
                                               f"{low:g} to {high:g}, not {str(value)[:40]}")
        return int(number) if whole else number
    return parse


def _flag(name: str, names: tuple[str, ...]) -> Callable[[dict[str, Any], str], bool | None]:
    def parse(raw: dict[str, Any], where: str) -> bool | None:
        given, value = _given(raw, *names)
        if value is None or isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise _refused(where, name, given, f"must be true or false, not {str(value)[:40]!r}")
    return parse


# Each setting, read from our name or FastGPT's.
_FIELDS: dict[str, Callable[[dict[str, Any], str], Any]] = {
    "mode": _mode,
    "similarity": _number("similarity", ("similarity",), 0, 1),
    "max_tokens": _number("max_tokens", ("max_tokens", "limit"), 1, MAX_SEARCH_TOKENS, whole=True),
    "embedding_weight": _number("embedding_weight", ("embedding_weight", "embeddingWeight"), 0, 1),
    "rerank": _flag("rerank", ("rerank", "usingReRank")),
    "rerank_weight": _number("rerank_weight", ("rerank_weight", "rerankWeight"), 0, 1),
}
