"""Embedders by model name. The bundled model registers through the same call a plugin would."""

from __future__ import annotations

from zhiku.config import Settings
from zhiku.embedding.base import Embedder, Reranker
from zhiku.errors import InvalidInput


class EmbedderRegistry:
    def __init__(self, default: str) -> None:
        self.default = default
        self._embedders: dict[str, Embedder] = {}

    def register(self, embedder: Embedder, *aliases: str) -> None:
        for name in (embedder.model_name, *aliases):
            self._embedders[name] = embedder

    def get(self, name: str | None = None) -> Embedder:
        name = name or self.default
        try:
            return self._embedders[name]
        except KeyError:
            known = ", ".join(sorted(self._embedders)) or "none"
            raise InvalidInput(f"unknown embedding model {name!r} (available: {known})",
                               code="unknown_embedding_model") from None

    def names(self) -> list[str]:
        return sorted(self._embedders)


def build_embedders(settings: Settings) -> EmbedderRegistry:
    registry = EmbedderRegistry(default=settings.embedding_model)
    from zhiku.embedding.bundled import load_bundled_embedder

    registry.register(load_bundled_embedder())
    for name, path in settings.embed_model_paths.items():  # ZHIKU_EMBED_MODELS
        from zhiku.embedding.hf_model import load_hf_embedder

        registry.register(load_hf_embedder(path, name=name))
    return registry


def build_rerankers(settings: Settings) -> dict[str, Reranker]:
    """The cross-encoder of ZHIKU_RERANK_MODEL, by name; empty when none is configured."""
    if settings.rerank_model_path is None:
        return {}
    from zhiku.embedding.rerank import load_cross_encoder

    name, path = settings.rerank_model_path
    return {name: load_cross_encoder(path, name=name)}
