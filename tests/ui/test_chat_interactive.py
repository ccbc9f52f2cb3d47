"""A workflow's questions to the user on the chat pages, in a real browser: a userSelect's options and a
formInput's form shown in the answer (also a tool branch's, wrapped in toolChildrenInteractive), the reply
sent as the chat's next message, the resumed run streamed into the same answer, the stored answer showing
the question answered after a reload, and the share-link page doing the same for its visitor."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import unique
from tests.ui.test_apps_and_chat import HOSTILE, WORKFLOWS, answer, answers_stored, ask, wait_answered
from tests.ui.test_share_links import share_link, visitor
from zhiku.testing.fake_upstream import FakeUpstream
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration


def workflow_app(api: httpx.Client, fixture: str, change: Callable[[dict], None] | None = None) -> int:
    graph = json.loads((WORKFLOWS / f"{fixture}.json").read_text(encoding="utf-8"))
    if change:
        change(graph)
    r = api.post("/api/apps/import", params={"name": unique(fixture)}, json=graph)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def body_parts(page: Page, n: int = 1) -> list[str]:
    """The classes of answer ``n``'s body parts, in order."""
    return answer(page, n).locator(".answer-body").evaluate("e => [...e.children].map(c => c.className)")


def option(page: Page, text: str, n: int = 1):  # noqa: ANN201 - a Playwright locator
    return answer(page, n).locator(".interaction-option", has_text=text)


def expect_hot_chosen(page: Page) -> None:
    """Answer 1: the greeting, the question answered with "Hot", the hot reply, and nothing else."""
    question = answer(page).locator(".interaction")
    expect(question.locator(".interaction-description")).to_have_text("Hot or cold?")
    expect(option(page, "Hot")).to_have_attribute("aria-pressed", "true")
    expect(option(page, "Cold")).to_have_attribute("aria-pressed", "false")
    expect(question.locator(".interaction-option:disabled")).to_have_count(2)
    expect(answer(page).locator(".answer-text").last).to_have_text("Brewing a hot drink for: A latte")
    assert body_parts(page) == ["answer-text", "interaction interaction-select answered", "answer-text"]
    expect(page.locator("#messages .message-user")).to_have_count(1)  # the reply is no question of its own
    expect(page.locator("#messages .message-assistant")).to_have_count(1)


def test_an_option_resumes_the_run_in_the_same_answer(logged_in: Page, api: httpx.Client) -> None:
    page = logged_in
    app_id = workflow_app(api, "interactive_order")
    page.goto(f"/chat/{app_id}")
    ask(page, "A latte")
    wait_answered(page)
    expect(answer(page).locator(".interaction-description")).to_have_text("Hot or cold?")
    expect(answer(page).locator(".interaction-option")).to_have_text(["Hot", "Cold"])
    expect(answer(page).locator(".interaction-option:disabled")).to_have_count(0)
    expect(answer(page).locator(".answer-error")).to_have_count(0)
    expect(answer(page).locator(".answer-text")).to_have_text(["Welcome!"])

    option(page, "Hot").click()
    wait_answered(page)
    expect_hot_chosen(page)
    expect(answer(page).locator(".answer-error")).to_have_count(0)
    chat_id = page.url.rsplit("/", 1)[1]
    [stored] = answers_stored(api, app_id, chat_id)
    assert [v["type"] for v in stored["value"]] == ["text", "interactive", "text"]
    assert stored["value"][1]["interactive"]["params"]["userSelectedVal"] == "Hot"

    page.reload()  # the stored answer: the question shown answered, the chat waits on nothing
    expect_hot_chosen(page)
    ask(page, "Another latte")  # a new question, not a reply
    wait_answered(page)
    expect(answer(page, 2).locator(".interaction-option")).to_have_text(["Hot", "Cold"])
    expect(page.locator("#messages .message-user")).to_have_count(2)
    ask(page, "Cold")  # typed while the question waits: the reply, as the server takes it
    wait_answered(page)
    expect(option(page, "Cold", 2)).to_have_attribute("aria-pressed", "true")
    expect(answer(page, 2).locator(".interaction-form")).to_be_visible()
    expect(page.locator("#messages .message-user")).to_have_count(2)


