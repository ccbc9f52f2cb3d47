"""FastGPT's dataset API, called the way a FastGPT script calls it: a plain HTTP client, FastGPT's paths and
bodies (../shared/docs/FASTGPT-FORMATS.md §4), an API key as ``Authorization: Bearer``, a real server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import unique

pytestmark = pytest.mark.integration

TEA = """# 茶叶知识

## 绿茶
龙井茶产于杭州西湖一带，属于绿茶，冲泡水温以八十度左右为宜。

## 红茶
祁门红茶产于安徽祁门县，香气高长，被誉为“祁门香”。
"""
GARDEN = """# Garden handbook

Tomatoes need deep watering twice a week. Water early in the morning so leaves dry before night.
"""
API = "/api/core/dataset"


def data_of(r: httpx.Response) -> Any:
    """The ``data`` of a successful FastGPT answer, after checking the envelope."""
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"code", "statusText", "message", "data"}, body
    assert body["code"] == 200 and body["statusText"] == "" and body["message"] == ""
    return body["data"]


def refused(r: httpx.Response, status: int, code: str) -> dict:
    """A FastGPT error envelope with the HTTP status as its ``code`` and Zhiku's code as ``statusText``."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"code", "statusText", "message", "data"}, body
    assert body["code"] == status and body["statusText"] == code and body["message"], body
    return body


def wait_trained(http: httpx.Client, collection_id: str, timeout: float = 120) -> dict:
    """Poll collection/detail until FastGPT's ``trainingAmount`` is 0, as FastGPT scripts do."""
    deadline = time.monotonic() + timeout
    while True:
        item = data_of(http.get(f"{API}/collection/detail", params={"id": collection_id}))
        if item["trainingAmount"] == 0:
            return item
        if time.monotonic() > deadline:
            raise AssertionError(f"collection {collection_id} still training after {timeout}s: {item}")
        time.sleep(0.2)


