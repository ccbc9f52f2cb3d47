"""Hugging Face / sentence-transformers directories: a tiny random BERT written by the test itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.embedding.tiny_models import HIDDEN, POSITIONS, reference_hidden, write_bert_embedder
from zhiku.config import Settings
from zhiku.embedding.base import Embedder
from zhiku.embedding.hf_model import HFEmbedder
from zhiku.embedding.registry import build_embedders
from zhiku.errors import StartupError

TEXTS = ["the cat sat on the mat", "dog", "a big green tree over the river bank 猫", "Bird FLEW over the house"]


def _reference(path: Path, embedder: HFEmbedder, text: str, pooling: str) -> np.ndarray:
    ids, types = embedder.encoder.encode([text])[0]
    hidden = reference_hidden(load_file(str(path / "model.safetensors")), ids, types)
    pooled = hidden[0] if pooling == "cls" else hidden.mean(0)
    return pooled / np.linalg.norm(pooled)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_from_the_directory_matches_a_reference_forward_pass(tiny_dir: Path, pooling: str) -> None:
    path = tiny_dir / f"tiny-{pooling}"
    embedder = HFEmbedder(path)
    assert embedder.pooling == pooling
    vectors = embedder.embed(TEXTS)  # mixed lengths: padding and masks are exercised
    assert vectors.shape == (len(TEXTS), HIDDEN) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    for text, vector in zip(TEXTS, vectors):
        assert np.abs(vector - _reference(path, embedder, text, pooling)).max() < 1e-5


def test_mean_and_cls_differ_on_the_same_weights(tiny_dir: Path) -> None:
    mean = HFEmbedder(tiny_dir / "tiny-mean", pooling="mean").embed(TEXTS)
    cls = HFEmbedder(tiny_dir / "tiny-mean", pooling="cls").embed(TEXTS)
    assert np.all(np.abs(np.sum(mean * cls, axis=1)) < 0.999)


def test_deterministic_and_independent_of_batching(tiny_dir: Path) -> None:
    embedder = HFEmbedder(tiny_dir / "tiny-mean")
    together = embedder.embed(TEXTS)
    assert np.array_equal(together, embedder.embed(TEXTS))
    alone = np.stack([embedder.embed([t])[0] for t in TEXTS])
    assert np.abs(together - alone).max() < 1e-5
    assert isinstance(embedder, Embedder)
    assert embedder.count_tokens("the cat") == 4 and embedder.max_tokens == POSITIONS


def test_registered_through_settings(tiny_dir: Path, tmp_path: Path) -> None:
    registry = build_embedders(Settings(embed_models=f"tiny={tiny_dir / 'tiny-cls'}"))
    assert registry.get("tiny").dim == HIDDEN and registry.get("tiny").pooling == "cls"
    assert "multilingual-e5-small" in registry.names()


def test_bad_directories_are_clear_startup_errors(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match="is not a model directory: config.json is missing"):
        HFEmbedder(tmp_path)
    path = write_bert_embedder(tmp_path / "gpt", pooling="mean")
    (path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(StartupError, match="not supported"):
        HFEmbedder(path)


def test_malformed_model_setting_is_refused() -> None:
    with pytest.raises(ValueError, match="name=/path"):
        Settings(embed_models="just-a-path")
