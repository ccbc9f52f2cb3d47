"""Merge concurrent embedding requests into forward batches bounded by a token budget.

Like TEI's ``max-batch-tokens``: texts from every waiting request join one queue
per (model, kind); a scheduler task repeatedly takes a batch from it and runs it
in the forward thread, so the event loop stays free and requests arriving while
a batch runs are merged into the next one.

Which texts form a batch (``pick_batch``, pure): the oldest waiting text always
goes in (nothing starves), joined by the texts nearest to it in length, until
the padded size (texts × longest) reaches the budget. Similar lengths keep the
padding of pad-and-mask engines small.

A failing batch never fails a bystander: the batch is run again one request at
a time, so only the request whose text breaks the model gets the error.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from zhiku.embedding.base import Embedder, EmbedKind

log = logging.getLogger(__name__)


def pick_batch(lengths: Sequence[int], ages: Sequence[int], budget: int) -> list[int]:
    """Indices of the next batch: the oldest item plus its nearest neighbours in length.

    The batch's padded size, ``len(batch) * max(lengths of batch)``, stays within
    ``budget``; a single item longer than the budget forms a batch on its own.
    """
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], ages[i]))
    oldest = min(range(len(lengths)), key=ages.__getitem__)
    lo = hi = order.index(oldest)
    while True:
        size = hi - lo + 2  # the batch's size after one more item
        if lo > 0 and size * lengths[order[hi]] <= budget:  # a shorter one: the longest stays
            lo -= 1
        elif hi < len(order) - 1 and size * lengths[order[hi + 1]] <= budget:
            hi += 1
        else:
            return [order[k] for k in range(lo, hi + 1)]


@dataclass(eq=False)
class _Request:
    count: int
    future: asyncio.Future[np.ndarray]
    vectors: np.ndarray | None = None
    remaining: int = 0


@dataclass(eq=False)
class _Item:
    request: _Request
    position: int  # index of the text within its request
    text: str
    tokens: int
    age: int = field(default=0)


class EmbedBatcher:
    """One embedder's queue of texts and the task that feeds it to the forward thread."""

    def __init__(self, embedder: Embedder, executor: Executor, max_batch_tokens: int) -> None:
        self.embedder = embedder
        self._executor = executor
        self._budget = max_batch_tokens
        self._queues: dict[EmbedKind, list[_Item]] = {"query": [], "passage": []}
        self._wakeup = asyncio.Event()
        self._ages = itertools.count()
        self._task: asyncio.Task[None] | None = None

    async def embed(self, texts: Sequence[str], tokens: Sequence[int], kind: EmbedKind) -> np.ndarray:
        """The texts' vectors, in their order, once the batches holding them have run."""
        loop = asyncio.get_running_loop()
        request = _Request(count=len(texts), future=loop.create_future(), remaining=len(texts))
        if not texts:
            return np.zeros((0, self.embedder.dim), np.float32)
        request.vectors = np.empty((len(texts), self.embedder.dim), np.float32)
        self._queues[kind].extend(_Item(request, i, t, max(n, 1), next(self._ages))
                                  for i, (t, n) in enumerate(zip(texts, tokens)))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._schedule(), name=f"embed-batcher-{self.embedder.model_name}")
        self._wakeup.set()
        return await request.future

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def _next(self) -> tuple[EmbedKind, list[_Item]] | None:
        waiting = {kind: queue for kind, queue in self._queues.items() if queue}
        if not waiting:
            return None
        kind = min(waiting, key=lambda k: waiting[k][0].age)  # queues stay in age order
        queue = self._queues[kind]
        chosen = set(pick_batch([i.tokens for i in queue], [i.age for i in queue], self._budget))
        self._queues[kind] = [item for k, item in enumerate(queue) if k not in chosen]
        return kind, sorted((queue[k] for k in chosen), key=lambda item: item.tokens)

    async def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while (picked := self._next()) is not None:
                kind, batch = picked
                live = [item for item in batch if not item.request.future.done()]  # skip cancelled callers
                if live:
                    await self._run(loop, kind, live)

    async def _run(self, loop: asyncio.AbstractEventLoop, kind: EmbedKind, batch: list[_Item]) -> None:
        try:
            vectors = await loop.run_in_executor(self._executor, self.embedder.embed, [i.text for i in batch], kind)
        except Exception as exc:  # noqa: BLE001 - any model failure is isolated to its request
            requests = list(dict.fromkeys(item.request for item in batch))
            if len(requests) == 1:
                self._fail(requests[0], exc)
                return
            log.warning("an embedding batch of %d requests failed (%s); running them one by one",
                        len(requests), exc)
            for request in requests:
                await self._run(loop, kind, [item for item in batch if item.request is request])
            return
        for item, vector in zip(batch, vectors):
            request = item.request
            if request.future.done() or request.vectors is None:
                continue
            request.vectors[item.position] = vector
            request.remaining -= 1
            if request.remaining == 0:
                request.future.set_result(request.vectors)

    @staticmethod
    def _fail(request: _Request, exc: Exception) -> None:
        if not request.future.done():
            request.future.set_exception(exc)