def new_key_client(base_url: str, key: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {key}"})


@pytest.fixture
def http(server, client: httpx.Client) -> Iterator[httpx.Client]:
    """A FastGPT-style client: the root team's API key, nothing else."""
    r = client.post("/api/keys", json={"name": unique("fastgpt")})
    assert r.status_code == 201, r.text
    with new_key_client(server.base_url, r.json()["key"]) as c:
        yield c


def create_dataset(http: httpx.Client, name: str) -> str:
    dataset_id = data_of(http.post(f"{API}/create", json={"name": name}))
    assert isinstance(dataset_id, str) and dataset_id.isdigit()
    return dataset_id


def create_text(http: httpx.Client, dataset_id: str | int, name: str, text: str) -> str:
    created = data_of(http.post(f"{API}/collection/create/text", json={
        "text": text, "datasetId": dataset_id, "parentId": None, "name": name,
        "trainingType": "chunk", "chunkSettingMode": "auto", "qaPrompt": "", "metadata": {}}))
    assert set(created) == {"collectionId", "results"} and isinstance(created["results"]["insertLen"], int)
    return created["collectionId"]


def test_dataset_create_list_detail_delete(http: httpx.Client) -> None:
    name = unique("fg-ds")
    # the docs' own example body, models left to the defaults as the docs advise
    dataset_id = data_of(http.post(f"{API}/create", json={
        "parentId": None, "type": "dataset", "name": name, "intro": "介绍", "avatar": "", "vectorModel": "",
        "agentModel": ""}))
    assert isinstance(dataset_id, str) and dataset_id.isdigit()

    listed = data_of(http.post(f"{API}/list?parentId=", json={"parentId": ""}))
    mine = next(d for d in listed if d["_id"] == dataset_id)
    assert mine["name"] == name and mine["intro"] == "介绍" and mine["type"] == "dataset"
    assert mine["parentId"] is None and mine["vectorModel"]["model"] == "multilingual-e5-small"
    assert data_of(http.post(f"{API}/list", json={"parentId": None, "searchKey": name.upper()})) == [mine]
    assert data_of(http.post(f"{API}/list")) == listed  # no body at all: the root
    assert data_of(http.post(f"{API}/list", json={"type": "folder"})) == []

    detail = data_of(http.get(f"{API}/detail", params={"id": dataset_id}))
    assert detail["_id"] == dataset_id and detail["name"] == name and detail["status"] == "active"

    assert data_of(http.delete(f"{API}/delete", params={"id": dataset_id})) is None
    body = refused(http.get(f"{API}/detail", params={"id": dataset_id}), 404, "dataset_not_found")
    assert body["data"] is None


def test_text_collection_data_and_search_test(http: httpx.Client) -> None:
    dataset_id = create_dataset(http, unique("fg-tea"))
    collection_id = create_text(http, int(dataset_id), "茶.md", TEA)  # a number where FastGPT has a string
    done = wait_trained(http, collection_id)
    assert done["status"] == "ready" and done["dataAmount"] >= 1 and done["datasetId"] == dataset_id

    page = data_of(http.post(f"{API}/collection/listV2", json={
        "offset": 0, "pageSize": 10, "datasetId": dataset_id, "parentId": None, "searchText": ""}))
    assert page["total"] == 1
    [item] = page["list"]
    assert item["_id"] == collection_id and item["name"] == "茶.md" and item["type"] == "virtual"
    assert item["dataAmount"] == done["dataAmount"] and item["trainingAmount"] == 0
    assert item["tags"] == [] and item["forbid"] is False and item["trainingType"] == "chunk"
    old = data_of(http.post(f"{API}/collection/list", json={"pageNum": 1, "pageSize": 10, "datasetId": dataset_id}))
    assert data_of(http.post(f"{API}/collection/listV2", json={"datasetId": dataset_id, "searchText": "茶"}))["total"] == 1
    assert data_of(http.post(f"{API}/collection/listV2", json={"datasetId": dataset_id, "searchText": "%"}))["total"] == 0
    assert old["total"] == 1 and old["pageNum"] == 1 and [c["_id"] for c in old["data"]] == [collection_id]

    rows = data_of(http.post(f"{API}/data/v2/list", json={"offset": 0, "pageSize": 10,
                                                          "collectionId": collection_id, "searchText": ""}))
    assert rows["total"] == done["dataAmount"] and len(rows["list"]) == rows["total"]
    first = rows["list"][0]
    assert {"_id", "datasetId", "collectionId", "q", "a", "chunkIndex"} <= set(first)
    assert first["collectionId"] == collection_id and first["datasetId"] == dataset_id and first["chunkIndex"] == 0
    old_rows = data_of(http.post(f"{API}/data/list", json={"pageNum": 1, "pageSize": 1, "collectionId": collection_id}))
    found = data_of(http.post(f"{API}/data/v2/list", json={"collectionId": collection_id, "searchText": "龙井"}))
    assert found["total"] >= 1 and all("龙井" in d["q"] + d["a"] for d in found["list"])
    assert data_of(http.post(f"{API}/data/v2/list", json={"collectionId": collection_id, "searchText": "乌龙"}))["total"] == 0
    assert old_rows["pageSize"] == 1 and [d["_id"] for d in old_rows["data"]] == [first["_id"]]

    detail = data_of(http.get(f"{API}/data/detail", params={"id": first["_id"]}))
    assert detail["id"] == first["_id"] and detail["q"] == first["q"] and detail["sourceName"] == "茶.md"
    assert detail["collectionId"] == collection_id and detail["indexes"][0]["type"] == "default"

    assert data_of(http.put(f"{API}/data/update", json={
        "dataId": first["_id"], "q": "碧螺春产于苏州太湖洞庭山", "a": "绿茶"})) is None
    updated = data_of(http.get(f"{API}/data/detail", params={"id": first["_id"]}))
    assert (updated["q"], updated["a"]) == ("碧螺春产于苏州太湖洞庭山", "绿茶")

    result = data_of(http.post(f"{API}/searchTest", json={
        "datasetId": dataset_id, "text": "碧螺春产于哪里", "limit": 50000, "similarity": 0, "searchMode": "mixedRecall",
        "usingReRank": False, "datasetSearchUsingExtensionQuery": False}))
    assert result["limit"] == 20000 and result["searchMode"] == "mixedRecall" and result["usingReRank"] is False
    assert result["similarity"] == 0 and result["duration"].endswith("s")
    top = result["list"][0]
    assert top["id"] == first["_id"] and top["q"] == "碧螺春产于苏州太湖洞庭山" and top["a"] == "绿茶"
    assert top["datasetId"] == dataset_id and top["collectionId"] == collection_id and top["sourceName"] == "茶.md"
    assert top["sourceId"] == collection_id and top["score"] and {"type", "value", "index"} <= set(top["score"][0])
    ft = data_of(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "太湖碧螺春",
                                                     "searchMode": "fullTextRecall"}))
    assert ft["searchMode"] == "fullTextRecall" and ft["limit"] == 5000
    assert all(s["type"] == "fullText" for q in ft["list"] for s in q["score"]) and ft["list"]

    assert data_of(http.delete(f"{API}/data/delete", params={"id": first["_id"]})) == "success"
    refused(http.get(f"{API}/data/detail", params={"id": first["_id"]}), 404, "chunk_not_found")
    left = data_of(http.post(f"{API}/data/v2/list", json={"collectionId": collection_id}))
    assert left["total"] == done["dataAmount"] - 1


