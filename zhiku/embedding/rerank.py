"""Cross-encoder rerankers from a local directory (BERT / XLM-R sequence classification, e.g. bge-reranker).

The query and each document are read together as one pair; the classification
head turns the first token's hidden state into a relevance logit:

* XLM-R layout (bge-reranker): ``classifier.dense`` → tanh → ``classifier.out_proj``;
* BERT layout (ms-marco cross-encoders): ``pooler.dense`` → tanh → ``classifier``.

A one-label head's score is ``sigmoid(logit)``; a two-label head's is the
softmax probability of label 1 — either way in ``[0, 1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zhiku.embedding.hf_model import HFEncoder
from zhiku.errors import StartupError


class CrossEncoder:
    def __init__(self, path: Path, *, name: str | None = None, max_batch_tokens: int = 8192) -> None:
        self.encoder = HFEncoder(path)
        self.model_name = name or Path(path).name
        self.max_tokens = self.encoder.max_tokens
        self._max_batch_tokens = max_batch_tokens
        w = self.encoder.weights
        dense = w.find("classifier.dense.weight")
        if dense is not None:  # RobertaClassificationHead
            self._dense = (dense.T.copy(), w.get("classifier.dense.bias"))
            self._out = (w.get("classifier.out_proj.weight").T.copy(), w.get("classifier.out_proj.bias"))
        elif w.find("classifier.weight") is not None and w.find("pooler.dense.weight") is not None:
            self._dense = (w.get("pooler.dense.weight").T.copy(), w.get("pooler.dense.bias"))
            self._out = (w.get("classifier.weight").T.copy(), w.get("classifier.bias"))
        else:
            raise StartupError(f"{path} has no sequence-classification head (classifier.* weights); "
                               f"is it a cross-encoder?")
        if self._out[0].shape[1] not in (1, 2):
            raise StartupError(f"{path}: a reranker head has one or two labels, not {self._out[0].shape[1]}")

    def _pairs(self, query: str, documents: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        encoded = self.encoder.encode([(query, d) for d in documents])
        # a pair over the model's positions keeps the query and the document's start, like the
        # sentence-transformers CrossEncoder (truncation "longest_first" cuts the longer side)
        return [(ids[: self.max_tokens - 1] + ids[-1:], types[: self.max_tokens - 1] + types[-1:])
                if len(ids) > self.max_tokens else (ids, types) for ids, types in encoded]

    def count_pair_tokens(self, query: str, document: str) -> int:
        return len(self._pairs(query, [document])[0][0])

    def logits(self, query: str, documents: Sequence[str]) -> np.ndarray:
        states = self.encoder.run(self._pairs(query, documents), self._max_batch_tokens)
        first = np.stack([s[0] for s in states])
        return np.tanh(first @ self._dense[0] + self._dense[1]) @ self._out[0] + self._out[1]

    def rerank(self, query: str, documents: Sequence[str]) -> list[float]:
        if not documents:
            return []
        logits = self.logits(query, documents).astype(np.float64)
        if logits.shape[1] == 1:
            scores = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        else:
            shifted = np.exp(logits - logits.max(1, keepdims=True))
            scores = shifted[:, 1] / shifted.sum(1)
        return [float(s) for s in scores]


def load_cross_encoder(path: Path, *, name: str | None = None) -> CrossEncoder:
    return CrossEncoder(path, name=name)
