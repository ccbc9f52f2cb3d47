"""Combining and trimming search results: reciprocal rank fusion and the quote filters.

Pure functions over frozen dataclasses; the searches that produce the ranked
lists, and the rerank call, live elsewhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

ScoreType = Literal["embedding", "fullText", "reRank", "rrf"]

RRF_BASE_K = 120


@dataclass(frozen=True)
class ScoreItem:
    """One score a result earned: its kind, its value, and its 0-based rank in that list."""

    type: ScoreType
    value: float
    index: int


@dataclass(frozen=True)
class Candidate:
    """A chunk found by a search, with every score it has collected so far."""

    chunk_id: int
    q: str
    a: str
    dataset_id: int
    collection_id: int
    chunk_index: int
    source_name: str
    scores: tuple[ScoreItem, ...] = ()
    # Where in its file the chunk came from: {"page": 12}, {"slide": 3}, {"sheet": "Q1"}, {"ocr": True}.
    meta: dict[str, Any] = field(default_factory=dict)
    # Its collection's type ("file", "text", "link"…), loaded with source_name; None where it is not known
    # (a candidate rebuilt from a quote item, which need not carry it).
    collection_type: str | None = None

    @property
    def citation(self) -> str:
        """The source as a reader cites it: "handbook.pdf p. 12", "deck.pptx slide 3", "prices.xlsx sheet Q1"."""
        for key, label in (("page", "p."), ("slide", "slide"), ("sheet", "sheet")):
            if self.meta.get(key) not in (None, ""):
                return f"{self.source_name} {label} {self.meta[key]}"
        return self.source_name


def score_of(candidate: Candidate, type: ScoreType) -> float | None:
    """The candidate's score of ``type``, or ``None`` if no search of that kind found it."""
    for item in candidate.scores:
        if item.type == type:
            return item.value
    return None


def rrf_k(embedding_weight: float) -> tuple[int, int]:
    """The RRF constants ``(vector k, full-text k)`` for an embedding weight in [0, 1].

    A smaller k makes a list's top ranks count for more, so the vector list gets
    ``120 × (1 − w)`` and the full-text list ``120 × w``: w = 0.5 gives (60, 60),
    the customary RRF constant for both. Weights outside [0, 1] are clamped.
    Halves round up, as JavaScript's ``Math.round`` does, not to even.

    k = 0 is valid, because ranks are 1-based (see ``rrf_fuse``): w = 1 gives
    the vector list 1/rank (1.0 for its best hit) against the full-text list's
    1/(120 + rank), so vector order decides and full text only breaks ties.
    """
    if math.isnan(embedding_weight):
        raise ValueError("embedding weight must be a number in [0, 1], got NaN")
    weight = min(max(embedding_weight, 0.0), 1.0)
    return _round_half_up(RRF_BASE_K * (1 - weight)), _round_half_up(RRF_BASE_K * weight)


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


@dataclass
class _Fused:
    candidate: Candidate
    first_seen: int
    best_rank: int
    score: float = 0.0
    scores: dict[str, ScoreItem] = field(default_factory=dict)

    def add_scores(self, items: Iterable[ScoreItem]) -> None:
        for item in items:
            if item.type == "rrf":
                continue  # an earlier fusion's result; this fusion's own replaces it
            kept = self.scores.get(item.type)
            if kept is None or (item.value, -item.index) > (kept.value, -kept.index):
                self.scores[item.type] = item


def rrf_fuse(lists: Sequence[tuple[Sequence[Candidate], int]]) -> list[Candidate]:
    """Fuse ranked lists, each with its k, by reciprocal rank fusion.

    A chunk scores Σ 1 / (k + rank) over the lists it appears in, with rank
    1-based (the best hit of a k = 60 list adds 1/61), so k = 0 never divides by
    zero. A list naming a chunk twice counts it once, at its better rank.

    Each result keeps the score items it brought from its lists (one per type;
    where lists disagree, the higher value) followed by a new ``rrf`` item whose
    index is its place in the fused order; ``rrf`` items from an earlier fusion
    are dropped. Order: fused score descending, then the best rank the chunk
    reached in any list, then first appearance.
    """
    fused: dict[int, _Fused] = {}
    for candidates, k in lists:
        if k < 0:
            raise ValueError(f"RRF k must not be negative, got {k}")
        seen_in_list: set[int] = set()
        for rank, candidate in enumerate(candidates, start=1):
            if candidate.chunk_id in seen_in_list:
                continue
            seen_in_list.add(candidate.chunk_id)
            entry = fused.get(candidate.chunk_id)
            if entry is None:
                entry = fused[candidate.chunk_id] = _Fused(candidate, first_seen=len(fused), best_rank=rank)
            entry.score += 1.0 / (k + rank)
            entry.best_rank = min(entry.best_rank, rank)
            entry.add_scores(candidate.scores)

    ordered = sorted(fused.values(), key=lambda e: (-e.score, e.best_rank, e.first_seen))
    return [
        replace(
            entry.candidate,
            scores=(*entry.scores.values(), ScoreItem(type="rrf", value=entry.score, index=position)),
        )
        for position, entry in enumerate(ordered)
    ]


_NOT_LETTER_OR_DIGIT = re.compile(r"[\W_]+")


def _content_key(candidate: Candidate) -> str:
    return _NOT_LETTER_OR_DIGIT.sub("", candidate.q + candidate.a).casefold()


def iter_dedup(candidates: Iterable[Candidate]) -> Iterator[Candidate]:
    """Drop repeats of the same content, keeping the first (best-ranked) one; lazily, so a consumer
    that stops early (the token budget) never normalises the texts it does not reach.

    Two chunks are the same when q + a match after removing everything but
    letters and digits (any script, so Chinese text counts) and ignoring case:
    chunks that differ only in punctuation, spacing or markup collapse. Chunks
    with no letters or digits at all are compared by id instead, so they do not
    all collapse into one.
    """
    seen: set[str | int] = set()
    for candidate in candidates:
        key: str | int = _content_key(candidate) or candidate.chunk_id
        if key not in seen:
            seen.add(key)
            yield candidate


def dedup(candidates: Iterable[Candidate]) -> list[Candidate]:
    """``iter_dedup`` as a list."""
    return list(iter_dedup(candidates))


def filter_similarity(candidates: Iterable[Candidate], threshold: float, score_type: ScoreType) -> list[Candidate]:
    """The candidates whose ``score_type`` score is at least ``threshold``; those without one go."""
    kept = []
    for candidate in candidates:
        value = score_of(candidate, score_type)
        if value is not None and value >= threshold:
            kept.append(candidate)
    return kept


def apply_token_budget(
    candidates: Iterable[Candidate], max_tokens: int, count: Callable[[str], int]
) -> list[Candidate]:
    """The leading candidates whose q + a fit in ``max_tokens`` together.

    Stops at the first candidate that would overflow the budget (later, smaller
    ones are not squeezed in: they rank lower). The first candidate is always
    kept, even alone over budget, so a search that found something never
    answers with nothing.
    """
    kept: list[Candidate] = []
    total = 0
    for candidate in candidates:
        tokens = count(candidate.q) + count(candidate.a)
        if kept and total + tokens > max_tokens:
            break
        kept.append(candidate)
        total += tokens
    return kept