def test_local_file_upload_then_collection_delete(http: httpx.Client) -> None:
    dataset_id = create_dataset(http, unique("fg-file"))
    params = {"datasetId": dataset_id, "parentId": None, "trainingType": "chunk", "chunkSize": 512,
              "chunkSplitter": "", "qaPrompt": "", "metadata": {}}
    created = data_of(http.post(f"{API}/collection/create/localFile",
                                files={"file": ("garden.md", GARDEN.encode())}, data={"data": json.dumps(params)}))
    collection_id = created["collectionId"]
    done = wait_trained(http, collection_id)
    assert done["status"] == "ready" and done["type"] == "file" and done["name"] == "garden.md"
    assert done["chunkSize"] == 512

    result = data_of(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "watering tomatoes",
                                                         "searchMode": "embedding"}))
    assert result["list"] and result["list"][0]["collectionId"] == collection_id

    assert data_of(http.delete(f"{API}/collection/delete", params={"id": collection_id})) is None
    refused(http.get(f"{API}/collection/detail", params={"id": collection_id}), 404, "collection_not_found")
    assert data_of(http.post(f"{API}/collection/listV2", json={"datasetId": dataset_id}))["total"] == 0


def test_unknown_and_foreign_ids_are_not_found(http: httpx.Client, other_team: httpx.Client) -> None:
    mine = create_dataset(http, unique("fg-mine"))
    collection_id = create_text(http, mine, "garden.md", GARDEN)
    wait_trained(http, collection_id)
    data_id = data_of(http.post(f"{API}/data/v2/list", json={"collectionId": collection_id}))["list"][0]["_id"]
    theirs = create_dataset(other_team, unique("fg-theirs"))

    for unknown in ("999999999", "65abc9bd9d1448617cba5e6c", "-1", "0", str(2**63)):
        refused(http.get(f"{API}/detail", params={"id": unknown}), 404, "dataset_not_found")
    refused(http.get(f"{API}/detail", params={"id": theirs}), 404, "dataset_not_found")
    refused(http.delete(f"{API}/delete", params={"id": theirs}), 404, "dataset_not_found")
    refused(http.post(f"{API}/collection/create/text", json={"datasetId": theirs, "name": "x", "text": "x"}),
            404, "dataset_not_found")
    refused(http.post(f"{API}/collection/listV2", json={"datasetId": theirs}), 404, "dataset_not_found")
    refused(http.post(f"{API}/searchTest", json={"datasetId": theirs, "text": "x"}), 404, "dataset_not_found")
    # the other team cannot reach this team's collection or data either
    refused(other_team.get(f"{API}/collection/detail", params={"id": collection_id}), 404, "collection_not_found")
    refused(other_team.post(f"{API}/data/v2/list", json={"collectionId": collection_id}), 404,
            "collection_not_found")
    refused(other_team.get(f"{API}/data/detail", params={"id": data_id}), 404, "chunk_not_found")
    refused(other_team.put(f"{API}/data/update", json={"dataId": data_id, "q": "stolen"}), 404, "chunk_not_found")
    refused(other_team.delete(f"{API}/data/delete", params={"id": data_id}), 404, "chunk_not_found")
    refused(other_team.delete(f"{API}/collection/delete", params={"id": collection_id}), 404,
            "collection_not_found")
    # …and nothing of it was touched
    assert data_of(http.get(f"{API}/data/detail", params={"id": data_id}))["q"] != "stolen"
    assert data_of(http.get(f"{API}/detail", params={"id": mine}))["_id"] == mine
    assert all(d["_id"] != mine for d in data_of(other_team.post(f"{API}/list", json={})))


