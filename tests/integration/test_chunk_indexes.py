"""Index texts per chunk and the push-data service, over real HTTP, PostgreSQL and the bundled model."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import numpy as np
import pytest

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset, push, sql_rows, wait_collection
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.knowledge.schemas import MAX_INDEX_CHARS, MAX_PUSH_ITEMS, MAX_Q_CHARS

pytestmark = pytest.mark.integration

KETTLE = "The kettle boils water in three minutes when it is full."
ELEPHANT = "蓝色的大象在月球上跳舞"


def _collection(client: httpx.Client, name: str = "notes") -> tuple[int, int]:
    dataset_id = create_dataset(client, unique("idx"))
    collection = add_text(client, dataset_id, name, "Seed text for a collection that data is pushed into.")
    assert collection["status"] == "ready", collection
    return dataset_id, collection["id"]


def _search(client: httpx.Client, dataset_id: int, text: str, mode: str = "embedding", **extra: object) -> list:
    r = client.post(f"/api/datasets/{dataset_id}/search",
                    json={"text": text, "searchMode": mode, "similarity": 0, **extra})
    assert r.status_code == 200, r.text
    return r.json()["quotes"]


def _chunks(client: httpx.Client, collection_id: int) -> list[dict]:
    r = client.get(f"/api/collections/{collection_id}/chunks")
    assert r.status_code == 200, r.text
    return r.json()["items"]


def test_pushed_index_texts_are_vectors_and_search_finds_the_chunk_once(client: httpx.Client, server) -> None:
    dataset_id, collection_id = _collection(client)
    r = push(client, collection_id, [
        {"q": KETTLE, "indexes": [{"type": "custom", "text": ELEPHANT}, {"text": "how long to boil water"}]},
        {"q": "Oil the bicycle chain after riding in the rain.", "a": "Use a light oil."},
    ])
    assert r.status_code == 201, r.text
    assert r.json() == {"insertLen": 2, "collectionId": collection_id}
    assert wait_collection(client, collection_id)["status"] == "ready"

    kettle = next(c for c in _chunks(client, collection_id) if c["q"] == KETTLE)
    assert kettle["indexes"] == [{"type": "custom", "text": ELEPHANT}, {"type": "custom", "text": "how long to boil water"}]
    assert kettle["metadata"] == {} and kettle["embedded"] is True
    kinds = sql_rows(server.settings.database_url,
                     "SELECT kind, text FROM chunk_vectors WHERE chunk_id = :c ORDER BY id", c=kettle["id"])
    assert [(k["kind"], k["text"]) for k in kinds] == [
        ("default", KETTLE), ("custom", ELEPHANT), ("custom", "how long to boil water")]

    # The index text alone matches: nothing in the chunk's own text is about elephants on the moon.
    for mode in ("embedding", "fullText", "mixedRecall"):
        quotes = _search(client, dataset_id, "大象 月球 跳舞", mode)
        assert quotes and quotes[0]["id"] == str(kettle["id"]), (mode, quotes)
        assert [q["id"] for q in quotes].count(str(kettle["id"])) == 1
    # Both its text and an index text match "boil water": still one quote for the chunk.
    quotes = _search(client, dataset_id, "boil water kettle", "mixedRecall")
    assert [q["id"] for q in quotes].count(str(kettle["id"])) == 1


def test_editing_a_chunk_embeds_only_the_texts_that_changed(client: httpx.Client, embedders: EmbedderRegistry,
                                                            server, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id, collection_id = _collection(client)
    assert push(client, collection_id, [{"q": KETTLE, "indexes": [{"text": "boiling time"},
                                                                   {"text": "electric kettle"}]}]).status_code == 201
    wait_collection(client, collection_id)
    chunk = next(c for c in _chunks(client, collection_id) if c["q"] == KETTLE)

    embedder = embedders.get()
    real_embed = embedder.embed
    embedded: list[str] = []

    def counting(texts: Sequence[str], kind: str = "passage") -> np.ndarray:
        embedded.extend(texts)
        return real_embed(texts, kind)

    monkeypatch.setattr(embedder, "embed", counting)
    r = client.patch(f"/api/chunks/{chunk['id']}", json={"indexes": [{"text": "boiling time"},
                                                                      {"type": "question", "text": "How fast?"}]})
    assert r.status_code == 200, r.text
    assert r.json()["indexes"] == [{"type": "custom", "text": "boiling time"},
                                   {"type": "question", "text": "How fast?"}]
    assert embedded == ["How fast?"]  # q and "boiling time" kept their vectors; "electric kettle" went

    embedded.clear()
    r = client.patch(f"/api/chunks/{chunk['id']}", json={"a": "Fill it to the line first."})
    assert r.status_code == 200, r.text
    assert embedded == [f"{KETTLE}\nFill it to the line first."]  # only the chunk's own text changed
    rows = sql_rows(server.settings.database_url,
                    "SELECT kind, text FROM chunk_vectors WHERE chunk_id = :c ORDER BY kind, text", c=chunk["id"])
    assert [(r["kind"], r["text"]) for r in rows] == [
        ("custom", "boiling time"), ("default", f"{KETTLE}\nFill it to the line first."), ("question", "How fast?")]
    assert _search(client, dataset_id, "How fast?", "fullText")[0]["id"] == str(chunk["id"])
    assert not _search(client, dataset_id, "electric", "fullText")  # the removed index text's postings went


def test_push_limits_are_specific_errors_and_write_nothing(client: httpx.Client) -> None:
    _, collection_id = _collection(client)
    before = _chunks(client, collection_id)

    r = push(client, collection_id, [{"q": f"item {i}"} for i in range(MAX_PUSH_ITEMS + 1)])
    assert r.status_code == 400 and r.json()["code"] == "too_many_items", r.text
    r = push(client, collection_id, [{"q": "fine"}, {"q": "x" * (MAX_Q_CHARS + 1)}])
    assert r.status_code == 413 and r.json()["code"] == "item_too_long" and "item 1" in r.json()["message"]
    r = push(client, collection_id, [{"q": "fine", "indexes": [{"text": "y" * (MAX_INDEX_CHARS + 1)}]}])
    assert r.status_code == 413 and r.json()["code"] == "item_too_long"
    r = push(client, collection_id, [{"q": "fine", "indexes": [{"text": f"i{n}"} for n in range(11)]}])
    assert r.status_code == 400 and r.json()["code"] == "too_many_indexes"
    r = push(client, collection_id, [{"q": "fine"}, {"q": "   "}])
    assert r.status_code == 400 and r.json()["code"] == "empty_text"
    r = push(client, collection_id, [])
    assert r.status_code == 400 and r.json()["code"] == "no_items"
    r = push(client, collection_id, [{"q": "fine", "indexes": [{"type": "image", "text": "x"}]}])
    assert r.status_code == 422
    assert _chunks(client, collection_id) == before

    r = push(client, 10**12, [{"q": "fine"}])
    assert r.status_code == 404 and r.json()["code"] == "collection_not_found"


def test_push_cleans_nul_and_lone_surrogates_and_appends_in_order(client: httpx.Client) -> None:
    _, collection_id = _collection(client)
    # A lone surrogate cannot travel as UTF-8 JSON from httpx; "\\ud800" is the JSON escape a client sends.
    body = '{"data": [{"q": "nul\\u0000here", "a": "half \\ud800 pair", "indexes": [{"text": "in\\u0000dex"}]},' \
           ' {"q": "second"}]}'
    r = client.post(f"/api/collections/{collection_id}/data", content=body,
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    wait_collection(client, collection_id)
    chunks = _chunks(client, collection_id)
    assert [(c["q"], c["a"]) for c in chunks[-2:]] == [("nulhere", "half  pair"), ("second", "")]
    assert chunks[-2]["indexes"] == [{"type": "custom", "text": "index"}]
    assert [c["chunk_index"] for c in chunks] == sorted(c["chunk_index"] for c in chunks)
    assert len({c["chunk_index"] for c in chunks}) == len(chunks)
