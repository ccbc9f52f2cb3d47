"""The embedding seam: anything that turns texts into vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:  # annotations only: the seam itself loads no array library
    import numpy as np

EmbedKind = Literal["query", "passage"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of ``dim`` dimensions.

    ``kind`` selects the model's query or passage form (e5 prefixes them with
    ``query: `` / ``passage: ``). ``max_tokens`` is the longest input, in the
    model's own tokens, that is embedded without truncation; ``count_tokens``
    measures a text the way the model will see it.
    """

    model_name: str
    dim: int
    max_tokens: int

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> np.ndarray: ...

    def count_tokens(self, text: str) -> int: ...


@runtime_checkable
class Reranker(Protocol):
    """Scores how well each document answers ``query``: one float per document, higher is better.

    A cross-encoder reads the query and the document together; its scores are in
    ``[0, 1]`` (the sigmoid of the relevance logit) and comparable across calls.
    """

    model_name: str

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]: ...
