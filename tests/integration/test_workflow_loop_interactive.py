"""A loop whose body asks the user (FastGPT's loopInteractive), through the chat API: each iteration's
userSelect pauses the loop with the body's own interaction and the paused item's 0-based index, the
next message in the chat resumes that iteration with the reply and the loop goes on with the remaining
items, and the whole exchange is one stored AI record. Fixture loop_interactive.json is loop_items.json
with a userSelect between the body's text editor and its result."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import unique
from tests.integration.test_workflow_chat import app_key, chat, sse, streamed_text
from tests.integration.test_workflow_tools import records

pytestmark = pytest.mark.integration

APP = "loop_interactive"


def interaction(frames: list[tuple[str, Any]]) -> dict[str, Any]:
    [asked] = [d["interactive"] for e, d in frames if e == "interactive"]
    return asked


def test_a_loop_body_asks_per_item_and_each_answer_resumes_the_loop(server, client) -> None:
    key = app_key(client, APP)
    chat_id = unique("loop-ask")
    # item 1 asks: the loop pauses before any iteration finished
    frames = sse(server, key, "coffee", detail=True, chatId=chat_id)
    assert streamed_text(frames) == ""
    asked = interaction(frames)
    assert asked["type"] == "loopInteractive" and asked["entryNodeIds"] == ["loop"]
    assert any(e["target"] == "loop" and e["status"] == "active" for e in asked["memoryEdges"])
    assert asked["params"]["currentIndex"] == 0 and asked["params"]["loopResult"] == []
    body = asked["params"]["childrenResponse"]
    assert body["type"] == "userSelect" and body["entryNodeIds"] == ["sel"]
    assert body["params"]["userSelectOptions"] == [{"key": "hot", "value": "Hot"}, {"key": "cold", "value": "Cold"}]
    assert {"nodeId": "te", "key": "system_text", "value": "1. apple for coffee"} in body["nodeOutputs"]
    [record] = [r for r in records(server, key, chat_id) if r["obj"] == "AI"]
    assert record["value"][-1] == {"type": "interactive", "interactive": asked}

    # a reply that is no option asks item 1 again (the same iteration pauses again)
    again = chat(server, key, "Lukewarm", detail=True, chatId=chat_id)
    repeated = again["choices"][0]["message"]["content"][-1]["interactive"]
    assert repeated["type"] == "loopInteractive" and repeated["params"]["currentIndex"] == 0

    # the answer finishes item 1, and item 2 asks: the loop pauses again with item 1's result
    second = chat(server, key, "Hot", detail=True, chatId=chat_id)
    items = second["choices"][0]["message"]["content"]
    assert isinstance(items, list) and items[-1]["type"] == "interactive", items
    assert [i["text"]["content"] for i in items if i["type"] == "text"] == ["[1. apple for coffee: Hot]"]
    paused = items[-1]["interactive"]
    assert paused["type"] == "loopInteractive" and paused["entryNodeIds"] == ["loop"]
    assert paused["params"]["currentIndex"] == 1
    assert paused["params"]["loopResult"] == ["1. apple for coffee: Hot"]
    assert paused["params"]["childrenResponse"]["entryNodeIds"] == ["sel"]
    assert {"nodeId": "te", "key": "system_text", "value": "2. pear for coffee"} in \
        paused["params"]["childrenResponse"]["nodeOutputs"]

    # the second answer finishes the loop: both answers in loopArray, the variable the body set, and the
    # answer node after the loop
    frames = sse(server, key, "Cold", detail=True, chatId=chat_id)
    assert not any(e == "interactive" for e, _ in frames)
    done = 'Done: ["1. apple for coffee: Hot", "2. pear for coffee: Cold"] last=2. pear for coffee: Cold'
    assert streamed_text(frames) == "[2. pear for coffee: Cold]" + done
    responses = next(d for e, d in frames if e == "flowResponses")
    loop = next(r for r in responses if r["moduleType"] == "loop")
    assert loop["loopResult"] == ["1. apple for coffee: Hot", "2. pear for coffee: Cold"]
    # the resumed iteration's nodes and the next one's are the loop's detail
    assert [r["userSelectResult"] for r in loop["loopDetail"] if r["moduleType"] == "userSelect"] == ["Cold"]

    # one stored exchange: the question, and an answer holding each question answered and the texts
    question, answer = records(server, key, chat_id)
    assert question["obj"] == "Human" and question["value"][0]["text"]["content"] == "coffee"
    assert answer["obj"] == "AI"
    asked_items = [v["interactive"] for v in answer["value"] if v["type"] == "interactive"]
    assert [i["type"] for i in asked_items] == ["loopInteractive"] * 3
    assert [i["params"]["childrenResponse"]["params"]["userSelectedVal"] for i in asked_items] == \
        ["Lukewarm", "Hot", "Cold"]
    assert [i["params"]["currentIndex"] for i in asked_items] == [0, 0, 1]
    text = "".join(v["text"]["content"] for v in answer["value"] if v["type"] == "text")
    assert text == "[1. apple for coffee: Hot][2. pear for coffee: Cold]" + done
    assert answer["value"][-1]["type"] == "text"
