"""Datasets, collections, chunks and search over real HTTP, PostgreSQL and the bundled model."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset, upload, wait_collection

pytestmark = pytest.mark.integration

GARDEN = """# Garden handbook

## Watering

Tomatoes need deep watering twice a week. Water early in the morning so leaves dry before night.

## Pests

Aphids gather under young leaves. Spray them off with water or release ladybirds, which eat aphids.
"""

TEA_ZH = """# 茶叶知识

## 绿茶
龙井茶产于杭州西湖一带，属于绿茶，冲泡水温以八十度左右为宜。

## 红茶
祁门红茶产于安徽祁门县，香气高长，被誉为“祁门香”。
"""


def test_health_is_public_and_everything_else_needs_credentials(server) -> None:
    with httpx.Client(base_url=server.base_url) as anon:
        assert anon.get("/api/health").json()["status"] == "ok"
        for method, path in [("GET", "/api/datasets"), ("POST", "/api/datasets"), ("GET", "/api/apps"),
                             ("GET", "/api/keys"), ("GET", "/api/collections/1"), ("GET", "/api/chunks/1"),
                             ("POST", "/api/v1/chat/completions")]:
            r = anon.request(method, path, json={})
            assert r.status_code == 401, (method, path, r.text)
        r = anon.get("/api/datasets", headers={"Authorization": "Bearer zk-not-a-real-key"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_api_key"
        r = anon.post("/api/auth/login", json={"username": "root", "password": "wrong"})
        assert r.status_code == 401 and r.json()["code"] == "invalid_credentials"


def test_login_cookie_works_and_logout_ends_the_session(server) -> None:
    with httpx.Client(base_url=server.base_url) as c:
        r = c.post("/api/auth/login", json={"username": "root", "password": "test-root-password"})
        assert r.status_code == 200 and "zhiku_session" in r.cookies
        assert c.get("/api/auth/me").json()["role"] == "root"
        refused = c.post("/api/auth/logout")  # the cookie alone does not change anything: CSRF
        assert refused.status_code == 403 and refused.json()["code"] == "csrf_failed"
        assert c.post("/api/auth/logout", headers={"X-CSRF-Token": r.json()["csrfToken"]}).status_code == 204
        c.cookies.set("zhiku_session", r.json()["token"])
        assert c.get("/api/auth/me").status_code == 401


def test_dataset_crud(client: httpx.Client) -> None:
    name = unique("ds")
    dataset_id = create_dataset(client, name)
    got = client.get(f"/api/datasets/{dataset_id}").json()
    assert got["embedding_model"] == "multilingual-e5-small" and got["vector_dim"] == 384
    assert any(d["id"] == dataset_id for d in client.get("/api/datasets").json())
    dup = client.post("/api/datasets", json={"name": name})
    assert dup.status_code == 409 and dup.json()["code"] == "dataset_exists"
    renamed = client.patch(f"/api/datasets/{dataset_id}", json={"name": name + "-renamed"})
    assert renamed.status_code == 200 and renamed.json()["name"] == name + "-renamed"
    assert client.delete(f"/api/datasets/{dataset_id}").status_code == 204
    r = client.get(f"/api/datasets/{dataset_id}")
    assert r.status_code == 404 and r.json()["code"] == "dataset_not_found"


def test_unknown_ids_and_malformed_json(client: httpx.Client) -> None:
    for path in ("/api/datasets/999999", "/api/collections/999999", "/api/chunks/999999", "/api/apps/999999"):
        r = client.get(path)
        assert r.status_code == 404, path
        assert r.json()["code"].endswith("_not_found")
    r = client.post("/api/datasets", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "invalid_json"
    r = client.post("/api/datasets", json={"name": ""})
    assert r.status_code == 422 and r.json()["code"] == "validation_error"
    r = client.post("/api/datasets", json={"name": unique("ds"), "embeddingModel": "no-such-model"})
    assert r.status_code == 400 and r.json()["code"] == "unknown_embedding_model"


def test_text_import_search_modes_and_score_breakdown(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("garden"))
    col = add_text(client, dataset_id, "garden.md", GARDEN)
    assert col["status"] == "ready" and col["chunk_count"] >= 1 and col["indexed_count"] == col["chunk_count"]
    chunks = client.get(f"/api/collections/{col['id']}/chunks").json()
    assert chunks["total"] == col["chunk_count"]
    assert all(c["embedded"] for c in chunks["items"])
    for mode, expected_types in [("embedding", {"embedding"}), ("fullText", {"fullText"}),
                                 ("mixed", {"rrf"})]:
        r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "how do I get rid of aphids",
                                                                     "searchMode": mode})
        assert r.status_code == 200, r.text
        quotes = r.json()["quotes"]
        assert quotes, mode
        assert "Aphids" in quotes[0]["q"], (mode, quotes[0])
        types = {s["type"] for s in quotes[0]["score"]}
        assert expected_types <= types, (mode, types)
        assert quotes[0]["sourceName"] == "garden.md"


def test_chinese_full_text_search_uses_word_segmentation(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("tea"))
    add_text(client, dataset_id, "tea.md", TEA_ZH)
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "祁门红茶的香气", "searchMode": "fullText"})
    quotes = r.json()["quotes"]
    assert quotes and "祁门" in quotes[0]["q"]
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "龙井用多少度的水泡", "searchMode": "mixed"})
    assert "龙井" in r.json()["quotes"][0]["q"]


def test_markdown_and_gb18030_uploads(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("files"))
    r = upload(client, dataset_id, "garden.md", GARDEN.encode())
    assert r.status_code == 201, r.text
    md = wait_collection(client, r.json()["id"])
    assert md["status"] == "ready"
    text = ("龙井茶产于杭州西湖，是中国十大名茶之一。" * 20).encode("gb18030")
    r = upload(client, dataset_id, "tea-gbk.txt", text)
    assert r.status_code == 201, r.text
    col = wait_collection(client, r.json()["id"])
    assert col["status"] == "ready", col
    chunk = client.get(f"/api/collections/{col['id']}/chunks").json()["items"][0]
    assert "龙井茶产于杭州西湖" in chunk["q"]


def test_bad_uploads_get_specific_errors_and_lose_nothing(client: httpx.Client, server) -> None:
    dataset_id = create_dataset(client, unique("bad"))
    good = add_text(client, dataset_id, "keep.md", GARDEN)
    r = upload(client, dataset_id, "empty.txt", b"")
    assert r.status_code == 400 and r.json()["code"] == "empty_file"
    r = upload(client, dataset_id, "photo.exe", b"MZ\x90\x00")
    assert r.status_code == 422 and r.json()["code"] == "unsupported_file_type"
    limit = server.settings.upload_max_bytes
    r = upload(client, dataset_id, "huge.txt", b"a" * (limit + 1))
    assert r.status_code == 413 and r.json()["code"] == "file_too_large"
    r = upload(client, dataset_id, "binary.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)
    assert r.status_code == 201
    bad = wait_collection(client, r.json()["id"])
    assert bad["status"] == "error" and bad["error_code"] == "binary_file" and bad["error"]
    r = upload(client, dataset_id, "blank.md", b"   \n\n  \t\n")
    blank = wait_collection(client, r.json()["id"])
    assert blank["status"] == "error" and blank["error_code"] == "empty_file"
    # the earlier collection is untouched
    after = client.get(f"/api/collections/{good['id']}").json()
    assert after["status"] == "ready" and after["chunk_count"] == good["chunk_count"]
    listed = client.get(f"/api/datasets/{dataset_id}/collections").json()
    assert listed["total"] == 3  # keep.md, binary.txt, blank.md: the refused uploads left nothing behind


def test_chunk_edit_reembeds_and_delete(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("edit"))
    col = add_text(client, dataset_id, "garden.md", GARDEN)
    chunk = client.get(f"/api/collections/{col['id']}/chunks").json()["items"][0]
    new_text = "The lighthouse keeper winds the clock every evening at seven."
    r = client.patch(f"/api/chunks/{chunk['id']}", json={"q": new_text, "a": "It keeps the lamp turning."})
    assert r.status_code == 200 and r.json()["q"] == new_text and r.json()["embedded"]
    r = client.post(f"/api/datasets/{dataset_id}/search",
                    json={"text": "who winds the lighthouse clock", "searchMode": "embedding"})
    top = r.json()["quotes"][0]
    assert top["id"] == str(chunk["id"]) and top["a"] == "It keeps the lamp turning."
    assert client.patch(f"/api/chunks/{chunk['id']}", json={"q": ""}).status_code == 422
    assert client.delete(f"/api/chunks/{chunk['id']}").status_code == 204
    assert client.get(f"/api/chunks/{chunk['id']}").status_code == 404
    assert client.get(f"/api/collections/{col['id']}").json()["chunk_count"] == col["chunk_count"] - 1


def test_collection_delete_removes_its_chunks_only(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("del"))
    a = add_text(client, dataset_id, "a.md", GARDEN)
    b = add_text(client, dataset_id, "b.md", TEA_ZH)
    assert client.delete(f"/api/collections/{a['id']}").status_code == 204
    assert client.get(f"/api/collections/{a['id']}/chunks").status_code == 404
    assert client.get(f"/api/collections/{b['id']}/chunks").json()["total"] == b["chunk_count"]
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "aphids", "searchMode": "fullText"})
    assert all(q["collectionId"] == str(b["id"]) for q in r.json()["quotes"])


async def test_long_chunk_gets_one_vector_per_window_not_a_truncated_one(client: httpx.Client, pg_url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    dataset_id = create_dataset(client, unique("long"))
    body = "".join(f"第{i}段：龙井茶产于杭州西湖，采摘于清明前后，冲泡时水温约八十度。" for i in range(120))
    r = client.post(f"/api/datasets/{dataset_id}/collections/text",
                    json={"name": "long.md", "text": body, "chunkSize": 20000})
    col = wait_collection(client, r.json()["id"])
    assert col["status"] == "ready" and col["chunk_count"] == 1
    engine = create_async_engine(pg_url)
    async with engine.connect() as conn:
        parts = (await conn.execute(text(
            "SELECT part, text FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id "
            "WHERE c.collection_id = :c ORDER BY part"), {"c": col["id"]})).all()
    await engine.dispose()
    assert len(parts) > 1  # about 3,500 characters is well over the model's 512 tokens
    assert "".join(t for _, t in parts) == body  # the windows cover the whole chunk, in order
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "第119段", "searchMode": "fullText"})
    assert r.json()["quotes"][0]["collectionId"] == str(col["id"])
