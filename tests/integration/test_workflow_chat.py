"""Workflow apps through the chat API, with the official openai client and a raw SSE client; the fake
upstream scripts the model (classification and extraction as JSON replies, query extension, answers)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).parent.parent / "fixtures" / "workflows"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def without_error_branch(name: str) -> dict:
    """A fixture whose first three nodes are start → a node with an error branch → its answer, cut to
    those three with the error branch off: the node's failure ends the run."""
    graph = fixture(name)
    graph["nodes"][1]["catchError"] = False
    graph["edges"] = graph["edges"][:2]
    graph["nodes"] = graph["nodes"][:3]
    return graph


def app_key(client: httpx.Client, name: str, graph: dict | None = None) -> str:
    r = client.post("/api/apps/import", params={"name": unique(name)}, json=graph or fixture(f"{name}.json"))
    assert r.status_code == 201, r.text
    r = client.post("/api/keys", json={"name": "chat", "appId": r.json()["id"]})
    assert r.status_code == 201, r.text
    return r.json()["key"]


def chat(server, key: str, question: str, **body: Any) -> dict:
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": question}], **body}, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()


def sse(server, key: str, question: str, path: str = "/api/v1/chat/completions", **body: Any) -> list[tuple[str, Any]]:
    """(event name, parsed data) of every frame, read with a plain HTTP client."""
    frames: list[tuple[str, Any]] = []
    with httpx.stream("POST", server.base_url + path, headers={"Authorization": f"Bearer {key}"}, timeout=60,
                      json={"messages": [{"role": "user", "content": question}], "stream": True, **body}) as r:
        assert r.status_code == 200, r.read()
        event = ""
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
                frames.append((event, data if data == "[DONE]" else json.loads(data)))
                event = ""
    return frames


def streamed_text(frames: list[tuple[str, Any]]) -> str:
    return "".join(d["choices"][0]["delta"].get("content", "") for e, d in frames
                   if e in ("answer", "fastAnswer", "") and isinstance(d, dict) and d.get("choices"))


def oa(server, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url + "/api/v1", api_key=key, max_retries=0)


def test_classify_question_routes_by_the_models_json_reply(server, fake, client) -> None:
    key = app_key(client, "template_classify")
    fake.reply('{"type": "sdfa"}')
    done = oa(server, key).chat.completions.create(model="x", messages=[{"role": "user", "content": "Best roast?"}])
    assert done.choices[0].message.content == "Coffee topic: Coffee question"
    sent = fake.last_request.json
    assert sent["messages"][-1]["content"] == "Best roast?"
    assert 'id "sdfa": Coffee question' in sent["messages"][0]["content"]
    assert "A coffee shop assistant" in sent["messages"][0]["content"]
    fake.reply("no idea what this is")  # no category named: the last one, as FastGPT does
    frames = sse(server, key, "???", detail=True)
    assert streamed_text(frames) == "Something else."
    names = [e for e, _ in frames]
    assert "fastAnswer" in names and ("flowNodeStatus", {"status": "running", "name": "问题分类"}) in frames
    responses = next(d for e, d in frames if e == "flowResponses")
    classify = next(r for r in responses if r["moduleType"] == "classifyQuestion")
    assert classify["cqResult"] == "Other" and classify["inputTokens"] > 0
    assert {r["nodeId"] for r in responses} == {"userGuide", "448745", "classify", "other"}
    assert frames[-1] == ("answer", "[DONE]") and "workflowDuration" in names


def test_old_if_else_reads_variables_by_label_or_key_without_a_model(server, fake, client) -> None:
    key = app_key(client, "modules_old_ifelse")
    gold = chat(server, key, "hello", variables={"Tier": "gold"})
    assert gold["choices"][0]["message"]["content"] == "Gold lounge is open for you."
    silver = chat(server, key, "hello", variables={"tier": "silver"}, detail=True)
    assert silver["choices"][0]["message"]["content"] == "Standard service, tier silver."
    assert silver["newVariables"] == {"tier": "silver"}
    assert next(r for r in silver["responseData"] if r["moduleType"] == "ifElseNode")["ifElseResult"] == "ELSE"
    assert fake.requests == []