def order_cold(page: Page, app_id: int):  # noqa: ANN201 - a Playwright locator
    """A new chat that orders a latte and chooses "Cold": the form it then asks for."""
    page.goto(f"/chat/{app_id}")
    ask(page, "A latte")
    wait_answered(page)
    option(page, "Cold").click()
    wait_answered(page)
    return answer(page).locator(".interaction-form")


def test_a_form_is_checked_submitted_and_shown_submitted_after_reload(logged_in: Page, api: httpx.Client,
                                                                     shoot) -> None:
    page = logged_in
    app_id = workflow_app(api, "interactive_order")
    form = order_cold(page, app_id)
    expect(answer(page).locator(".interaction-description").last).to_have_text("A few details, please")
    size, cups = form.locator("input[name=size]"), form.locator("input[name=cups]")
    expect(size).to_have_attribute("maxlength", "10")
    expect(size).to_have_attribute("required", "")
    expect(cups).to_have_attribute("type", "number")
    expect(cups).to_have_attribute("min", "1")
    expect(cups).to_have_attribute("max", "9")
    expect(cups).to_have_value("1")  # its default
    expect(form.locator(".interaction-field", has_text="Size").locator(".required")).to_have_count(1)
    expect(form.locator(".interaction-field", has_text="Cups").locator(".required")).to_have_count(0)
    chat_id = page.url.rsplit("/", 1)[1]
    page.goto(f"/chat/{app_id}/{chat_id}")  # reopened (the language switch's link names the chat from here on)
    expect(answer(page).locator(".interaction-form input:enabled")).to_have_count(2)  # the form still waits
    shoot(page, "chat-interactive")

    form = answer(page).locator(".interaction-form")
    size, cups = form.locator("input[name=size]"), form.locator("input[name=cups]")
    form.locator(".interaction-submit").click()  # Size is required: the browser keeps the form
    assert size.evaluate("e => e.validity.valueMissing")
    expect(size).to_be_enabled()
    [stored] = answers_stored(api, app_id, chat_id)
    assert stored["value"][-1]["type"] == "interactive" and "submitted" not in stored["value"][-1]["interactive"]["params"]

    cups.fill("12")  # over its max: refused too
    size.fill("Large")
    form.locator(".interaction-submit").click()
    assert cups.evaluate("e => e.validity.rangeOverflow")
    cups.fill("3")
    form.locator(".interaction-submit").click()
    wait_answered(page)
    expect(answer(page).locator(".answer-text").last).to_have_text("Cold: 3 x Large")
    expect(size).to_be_disabled()
    expect(form.locator(".interaction-submit")).to_be_hidden()
    expect(form.locator(".interaction-submitted")).to_have_text("Submitted.")
    [stored] = answers_stored(api, app_id, chat_id)
    submitted = stored["value"][-2]["interactive"]["params"]
    assert submitted["submitted"] is True
    assert {f["key"]: f["value"] for f in submitted["inputForm"]} == {"size": "Large", "cups": 3}

    page.reload()
    form = answer(page).locator(".interaction-form")
    expect(form.locator("input[name=size]")).to_have_value("Large")
    expect(form.locator("input[name=cups]")).to_have_value("3")
    expect(form.locator("input:disabled")).to_have_count(2)
    expect(form.locator(".interaction-submitted")).to_have_text("Submitted.")
    expect(option(page, "Cold")).to_have_attribute("aria-pressed", "true")
    expect(answer(page).locator(".answer-text").last).to_have_text("Cold: 3 x Large")
    expect(page.locator("#messages .message-assistant")).to_have_count(1)


def more_fields(graph: dict) -> None:
    """The order's form with a hostile description, a textarea and a select too."""
    [form] = [n for n in graph["nodes"] if n["nodeId"] == "form"]
    inputs = {i["key"]: i for i in form["inputs"]}
    inputs["description"]["value"] = HOSTILE
    inputs["userInputForms"]["value"] += [
        {"type": "textarea", "key": "note", "label": "Note", "valueType": "string", "required": False, "maxLength": 50,
         "description": "Anything else?", "defaultValue": "", "value": "", "list": []},
        {"type": "select", "key": "milk", "label": "Milk", "valueType": "string", "required": True,
         "description": "", "defaultValue": "", "value": "",
         "list": [{"label": "Oat milk", "value": "oat"}, {"label": f"Whole {HOSTILE}", "value": "whole"}]}]


