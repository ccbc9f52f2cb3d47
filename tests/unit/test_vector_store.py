"""The vector-store seam: the registry, and the setting that picks a store."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from zhiku.config import VECTOR_STORES, Settings
from zhiku.errors import StartupError
from zhiku.retrieval.pgvector_store import PgVectorStore
from zhiku.retrieval.vector_store_registry import (
    create_vector_store,
    register_vector_store,
    vector_store_names,
)


def test_every_store_the_settings_accept_is_registered() -> None:
    assert set(VECTOR_STORES) <= set(vector_store_names())
    assert isinstance(create_vector_store("pgvector"), PgVectorStore)


def test_unknown_store_names_the_known_ones() -> None:
    with pytest.raises(StartupError, match="pgvector") as error:
        create_vector_store("no-such-store")
    assert error.value.code == "unknown_vector_store"


def test_a_registered_store_is_created_by_name() -> None:
    class NamedStore(PgVectorStore):
        name = "test-named-store"

    register_vector_store(NamedStore.name, NamedStore)
    assert isinstance(create_vector_store("test-named-store"), NamedStore)
    assert "test-named-store" in vector_store_names()


def test_setting_is_read_from_the_environment_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().vector_store == "pgvector"
    monkeypatch.setenv("ZHIKU_VECTOR_STORE", "pgvector")
    assert Settings().vector_store == "pgvector"
    monkeypatch.setenv("ZHIKU_VECTOR_STORE", "milvus")
    with pytest.raises(ValidationError, match=r"ZHIKU_VECTOR_STORE 'milvus'.*known: pgvector"):
        Settings()
