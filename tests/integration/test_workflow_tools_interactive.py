"""A tool branch that pauses for the user (FastGPT's toolChildrenInteractive), through the chat API: the
fake upstream scripts the model's calls, the first message ends with the ``interactive`` event wrapping
the branch's own userSelect or formInput, the next message in the chat resumes the branch, its result
goes back to the model as that call's tool message, and the whole exchange is one stored AI record.
Also: the calls of a tools node inside a tool branch reach the stored record."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import unique
from tests.integration.test_workflow_chat import app_key, chat, sse, streamed_text
from tests.integration.test_workflow_tools import records, tools_item

pytestmark = pytest.mark.integration

APP = "tools_interactive"


def interaction(frames: list[tuple[str, Any]]) -> dict[str, Any]:
    [asked] = [d["interactive"] for e, d in frames if e == "interactive"]
    return asked


def last_item(body: dict[str, Any]) -> dict[str, Any]:
    items = body["choices"][0]["message"]["content"]
    assert isinstance(items, list), items
    return items[-1]


def tool_message(request: dict[str, Any], call_id: str) -> dict[str, Any]:
    [message] = [m for m in request["messages"] if m["role"] == "tool" and m["tool_call_id"] == call_id]
    return message


def test_a_tool_branch_asks_the_user_and_the_answer_goes_back_to_the_model(server, client, fake) -> None:
    key = app_key(client, APP)
    chat_id = unique("tool-ask")
    fake.set_default(chunk_size=5)
    fake.tool_call("order", {"drink": "latte"}, call_id="call_o", content="One moment. ")
    frames = sse(server, key, "A latte, please", detail=True, chatId=chat_id)
    assert len(fake.requests) == 1
    assert streamed_text(frames) == "One moment. "  # the answerNode after the agent waits for it
    asked = interaction(frames)
    assert asked["type"] == "toolChildrenInteractive" and asked["entryNodeIds"] == ["agent"]
    assert {"nodeId", "key", "value"} <= set(asked["nodeOutputs"][0])
    assert any(e["target"] == "agent" and e["status"] == "active" for e in asked["memoryEdges"])
    branch = asked["params"]["childrenResponse"]
    assert branch["type"] == "userSelect" and branch["entryNodeIds"] == ["sel"]
    assert branch["params"] == {"description": "Hot or cold?",
                                "userSelectOptions": [{"key": "hot", "value": "Hot"}, {"key": "cold", "value": "Cold"}]}
    assert {"nodeId": "order", "key": "drink", "value": "latte"} in branch["nodeOutputs"]
    assert any(e["source"] == "order" and e["target"] == "sel" for e in branch["memoryEdges"])
    tool_params = asked["params"]["toolParams"]
    assert tool_params["toolCallId"] == "call_o"
    memory = tool_params["memoryRequestMessages"]
    assert memory[0] == {"role": "system", "content": "You take coffee orders. Use the tools."}
    assert memory[-3] == {"role": "user", "content": "A latte, please"}
    assert memory[-2]["tool_calls"] == [{"id": "call_o", "type": "function",
                                         "function": {"name": "order", "arguments": '{"drink": "latte"}'}}]
    assert memory[-1] == {"role": "tool", "content": "", "tool_call_id": "call_o"}
    assert not any(e == "toolResponse" for e, _ in frames)  # the call has no result yet
    [record] = [r for r in records(server, key, chat_id) if r["obj"] == "AI"]
    assert record["value"][-1] == {"type": "interactive", "interactive": asked}

    fake.reply("Your hot latte is on its way.")
    frames = sse(server, key, "Hot", detail=True, chatId=chat_id)
    assert len(fake.requests) == 2
    second = fake.requests[1].json
    assert tool_message(second, "call_o") == {"role": "tool", "tool_call_id": "call_o", "content": "Hot latte"}
    assert second["messages"][-2]["tool_calls"][0]["id"] == "call_o"  # the conversation as it was
    assert second["messages"][-3] == {"role": "user", "content": "A latte, please"}
    assert [t["function"]["name"] for t in second["tools"]] == ["order", "rate", "expert"]
    assert streamed_text(frames) == "Your hot latte is on its way.(order noted)"
    assert not any(e == "interactive" for e, _ in frames)
    assert ("toolResponse", {"tool": {"id": "call_o", "toolName": "", "toolAvatar": "", "params": "",
                                      "response": "Hot latte"}}) in frames
    agent = tools_item(next(d for e, d in frames if e == "flowResponses"))
    assert [c["id"] for c in agent["toolCalls"]] == ["call_o"] and agent["toolCalls"][0]["response"] == "Hot latte"
    assert [d["nodeId"] for d in agent["toolDetail"]] == ["sel", "hotText"]

    question, answer = records(server, key, chat_id)  # merged into the answer that asked
    assert question["obj"] == "Human" and question["value"][0]["text"]["content"] == "A latte, please"
    assert [v["type"] for v in answer["value"]] == ["text", "tool", "interactive", "text"]
    [call] = answer["value"][1]["tools"]
    assert call["id"] == "call_o" and call["response"] == "Hot latte"  # filled in once the branch answered
    answered = answer["value"][2]["interactive"]
    assert answered["type"] == "toolChildrenInteractive"
    assert answered["params"]["childrenResponse"]["params"]["userSelectedVal"] == "Hot"
    assert answer["value"][3]["text"]["content"] == "Your hot latte is on its way.(order noted)"
    # the run finished: the next message starts over
    fake.reply("Hello again.")
    assert streamed_text(sse(server, key, "Hi", chatId=chat_id)) == "Hello again.(order noted)"


def test_a_wrong_option_asks_again_and_a_second_question_of_the_branch_is_a_form(server, client, fake) -> None:
    key = app_key(client, APP)
    chat_id = unique("tool-form")
    fake.tool_call("order", {"drink": "tea"}, call_id="call_t")
    asked = last_item(chat(server, key, "Iced tea", detail=True, chatId=chat_id))["interactive"]
    assert asked["type"] == "toolChildrenInteractive"
    assert asked["params"]["childrenResponse"]["type"] == "userSelect"
    # an option that does not exist asks the same question again, as a top-level userSelect does
    again = last_item(chat(server, key, "Lukewarm", detail=True, chatId=chat_id))["interactive"]
    assert again["type"] == "toolChildrenInteractive" and again["params"]["toolParams"]["toolCallId"] == "call_t"
    assert again["params"]["childrenResponse"]["type"] == "userSelect"
    assert again["params"]["childrenResponse"]["entryNodeIds"] == ["sel"]
    # the choice leads to the branch's second question, a form
    body = chat(server, key, "Cold", detail=True, chatId=chat_id)
    form = last_item(body)["interactive"]["params"]["childrenResponse"]
    assert form["type"] == "userInput" and form["entryNodeIds"] == ["size"]
    assert [f["key"] for f in form["params"]["inputForm"]] == ["size"]
    assert len(fake.requests) == 1  # the model waits for the branch
    # an incomplete form asks again
    incomplete = last_item(chat(server, key, "{}", detail=True, chatId=chat_id))["interactive"]
    assert incomplete["params"]["childrenResponse"]["type"] == "userInput"

    fake.reply("A large iced tea.")
    done = chat(server, key, '{"size": "large"}', detail=True, chatId=chat_id)
    assert tool_message(fake.requests[1].json, "call_t")["content"] == "Cold tea, size large"
    assert len(fake.requests) == 2
    items = done["choices"][0]["message"]["content"]
    text = items if isinstance(items, str) else "".join(i["text"]["content"] for i in items if i["type"] == "text")
    assert text == "A large iced tea.(order noted)"
    question, answer = records(server, key, chat_id)
    assert (question["obj"], answer["obj"]) == ("Human", "AI")
    kinds = [v["type"] for v in answer["value"]]
    assert kinds[0] == "tool" and kinds[-1] == "text" and kinds.count("interactive") == 4
    assert answer["value"][0]["tools"][0]["response"] == "Cold tea, size large"
    last_form = [v for v in answer["value"] if v["type"] == "interactive"][-1]["interactive"]
    assert last_form["params"]["childrenResponse"]["params"]["submitted"] is True
    assert answer["value"][-1]["text"]["content"] == "A large iced tea.(order noted)"


def test_a_tool_branch_that_starts_with_a_form_streams_on_v2(server, client, fake) -> None:
    key = app_key(client, APP)
    chat_id = unique("tool-rate")
    fake.tool_call("rate", {"drink": "mocha"}, call_id="call_r")
    frames = sse(server, key, "Rate my mocha", "/api/v2/chat/completions", detail=True, chatId=chat_id)
    branch = interaction(frames)["params"]["childrenResponse"]
    assert branch["type"] == "userInput" and branch["params"]["description"] == "How many stars?"
    fake.reply("Thanks for rating.")
    frames = sse(server, key, '{"stars": 4}', "/api/v2/chat/completions", detail=True, chatId=chat_id)
    assert tool_message(fake.requests[1].json, "call_r")["content"] == "mocha: 4 stars"
    assert streamed_text(frames) == "Thanks for rating.(order noted)"
    assert any(e == "flowNodeResponse" and d["moduleType"] == "tools" for e, d in frames)


def test_a_second_call_of_the_same_answer_runs_and_only_one_call_waits(server, client, fake) -> None:
    key = app_key(client, APP)
    chat_id = unique("tool-two")
    fake.tool_calls([{"name": "order", "arguments": {"drink": "flat white"}, "id": "call_a"},
                     {"name": "rate", "arguments": {"drink": "espresso"}, "id": "call_b"}])
    body = chat(server, key, "Order and rate", detail=True, chatId=chat_id)
    asked = last_item(body)["interactive"]
    assert asked["params"]["toolParams"]["toolCallId"] == "call_a"
    memory = asked["params"]["toolParams"]["memoryRequestMessages"]
    assert memory[-1]["tool_call_id"] == "call_b" and "another tool already waits" in memory[-1]["content"]
    fake.reply("Done.")
    chat(server, key, "Hot", chatId=chat_id)
    second = fake.requests[1].json
    assert [m["tool_call_id"] for m in second["messages"] if m["role"] == "tool"] == ["call_a", "call_b"]
    assert tool_message(second, "call_a")["content"] == "Hot flat white"


# ---- a tools node inside a tool branch -----------------------------------------------------------------

def test_the_calls_of_a_tools_node_inside_a_tool_branch_are_stored_with_the_answer(server, client, fake) -> None:
    key = app_key(client, APP)
    chat_id = unique("tool-nested")
    fake.tool_call("expert", {"question": "greet Bo"}, call_id="call_e")
    fake.tool_call("greet", {"name": "Bo"}, call_id="call_in")
    fake.reply("Barista: greeted.")
    fake.reply("All greeted.")
    body = chat(server, key, "Ask the barista to greet Bo", detail=True, chatId=chat_id)
    assert len(fake.requests) == 4
    assert fake.requests[1].json["messages"][-1] == {"role": "user", "content": "greet Bo"}  # the inner agent
    assert tool_message(fake.requests[2].json, "call_in")["content"] == "Hello, Bo!"
    assert tool_message(fake.requests[3].json, "call_e")["content"] == "Barista: greeted."
    [answer] = [r for r in records(server, key, chat_id) if r["obj"] == "AI"]
    calls = {c["id"]: c for v in answer["value"] if v["type"] == "tool" for c in v["tools"]}
    assert set(calls) == {"call_e", "call_in"}
    assert calls["call_in"]["toolName"] == "Greeting writer" and calls["call_in"]["params"] == '{"name": "Bo"}'
    assert calls["call_in"]["response"] == "Hello, Bo!"
    assert calls["call_e"]["functionName"] == "expert" and calls["call_e"]["response"] == "Barista: greeted."
    inner = next(d for d in tools_item(body["responseData"])["toolDetail"] if d["moduleType"] == "tools")
    assert [c["id"] for c in inner["toolCalls"]] == ["call_in"]


def test_a_tool_branch_of_a_nested_tools_node_pauses_and_resumes_both_agents(server, client, fake) -> None:
    key = app_key(client, APP)
    chat_id = unique("tool-nested-ask")
    fake.tool_call("expert", {"question": "confirm the order"}, call_id="call_e")
    fake.tool_call("confirm", {"what": "The order"}, call_id="call_c")
    frames = sse(server, key, "Confirm via the barista", detail=True, chatId=chat_id)
    outer = interaction(frames)
    inner = outer["params"]["childrenResponse"]
    assert outer["type"] == inner["type"] == "toolChildrenInteractive"
    assert outer["params"]["toolParams"]["toolCallId"] == "call_e" and inner["entryNodeIds"] == ["barista"]
    assert inner["params"]["toolParams"]["toolCallId"] == "call_c"
    assert inner["params"]["childrenResponse"]["type"] == "userSelect"
    assert inner["params"]["childrenResponse"]["entryNodeIds"] == ["yesNo"]
    fake.reply("Barista: confirmed.")
    fake.reply("The barista confirmed it.")
    frames = sse(server, key, "Yes", detail=True, chatId=chat_id)
    assert len(fake.requests) == 4
    assert tool_message(fake.requests[2].json, "call_c")["content"] == "The order confirmed"
    assert tool_message(fake.requests[3].json, "call_e")["content"] == "Barista: confirmed."
    assert streamed_text(frames) == "Barista: confirmed.The barista confirmed it.(order noted)"
    [answer] = [r for r in records(server, key, chat_id) if r["obj"] == "AI"]
    calls = {c["id"]: c["response"] for v in answer["value"] if v["type"] == "tool" for c in v["tools"]}
    assert calls == {"call_e": "Barista: confirmed.", "call_c": "The order confirmed"}
    answered = next(v for v in answer["value"] if v["type"] == "interactive")["interactive"]
    assert answered["params"]["childrenResponse"]["params"]["childrenResponse"]["params"]["userSelectedVal"] == "Yes"
