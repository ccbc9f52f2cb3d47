"""What a chat turn stores, read back through FastGPT's history and record APIs (fact sheet §3.1, §3.5,
§2.6): turns without a chatId, the request's metadata and customUid, whose chats a member sees, a resumed
interactive run merged into its answer, and files uploaded for a chat read by readFiles from storage."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import login, make_settings, unique
from tests.integration.helpers import sql_rows
from tests.integration.test_chat_history_api import api, envelope, kettle_app, refused
from tests.integration.test_workflow_chat import app_key, chat, sse, streamed_text
from tests.integration.test_workflow_nodes_more import content, import_app, post, with_files
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration
PASSWORD = "member-password-1"


@pytest.fixture
def app(client: httpx.Client) -> dict:
    return kettle_app(client)


def histories(server, key: str, **body: object) -> dict:
    with api(server, key) as c:
        return envelope(c.post("/api/core/chat/getHistories", json={"pageSize": 100, **body}))


def records(server, key: str, chat_id: str, **caller: object) -> dict:
    with api(server, key) as c:
        return envelope(c.post("/api/core/chat/getPaginationRecords",
                               json={"chatId": chat_id, "offset": 0, "pageSize": 20, **caller}))


# ---- turns without a chatId ----------------------------------------------------------------------

def test_a_turn_without_chat_id_is_stored_under_a_fresh_id_that_v1_returns(server, fake, app) -> None:
    fake.reply("Monthly.")
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {app['app_key']}"},
                   json={"messages": [{"role": "user", "content": "Earlier question"},
                                      {"role": "assistant", "content": "Earlier answer"},
                                      {"role": "user", "content": "How often to descale?"}]}, timeout=60)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Monthly."
    chat_id = body["id"]
    assert re.fullmatch(r"[A-Za-z0-9]{24}", chat_id), chat_id
    assert chat_id in [h["chatId"] for h in histories(server, app["app_key"])["list"]]
    # only the turn itself is stored (the request's earlier messages were its context, not history)
    stored = records(server, app["app_key"], chat_id)
    assert [(x["obj"], x["value"][0]["text"]["content"]) for x in stored["list"]] == [
        ("Human", "How often to descale?"), ("AI", "Monthly.")]

    # streamed: every chunk carries the new chat's id; a later turn with that id continues it
    fake.reply("With vinegar.")
    frames = sse(server, app["app_key"], "With what?")
    ids = {d["id"] for _, d in frames if isinstance(d, dict)}
    assert len(ids) == 1 and re.fullmatch(r"[A-Za-z0-9]{24}", streamed := ids.pop()) and streamed != chat_id
    fake.reply("Yes, white vinegar.")
    chat(server, app["app_key"], "White vinegar?", chatId=streamed)
    assert records(server, app["app_key"], streamed)["total"] == 4
    sent = [m["content"] for m in fake.last_request.json["messages"]]
    assert "With what?" in sent and "With vinegar." in sent  # the stored history reached the model


def test_v2_answers_with_an_empty_id_and_no_record_histories_is_not_stored(server, fake, app) -> None:
    before = histories(server, app["app_key"])["total"]
    fake.reply("Monthly.")
    r = httpx.post(server.base_url + "/api/v2/chat/completions", headers={"Authorization": f"Bearer {app['app_key']}"},
                   json={"messages": [{"role": "user", "content": "How often?"}]}, timeout=60)
    assert r.status_code == 200 and r.json()["id"] == "", r.text
    assert histories(server, app["app_key"])["total"] == before + 1  # stored all the same (FastGPT)
    fake.reply("Monthly, still.")
    body = chat(server, app["app_key"], "How often again?", chatId="NO_RECORD_HISTORIES")
    assert body["choices"][0]["message"]["content"] == "Monthly, still."
    assert histories(server, app["app_key"])["total"] == before + 1
    with api(server, app["app_key"]) as c:
        refused(c.post("/api/core/chat/getPaginationRecords", json={"chatId": "NO_RECORD_HISTORIES"}),
                404, "chat_not_found")


# ---- metadata and customUid ----------------------------------------------------------------------

def test_metadata_and_custom_uid_are_kept_with_the_chat(server, fake, app, pg_url) -> None:
    chat_id = unique("meta")
    fake.reply("Monthly.")
    first = httpx.post(server.base_url + "/api/v1/chat/completions",
                       headers={"Authorization": f"Bearer {app['app_key']}"}, timeout=60,
                       json={"chatId": chat_id, "messages": [{"role": "user", "content": "How often?"}],
                             "customUid": "crm-user-7", "metadata": {"channel": "crm", "ticket": {"id": 42}}})
    assert first.status_code == 200, first.text
    fake.reply("White vinegar.")
    second = httpx.post(server.base_url + "/api/v1/chat/completions",
                        headers={"Authorization": f"Bearer {app['app_key']}"}, timeout=60,
                        json={"chatId": chat_id, "messages": [{"role": "user", "content": "With what?"}],
                              "metadata": {"channel": "web", "lang": "zh"}})
    assert second.status_code == 200, second.text
    expected = {"channel": "web", "ticket": {"id": 42}, "lang": "zh", "originIp": "127.0.0.1"}  # merged, newest wins
    listed = next(h for h in histories(server, app["app_key"])["list"] if h["chatId"] == chat_id)
    assert listed["metadata"] == expected
    with api(server, app["app_key"]) as c:
        init = envelope(c.get("/api/core/chat/init", params={"chatId": chat_id}))
    assert init["metadata"] == expected
    row = sql_rows(pg_url, "SELECT out_link_uid, user_id FROM chats WHERE chat_id = :c", c=chat_id)[0]
    assert row["out_link_uid"] == "crm-user-7"


@pytest.mark.parametrize(("metadata", "status", "code"), [
    (["not", "an", "object"], 400, "invalid_metadata"),
    ("text", 400, "invalid_metadata"),
    ({"blob": "x" * 20_000}, 413, "metadata_too_large"),
])
def test_metadata_must_be_a_small_json_object(server, app, metadata, status, code) -> None:
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {app['app_key']}"},
                   json={"chatId": unique("bad"), "messages": [{"role": "user", "content": "hi"}],
                         "metadata": metadata}, timeout=60)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code


# ---- whose chats -----------------------------------------------------------------------------------

def member(server, client: httpx.Client, role: str = "member") -> tuple[httpx.Client, int]:
    name = unique(role)
    r = client.post("/api/users", json={"username": name, "password": PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return login(server.base_url, name, PASSWORD), r.json()["id"]


def ask(c: httpx.Client, app_id: int, chat_id: str, question: str) -> httpx.Response:
    return c.post("/api/v1/chat/completions", json={"appId": app_id, "chatId": chat_id,
                                                   "messages": [{"role": "user", "content": question}]})


def test_a_member_sees_only_their_own_chats_and_keys_see_the_apps(server, fake, client, app, pg_url) -> None:
    alice, alice_id = member(server, client)
    bob, bob_id = member(server, client)
    admin, _ = member(server, client, role="admin")
    mine, theirs, via_key = unique("alice"), unique("bob"), unique("key")
    for who, chat_id in ((alice, mine), (bob, theirs)):
        fake.reply("Monthly.")
        assert ask(who, app["id"], chat_id, "How often?").status_code == 200
    fake.reply("Monthly.")
    chat(server, app["app_key"], "How often?", chatId=via_key)
    owners = {r["chat_id"]: r["user_id"] for r in sql_rows(
        pg_url, "SELECT chat_id, user_id FROM chats WHERE chat_id IN (:a, :b, :k)", a=mine, b=theirs, k=via_key)}
    assert owners[mine] == alice_id and owners[theirs] == bob_id and owners[via_key] is not None  # the key's maker

    def listed(c: httpx.Client) -> set[str]:
        data = envelope(c.post("/api/core/chat/getHistories", json={"appId": str(app["id"]), "pageSize": 100}))
        return {h["chatId"] for h in data["list"]} & {mine, theirs, via_key}

    assert listed(alice) == {mine} and listed(bob) == {theirs}
    assert listed(admin) == listed(client) == {mine, theirs, via_key}
    with api(server, app["app_key"]) as c:
        assert {h["chatId"] for h in envelope(c.post("/api/core/chat/getHistories", json={"pageSize": 100}))["list"]} \
            >= {mine, theirs, via_key}
    with api(server, app["team_key"]) as c:
        assert listed(c) == {mine, theirs, via_key}
    # another member's chat is not there for reading, editing or continuing
    refused(alice.post("/api/core/chat/getPaginationRecords", json={"appId": app["id"], "chatId": theirs}),
            404, "chat_not_found")
    refused(alice.delete("/api/core/chat/delHistory", params={"appId": app["id"], "chatId": theirs}),
            404, "chat_not_found")
    r = ask(alice, app["id"], theirs, "What did bob ask?")
    assert r.status_code == 403 and r.json()["error"]["code"] == "chat_forbidden", r.text
    assert envelope(bob.post("/api/core/chat/getPaginationRecords",
                             json={"appId": app["id"], "chatId": theirs}))["total"] == 2
    # the chat outlives its user: deleting bob leaves the chat, owned by no one
    assert client.delete(f"/api/users/{bob_id}").status_code in (200, 204)
    assert sql_rows(pg_url, "SELECT user_id FROM chats WHERE chat_id = :c", c=theirs) == [{"user_id": None}]
    for c in (alice, bob, admin):
        c.close()


# ---- a resumed interactive run -------------------------------------------------------------------

def test_a_resumed_run_is_merged_into_the_answer_that_paused(server, client) -> None:
    key = app_key(client, "interactive_order")
    chat_id = unique("merge")
    frames = sse(server, key, "I want a drink", detail=True, chatId=chat_id, responseChatItemId="paused-answer")
    assert streamed_text(frames) == "Welcome!"
    chat(server, key, "Cold", detail=True, chatId=chat_id)
    done = chat(server, key, '{"size": "large", "cups": "2"}', chatId=chat_id)
    assert content(done) == "Cold: 2 x large"

    stored = records(server, key, chat_id)
    assert stored["total"] == 2  # the choice and the form are no new records (FastGPT's updateInteractiveChat)
    question, answer = stored["list"]
    assert question["obj"] == "Human" and question["value"][0]["text"]["content"] == "I want a drink"
    assert answer["obj"] == "AI" and answer["dataId"] == "paused-answer"
    kinds = [v["type"] for v in answer["value"]]
    assert kinds[0] == "text" and answer["value"][0]["text"]["content"] == "Welcome!"
    asked = [v["interactive"] for v in answer["value"] if v["type"] == "interactive"]
    assert [i["type"] for i in asked] == ["userSelect", "userInput"]
    assert asked[0]["params"]["userSelectedVal"] == "Cold"
    form = asked[1]["params"]
    assert form["submitted"] is True
    assert {f["key"]: f.get("value") for f in form["inputForm"]} == {"size": "large", "cups": "2"}
    assert kinds[-1] == "text" and answer["value"][-1]["text"]["content"] == "Cold: 2 x large"
    with api(server, key) as c:
        nodes = envelope(c.get("/api/core/chat/getResData", params={"chatId": chat_id, "dataId": "paused-answer"}))
    assert {"userSelect", "formInput"} <= {n["moduleType"] for n in nodes}  # the runs' responseData, merged

    # nothing is pending any more: the next message starts a new question and answer
    frames = sse(server, key, "Another", detail=True, chatId=chat_id)
    assert streamed_text(frames) == "Welcome!"
    assert records(server, key, chat_id)["total"] == 4


# ---- files uploaded for a chat ---------------------------------------------------------------------

def upload_chat_file(server, key: str, name: str, data: bytes, **form: str) -> httpx.Response:
    return httpx.post(server.base_url + "/api/common/file/upload", headers={"Authorization": f"Bearer {key}"},
                      files={"file": (name, data, "text/markdown")}, data={"bucketName": "chat", **form}, timeout=60)


def test_read_files_reads_an_uploaded_chat_file_from_storage(server, client) -> None:
    app_id = import_app(client, "read_files")
    r = client.post("/api/keys", json={"name": "files", "appId": app_id})
    key = r.json()["key"]
    uploaded = envelope(upload_chat_file(server, key, "brew.md", "# Brew\n\nSteep green tea for 2 minutes.".encode()))
    assert uploaded["previewUrl"].startswith("/api/common/file/read/brew.md?token=") and uploaded["size"] > 0
    # the server refuses private addresses, so reading it over HTTP would fail: it is read from storage
    for url in (uploaded["previewUrl"], server.base_url + uploaded["previewUrl"]):
        text = content(post(server, key, "summarise", messages=with_files("summarise", [url])).json())
        assert text.startswith("File: brew.md\n<Content>\n") and "Steep green tea for 2 minutes." in text, text
    # the URL serves the file to its team
    r = client.get(uploaded["previewUrl"])
    assert r.status_code == 200 and b"Steep green tea" in r.content

    # a file uploaded for another app is not this app's to read, nor is an unknown one
    other_app = import_app(client, "read_files")
    other_key = client.post("/api/keys", json={"name": "other", "appId": other_app}).json()["key"]
    foreign = envelope(upload_chat_file(server, other_key, "secret.md", b"# Secret\n\nThe vault code is 1234."))
    text = content(post(server, key, "read", messages=with_files("read", [
        foreign["previewUrl"], "/api/common/file/read/x.md?token=" + "0" * 32])).json())
    assert "1234" not in text and text.count("[chat_file_not_found]") == 2, text
    # another server's URL of the same shape goes to the safe fetcher (refused here: a private address)
    text = content(post(server, key, "read", messages=with_files("read", [
        "http://127.0.0.1:9/api/common/file/read/x.md?token=abc"])).json())
    assert "[url_private_address]" in text, text
    r = httpx.get(server.base_url + foreign["previewUrl"], headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 404 and r.json()["statusText"] == "chat_file_not_found"


def test_chat_file_upload_checks(server, client) -> None:
    app_id = import_app(client, "read_files")
    key = client.post("/api/keys", json={"name": "files", "appId": app_id}).json()["key"]
    refused(upload_chat_file(server, key, "a.md", b"x", bucketName="dataset"), 400, "invalid_bucket")
    refused(upload_chat_file(server, key, "a.md", b"x", metadata="[1]"), 400, "invalid_metadata")
    refused(upload_chat_file(server, key, "a.md", b""), 400, "empty_file")
    other = import_app(client, "read_files")
    refused(upload_chat_file(server, key, "a.md", b"x", metadata=f'{{"appId": "{other}"}}'), 404, "app_not_found")
    r = httpx.post(server.base_url + "/api/common/file/upload", files={"file": ("a.md", b"x")},
                   data={"bucketName": "chat"})
    refused(r, 401, "unauthorized")
    # a team login uploads for an app it names
    assert envelope(client.post("/api/common/file/upload", files={"file": ("a.md", b"# A")},
                                data={"bucketName": "chat", "metadata": f'{{"appId": "{app_id}"}}'}))["fileId"]


@pytest.fixture(scope="module")
def small_upload_server(pg_url, data_dir, embedders) -> Iterator[ServerThread]:
    with ServerThread(make_settings(pg_url, data_dir, worker_enabled=False, upload_max_bytes=1000),
                      embedders) as running:
        yield running


def test_a_chat_file_is_held_to_the_upload_limit(small_upload_server) -> None:
    c = login(small_upload_server.base_url)
    try:
        r = c.post("/api/common/file/upload", files={"file": ("big.md", b"x" * 2000)}, data={"bucketName": "chat"})
        refused(r, 413, "file_too_large")
        assert envelope(c.post("/api/common/file/upload", files={"file": ("ok.md", b"x" * 900)},
                               data={"bucketName": "chat"}))["size"] == 900
    finally:
        c.close()
