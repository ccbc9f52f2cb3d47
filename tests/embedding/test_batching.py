"""Batch choice (pure) and the batcher's guarantees, with a fake embedder that records its calls."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from zhiku.embedding.base import EmbedKind
from zhiku.embedding.batching import EmbedBatcher, pick_batch


def test_pick_batch_keeps_the_oldest_and_groups_similar_lengths() -> None:
    lengths = [500, 10, 12, 480, 11, 490]
    ages = [0, 1, 2, 3, 4, 5]
    first = pick_batch(lengths, ages, budget=1500)
    assert 0 in first and sorted(first) == [0, 3, 5]  # 3 × 500 fits; the short ones wait
    assert sorted(pick_batch([10, 12, 11], [1, 2, 4], budget=1500)) == [0, 1, 2]


def test_pick_batch_respects_the_padded_budget() -> None:
    lengths = list(range(1, 101))
    batch = pick_batch(lengths, list(range(100)), budget=200)
    assert 0 in batch
    assert len(batch) * max(lengths[i] for i in batch) <= 200


def test_a_single_item_over_the_budget_goes_alone() -> None:
    assert pick_batch([9000, 10], [0, 1], budget=100) == [0]
    assert pick_batch([], [], budget=100) == []


class RecordingEmbedder:
    """Vector = [len(text), 1, 0, …] normalised; a text containing 'boom' makes the whole call fail."""

    model_name = "recording"
    dim = 4
    max_tokens = 100

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()

    def embed(self, texts: Sequence[str], kind: EmbedKind = "passage") -> np.ndarray:
        self.gate.wait()
        self.calls.append(list(texts))
        if any("boom" in t for t in texts):
            raise RuntimeError("boom in the batch")
        out = np.array([[len(t), 1.0, 0.0, 0.0 if kind == "passage" else 1.0] for t in texts], np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def count_tokens(self, text: str) -> int:
        return len(text)


def _expected(text: str, kind: EmbedKind = "passage") -> np.ndarray:
    v = np.array([len(text), 1.0, 0.0, 0.0 if kind == "passage" else 1.0], np.float32)
    return v / np.linalg.norm(v)


async def test_concurrent_requests_share_batches_and_keep_their_order() -> None:
    embedder = RecordingEmbedder()
    with ThreadPoolExecutor(1) as pool:
        batcher = EmbedBatcher(embedder, pool, max_batch_tokens=10_000)
        embedder.gate.clear()  # hold the first batch so the others queue up behind it
        requests = [[f"r{i}-" + "x" * j for j in (5, 1, 3)] for i in range(20)]
        tasks = [asyncio.create_task(batcher.embed(t, [len(s) for s in t], "passage")) for t in requests]
        await asyncio.sleep(0.05)
        embedder.gate.set()
        results = await asyncio.gather(*tasks)
        await batcher.close()
    for texts, vectors in zip(requests, results):
        assert np.allclose(vectors, np.stack([_expected(t) for t in texts]))
    assert len(embedder.calls) < len(requests)  # merged
    assert sum(len(c) for c in embedder.calls) == 60
    for call in embedder.calls:  # handed to the model shortest first
        assert [len(t) for t in call] == sorted(len(t) for t in call)


async def test_one_failing_request_does_not_fail_the_others() -> None:
    embedder = RecordingEmbedder()
    with ThreadPoolExecutor(1) as pool:
        batcher = EmbedBatcher(embedder, pool, max_batch_tokens=10_000)
        embedder.gate.clear()
        good = [["alpha", "beta"], ["gamma"], ["delta", "epsilon", "zeta"]]
        tasks = [asyncio.create_task(batcher.embed(t, [len(s) for s in t], "passage")) for t in good]
        bad = asyncio.create_task(batcher.embed(["fine", "boom"], [4, 4], "passage"))
        await asyncio.sleep(0.05)
        embedder.gate.set()
        results = await asyncio.gather(*tasks)
        with pytest.raises(RuntimeError, match="boom"):
            await bad
        await batcher.close()
    for texts, vectors in zip(good, results):
        assert np.allclose(vectors, np.stack([_expected(t) for t in texts]))


async def test_query_and_passage_are_never_mixed_in_one_call() -> None:
    embedder = RecordingEmbedder()
    with ThreadPoolExecutor(1) as pool:
        batcher = EmbedBatcher(embedder, pool, max_batch_tokens=10_000)
        q, p = await asyncio.gather(batcher.embed(["aa"], [2], "query"), batcher.embed(["aa"], [2], "passage"))
        await batcher.close()
    assert np.allclose(q[0], _expected("aa", "query")) and np.allclose(p[0], _expected("aa", "passage"))
    assert len(embedder.calls) == 2
