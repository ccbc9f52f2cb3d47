"""Share links (FastGPT's outLinks, fact sheet §3.6) against a real server: created at FastGPT's paths,
chat and histories without a login, each limit enforced with its error, the auth hook (a real local hook
server) allowing and refusing, and one visitor kept out of another's chats."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import make_settings, unique
from tests.integration.helpers import add_text, create_dataset
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration

MANUAL = "# Kettle manual\n\nDescale the kettle every month with white vinegar.\n"


class HookServer:
    """FastGPT's share-auth hook: token ``ok-<name>`` is user ``user-<name>``; any other token is refused."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
                hook.calls.append((self.path, body))
                token = str(body.get("token", ""))
                if self.path == "/shareAuth/finish":
                    answer: dict = {"success": True}
                elif token.startswith("ok-"):
                    answer = {"success": True, "data": {"uid": "user-" + token[3:]}}
                else:
                    answer = {"success": False, "message": f"token {token} is not allowed here"}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.calls]


@pytest.fixture(scope="module")
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.server.shutdown()


@pytest.fixture(scope="module")
def private_server(pg_url, data_dir, embedders, upstream, server) -> Iterator[ServerThread]:
    """A second server on the same database that may call private addresses (ZHIKU_ALLOW_PRIVATE_URLS)."""
    settings = make_settings(pg_url, data_dir, openai_base_url=upstream.base_url, chat_api_key="sk-fake-upstream",
                             chat_model="fake-chat", worker_enabled=False, allow_private_urls=True)
    with ServerThread(settings, embedders) as running:
        yield running


def envelope(r: httpx.Response) -> object:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["code"] == 200, body
    return body["data"]


def refused(r: httpx.Response, status: int, code: str) -> dict:
    assert r.status_code == status, r.text
    body = r.json()
    error = body.get("error", body)  # the chat API answers in OpenAI's shape, the rest in FastGPT's envelope
    assert error.get("code") == code or body.get("statusText") == code, body
    return body