def test_bad_requests_get_specific_errors_in_the_envelope(http: httpx.Client, server) -> None:
    dataset_id = create_dataset(http, unique("fg-bad"))
    with httpx.Client(base_url=server.base_url) as anon:
        refused(anon.post(f"{API}/list", json={}), 401, "unauthorized")
        refused(anon.get(f"{API}/detail", params={"id": dataset_id}, headers={"Authorization": "Bearer zk-nope"}),
                401, "invalid_api_key")
    # missing fields and wrong types
    body = refused(http.post(f"{API}/create", json={"intro": "no name"}), 422, "validation_error")
    assert "name" in body["message"]
    refused(http.post(f"{API}/collection/create/text", json={"datasetId": dataset_id, "name": "t"}), 422,
            "validation_error")
    refused(http.post(f"{API}/collection/listV2", json={"datasetId": True}), 422, "validation_error")
    refused(http.post(f"{API}/collection/listV2", json={"datasetId": [dataset_id]}), 422, "validation_error")
    refused(http.post(f"{API}/collection/listV2", json={"datasetId": dataset_id, "pageSize": 0}), 422,
            "validation_error")
    refused(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "x", "similarity": "high"}), 422,
            "validation_error")
    refused(http.get(f"{API}/detail"), 422, "validation_error")
    refused(http.get(f"{API}/detail", params={"id": ""}), 400, "id_required")
    refused(http.post(f"{API}/list", content=b"{not json", headers={"Content-Type": "application/json"}), 400,
            "invalid_json")
    refused(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "x", "searchMode": "magic"}),
            400, "invalid_search_mode")
    # what Zhiku does not have is refused by name, never half done
    refused(http.post(f"{API}/create", json={"name": unique("folder"), "type": "folder"}), 400,
            "folders_unsupported")
    refused(http.post(f"{API}/create", json={"name": unique("child"), "parentId": dataset_id}), 400,
            "folders_unsupported")
    refused(http.post(f"{API}/collection/create/text", json={"datasetId": dataset_id, "name": "t", "text": "t",
                                                            "parentId": "65abc9bd9d1448617cba5e6c"}),
            400, "folders_unsupported")
    # multipart: the data field must be a JSON object of the common parameters
    refused(http.post(f"{API}/collection/create/localFile", files={"file": ("a.md", b"# a")},
                      data={"data": "{not json"}), 400, "invalid_json")
    refused(http.post(f"{API}/collection/create/localFile", files={"file": ("a.md", b"# a")},
                      data={"data": json.dumps({"trainingType": "chunk"})}), 422, "validation_error")
    refused(http.post(f"{API}/collection/create/localFile", files={"file": ("a.exe", b"MZ")},
                      data={"data": json.dumps({"datasetId": dataset_id})}), 422, "unsupported_file_type")
    refused(http.post(f"{API}/collection/create/localFile", files={"file": ("empty.md", b"")},
                      data={"data": json.dumps({"datasetId": dataset_id})}), 400, "empty_file")
    assert data_of(http.post(f"{API}/collection/listV2", json={"datasetId": dataset_id}))["total"] == 0
    # the platform's own routes keep their own error body
    r = http.get("/api/datasets/999999999")
    assert r.status_code == 404 and r.json()["code"] == "dataset_not_found" and "statusText" not in r.json()