def test_extraction_variables_condition_template_and_query_extension(server, fake, client) -> None:
    key = app_key(client, "extract_vars")
    fake.reply('Here you go: {"city": "Lisbon", "days": 5}')
    fake.reply('["Lisbon trip", "five days in Lisbon"]')
    body = chat(server, key, "I want five days in Lisbon", detail=True)
    assert body["choices"][0]["message"]["content"] == "Trip to Lisbon for 5 days"
    assert body["newVariables"] == {"city": "Lisbon", "visits": 1}
    by_type = {r["moduleType"]: r for r in body["responseData"]}
    assert by_type["contentExtract"]["extractResult"] == {"city": "Lisbon", "days": 5}
    assert json.loads(by_type["cfr"]["textOutput"]) == ["I want five days in Lisbon", "Lisbon trip",
                                                        "five days in Lisbon"]
    assert by_type["customFeedback"]["textOutput"].startswith('queries: ["I want five days in Lisbon"')
    extract_prompt = fake.requests[0].json["messages"][0]["content"]
    assert '"city": {"type": "string", "description": "destination city"}' in extract_prompt
    assert '"required": ["city"]' in extract_prompt
    # nothing extracted: the ELSE branch, and the branch after the template (query extension) is skipped
    fake.reset()
    fake.reply("I cannot tell.")
    frames = sse(server, key, "hmm", detail=True)
    assert streamed_text(frames) == "Could not read the trip."
    assert len(fake.requests) == 1
    assert ("updateVariables", {"city": "", "visits": 1}) in frames