@pytest.fixture
def app_id(client: httpx.Client) -> int:
    dataset_id = create_dataset(client, unique("kettle"))
    add_text(client, dataset_id, "kettle.md", MANUAL)
    r = client.post("/api/apps", json={"name": unique("kettle-share"), "datasetIds": [dataset_id]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def create_link(client: httpx.Client, app_id: int, **fields: object) -> str:
    share_id = envelope(client.post("/api/support/outLink/create",
                                    json={"appId": str(app_id), "type": "share", "name": unique("link"), **fields}))
    assert isinstance(share_id, str) and re.fullmatch(r"[a-z0-9]{24}", share_id)
    return share_id


def share_chat(base_url: str, share_id: str, uid: str, question: str, **body: object) -> httpx.Response:
    return httpx.post(base_url + "/api/v1/chat/completions", timeout=60,
                      json={"shareId": share_id, "outLinkUid": uid,
                            "messages": [{"role": "user", "content": question}], **body})


def test_create_list_update_and_revoke(server, fake, client, app_id) -> None:
    expires = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    share_id = create_link(client, app_id, responseDetail=True,
                           limit={"expiredTime": expires, "QPM": 50, "maxUsagePoints": 100})
    links = envelope(client.get("/api/support/outLink/list", params={"appId": app_id, "type": "share"}))
    link = next(item for item in links if item["shareId"] == share_id)
    assert link["responseDetail"] is True and link["showNodeStatus"] is True
    assert link["limit"]["QPM"] == 50 and link["limit"]["maxUsagePoints"] == 100
    assert link["limit"]["expiredTime"].startswith(expires[:16]) and link["usagePoints"] == 0

    envelope(client.put("/api/support/outLink/update",
                        json={"_id": link["_id"], "name": "renamed", "responseDetail": False,
                              "limit": {"QPM": 5, "maxUsagePoints": -1}}))
    link = next(item for item in envelope(client.get("/api/support/outLink/list", params={"appId": app_id}))
                if item["shareId"] == share_id)
    assert link["name"] == "renamed" and link["responseDetail"] is False and link["limit"]["QPM"] == 5

    fake.reply("Monthly.")
    assert share_chat(server.base_url, share_id, "visitor-1", "How often?").status_code == 200
    envelope(client.delete("/api/support/outLink/delete", params={"id": link["_id"]}))
    refused(share_chat(server.base_url, share_id, "visitor-1", "How often?"), 401, "share_link_invalid")
    assert not [item for item in envelope(client.get("/api/support/outLink/list", params={"appId": app_id}))
                if item["shareId"] == share_id]


def test_managing_links_needs_a_login_or_team_key(server, client, app_id) -> None:
    app_key = client.post("/api/keys", json={"name": "app", "appId": app_id}).json()["key"]
    r = httpx.post(server.base_url + "/api/support/outLink/create", headers={"Authorization": f"Bearer {app_key}"},
                   json={"appId": str(app_id), "type": "share", "name": "x"})
    refused(r, 403, "app_key_scope")
    refused(httpx.post(server.base_url + "/api/support/outLink/create",
                       json={"appId": str(app_id), "type": "share", "name": "x"}), 401, "unauthorized")


def test_visitor_chats_without_login_and_sees_filtered_responses(server, fake, client, app_id) -> None:
    share_id = create_link(client, app_id, responseDetail=False, showNodeStatus=False)
    chat_id = unique("visit")
    fake.reply("Descale monthly.")
    r = share_chat(server.base_url, share_id, "visitor-1", "How often to descale with vinegar?",
                   chatId=chat_id, detail=True)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "Descale monthly."
    nodes = body["responseData"]
    assert [n["moduleType"] for n in nodes] == ["datasetSearchNode"]  # the chat node is not shown
    assert set(nodes[0]) <= {"moduleType", "runningTime", "pluginOutput"}  # no quotes: no responseDetail

    fake.reply("With white vinegar.")
    names = []
    with httpx.stream("POST", server.base_url + "/api/v1/chat/completions", timeout=60,
                      json={"shareId": share_id, "outLinkUid": "visitor-1", "chatId": chat_id, "stream": True,
                            "detail": True, "messages": [{"role": "user", "content": "With what?"}]}) as s:
        assert s.status_code == 200
        names = [line[7:] for line in s.iter_lines() if line.startswith("event: ")]
    assert "flowNodeStatus" not in names and "answer" in names and "flowResponses" in names

    # the visitor's histories and records, by shareId + outLinkUid only
    caller = {"shareId": share_id, "outLinkUid": "visitor-1"}
    data = envelope(httpx.post(server.base_url + "/api/core/chat/getHistories", json=caller))
    assert [h["chatId"] for h in data["list"]] == [chat_id]
    records = envelope(httpx.post(server.base_url + "/api/core/chat/getPaginationRecords",
                                  json={**caller, "chatId": chat_id, "offset": 0, "pageSize": 10}))
    assert records["total"] == 4
    answer = records["list"][1]
    assert answer["obj"] == "AI" and answer["totalQuoteList"] == []  # quotes hidden by the link
    nodes = envelope(httpx.get(server.base_url + "/api/core/chat/getResData",
                               params={**caller, "chatId": chat_id, "dataId": answer["dataId"]}))
    assert [n["moduleType"] for n in nodes] == ["datasetSearchNode"] and "quoteList" not in nodes[0]
    envelope(httpx.post(server.base_url + "/api/core/chat/feedback/updateUserFeedback",
                        json={**caller, "chatId": chat_id, "dataId": answer["dataId"], "userGoodFeedback": "yes"}))
    envelope(httpx.post(server.base_url + "/api/core/chat/updateHistory",
                        json={**caller, "chatId": chat_id, "customTitle": "My kettle"}))
    assert envelope(httpx.post(server.base_url + "/api/core/chat/getHistories",
                               json=caller))["list"][0]["customTitle"] == "My kettle"
    init = envelope(httpx.get(server.base_url + "/api/core/chat/outLink/init",
                              params={**caller, "chatId": chat_id}))
    assert init["chatId"] == chat_id and init["app"]["name"].startswith("kettle-share")

    # the app's owner sees the visitor's chat with everything in it
    owner = envelope(client.post("/api/core/chat/getPaginationRecords", json={"appId": app_id, "chatId": chat_id}))
    assert owner["list"][1]["totalQuoteList"] and owner["list"][1]["userGoodFeedback"] == "yes"

    envelope(httpx.delete(server.base_url + "/api/core/chat/delHistory", params={**caller, "chatId": chat_id}))
    assert envelope(httpx.post(server.base_url + "/api/core/chat/getHistories", json=caller))["total"] == 0


def test_response_detail_shows_quotes(server, fake, client, app_id) -> None:
    share_id = create_link(client, app_id, responseDetail=True)
    fake.reply("Monthly.")
    r = share_chat(server.base_url, share_id, "v", "descale kettle vinegar", detail=True)
    nodes = r.json()["responseData"]
    assert nodes[0]["moduleType"] == "datasetSearchNode" and "vinegar" in nodes[0]["quoteList"][0]["q"]


def test_one_visitor_cannot_read_or_continue_anothers_chat(server, fake, client, app_id) -> None:
    share_id = create_link(client, app_id)
    chat_id = unique("private")
    fake.reply("Monthly.")
    assert share_chat(server.base_url, share_id, "alice", "How often?", chatId=chat_id).status_code == 200
    bob = {"shareId": share_id, "outLinkUid": "bob"}
    assert envelope(httpx.post(server.base_url + "/api/core/chat/getHistories", json=bob))["total"] == 0
    refused(httpx.post(server.base_url + "/api/core/chat/getPaginationRecords", json={**bob, "chatId": chat_id}),
            404, "chat_not_found")
    refused(httpx.delete(server.base_url + "/api/core/chat/delHistory", params={**bob, "chatId": chat_id}),
            404, "chat_not_found")
    refused(share_chat(server.base_url, share_id, "bob", "What did alice ask?", chatId=chat_id),
            403, "chat_forbidden")
    # another link of the same app does not see alice's chats either
    other = create_link(client, app_id)
    assert envelope(httpx.post(server.base_url + "/api/core/chat/getHistories",
                               json={"shareId": other, "outLinkUid": "alice"}))["total"] == 0
    refused(share_chat(server.base_url, share_id, "a|b", "hi"), 401, "invalid_uid")
    refused(share_chat(server.base_url, "x" * 24, "alice", "hi"), 401, "share_link_invalid")


def test_expired_link_is_refused(server, client, app_id) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    share_id = create_link(client, app_id, limit={"expiredTime": past})
    refused(share_chat(server.base_url, share_id, "v", "hi"), 403, "share_link_expired")
    refused(httpx.post(server.base_url + "/api/core/chat/getHistories", json={"shareId": share_id, "outLinkUid": "v"}),
            403, "share_link_expired")


def test_qpm_is_enforced_per_link(server, fake, client, app_id) -> None:
    share_id = create_link(client, app_id, limit={"QPM": 2})
    fake.set_default(content="Monthly.")
    # Six chats within one or two clock minutes: some minute holds three, one more than the link allows.
    answers = [share_chat(server.base_url, share_id, f"v{n}", "How often?") for n in range(6)]
    limited = [r for r in answers if r.status_code == 429]
    assert limited and len(limited) <= 4 and all(r.status_code in (200, 429) for r in answers)
    body = refused(limited[0], 429, "share_link_rate_limited")
    assert "2 chats a minute" in body["error"]["message"]
    assert 1 <= int(limited[0].headers["Retry-After"]) <= 61
    # another link of the app has its own count
    assert share_chat(server.base_url, create_link(client, app_id, limit={"QPM": 2}), "v", "hi").status_code == 200


def test_max_usage_points_are_enforced(server, fake, client, app_id) -> None:
    share_id = create_link(client, app_id, limit={"maxUsagePoints": 0.001})  # one model token's worth
    fake.reply("Descale monthly with vinegar.")
    assert share_chat(server.base_url, share_id, "v", "How often?").status_code == 200
    link = next(item for item in envelope(client.get("/api/support/outLink/list", params={"appId": app_id}))
                if item["shareId"] == share_id)
    assert link["usagePoints"] > 0.001 and link["lastTime"]
    refused(share_chat(server.base_url, share_id, "v", "And then?"), 403, "share_link_usage_exceeded")


def test_auth_hook_allows_and_refuses(private_server, fake, client, app_id, hook) -> None:
    share_id = create_link(client, app_id, limit={"hookUrl": hook.url})
    chat_id = unique("hooked")
    fake.reply("Monthly.")
    r = share_chat(private_server.base_url, share_id, "ok-anna", "How often to descale?", chatId=chat_id)
    assert r.status_code == 200, r.text
    start = next(body for path, body in hook.calls if path == "/shareAuth/start")
    assert start == {"token": "ok-anna", "question": "How often to descale?"}
    deadline = time.monotonic() + 30  # the finish report is sent after the answer, without waiting
    while "/shareAuth/finish" not in hook.paths() and time.monotonic() < deadline:
        time.sleep(0.1)
    finish = next(body for path, body in hook.calls if path == "/shareAuth/finish")
    assert finish["token"] == "ok-anna" and finish["appName"].startswith("kettle-share")
    assert {n["moduleType"] for n in finish["responseData"]} >= {"datasetSearchNode", "chatNode"}

    # the chat is the hook's user's: the same token finds it, through the hook's init
    data = envelope(httpx.post(private_server.base_url + "/api/core/chat/getHistories",
                               json={"shareId": share_id, "outLinkUid": "ok-anna"}))
    assert [h["chatId"] for h in data["list"]] == [chat_id]
    assert ("/shareAuth/init", {"token": "ok-anna"}) in hook.calls

    body = refused(share_chat(private_server.base_url, share_id, "stolen", "hi"), 403, "share_link_auth_failed")
    assert body["error"]["message"] == "token stolen is not allowed here"
    refused(httpx.post(private_server.base_url + "/api/core/chat/getHistories",
                       json={"shareId": share_id, "outLinkUid": "stolen"}), 403, "share_link_auth_failed")


def test_hook_on_a_private_address_is_refused_without_the_flag(server, client, app_id, hook) -> None:
    share_id = create_link(client, app_id, limit={"hookUrl": hook.url})
    before = len(hook.calls)
    body = refused(share_chat(server.base_url, share_id, "ok-anna", "hi"), 403, "share_link_auth_failed")
    assert body["error"]["detail"] == {"reason": "url_private_address"}
    assert len(hook.calls) == before  # never reached