def test_virtual_collection_push_data_indexes_and_update(http: httpx.Client) -> None:
    dataset_id = create_dataset(http, unique("fg-push"))
    collection_id = data_of(http.post(f"{API}/collection/create", json={
        "datasetId": dataset_id, "parentId": None, "name": "手动录入", "type": "virtual", "metadata": {"test": 111}}))
    assert isinstance(collection_id, str) and collection_id.isdigit()
    pushed = data_of(http.post(f"{API}/data/pushData", json={
        "collectionId": collection_id, "trainingType": "chunk", "prompt": "", "billId": "",
        "data": [{"q": "你是谁？", "a": "我是FastGPT助手"},
                 {"q": "你会什么？", "a": "我什么都会", "indexes": [{"text": "自定义索引1"}, {"text": "technical skills"}]}]}))
    assert pushed["insertLen"] == 2
    done = wait_trained(http, collection_id)
    assert done["type"] == "virtual" and done["dataAmount"] == 2 and done["status"] == "ready"

    rows = data_of(http.post(f"{API}/data/v2/list", json={"collectionId": collection_id, "offset": 0, "pageSize": 30}))
    second = next(d for d in rows["list"] if d["q"] == "你会什么？")
    detail = data_of(http.get(f"{API}/data/detail", params={"id": second["_id"]}))
    assert [(i["type"], i["text"]) for i in detail["indexes"]] == [
        ("default", "你会什么？\n我什么都会"), ("custom", "自定义索引1"), ("custom", "technical skills")]
    assert all(i["dataId"] for i in detail["indexes"]) and detail["sourceName"] == "手动录入"
    hits = data_of(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "technical skills",
                                                       "searchMode": "embedding", "similarity": 0}))
    assert hits["list"][0]["id"] == second["_id"]  # found by its index text, returned once
    assert [q["id"] for q in hits["list"]].count(second["_id"]) == 1

    # FastGPT's update body: the indexes as detail showed them, one changed, one new
    kept = [i for i in detail["indexes"] if i["text"] != "technical skills"]
    assert data_of(http.put(f"{API}/data/update", json={
        "dataId": second["_id"], "indexes": [*kept, {"type": "custom", "text": "gardening advice"}]})) is None
    after = data_of(http.get(f"{API}/data/detail", params={"id": second["_id"]}))
    assert [i["text"] for i in after["indexes"]] == ["你会什么？\n我什么都会", "自定义索引1", "gardening advice"]
    hits = data_of(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "gardening advice",
                                                       "searchMode": "embedding", "similarity": 0}))
    assert hits["list"][0]["id"] == second["_id"]


def test_push_data_limits_and_errors(http: httpx.Client, other_team: httpx.Client) -> None:
    dataset_id = create_dataset(http, unique("fg-pushbad"))
    collection_id = data_of(http.post(f"{API}/collection/create", json={
        "datasetId": dataset_id, "name": "manual", "type": "virtual"}))
    item = {"q": "q", "a": "a"}
    body = refused(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": [item] * 201}),
                   400, "too_many_items")
    assert body["data"] == {"limit": 200, "count": 201}
    refused(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": []}), 400, "no_items")
    refused(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": [{"a": "no q"}]}),
            422, "validation_error")
    refused(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": "q"}), 422,
            "validation_error")
    refused(http.post(f"{API}/data/pushData", json={"data": [item]}), 422, "validation_error")
    refused(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "trainingType": "imageParse",
                                                    "data": [item]}), 400, "unsupported_training_type")
    refused(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": [
        {"q": "q", "indexes": [{"type": "image", "text": "x"}]}]}), 422, "validation_error")
    refused(other_team.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": [item]}), 404,
            "collection_not_found")
    # a body over FastGPT's 10 MB is refused before it is read
    big = json.dumps({"collectionId": collection_id, "data": [{"q": "x" * 60_000}] * 180}).encode()
    assert len(big) > 10 * 1024 * 1024
    refused(http.post(f"{API}/data/pushData", content=big, headers={"Content-Type": "application/json"}), 413,
            "request_too_large")
    # nothing of any refused push was written; a good one still goes in
    assert data_of(http.post(f"{API}/data/v2/list", json={"collectionId": collection_id}))["total"] == 0
    assert data_of(http.post(f"{API}/data/pushData", json={"collectionId": collection_id, "data": [item]}))[
        "insertLen"] == 1
    refused(http.post(f"{API}/collection/create", json={"datasetId": dataset_id, "name": "dir", "type": "folder"}),
            400, "folders_unsupported")
    refused(http.post(f"{API}/collection/create", json={"datasetId": dataset_id, "name": "x", "type": "api"}),
            422, "validation_error")


