"""Vector stores by name (``ZHIKU_VECTOR_STORE``): a second store is one module registered here."""

from __future__ import annotations

from collections.abc import Callable

from zhiku.errors import StartupError
from zhiku.retrieval.pgvector_store import PgVectorStore
from zhiku.retrieval.vector_store import VectorStore

VectorStoreFactory = Callable[[], VectorStore]

_STORES: dict[str, VectorStoreFactory] = {}


def register_vector_store(name: str, factory: VectorStoreFactory) -> None:
    """Make ``name`` a choice for ``ZHIKU_VECTOR_STORE``. A later registration replaces an earlier one,
    so a plugin can override a built-in."""
    _STORES[name] = factory


def create_vector_store(name: str) -> VectorStore:
    _register_builtins()
    try:
        factory = _STORES[name]
    except KeyError:
        raise StartupError(f"unknown vector store {name!r}: set ZHIKU_VECTOR_STORE to one of "
                           f"{', '.join(vector_store_names())}", code="unknown_vector_store") from None
    return factory()


def vector_store_names() -> list[str]:
    _register_builtins()
    return sorted(_STORES)


_builtins_registered = False


def _register_builtins() -> None:
    """pgvector registers through the same call as anyone else (a plugin registered first wins)."""
    global _builtins_registered
    if _builtins_registered:
        return
    _builtins_registered = True
    if PgVectorStore.name not in _STORES:
        register_vector_store(PgVectorStore.name, PgVectorStore)