def test_a_form_of_every_kind_of_field(logged_in: Page, api: httpx.Client, dialogs: list[str]) -> None:
    page = logged_in
    app_id = workflow_app(api, "interactive_order", more_fields)
    form = order_cold(page, app_id)
    expect(answer(page).locator(".interaction-description").last).to_have_text(HOSTILE)  # text, not markup
    assert answer(page).locator(".interaction img").count() == 0
    note, milk = form.locator("textarea[name=note]"), form.locator("select[name=milk]")
    expect(note).to_have_attribute("maxlength", "50")
    expect(form.locator(".interaction-field", has_text="Note").locator(".hint")).to_have_text("Anything else?")
    expect(milk.locator("option")).to_have_text(["", "Oat milk", f"Whole {HOSTILE}"])
    expect(milk).to_have_attribute("required", "")
    form.locator("input[name=size]").fill("Small")
    note.fill("Extra hot\nplease")
    form.locator(".interaction-submit").click()  # no milk chosen: refused
    assert milk.evaluate("e => e.validity.valueMissing")
    milk.select_option("oat")
    form.locator(".interaction-submit").click()
    wait_answered(page)
    expect(answer(page).locator(".answer-text").last).to_have_text("Cold: 1 x Small")
    chat_id = page.url.rsplit("/", 1)[1]
    [stored] = answers_stored(api, app_id, chat_id)
    fields = stored["value"][-2]["interactive"]["params"]["inputForm"]
    assert {f["key"]: f["value"] for f in fields} == {"size": "Small", "cups": 1, "note": "Extra hot\nplease",
                                                      "milk": "oat"}
    page.reload()
    form = answer(page).locator(".interaction-form")
    expect(form.locator("textarea[name=note]")).to_have_value("Extra hot\nplease")
    expect(form.locator("select[name=milk]")).to_have_value("oat")
    expect(form.locator("select[name=milk]")).to_be_disabled()
    assert dialogs == []


def test_a_tool_branch_asks_and_the_model_goes_on(logged_in: Page, api: httpx.Client, fake: FakeUpstream) -> None:
    page = logged_in
    app_id = workflow_app(api, "tools_interactive")
    page.goto(f"/chat/{app_id}")
    fake.tool_call("order", {"drink": "latte"}, call_id="call_o", content="One moment. ")
    ask(page, "A latte, please")
    wait_answered(page)
    expect(answer(page).locator(".interaction-description")).to_have_text("Hot or cold?")
    assert body_parts(page) == ["answer-text", "tool-call", "interaction interaction-select"]

    fake.reply("Your hot latte is on its way.")
    option(page, "Hot").click()
    wait_answered(page)
    expect(answer(page).locator(".answer-text")).to_have_text(["One moment. ",
                                                               "Your hot latte is on its way.(order noted)"])
    call = answer(page).locator(".tool-call")
    call.locator("summary").click()
    expect(call.locator(".tool-call-response")).to_have_text("Hot latte")
    expect(option(page, "Hot")).to_have_attribute("aria-pressed", "true")
    page.reload()
    assert body_parts(page) == ["answer-text", "tool-call", "interaction interaction-select answered", "answer-text"]
    expect(option(page, "Hot")).to_have_attribute("aria-pressed", "true")
    expect(answer(page).locator(".answer-text").last).to_have_text("Your hot latte is on its way.(order noted)")


def test_a_share_link_visitor_answers_on_a_phone(api: httpx.Client, browser: Browser,
                                                 ui_server: ServerThread) -> None:
    app_id = workflow_app(api, "interactive_order")
    path = share_link(api, app_id)
    with visitor(browser, ui_server, phone=True) as page:
        page.goto(path)
        expect(page.locator("body")).to_have_attribute("data-chat-ready", "true")
        ask(page, "A latte")
        wait_answered(page)
        hot = option(page, "Hot")
        box = hot.bounding_box()
        assert box is not None and box["x"] + box["width"] <= 390  # on the narrow screen
        hot.click()
        wait_answered(page)
        expect_hot_chosen(page)
        page.reload()  # the visitor's stored chat (its chatId in the address)
        expect_hot_chosen(page)
