"""FastGPT's history and record APIs (``/api/core/chat/…``), written from the fact sheet (§3.5) against a
real server, with the fake model upstream answering."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset, wait_collection

pytestmark = pytest.mark.integration

MANUAL = "# Kettle manual\n\nDescale the kettle every month with white vinegar.\n"


def envelope(r: httpx.Response) -> object:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200 and set(body) >= {"statusText", "message", "data"}, body
    return body["data"]


def refused(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and body["statusText"] == code, body


@pytest.fixture
def app(client: httpx.Client) -> dict:
    return kettle_app(client)


def kettle_app(client: httpx.Client) -> dict:
    """A simple app over a kettle manual, with an app key and a team key."""
    dataset_id = create_dataset(client, unique("kettle"))
    add_text(client, dataset_id, "kettle.md", MANUAL)
    r = client.post("/api/apps", json={"name": unique("kettle-app"), "datasetIds": [dataset_id]})
    assert r.status_code == 201, r.text
    app_id = r.json()["id"]
    keys = []
    for name in ("app", "team"):
        r = client.post("/api/keys", json={"name": name, **({"appId": app_id} if name == "app" else {})})
        assert r.status_code == 201, r.text
        keys.append(r.json()["key"])
    return {"id": app_id, "app_key": keys[0], "team_key": keys[1], "dataset_id": dataset_id}


def chat(server, key: str, chat_id: str, question: str, **body: object) -> dict:
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"chatId": chat_id, "messages": [{"role": "user", "content": question}], **body}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def api(server, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)


def test_histories_list_rename_pin_delete_and_clear(server, fake, app) -> None:
    first, second, third = unique("c1"), unique("c2"), unique("c3")
    for chat_id, question in ((first, "How often to descale the kettle?"), (second, "Which vinegar?"),
                              (third, "Is tap water fine?")):
        fake.reply("Monthly.")
        chat(server, app["app_key"], chat_id, question)
    with api(server, app["app_key"]) as c:
        data = envelope(c.post("/api/core/chat/getHistories", json={"offset": 0, "pageSize": 2}))
        assert data["total"] == 3
        assert [h["chatId"] for h in data["list"]] == [third, second]  # newest first
        item = data["list"][0]
        assert set(item) >= {"chatId", "updateTime", "appId", "customTitle", "title", "top"}
        assert item["title"].startswith("Is tap water fine") and item["customTitle"] == "" and item["top"] is False
        page2 = envelope(c.post("/api/core/chat/getHistories", json={"pageNum": 2, "pageSize": 2}))
        assert [h["chatId"] for h in page2["list"]] == [first]

        envelope(c.post("/api/core/chat/updateHistory", json={"chatId": first, "customTitle": "Descaling"}))
        envelope(c.post("/api/core/chat/updateHistory", json={"chatId": first, "top": True}))
        data = envelope(c.post("/api/core/chat/getHistories", json={"pageSize": 10}))
        top = data["list"][0]
        assert top["chatId"] == first and top["top"] is True and top["customTitle"] == "Descaling"
        assert top["title"].startswith("How often")  # the automatic title stays
        # a team key names the app; a source filter finds only API chats
        with api(server, app["team_key"]) as team:
            data = envelope(team.post("/api/core/chat/getHistories",
                                      json={"appId": str(app["id"]), "source": "api", "pageSize": 10}))
            assert {h["chatId"] for h in data["list"]} == {first, second, third}
            refused(team.post("/api/core/chat/getHistories", json={"pageSize": 10}), 400, "app_required")

        envelope(c.delete("/api/core/chat/delHistory", params={"appId": app["id"], "chatId": second}))
        data = envelope(c.post("/api/core/chat/getHistories", json={"pageSize": 10}))
        assert {h["chatId"] for h in data["list"]} == {first, third}
        refused(c.delete("/api/core/chat/delHistory", params={"chatId": second}), 404, "chat_not_found")

        envelope(c.delete("/api/core/chat/clearHistories", params={"appId": app["id"]}))
        assert envelope(c.post("/api/core/chat/getHistories", json={}))["total"] == 0


def test_records_paging_response_data_delete_and_feedback(server, fake, app) -> None:
    chat_id = unique("rec")
    for n in range(3):
        fake.reply(f"Answer {n}.")
        chat(server, app["app_key"], chat_id, f"Question {n} about vinegar descaling",
             **({"responseChatItemId": "my-answer-1"} if n == 1 else {}))
    with api(server, app["app_key"]) as c:
        data = envelope(c.post("/api/core/chat/getPaginationRecords",
                               json={"chatId": chat_id, "offset": 0, "pageSize": 4}))
        assert data["total"] == 6
        records = data["list"]
        assert [r["obj"] for r in records] == ["Human", "AI", "Human", "AI"]  # the latest four, in order
        assert [r["value"][0]["text"]["content"] for r in records] == [
            "Question 1 about vinegar descaling", "Answer 1.", "Question 2 about vinegar descaling", "Answer 2."]
        answer = records[1]
        assert answer["dataId"] == "my-answer-1"
        assert answer["totalQuoteList"] and "vinegar" in answer["totalQuoteList"][0]["q"]
        assert answer["llmModuleAccount"] >= 1 and answer["totalRunningTime"] >= 0
        older = envelope(c.post("/api/core/chat/getPaginationRecords",
                                json={"chatId": chat_id, "offset": 4, "pageSize": 4}))
        assert [r["value"][0]["text"]["content"] for r in older["list"]] == [
            "Question 0 about vinegar descaling", "Answer 0."]

        nodes = envelope(c.get("/api/core/chat/getResData", params={"chatId": chat_id, "dataId": "my-answer-1"}))
        kinds = [n["moduleType"] for n in nodes]
        assert "datasetSearchNode" in kinds and "chatNode" in kinds
        chat_node = next(n for n in nodes if n["moduleType"] == "chatNode")
        assert chat_node["model"] == "fake-chat"

        envelope(c.post("/api/core/chat/feedback/updateUserFeedback",
                        json={"chatId": chat_id, "dataId": "my-answer-1", "userBadFeedback": "too short"}))
        envelope(c.post("/api/core/chat/feedback/updateUserFeedback",
                        json={"chatId": chat_id, "dataId": records[3]["dataId"], "userGoodFeedback": "yes"}))
        records = envelope(c.post("/api/core/chat/getPaginationRecords",
                                  json={"chatId": chat_id, "offset": 0, "pageSize": 4}))["list"]
        assert records[1]["userBadFeedback"] == "too short" and "userGoodFeedback" not in records[1]
        assert records[3]["userGoodFeedback"] == "yes"
        envelope(c.post("/api/core/chat/feedback/updateUserFeedback",
                        json={"chatId": chat_id, "dataId": "my-answer-1"}))  # neither: cleared
        records = envelope(c.post("/api/core/chat/getPaginationRecords",
                                  json={"chatId": chat_id, "offset": 0, "pageSize": 4}))["list"]
        assert "userBadFeedback" not in records[1]
        refused(c.post("/api/core/chat/feedback/updateUserFeedback",
                       json={"chatId": chat_id, "dataId": records[0]["dataId"], "userGoodFeedback": "yes"}),
                404, "chat_item_not_found")  # a question takes no feedback

        envelope(c.delete("/api/core/chat/item/delete", params={"chatId": chat_id, "contentId": "my-answer-1"}))
        data = envelope(c.post("/api/core/chat/getPaginationRecords",
                               json={"chatId": chat_id, "offset": 0, "pageSize": 10}))
        assert data["total"] == 5 and "my-answer-1" not in [r["dataId"] for r in data["list"]]
        refused(c.get("/api/core/chat/getResData", params={"chatId": chat_id, "dataId": "my-answer-1"}),
                404, "chat_item_not_found")


def test_init_gives_the_chat_and_app(server, fake, app) -> None:
    chat_id = unique("init")
    fake.reply("Monthly.")
    chat(server, app["app_key"], chat_id, "How often?")
    with api(server, app["app_key"]) as c:
        data = envelope(c.get("/api/core/chat/init", params={"appId": app["id"], "chatId": chat_id}))
    assert data["chatId"] == chat_id and data["appId"] == str(app["id"]) and data["title"] == "How often?"
    assert data["app"]["name"].startswith("kettle-app") and "chatConfig" in data["app"]


def test_an_app_key_cannot_read_another_apps_chats(server, fake, client, app) -> None:
    chat_id = unique("mine")
    fake.reply("Monthly.")
    chat(server, app["app_key"], chat_id, "How often?")
    r = client.post("/api/apps", json={"name": unique("other-app")})
    other_app = r.json()["id"]
    other_key = client.post("/api/keys", json={"name": "other", "appId": other_app}).json()["key"]
    with api(server, other_key) as c:
        assert envelope(c.post("/api/core/chat/getHistories", json={}))["total"] == 0
        refused(c.post("/api/core/chat/getHistories", json={"appId": str(app["id"])}), 404, "app_not_found")
        refused(c.post("/api/core/chat/getPaginationRecords", json={"appId": app["id"], "chatId": chat_id}),
                404, "app_not_found")
        refused(c.post("/api/core/chat/getPaginationRecords", json={"chatId": chat_id}), 404, "chat_not_found")
        refused(c.delete("/api/core/chat/delHistory", params={"appId": app["id"], "chatId": chat_id}),
                404, "app_not_found")
    with api(server, app["app_key"]) as c:
        assert envelope(c.post("/api/core/chat/getHistories", json={}))["total"] == 1
    r = httpx.post(server.base_url + "/api/core/chat/getHistories", json={"appId": str(app["id"])})
    refused(r, 401, "unauthorized")


def test_an_admin_correction_becomes_a_searchable_chunk(server, fake, client, app) -> None:
    chat_id = unique("fix")
    fake.reply("Every year, I think.")
    chat(server, app["app_key"], chat_id, "How often to descale the percolator?")
    r = client.post(f"/api/datasets/{app['dataset_id']}/collections/text",
                    json={"name": "corrections", "text": "Corrections made by admins."})
    assert r.status_code == 201, r.text
    collection_id = r.json()["id"]
    wait_collection(client, collection_id)
    with api(server, app["app_key"]) as c:
        answer = envelope(c.post("/api/core/chat/getPaginationRecords", json={"chatId": chat_id}))["list"][-1]
        correction = {"chatId": chat_id, "dataId": answer["dataId"], "datasetId": str(app["dataset_id"]),
                      "collectionId": str(collection_id), "q": "How often to descale the percolator?",
                      "a": "Descale the percolator every two weeks with citric acid."}
        refused(c.post("/api/core/chat/feedback/adminUpdate", json=correction), 403, "admin_feedback_forbidden")
    feedback = envelope(client.post("/api/core/chat/feedback/adminUpdate",
                                    json={**correction, "appId": str(app["id"])}))
    assert feedback["collectionId"] == str(collection_id) and feedback["dataId"]
    wait_collection(client, collection_id)
    r = client.post("/api/core/dataset/searchTest", json={"datasetId": str(app["dataset_id"]),
                                                         "text": "percolator descaling interval"})
    quotes = envelope(r)["list"]
    assert quotes[0]["id"] == feedback["dataId"] and "two weeks" in quotes[0]["a"]
    with api(server, app["app_key"]) as c:
        answer = envelope(c.post("/api/core/chat/getPaginationRecords", json={"chatId": chat_id}))["list"][-1]
    assert answer["adminFeedback"]["a"] == correction["a"]
    refused(client.post("/api/core/chat/feedback/adminUpdate",
                        json={**correction, "appId": str(app["id"]), "collectionId": "999999999"}),
            404, "collection_not_found")
