"""An answer's FastGPT value items, and a resumed run merged into them (fact sheet §2.6, §3.5)."""

from __future__ import annotations

from zhiku.apps.chat_files import parse_url
from zhiku.apps.chat_values import answer_value, answered, resumed_value, stored_value

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
    merged = resumed_value(paused, "Hot", "Brewing.", FORM)
    assert [v["type"] for v in merged] == ["text", "interactive", "text", "interactive"]
    assert merged[1]["interactive"]["params"]["userSelectedVal"] == "Hot"
    assert merged[3]["interactive"] == FORM and "userSelectedVal" not in paused[1]["interactive"]["params"]
    done = resumed_value(merged, '{"size": "s", "cups": 1}', "Done.", None)
    assert done[3]["interactive"]["params"]["submitted"] is True and done[-1]["text"]["content"] == "Done."
    assert done[1]["interactive"]["params"]["userSelectedVal"] == "Hot"  # only the last interaction answered


def test_chat_file_urls_are_recognised_relative_or_full() -> None:
    relative = parse_url("/api/common/file/read/brew.md?token=abc123")
    assert relative is not None and relative.file_key == "abc123" and relative.relative
    full = parse_url("https://zhiku.example/api/common/file/read/a%20b.md?token=k")
    assert full is not None and full.file_key == "k" and not full.relative
    assert parse_url("https://example.com/files/brew.md?token=abc") is None
    assert parse_url("/api/common/file/read/brew.md") is None