def test_parallel_model_branches_stream_in_order(server, fake, client) -> None:
    key = app_key(client, "parallel_answers")
    fake.set_default(chunk_size=2, chunk_delay_s=0.01)
    stream = oa(server, key).chat.completions.create(model="x", stream=True,
                                                     messages=[{"role": "user", "content": "Q"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: alpha QEcho: beta QDone: Echo: alpha Q / Echo: beta Q"
    assert sorted(r.json["messages"][-1]["content"] for r in fake.requests) == ["alpha Q", "beta Q"]
    frames = sse(server, key, "Q", detail=True)
    statuses = [d["name"] for e, d in frames if e == "flowNodeStatus"]
    assert sorted(statuses) == ["First model", "Second model"]


def test_a_failing_model_takes_the_error_branch(server, fake, client) -> None:
    key = app_key(client, "catch_error")
    fake.fail(500)
    body = chat(server, key, "hi", detail=True)
    assert body["choices"][0]["message"]["content"].startswith("Sorry, the model failed: ")
    failed = next(r for r in body["responseData"] if r["moduleType"] == "chatNode")
    assert "500" in failed["error"] and "error" not in body
    fake.reply("All good.")
    assert chat(server, key, "hi")["choices"][0]["message"]["content"] == "All good.(model answered)"


def test_a_failure_without_an_error_branch_is_an_error_response(server, fake, client) -> None:
    key = app_key(client, "no_catch", without_error_branch("catch_error.json"))
    fake.fail(429, headers={"Retry-After": "1"})
    with pytest.raises(openai.RateLimitError):
        oa(server, key).chat.completions.create(model="x", messages=[{"role": "user", "content": "hi"}])
    time.sleep(1.2)  # the channel's cooldown, so later tests find it serving again


def test_two_searches_merged_reach_the_model(server, fake, client) -> None:
    manual = create_dataset(client, unique("manual"))
    add_text(client, manual, "manual.md", "# Descaling\nDescale the espresso machine every 200 cups.")
    faq = create_dataset(client, unique("faq"))
    add_text(client, faq, "faq.md", "# Water\nUse filtered water to descale less often.")
    graph = fixture("search_concat.json")
    for node, dataset in zip([n for n in graph["nodes"] if n["flowNodeType"] == "datasetSearchNode"], (manual, faq)):
        node["inputs"][0]["value"] = [{"datasetId": str(dataset)}]
    key = app_key(client, "search_concat", graph)
    fake.reply("Every 200 cups; filtered water helps.")
    body = chat(server, key, "How often should I descale the espresso machine with water?", detail=True)
    assert body["choices"][0]["message"]["content"] == "Every 200 cups; filtered water helps."
    prompt = fake.last_request.json["messages"][-1]["content"]
    assert "every 200 cups" in prompt and "filtered water" in prompt
    concat = next(r for r in body["responseData"] if r["moduleType"] == "datasetConcatNode")
    assert concat["concatLength"] == 2
    searches = [r for r in body["responseData"] if r["moduleType"] == "datasetSearchNode"]
    assert len(searches) == 2 and all(len(s["quoteList"]) == 1 for s in searches)


def test_variables_defaults_and_labels_reach_the_prompt(server, fake, client) -> None:
    key = app_key(client, "export_search_chat")
    fake.reply("Hi.")
    chat(server, key, "hello")
    assert fake.last_request.json["messages"][0]["content"] == "You help guest. Tier: silver."
    fake.reply("Hi.")
    chat(server, key, "hello", variables={"Your name": "Ana", "tier": "gold"})
    assert fake.last_request.json["messages"][0]["content"] == "You help Ana. Tier: gold."


def test_citation_markers_are_removed_unless_kept(server, fake, client) -> None:
    key = app_key(client, "export_search_chat")
    marked = "Descale[652a5e13c5fcb0cf1e0c7b21](CITE) often【12】(CITE)."
    fake.reply(marked)
    assert chat(server, key, "q")["choices"][0]["message"]["content"] == "Descale often."
    fake.reply(marked)
    assert chat(server, key, "q", retainDatasetCite=True)["choices"][0]["message"]["content"] == marked
    fake.reply(marked, chunk_size=3)
    assert streamed_text(sse(server, key, "q")) == "Descale often."


def test_v2_streams_a_node_response_per_node_and_echoes_the_chat_id(server, fake, client) -> None:
    key = app_key(client, "branches_join")
    frames = sse(server, key, "mid", path="/api/v2/chat/completions", detail=True)
    nodes = [d["nodeId"] for e, d in frames if e == "flowNodeResponse"]
    assert nodes == ["448745", "judge", "mid", "join"]
    assert "flowResponses" not in [e for e, _ in frames]
    assert streamed_text(frames) == "[MID:mid] ELSE IF 1"
    r = httpx.post(server.base_url + "/api/v2/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "mid"}]}, timeout=60)
    assert r.json()["id"] == ""
    chat_id = unique("v2")
    r = httpx.post(server.base_url + "/api/v2/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "mid"}], "chatId": chat_id,
                         "responseChatItemId": "item-1", "customUid": "user-7", "metadata": {"from": "test"}},
                   timeout=60)
    assert r.status_code == 200 and r.json()["id"] == chat_id
    r = httpx.post(server.base_url + "/api/v2/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "x"}], "variables": {"v": "x" * 100_001}}, timeout=60)
    assert r.status_code in (400, 413) and r.json()["error"]["code"] in ("variables_too_large", "invalid_input")


def test_chat_id_keeps_workflow_variables_between_turns(server, fake, client) -> None:
    key = app_key(client, "extract_vars")
    chat_id = unique("trip")
    fake.reply('{"city": "Porto"}')
    fake.reply("[]")
    first = chat(server, key, "Porto please", chatId=chat_id, detail=True)
    assert first["newVariables"]["city"] == "Porto" and first["id"] == chat_id
    fake.reply("nothing")
    second = chat(server, key, "and then?", chatId=chat_id, detail=True)
    assert second["newVariables"] == {"city": "", "visits": 1}  # this turn's extraction found no city
    prompt = fake.last_request.json["messages"][0]["content"]
    assert "Porto please" in prompt  # the stored turn is history for the extraction
    desk = app_key(client, "modules_old_ifelse")
    chat_id = unique("desk")
    assert chat(server, desk, "hi", chatId=chat_id, variables={"tier": "gold"})["choices"][0]["message"][
        "content"] == "Gold lounge is open for you."
    later = chat(server, desk, "hi again", chatId=chat_id, detail=True)  # no variables sent: the stored ones
    assert later["choices"][0]["message"]["content"] == "Gold lounge is open for you."
    assert later["newVariables"] == {"tier": "gold"}


def test_a_quiet_stream_gets_empty_keep_alive_chunks(server, fake, client, monkeypatch) -> None:
    from zhiku.web.routers import chat as chat_route

    monkeypatch.setattr(chat_route, "KEEPALIVE_SECONDS", 0.05)
    graph = fixture("catch_error.json")
    start, model, greeting = graph["nodes"][0], graph["nodes"][1], graph["nodes"][2]
    model["catchError"] = False
    greeting["inputs"][0]["value"] = "One moment. "
    graph = {"nodes": [start, greeting, model], "chatConfig": {},
             "edges": [{"source": "448745", "sourceHandle": "448745-source-right", "target": "fine"},
                       {"source": "fine", "sourceHandle": "fine-source-right", "target": "chat"}]}
    key = app_key(client, "keepalive", graph)
    fake.reply("Here it is.", latency_s=1.0)  # a slow model after a quick first answer
    frames = sse(server, key, "Q", detail=True)
    contents = [d["choices"][0]["delta"].get("content") for e, d in frames
                if e == "answer" and isinstance(d, dict) and d.get("choices")]
    assert "" in contents[1:]  # empty chunks while the model had nothing to say yet
    assert streamed_text(frames) == "One moment. Here it is."
    assert frames[-1] == ("answer", "[DONE]")
