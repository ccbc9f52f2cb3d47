"""The later FastGPT node kinds through the chat API: HTTP requests to a real local server (and the
private-address refusal), code in the sandboxes with their limits, loops, interactive pause/resume, tool
calls scripted by the fake upstream. HTTP targets are real servers on 127.0.0.1; the server that may
reach them runs with ``allow_private_urls`` on, the shared one with it off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.conftest import login, make_settings, unique
from tests.integration.test_workflow_chat import app_key, chat, fixture, sse, streamed_text, without_error_branch
from tests.integration.helpers import serving
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration


FILES = {"notes.md": ("# Brewing\n\nUse water at 93 °C.".encode(), "text/markdown"),
         "plain": (b"Grind fine for espresso.", "text/plain; charset=utf-8"),
         "page": (b"<html><body><h1>Menu</h1><p>Latte 4 EUR</p></body></html>", "text/html")}


class _Echo(BaseHTTPRequestHandler):
    """``/echo``: the request as JSON; a path with ``/fail``: HTTP 500; ``/hop``: a 307 to ``/echo``;
    ``/files/<name>``: one of ``FILES``."""

    seen: list[dict[str, Any]] = []

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        record = {"method": self.command, "path": url.path, "query": dict(parse_qsl(url.query)),
                  "headers": {k.lower(): v for k, v in self.headers.items()},
                  "json": json.loads(raw) if raw and "json" in self.headers.get("content-type", "") else None}
        _Echo.seen.append(record)
        if "/fail" in url.path:
            self.send_response(500)
            self.end_headers()
            return
        if url.path.startswith("/files/"):
            body, kind = FILES[url.path[len("/files/"):]]
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.end_headers()
            self.wfile.write(body)
            return
        if url.path == "/hop":
            self.send_response(307)
            self.send_header("Location", "/echo?from=hop")
            self.end_headers()
            return
        body = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    with serving(_Echo) as url:
        yield url


@pytest.fixture(scope="module")
def private_server(pg_url, data_dir, embedders, upstream) -> Iterator[ServerThread]:
    """A server that may fetch private addresses (the local HTTP targets)."""
    settings = make_settings(pg_url, data_dir, allow_private_urls=True, worker_enabled=False,
                             openai_base_url=upstream.base_url, chat_api_key="sk-fake-upstream",
                             chat_model="fake-chat")
    with ServerThread(settings, embedders) as running:
        yield running


@pytest.fixture(scope="module")
def private_client(private_server: ServerThread) -> Iterator[httpx.Client]:
    c = login(private_server.base_url)
    yield c
    c.close()


def post(server: ServerThread, key: str, question: str, **body: Any) -> httpx.Response:
    return httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"messages": [{"role": "user", "content": question}], **body}, timeout=60)


def content(body: dict) -> Any:
    return body["choices"][0]["message"]["content"]


# ---- httpRequest468 --------------------------------------------------------------------------------

def test_http_node_sends_templated_request_and_reads_jsonpath_outputs(private_server, private_client, target) -> None:
    key = app_key(private_client, "http_request")
    _Echo.seen.clear()
    body = chat(private_server, key, 'say "hi"', detail=True, variables={"base": target, "lang": "zh"})
    assert content(body) == 'Q=say "hi" lang=zh n=3 tags=["a", "b"]'
    sent = _Echo.seen[-1]
    assert sent["method"] == "POST" and sent["path"] == "/echo" and sent["query"] == {"from": "url", "lang": "zh"}
    assert sent["headers"]["x-question"] == 'say "hi"' and sent["headers"]["content-type"] == "application/json"
    assert sent["json"] == {"question": 'say "hi"', "n": 3, "tags": ["a", "b"]}
    item = next(r for r in body["responseData"] if r["moduleType"] == "httpRequest468")
    assert item["httpResult"]["json"] == sent["json"] and item["params"] == {"lang": "zh"}
    assert item["body"] == sent["json"] and item["headers"]["X-Question"] == 'say "hi"'


def test_http_error_status_takes_the_catch_branch(private_server, private_client, target) -> None:
    key = app_key(private_client, "http_request")
    body = chat(private_server, key, "q", detail=True, variables={"base": target + "/fail"})
    assert content(body).startswith("HTTP failed: ") and "HTTP 500" in content(body)
    item = next(r for r in body["responseData"] if r["moduleType"] == "httpRequest468")
    assert "HTTP 500" in item["error"] and "error" not in body


def test_http_redirects_keep_method_and_body_across_307(private_server, private_client, target) -> None:
    graph = fixture("http_request.json")
    url = next(i for i in graph["nodes"][1]["inputs"] if i["key"] == "system_httpReqUrl")
    url["value"] = "{{base}}/hop"
    key = app_key(private_client, "http_hop", graph)
    _Echo.seen.clear()
    body = chat(private_server, key, "moved", variables={"base": target, "lang": "en"})
    assert content(body) == 'Q=moved lang= n=3 tags=["a", "b"]'  # the hop's Location drops the lang param
    assert [(s["method"], s["path"]) for s in _Echo.seen] == [("POST", "/hop"), ("POST", "/echo")]
    assert _Echo.seen[-1]["json"]["question"] == "moved"


def test_http_to_a_private_address_is_refused_with_the_fetchers_code(server, client, target) -> None:
    key = app_key(client, "http_private", without_error_branch("http_request.json"))
    _Echo.seen.clear()
    r = post(server, key, "q", variables={"base": target})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "url_private_address" and "ZHIKU_ALLOW_PRIVATE_URLS" in r.text
    assert _Echo.seen == []  # refused before any connection
    # with the error branch the refusal is the branch's text
    key = app_key(client, "http_private_catch", fixture("http_request.json"))
    body = chat(server, key, "q", variables={"base": target})
    assert content(body).startswith("HTTP failed: ") and "may not be fetched" in content(body)


# ---- code ------------------------------------------------------------------------------------------

def test_code_nodes_chain_js_and_python_and_a_runaway_takes_the_error_branch(server, client) -> None:
    key = app_key(client, "code_nodes")
    body = chat(server, key, "hello big world", detail=True)
    # 15 characters × 2 = 30, doubled in Python = 60; the hog hits V8's memory limit and its branch answers
    text = content(body)
    assert text.startswith("HELLO BIG WORLD 60 gold!Code failed: ") and "memory" in text, text
    assert "never shown" not in text and "error" not in body
    by_node = {r["nodeId"]: r for r in body["responseData"]}
    assert by_node["js"]["customInputs"] == {"data1": "hello big world", "data2": 2}
    assert by_node["js"]["customOutputs"] == {"upper": "HELLO BIG WORLD", "count": 30}
    assert by_node["js"]["codeLog"] == "words 3" and by_node["py"]["codeLog"] == "doubling 30\n"
    assert by_node["py"]["customOutputs"] == {"double": 60, "label": "gold!"}
    assert "memory" in by_node["hog"]["error"]
    # the server is unharmed: the next turn runs the same way
    assert content(chat(server, key, "again")).startswith("AGAIN 20 gold!Code failed: ")


def test_a_failing_code_node_without_an_error_branch_ends_the_turn_with_its_code(server, client) -> None:
    graph = fixture("code_nodes.json")
    py = next(n for n in graph["nodes"] if n["nodeId"] == "py")
    next(i for i in py["inputs"] if i["key"] == "code")["value"] = "def main(count, label):\n    return 1 / 0\n"
    key = app_key(client, "code_fails", graph)
    r = post(server, key, "q")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "code_failed" and "ZeroDivisionError" in r.json()["error"]["message"]


# ---- loop ------------------------------------------------------------------------------------------

def test_a_loop_runs_its_body_per_item_over_sse(server, client) -> None:
    key = app_key(client, "loop_items")
    frames = sse(server, key, "tea", detail=True, variables={"items": ["green", "black"]})
    assert streamed_text(frames) == ('[1. green for tea][2. black for tea]'
                                     'Done: ["1. green for tea", "2. black for tea"] last=2. black for tea')
    assert ("updateVariables", {"items": ["green", "black"], "last": "1. green for tea"}) in frames
    responses = next(d for e, d in frames if e == "flowResponses")
    loop = next(r for r in responses if r["moduleType"] == "loop")
    assert loop["loopResult"] == ["1. green for tea", "2. black for tea"]
    assert sorted({d["moduleType"] for d in loop["loopDetail"]}) == ["answerNode", "loopEnd", "loopStart",
                                                                      "textEditor", "variableUpdate"]
    # the stored default (a JSON string in chatConfig, a quirk of real exports) is read as the array
    body = chat(server, key, "coffee")
    assert content(body).startswith("[1. apple for coffee][2. pear for coffee]Done:")


# ---- userSelect / formInput ------------------------------------------------------------------------

def test_interactive_nodes_pause_the_chat_and_the_next_message_resumes(server, client) -> None:
    key = app_key(client, "interactive_order")
    chat_id = unique("ask")
    frames = sse(server, key, "I want a drink", detail=True, chatId=chat_id)
    assert streamed_text(frames) == "Welcome!"
    asked = next(d["interactive"] for e, d in frames if e == "interactive")
    assert asked["type"] == "userSelect" and asked["entryNodeIds"] == ["sel"]
    assert asked["params"]["userSelectOptions"] == [{"key": "hot", "value": "Hot"}, {"key": "cold", "value": "Cold"}]
    # the choice resumes the paused run: the form comes next, as the non-stream body's interactive item
    body = chat(server, key, "Cold", detail=True, chatId=chat_id)
    items = content(body)
    assert isinstance(items, list) and items[-1]["type"] == "interactive"
    form = items[-1]["interactive"]
    assert form["type"] == "userInput" and form["params"]["description"] == "A few details, please"
    assert [f["key"] for f in form["params"]["inputForm"]] == ["size", "cups"]
    # an incomplete form asks again; a complete one finishes the run
    assert content(chat(server, key, '{"cups": 2}', detail=True, chatId=chat_id))[-1]["interactive"]["type"] == \
        "userInput"
    done = chat(server, key, '{"size": "large", "cups": "2"}', detail=True, chatId=chat_id)
    assert content(done) == "Cold: 2 x large"
    assert next(r for r in done["responseData"] if r["moduleType"] == "formInput")["formInputResult"] == \
        {"size": "large", "cups": 2}
    # a new message after the run finished starts from the beginning again
    frames = sse(server, key, "Another", detail=True, chatId=chat_id)
    assert streamed_text(frames) == "Welcome!" and any(e == "interactive" for e, _ in frames)


def test_the_other_option_takes_its_branch_with_the_first_turns_question(server, client) -> None:
    key = app_key(client, "interactive_order")
    chat_id = unique("hot")
    chat(server, key, "Tea please", chatId=chat_id)
    assert content(chat(server, key, "Hot", chatId=chat_id)) == "Brewing a hot drink for: Tea please"
    # without a chatId the turn goes to a new chat of its own (FastGPT: a fresh id), so nothing resumes
    fresh = chat(server, key, "Hot")
    assert content(fresh) == "Welcome!" and fresh["id"] not in ("", chat_id)


# ---- readFiles -------------------------------------------------------------------------------------

def with_files(question: str, urls: list[str]) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": question},
                                         *({"type": "file_url", "name": u.rsplit("/", 1)[-1], "url": u} for u in urls)]}]


def test_read_files_parses_the_attached_files(private_server, private_client, target) -> None:
    key = app_key(private_client, "read_files")
    r = httpx.post(private_server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": with_files("summarise", [f"{target}/files/notes.md", f"{target}/files/plain",
                                                              f"{target}/files/page", f"{target}/fail/x.txt"]),
                         "detail": True}, timeout=60)
    assert r.status_code == 200, r.text
    text = content(r.json())
    files = text.split("\n******\n")
    assert files[0].startswith("File: notes.md\n<Content>\n") and "Use water at 93 °C." in files[0]
    assert files[1] == "File: plain.txt\n<Content>\nGrind fine for espresso.\n</Content>"
    assert files[2].startswith("File: page.html") and "Latte 4 EUR" in files[2] and "<p>" not in files[2]
    assert files[3].startswith("File: x.txt") and "[url_http_error]" in files[3]
    item = next(i for i in r.json()["responseData"] if i["moduleType"] == "readFiles")
    assert [f["name"] for f in item["readFiles"]] == ["notes.md", "plain.txt", "page.html", "x.txt"]


def test_read_files_refuses_private_addresses_without_the_setting(server, client, target) -> None:
    key = app_key(client, "read_files")
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": with_files("read", [f"{target}/files/notes.md"])}, timeout=60)
    assert r.status_code == 200, r.text
    assert "[url_private_address]" in content(r.json()) and "93 °C" not in content(r.json())


# ---- pluginInput / pluginOutput / pluginModule / appModule -----------------------------------------

def import_app(client: httpx.Client, name: str, graph: dict | None = None) -> int:
    r = client.post("/api/apps/import", params={"name": unique(name)}, json=graph or fixture(f"{name}.json"))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_a_plugin_app_and_another_app_run_as_nodes(server, client) -> None:
    plugin = import_app(client, "plugin_child")
    looping = import_app(client, "loop_items")
    graph = fixture("plugin_parent.json")
    for node in graph["nodes"]:
        if node["nodeId"] in ("greet", "sub"):
            node["pluginId"] = str(plugin if node["nodeId"] == "greet" else looping)
    key = app_key(client, "plugin_parent", graph)
    body = chat(server, key, "Ana", detail=True)
    app_answer = '[1. apple for tea][2. pear for tea]Done: ["1. apple for tea", "2. pear for tea"] last=2. pear for tea'
    assert content(body) == f"{app_answer} | plugin: Hello, Ana! | app: {app_answer}"
    greet = next(r for r in body["responseData"] if r["nodeId"] == "greet")
    assert greet["pluginOutput"] == {"greeting": "Hello, Ana!"}
    assert [d["moduleType"] for d in greet["pluginDetail"]] == ["pluginInput", "textEditor", "pluginOutput"]
    # the plugin app on its own: its inputs come from the request's variables
    plugin_key = client.post("/api/keys", json={"name": "p", "appId": plugin}).json()["key"]
    alone = chat(server, plugin_key, "-", detail=True, variables={"name": "Bo"})
    assert next(r for r in alone["responseData"] if r["moduleType"] == "pluginOutput")["pluginOutput"] == \
        {"greeting": "Hello, Bo!"}


def test_an_app_calling_itself_stops_at_the_depth_limit(server, client) -> None:
    graph = fixture("plugin_parent.json")
    graph["nodes"] = [n for n in graph["nodes"] if n["nodeId"] != "greet"]
    graph["edges"] = [{**e, "source": "448745", "sourceHandle": "448745-source-right"} if e["target"] == "sub" else e
                      for e in graph["edges"] if e["target"] != "greet"]
    next(n for n in graph["nodes"] if n["nodeId"] == "say")["inputs"][0]["value"] = "{{$sub.answerText$}}"
    app_id = import_app(client, "recursive", graph)
    next(n for n in graph["nodes"] if n["nodeId"] == "sub")["pluginId"] = str(app_id)
    assert client.put(f"/api/apps/{app_id}/workflow", json=graph).status_code == 200
    key = client.post("/api/keys", json={"name": "r", "appId": app_id}).json()["key"]
    r = post(server, key, "again and again")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "app_module_too_deep"
