"""Embedding-server fixtures: the real server on loopback, tiny model directories written by the tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from tests.embedding.tiny_models import write_bert_embedder, write_xlmr_cross_encoder
from zhiku.config import DEFAULT_EMBED_API_KEY, Settings
from zhiku.embedding.hf_model import HFEmbedder
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.embedding.rerank import CrossEncoder
from zhiku.testing.server import free_port
from zhiku.web.embed_server import create_embed_app

API_KEY = DEFAULT_EMBED_API_KEY


class RunningServer:
    """A uvicorn server for one app in a background thread, on 127.0.0.1."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self.server.run, name="zhiku-embed-test-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> RunningServer:
        self._thread.start()
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError("the embedding test server did not start")
            self._thread.join(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(30)


def embed_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"embed_api_key": API_KEY, "embed_aliases": "m3e,text-embedding-ada-002",
                              "embed_max_inputs": 2048, "embed_max_batch_tokens": 8192, "embed_truncate": "window",
                              "embed_models": "", "rerank_model": "", "embedding_model": "multilingual-e5-small"}
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("tiny-models")
    write_bert_embedder(base / "tiny-mean", pooling="mean")
    write_bert_embedder(base / "tiny-cls", pooling="cls")
    write_xlmr_cross_encoder(base / "tiny-reranker")
    return base


@pytest.fixture(scope="session")
def embed_server(embedders: EmbedderRegistry, tiny_dir: Path) -> Iterator[RunningServer]:
    """The bundled model (and a tiny HF model) without a reranker: the m3e container's set-up."""
    registry = EmbedderRegistry(default=embedders.default)
    registry.register(embedders.get())
    registry.register(HFEmbedder(tiny_dir / "tiny-mean", name="tiny-mean"))
    with RunningServer(create_embed_app(embed_settings(), registry)) as running:
        yield running


@pytest.fixture(scope="session")
def reject_server(embedders: EmbedderRegistry) -> Iterator[RunningServer]:
    with RunningServer(create_embed_app(embed_settings(embed_truncate="reject", embed_max_inputs=8),
                                        embedders)) as running:
        yield running


@pytest.fixture(scope="session")
def reranker(tiny_dir: Path) -> CrossEncoder:
    return CrossEncoder(tiny_dir / "tiny-reranker", name="tiny-reranker")


@pytest.fixture(scope="session")
def rerank_server(embedders: EmbedderRegistry, reranker: CrossEncoder) -> Iterator[RunningServer]:
    with RunningServer(create_embed_app(embed_settings(), embedders, {"tiny-reranker": reranker})) as running:
        yield running
