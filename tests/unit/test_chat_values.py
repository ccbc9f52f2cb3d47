"""An answer's FastGPT value items, and a resumed run merged into them (fact sheet §2.6, §3.5)."""

from __future__ import annotations

from zhiku.apps.chat_files import parse_url
from zhiku.apps.chat_values import AnswerItems, answer_value, answered, resumed_value, stored_value, without_tools
from zhiku.apps.workflow.events import ToolActivity

SELECT = {"type": "userSelect", "params": {"description": "Hot or cold?",
                                          "userSelectOptions": [{"key": "hot", "value": "Hot"}]},
          "entryNodeIds": ["sel"]}
FORM = {"type": "userInput", "params": {"description": "Details", "inputForm": [
    {"key": "size", "label": "Size", "type": "input"}, {"key": "cups", "label": "Cups", "type": "numberInput"}]}}


def test_an_answer_is_its_text_then_the_interaction_it_paused_on() -> None:
    assert answer_value("Welcome!", SELECT) == [{"type": "text", "text": {"content": "Welcome!"}},
                                                {"type": "interactive", "interactive": SELECT}]
    assert answer_value("", None) == []
    assert stored_value("Old answer", None, None) == [{"type": "text", "text": {"content": "Old answer"}}]
    assert stored_value("ignored", None, [{"type": "text", "text": {"content": "kept"}}])[0]["text"]["content"] == "kept"


def test_the_reply_is_recorded_in_the_interaction_without_changing_the_stored_one() -> None:
    chosen = answered(SELECT, "Hot")
    assert chosen["params"]["userSelectedVal"] == "Hot" and "userSelectedVal" not in SELECT["params"]
    form = answered(FORM, '{"size": "large", "Cups": 2}')  # by key, or by label as FastGPT's page sends
    assert form["params"]["submitted"] is True
    assert [f.get("value") for f in form["params"]["inputForm"]] == ["large", 2]
    assert "submitted" not in answered(FORM, "not json")["params"]


def test_a_resumed_run_appends_to_the_answer_that_paused() -> None:
    paused = answer_value("Welcome!", SELECT)
    merged = resumed_value(paused, "Hot", answer_value("Brewing.", FORM))
    assert [v["type"] for v in merged] == ["text", "interactive", "text", "interactive"]
    assert merged[1]["interactive"]["params"]["userSelectedVal"] == "Hot"
    assert merged[3]["interactive"] == FORM and "userSelectedVal" not in paused[1]["interactive"]["params"]
    done = resumed_value(merged, '{"size": "s", "cups": 1}', answer_value("Done.", None))
    assert done[3]["interactive"]["params"]["submitted"] is True and done[-1]["text"]["content"] == "Done."
    assert done[1]["interactive"]["params"]["userSelectedVal"] == "Hot"  # only the last interaction answered


def test_tool_calls_sit_between_the_text_before_and_after_them_one_item_per_model_answer() -> None:
    items = AnswerItems()
    items.add_text("Let me ")
    items.add_text("check. ")
    items.add_tool(ToolActivity("toolCall", "c1", tool_name="Weather", tool_avatar="w.svg", function_name="weather",
                                params='{"ci'))
    items.add_tool(ToolActivity("toolParams", "c1", params='ty": "Lisbon"}'))
    items.add_tool(ToolActivity("toolCall", "c2", tool_name="Greeter", function_name="greet", params='{}'))
    items.add_tool(ToolActivity("toolResponse", "c1", response="sunny"))
    items.add_tool(ToolActivity("toolResponse", "c2", response="hello"))
    items.add_tool(ToolActivity("toolCall", "c3", tool_name="Weather", function_name="weather"))  # next answer
    items.add_tool(ToolActivity("toolResponse", "c3", response="rainy"))
    items.add_tool(ToolActivity("toolResponse", "unknown", response="ignored"))
    items.add_text("Sunny.")
    value = items.value(SELECT)
    assert [v["type"] for v in value] == ["text", "tool", "tool", "text", "interactive"]
    assert value[0]["text"]["content"] == "Let me check. " and value[3]["text"]["content"] == "Sunny."
    assert value[1]["tools"] == [
        {"id": "c1", "toolName": "Weather", "toolAvatar": "w.svg", "functionName": "weather",
         "params": '{"city": "Lisbon"}', "response": "sunny"},
        {"id": "c2", "toolName": "Greeter", "toolAvatar": "", "functionName": "greet", "params": "{}",
         "response": "hello"}]
    assert [t["response"] for t in value[2]["tools"]] == ["rainy"]
    assert without_tools(value) == [value[0], value[3], value[4]]
    items.add_text(" More.")  # value() handed out a copy: later text does not change it
    assert value[3]["text"]["content"] == "Sunny." and items.value(None)[-1]["text"]["content"] == "Sunny. More."


def test_chat_file_urls_are_recognised_relative_or_full() -> None:
    relative = parse_url("/api/common/file/read/brew.md?token=abc123")
    assert relative is not None and relative.file_key == "abc123" and relative.relative
    full = parse_url("https://zhiku.example/api/common/file/read/a%20b.md?token=k")
    assert full is not None and full.file_key == "k" and not full.relative
    assert parse_url("https://example.com/files/brew.md?token=abc") is None
    assert parse_url("/api/common/file/read/brew.md") is None


def test_a_reply_to_a_tool_branch_is_recorded_in_the_branchs_interaction_and_its_call_gets_the_result() -> None:
    select = {"type": "userSelect", "params": {"userSelectOptions": [{"key": "a", "value": "A"}]}}
    paused = {"type": "toolChildrenInteractive", "entryNodeIds": ["agent"],
              "params": {"childrenResponse": {"type": "toolChildrenInteractive",
                                              "params": {"childrenResponse": select, "toolParams": {}}},
                         "toolParams": {"toolCallId": "call_1"}}}
    done = answered(paused, "A")
    assert done["params"]["childrenResponse"]["params"]["childrenResponse"]["params"]["userSelectedVal"] == "A"
    assert "userSelectedVal" not in select["params"] and done["params"]["toolParams"] == {"toolCallId": "call_1"}
    resumed = AnswerItems()
    resumed.add_tool(ToolActivity("toolResponse", "call_1", response="A chosen"))  # a call of the paused answer
    resumed.add_text("Thanks.")
    assert resumed.earlier_responses == {"call_1": "A chosen"}
    before = [{"type": "tool", "tools": [{"id": "call_1", "response": ""}, {"id": "call_2", "response": "x"}]},
              {"type": "interactive", "interactive": paused}]
    merged = resumed_value(before, "A", resumed.value(None), resumed.earlier_responses)
    assert merged[0]["tools"] == [{"id": "call_1", "response": "A chosen"}, {"id": "call_2", "response": "x"}]
    assert before[0]["tools"][0]["response"] == ""
    assert merged[2:] == [{"type": "text", "text": {"content": "Thanks."}}]
