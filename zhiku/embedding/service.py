"""What the embedding server does for a request: resolve the model, measure, window, batch, answer.

The routes in ``zhiku.web.embed_server`` only read the body and hand it here.
Token counting and windowing run in a helper thread; forward passes run in the
one forward thread that every ``EmbedBatcher`` shares, so two models never
fight over the cores and the event loop never waits on numpy.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from zhiku.embedding.base import Embedder, EmbedKind, Reranker
from zhiku.embedding.batching import EmbedBatcher
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.embedding.windows import split_windows
from zhiku.embedding.wire import EmbeddingsCall, RerankCall, embeddings_body, rerank_body
from zhiku.errors import InvalidInput, NotFound, ZhikuError
from zhiku.tokencount import get_encoding

TruncatePolicy = Literal["window", "reject"]


@dataclass(frozen=True)
class ServiceLimits:
    max_batch_tokens: int = 8192
    max_inputs: int = 2048
    truncate: TruncatePolicy = "window"


@dataclass(frozen=True)
class _Plan:
    """An embeddings request measured: the texts to embed and which input each belongs to."""

    texts: list[str]
    tokens: list[int]
    owner: list[int]  # input index of each text
    windowed: list[int]  # inputs split into windows

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


def model_tokens(embedder: Embedder, text: str, kind: EmbedKind) -> int:
    """Tokens the model reads for ``text`` in ``kind`` form: specials and any query/passage prefix."""
    prefix = getattr(embedder, "prefix_tokens", None)
    return embedder.count_tokens(text) + (prefix(kind) if prefix is not None else 0)


def _plan(embedder: Embedder, texts: Sequence[str], kind: EmbedKind, truncate: TruncatePolicy) -> _Plan:
    plan = _Plan(texts=[], tokens=[], owner=[], windowed=[])
    for index, text in enumerate(texts):
        tokens = model_tokens(embedder, text, kind)
        if tokens <= embedder.max_tokens:
            plan.texts.append(text)
            plan.tokens.append(tokens)
            plan.owner.append(index)
            continue
        if truncate == "reject":
            raise InvalidInput(
                f"input[{index}] is {tokens} tokens; {embedder.model_name} takes at most {embedder.max_tokens} "
                f"(this server rejects longer inputs rather than windowing them)",
                code="input_too_long", detail={"index": index, "tokens": tokens, "limit": embedder.max_tokens})
        for window in split_windows(text, lambda piece: model_tokens(embedder, piece, kind), embedder.max_tokens):
            plan.texts.append(window)
            plan.tokens.append(model_tokens(embedder, window, kind))
            plan.owner.append(index)
        plan.windowed.append(index)
    return plan


def _pool(vectors: np.ndarray, owner: list[int], count: int) -> np.ndarray:
    """One vector per input: windows of one input mean-pooled and renormalised."""
    if len(owner) == count:
        return vectors
    pooled = np.zeros((count, vectors.shape[1]), np.float32)
    np.add.at(pooled, np.asarray(owner), vectors)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.where(norms == 0, 1.0, norms)


def embed_texts(embedder: Embedder, texts: Sequence[str], kind: EmbedKind) -> tuple[np.ndarray, int]:
    """One vector per text, windowing (never silently truncating) texts over the model's limit; blocking.

    Returns the vectors and the model tokens read. For callers without the server's batcher: the
    gateway's in-process provider.
    """
    plan = _plan(embedder, texts, kind, "window")
    vectors = embedder.embed(plan.texts, kind) if plan.texts else np.zeros((0, embedder.dim), np.float32)
    return _pool(vectors, plan.owner, len(texts)), plan.total_tokens


def _decode_token_ids(inputs: Sequence[Sequence[int]]) -> list[str]:
    """Token-id arrays are OpenAI ``cl100k_base`` ids (what the openai and LangChain clients send)."""
    encoding = get_encoding("cl100k_base")
    texts = []
    for index, ids in enumerate(inputs):
        bad = next((t for t in ids if not 0 <= t < encoding.n_vocab), None)
        if bad is not None:
            raise InvalidInput(f"input[{index}] has token id {bad}, outside cl100k_base (0..{encoding.n_vocab - 1})",
                               code="invalid_token_ids", detail={"index": index})
        try:
            texts.append(encoding.decode(list(ids)))
        except (KeyError, ValueError):
            raise InvalidInput(f"input[{index}] has token ids that cl100k_base cannot decode",
                               code="invalid_token_ids", detail={"index": index}) from None
    return texts


class EmbeddingService:
    def __init__(self, registry: EmbedderRegistry, *, aliases: Sequence[str] = (),
                 rerankers: dict[str, Reranker] | None = None, limits: ServiceLimits = ServiceLimits()) -> None:
        self.registry = registry
        self.limits = limits
        self.aliases = {alias: registry.default for alias in aliases}
        self.rerankers = dict(rerankers or {})
        self._forward = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zhiku-embed-forward")
        self._batchers: dict[int, EmbedBatcher] = {}
        self.started = int(time.time())

    def embedder(self, model: str | None) -> Embedder:
        name = self.aliases.get(model or "", model)
        try:
            return self.registry.get(name)
        except ZhikuError:
            known = ", ".join(self.model_names()) or "none"
            raise NotFound(f"the model {model!r} does not exist (available: {known})",
                           code="model_not_found") from None

    def model_names(self) -> list[str]:
        return sorted({*self.registry.names(), *self.aliases})

    def _batcher(self, embedder: Embedder) -> EmbedBatcher:
        key = id(embedder)
        if key not in self._batchers:
            self._batchers[key] = EmbedBatcher(embedder, self._forward, self.limits.max_batch_tokens)
        return self._batchers[key]

    async def embed(self, call: EmbeddingsCall) -> dict[str, Any]:
        embedder = self.embedder(call.model)
        if call.dimensions is not None and call.dimensions != embedder.dim:
            raise InvalidInput(f"{embedder.model_name} makes {embedder.dim}-dimensional vectors and cannot "
                               f"shorten them; leave 'dimensions' out or set it to {embedder.dim}",
                               code="dimensions_not_supported")

        def measure() -> tuple[list[str], _Plan]:
            texts = ([str(t) for t in call.inputs] if call.form == "text"
                     else _decode_token_ids(cast("tuple[tuple[int, ...], ...]", call.inputs)))
            return texts, _plan(embedder, texts, call.kind, self.limits.truncate)

        texts, plan = await asyncio.to_thread(measure)
        vectors = await self._batcher(embedder).embed(plan.texts, plan.tokens, call.kind)
        return embeddings_body(_pool(vectors, plan.owner, len(texts)), call.model or embedder.model_name,
                               plan.total_tokens, as_base64=call.base64, windowed=plan.windowed)

    async def rerank(self, call: RerankCall) -> dict[str, Any]:
        if not self.rerankers:
            raise NotFound("no rerank model is configured on this server (set ZHIKU_RERANK_MODEL=name=/path)",
                           code="model_not_found")
        name = call.model or next(iter(self.rerankers))
        reranker = self.rerankers.get(name)
        if reranker is None:
            raise NotFound(f"the rerank model {name!r} does not exist (available: "
                           f"{', '.join(sorted(self.rerankers))})", code="model_not_found")

        def work() -> tuple[list[float], int]:
            scores = reranker.rerank(call.query, list(call.documents))
            count = getattr(reranker, "count_pair_tokens", None)
            tokens = sum(count(call.query, d) for d in call.documents) if count is not None else 0
            return scores, tokens

        loop = asyncio.get_running_loop()
        scores, tokens = await loop.run_in_executor(self._forward, work)
        return rerank_body(scores, call, name, tokens)

    def models_body(self) -> dict[str, Any]:
        names = [*self.model_names(), *sorted(self.rerankers)]
        return {"object": "list", "data": [{"id": n, "object": "model", "created": self.started,
                                            "owned_by": "zhiku"} for n in names]}

    async def close(self) -> None:
        for batcher in self._batchers.values():
            await batcher.close()
        self._forward.shutdown(wait=False, cancel_futures=True)
