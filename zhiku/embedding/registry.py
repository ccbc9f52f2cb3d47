"""Embedders by model name. The bundled model registers through the same call a plugin would."""

from __future__ import annotations

from zhiku.embedding.base import Embedder
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
