"""Hostile and careless input gets a clear 4xx, or is cleaned and stored: never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import unique
from tests.integration.helpers import create_dataset, wait_collection

pytestmark = pytest.mark.integration
NUL = "\x00"


def test_names_with_nul_or_control_characters_are_refused(client: httpx.Client) -> None:
    for route, body in (("/api/datasets", {"name": f"bad{NUL}name"}),
                        ("/api/apps", {"name": f"app{NUL}"}),
                        ("/api/keys", {"name": "key\x07"}),
                        ("/api/datasets", {"name": "   "})):
        r = client.post(route, json=body)
        assert r.status_code == 422 and r.json()["code"] == "validation_error", (route, r.text)
    dataset_id = create_dataset(client, unique("hostile"))
    r = client.post(f"/api/datasets/{dataset_id}/collections/text", json={"name": f"a{NUL}.md", "text": "x"})
    assert r.status_code == 422, r.text


def test_free_text_with_nul_is_cleaned_and_stored(client: httpx.Client) -> None:
    r = client.post("/api/datasets", json={"name": unique("nul"), "description": f"tea{NUL} notes"})
    assert r.status_code == 201, r.text
    assert r.json()["description"] == "tea notes"
    dataset_id = r.json()["id"]
    r = client.post(f"/api/datasets/{dataset_id}/collections/text",
                    json={"name": "pasted.md", "text": f"Green tea{NUL} wants water at 80 degrees."})
    assert r.status_code == 201, r.text
    collection = wait_collection(client, r.json()["id"])
    assert collection["status"] == "ready", collection
    chunk = client.get(f"/api/collections/{collection['id']}/chunks").json()["items"][0]
    assert NUL not in chunk["q"] and "Green tea wants water" in chunk["q"]
    r = client.patch(f"/api/chunks/{chunk['id']}", json={"q": f"edited{NUL} text"})
    assert r.status_code == 200 and r.json()["q"] == "edited text"


def test_out_of_range_numbers_are_a_422_not_a_500(client: httpx.Client) -> None:
    for raw in (f'{{"name": "{unique("a")}", "datasetIds": [{2**63}]}}',
                f'{{"name": "{unique("a")}", "datasetIds": [-1]}}',
                f'{{"name": "{unique("a")}", "maxTokens": {10**30}}}',
                f'{{"name": "{unique("a")}", "temperature": NaN}}'):  # JSON as careless clients send it
        r = client.post("/api/apps", content=raw, headers={"content-type": "application/json"})
        assert r.status_code in (400, 422), (raw, r.text)
    r = client.post("/api/keys", json={"name": "k", "appId": 2**63})
    assert r.status_code == 422, r.text


def test_search_settings_of_the_wrong_type_or_out_of_range_are_a_400_naming_the_setting(
        client: httpx.Client) -> None:
    for search, field in (({"similarity": "high"}, "search.similarity"), ({"similarity": -5}, "search.similarity"),
                          ({"limit": 10**30}, "search.max_tokens"), ({"max_tokens": 0}, "search.max_tokens"),
                          ({"embeddingWeight": 1.5}, "search.embedding_weight"), ({"rerank": "yes"}, "search.rerank"),
                          ({"rerankWeight": [1]}, "search.rerank_weight"), ({"mode": ["mixed"]}, "search.mode")):
        r = client.post("/api/apps", json={"name": unique("search"), "search": search})
        assert r.status_code == 400 and r.json()["detail"] == {"field": field}, (search, r.text)
    r = client.post("/api/apps", json={"name": unique("search"), "search": {"similarity": "0.6", "limit": 3000,
                                                                             "searchMode": "fullTextRecall"}})
    assert r.status_code == 201, r.text
    app = r.json()
    assert app["search"]["similarity"] == 0.6 and app["search"]["mode"] == "fullText"
    r = client.patch(f"/api/apps/{app['id']}", json={"search": {"limit": 1000}})  # the rest is kept
    assert r.status_code == 200 and r.json()["search"] == {**app["search"], "max_tokens": 1000}, r.text
    r = client.patch(f"/api/apps/{app['id']}", json={"search": {"similarity": 2}})
    assert r.status_code == 400 and r.json()["code"] == "invalid_search_settings", r.text
    dataset_id = create_dataset(client, unique("search"))
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": "tea", "similarity": 5})
    assert r.status_code == 400 and r.json()["detail"] == {"field": "similarity"}, r.text


def test_a_file_name_too_long_for_the_database_is_refused(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("longname"))
    r = client.post(f"/api/datasets/{dataset_id}/collections/file",
                    files={"file": ("n" * 600 + ".md", b"# Title\n\nbody", "text/markdown")})
    assert r.status_code == 400 and r.json()["code"] == "filename_too_long", r.text


def test_chat_text_and_variables_with_nul_are_stored(server, fake, client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("chatnul"))
    r = client.post("/api/apps", json={"name": unique("chatnul"), "datasetIds": [dataset_id]})
    key = client.post("/api/keys", json={"name": "nul", "appId": r.json()["id"]}).json()["key"]
    chat_id = unique("chat")
    for content in (f"hello{NUL} there", "and again"):
        fake.reply("hi")
        r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                       json={"chatId": chat_id, "variables": {f"who{NUL}": f"Ana{NUL}"},
                             "messages": [{"role": "user", "content": content}]}, timeout=30)
        assert r.status_code == 200, r.text
    history = fake.last_request.json["messages"]
    assert any(m["content"] == "hello there" for m in history)  # the first turn was stored, cleaned


def test_a_disabled_users_api_keys_stop_working_at_once(server, pg_url: str) -> None:
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from tests.conftest import login
    from tests.integration.test_login_limits import new_user

    username = new_user(pg_url, "a-long-enough-password")
    owner = login(server.base_url, username, "a-long-enough-password")
    r = owner.post("/api/keys", json={"name": "owned"})
    assert r.status_code == 201, r.text
    key = {"Authorization": f"Bearer {r.json()['key']}"}
    assert httpx.get(server.base_url + "/api/datasets", headers=key).status_code == 200

    async def disable() -> None:
        engine = create_async_engine(pg_url)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE users SET status = 'disabled' WHERE username = :u"), {"u": username})
        await engine.dispose()

    asyncio.run(disable())
    r = httpx.get(server.base_url + "/api/datasets", headers=key)
    assert r.status_code == 401 and r.json()["code"] == "api_key_owner_disabled"
    owner.close()