def test_link_collection_refuses_private_addresses_by_default(http: httpx.Client) -> None:
    dataset_id = create_dataset(http, unique("fg-link"))
    refused(http.post(f"{API}/collection/create/link", json={
        "link": "http://127.0.0.1:9/page", "datasetId": dataset_id, "trainingType": "chunk"}), 403,
        "url_private_address")
    refused(http.post(f"{API}/collection/create/link", json={"datasetId": dataset_id}), 422, "validation_error")
    refused(http.post(f"{API}/collection/create/link", json={
        "link": "http://example.com/", "datasetId": dataset_id, "trainingType": "imageParse"}), 400,
        "unsupported_training_type")
    assert data_of(http.post(f"{API}/collection/listV2", json={"datasetId": dataset_id}))["total"] == 0


def test_link_collection_is_fetched_and_searchable(fresh_db: str, tmp_path, embedders) -> None:
    from tests.conftest import login, make_settings
    from tests.integration.test_links import Site, article
    from zhiku.testing.server import ServerThread

    settings = make_settings(fresh_db, tmp_path / "data", allow_private_urls=True)  # the page is on 127.0.0.1
    with Site() as site, ServerThread(settings, embedders) as server:
        site.html("/docs/bike", "Bicycle care", article("Bicycle care"))
        root = login(server.base_url)
        key = root.post("/api/keys", json={"name": "fastgpt"}).json()["key"]
        root.close()
        with new_key_client(server.base_url, key) as http:
            dataset_id = create_dataset(http, "links")
            created = data_of(http.post(f"{API}/collection/create/link", json={
                "link": site.url("/docs/bike"), "datasetId": dataset_id, "parentId": None, "trainingType": "chunk",
                "chunkSettingMode": "auto", "qaPrompt": "", "metadata": {"webPageSelector": ".docs-content"}}))
            done = wait_trained(http, created["collectionId"])
            assert done["status"] == "ready" and done["type"] == "link" and done["rawLink"] == site.url("/docs/bike")
            assert done["name"] == "Bicycle care" and done["dataAmount"] >= 1
            hits = data_of(http.post(f"{API}/searchTest", json={"datasetId": dataset_id, "text": "chain tyre pressure"}))
            assert hits["list"][0]["collectionId"] == created["collectionId"]


QA_PAIRS = """Q1: How much does green tea cost?
A1: Green tea costs 30 yuan a tin.
Q2: Which tea is the cheapest?
A2: Jasmine tea, at 18 yuan a tin."""


def test_training_type_qa_goes_through_the_agent_model(http: httpx.Client, fake) -> None:
    dataset_id = data_of(http.post(f"{API}/create", json={"name": unique("fg-qa"), "agentModel": "qa-writer"}))
    assert data_of(http.get(f"{API}/detail", params={"id": dataset_id}))["agentModel"]["model"] == "qa-writer"
    fake.reply(QA_PAIRS)
    created = data_of(http.post(f"{API}/collection/create/text", json={
        "datasetId": dataset_id, "name": "tea.md", "text": "Green tea costs 30 yuan. Jasmine tea costs 18 yuan.",
        "trainingType": "qa", "qaPrompt": "", "tags": ["prices"]}))
    done = wait_trained(http, created["collectionId"])
    assert done["status"] == "ready" and done["trainingType"] == "qa" and done["tags"] == ["prices"]
    rows = data_of(http.post(f"{API}/data/v2/list", json={"collectionId": created["collectionId"]}))["list"]
    assert [(d["q"], d["a"]) for d in rows] == [("How much does green tea cost?", "Green tea costs 30 yuan a tin."),
                                                ("Which tea is the cheapest?", "Jasmine tea, at 18 yuan a tin.")]
    assert [r.json["model"] for r in fake.requests if r.path.endswith("/chat/completions")] == ["qa-writer"]

    fake.reply("Q1: Where is Longjing grown?\nA1: Near West Lake in Hangzhou.")
    pushed = data_of(http.post(f"{API}/data/pushData", json={
        "collectionId": created["collectionId"], "trainingType": "qa", "prompt": "Ask only about places.",
        "data": [{"q": "Longjing tea is grown near West Lake in Hangzhou."}]}))
    assert pushed["insertLen"] == 1
    wait_trained(http, created["collectionId"])
    rows = data_of(http.post(f"{API}/data/v2/list", json={"collectionId": created["collectionId"]}))["list"]
    assert rows[-1]["q"] == "Where is Longjing grown?" and len(rows) == 3
    asked = [r for r in fake.requests if r.path.endswith("/chat/completions")][-1]
    assert asked.json["messages"][0]["content"].startswith("Ask only about places.")
