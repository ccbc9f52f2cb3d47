"""The apps and chat pages in a real browser: the app editor and its keys, and the chat page streaming from
the chat API (the fake upstream scripts the model), with citations, feedback, stop, errors, history, a
phone-sized screen and hostile text shown as text."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import login, unique
from tests.integration.helpers import add_text, create_dataset
from tests.ui.conftest import PageProblems, log_in, new_context, set_language
from zhiku.testing.fake_upstream import FakeUpstream
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration

HOSTILE = "<img src=x onerror=alert(1)>"
WORKFLOWS = Path(__file__).resolve().parents[1] / "fixtures" / "workflows"


def answers_stored(api: httpx.Client, app_id: int, chat_id: str) -> list[dict]:
    """The chat's stored answers, read through FastGPT's records API."""
    r = api.post("/api/core/chat/getPaginationRecords", json={"appId": app_id, "chatId": chat_id, "offset": 0,
                                                               "pageSize": 30})
    assert r.status_code == 200, r.text
    return [record for record in r.json()["data"]["list"] if record["obj"] == "AI"]


def chats_listed(api: httpx.Client, app_id: int) -> list[str]:
    r = api.post("/api/core/chat/getHistories", json={"appId": app_id, "offset": 0, "pageSize": 100})
    assert r.status_code == 200, r.text
    return [chat["chatId"] for chat in r.json()["data"]["list"]]


def new_app(api: httpx.Client, dataset_id: int, **fields: object) -> int:
    r = api.post("/api/apps", json={"name": unique("barista"), "datasetIds": [dataset_id], **fields})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def new_app_named(api: httpx.Client, name: str) -> int:
    r = api.post("/api/apps", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def answer(page: Page, n: int = 1):
    return page.locator(f"#messages li[data-answer='{n}']")


def ask(page: Page, question: str) -> None:
    page.fill("#question", question)
    page.click("#send")


def expect_answer(page: Page, n: int, text: str) -> None:
    """Answer ``n`` reads ``text`` (and if the turn failed instead, the failure says why)."""
    errors = answer(page, n).locator(".answer-error").all_text_contents()
    assert not errors, f"answer {n} failed: {errors}"
    expect(answer(page, n).locator(".answer-text")).to_have_text(text)


def wait_answered(page: Page) -> None:
    """The turn is over: the stop button went away and the send button is back."""
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()


def continue_the_chat(page: Page, fake: FakeUpstream, final: str, shoot_it: Callable[[], None]) -> None:
    """A chat opened again from the history: its answer with the feedback it got (then ``shoot_it``), and
    a next question, which the model gets with the old turn."""
    expect_answer(page, 1, final)
    expect(answer(page).locator(".feedback-good")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#welcome")).to_be_hidden()
    shoot_it()
    fake.reply("Use 18 grams.")
    ask(page, "And the dose?")
    wait_answered(page)
    expect_answer(page, 2, "Use 18 grams.")
    assert {"role": "assistant", "content": final} in fake.last_request.json["messages"]


def test_create_an_app_edit_it_and_manage_its_keys(logged_in: Page, api: httpx.Client, manual: dict,
                                                    ui_server: ServerThread, fake: FakeUpstream, shoot) -> None:
    page = logged_in
    page.goto("/apps")
    page.click("#new-app")
    name = unique("Barista")
    page.fill("input[name=name]", name)
    page.fill("textarea[name=system_prompt]", "You help {{user}} with the espresso machine.")
    models = page.locator("select[name=model] option").all_text_contents()
    assert "fake-chat" in models and "Default (fake-chat)" in models[0]
    page.check(f"#app-datasets input[value='{manual['id']}']")
    page.select_option("select[name=search_mode]", "fullText")
    page.fill("input[name=similarity]", "0.2")
    page.fill("input[name=search_max_tokens]", "3000")
    page.check("input[name=rerank]")
    page.fill("textarea[name=welcome_text]", "Hello! Ask me about the machine.")
    page.fill("textarea[name=opening_questions]", "How often should I descale?\nWhat dose for a double?")
    page.fill("input[name=var_key_0]", "user")
    page.fill("input[name=var_label_0]", "Your name")
    page.check("input[name=var_required_0]")
    page.click("#save-app")
    expect(page.locator(".alert-success")).to_be_visible()
    app_id = int(page.url.split("/apps/")[1].split("?")[0])

    saved = api.get(f"/api/apps/{app_id}").json()
    assert saved["name"] == name and saved["dataset_ids"] == [manual["id"]] and saved["model"] is None
    assert saved["search"]["mode"] == "fullText" and saved["search"]["similarity"] == 0.2
    assert saved["search"]["max_tokens"] == 3000 and saved["search"]["rerank"] is True
    assert saved["chat_config"]["welcomeText"] == "Hello! Ask me about the machine."
    assert saved["chat_config"]["openingQuestions"] == ["How often should I descale?", "What dose for a double?"]
    assert saved["chat_config"]["variables"][0] | {"options": []} == {
        "key": "user", "label": "Your name", "type": "input", "required": True, "description": "",
        "defaultValue": "", "options": []}

    # edit: a named model, then back to the default; a bad value is refused with the form kept
    page.select_option("select[name=model]", "fake-chat")
    page.click("#save-app")
    expect(page.locator(".alert-success")).to_be_visible()
    assert api.get(f"/api/apps/{app_id}").json()["model"] == "fake-chat"
    shoot(page, "app-editor")
    page.select_option("select[name=model]", "")
    page.fill("input[name=name]", "   ")
    page.evaluate("document.querySelector('input[name=name]').removeAttribute('required')")
    page.click("#save-app")
    expect(page.locator(".alert-error")).to_be_visible()
    assert api.get(f"/api/apps/{app_id}").json()["model"] == "fake-chat"  # nothing of the refused form kept
    page.fill("input[name=name]", name)
    page.click("#save-app")
    expect(page.locator(".alert-success")).to_be_visible()
    assert api.get(f"/api/apps/{app_id}").json()["model"] is None

    page.goto("/apps")
    expect(page.locator(f"#apps tr[data-app-id='{app_id}']")).to_contain_text(manual["name"])
    shoot(page, "apps")

    # keys: the new key is shown once, in a dialog with a copy button
    page.goto(f"/apps/{app_id}/keys")
    page.fill("#create-key input[name=name]", "website")
    page.click("#create-key button[type=submit]")
    dialog = page.locator("dialog#new-key")
    expect(dialog).to_be_visible()
    key = page.locator("#new-key-value").inner_text().strip()
    assert key.startswith("zk-") or len(key) > 20
    page.click("#copy-key")
    expect(page.locator("#copy-key")).to_have_text("Copied")
    page.click("dialog#new-key [data-dialog-close]")
    expect(dialog).to_be_hidden()
    row = page.locator("#key-list tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(key[:8])
    expect(row).to_contain_text("never")
    fake.reply("Every 200 cups.")
    r = httpx.post(ui_server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "descale?"}], "variables": {"user": "Ana"}},
                   timeout=60)
    assert r.status_code == 200, r.text
    page.reload()
    assert key not in page.content()  # never shown again
    expect(page.locator("#key-list tbody tr")).not_to_contain_text("never")  # last used now
    shoot(page, "app-keys")
    page.click("#key-list tbody tr button.btn-danger")  # confirm() is accepted by the fixture
    expect(page.locator("#key-list")).to_have_count(0)
    r = httpx.post(ui_server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "descale?"}]}, timeout=60)
    assert r.status_code == 401

    # delete the app
    page.goto(f"/apps/{app_id}")
    page.click("#delete-app")
    page.wait_for_url("**/apps")
    expect(page.locator(f"#apps tr[data-app-id='{app_id}']")).to_have_count(0)
    assert api.get(f"/api/apps/{app_id}").status_code == 404


def test_chat_streams_cites_takes_feedback_and_continues(logged_in: Page, api: httpx.Client, manual: dict,
                                                          fake: FakeUpstream, shoot) -> None:
    page = logged_in
    app_id = new_app(api, manual["id"], chatConfig={
        "welcomeText": "Hello! Ask me about the machine.", "openingQuestions": ["How often should I descale?"]})
    page.goto(f"/chat/{app_id}")
    expect(page.locator("#welcome")).to_contain_text("Hello! Ask me about the machine.")
    shoot(page, "chat-new")
    page.goto(f"/chat/{app_id}")
    final = "Descale every 200 cups [1].\nRun the program twice."
    fake.reply(final, chunk_size=4, chunk_delay_s=0.25)
    page.click(".opening-question")
    expect(page.locator("#welcome")).to_be_hidden()
    text = answer(page).locator(".answer-text")
    # the answer grows while the stream is still running
    page.wait_for_function("() => document.querySelector(\"#messages li[data-answer='1'] .answer-text\")"
                           "?.textContent.length >= 4")
    first = text.text_content()
    assert page.locator("#stop").is_visible()
    page.wait_for_function("n => document.querySelector(\"#messages li[data-answer='1'] .answer-text\")"
                           ".textContent.length > n", arg=len(first))
    assert page.locator("#stop").is_visible()  # still streaming
    wait_answered(page)
    assert 0 < len(first) < len(final) and final.startswith(first)
    expect(text).to_have_text(final)
    assert text.evaluate("e => getComputedStyle(e.closest('.bubble')).whiteSpace") == "pre-wrap"  # line breaks kept

    # the citation: the marker opens the quote with its source
    marker = text.locator("a.cite-marker")
    expect(marker).to_have_text("[1]")
    citation = answer(page).locator("#cite-1-1")
    expect(citation.locator(".cite-source")).to_have_text("espresso.md")
    expect(citation.locator(".cite-score")).to_contain_text("score")
    expect(citation.locator(".quote-text")).to_be_hidden()
    marker.click()
    expect(citation.locator(".quote-text")).to_be_visible()
    expect(citation.locator(".quote-text")).to_contain_text("citric acid")

    # copy and feedback
    answer(page).locator(".copy-answer").click()
    expect(answer(page).locator(".copy-answer")).to_have_text("Copied")
    answer(page).locator(".feedback-good").click()
    expect(answer(page).locator(".feedback-good")).to_have_attribute("aria-pressed", "true")
    expect(answer(page).locator(".tool-status")).to_have_text("Thanks for the feedback.")
    chat_id = page.url.rsplit("/", 1)[1]
    assert page.url.endswith(f"/chat/{app_id}/{chat_id}")
    [stored] = answers_stored(api, app_id, chat_id)
    assert stored["userGoodFeedback"] and stored["value"][0]["text"]["content"] == final

    # the history lists the chat; a new chat, then back to the old one from the history, which continues it
    expect(page.locator(f"#chat-history li[data-chat-id='{chat_id}']")).to_contain_text("How often should I descale?")
    page.click("#new-chat")
    expect(page.locator("#messages li")).to_have_count(0)
    page.click(f"#chat-history li[data-chat-id='{chat_id}'] a")
    page.wait_for_url(f"**/chat/{app_id}/{chat_id}")
    continue_the_chat(page, fake, final, lambda: shoot(page, "chat"))

    # rename and delete from the history (once it has reloaded after the turn)
    page.wait_for_load_state("networkidle")
    entry = page.locator(f"#chat-history li[data-chat-id='{chat_id}']")
    entry.locator("summary").click()
    entry.locator("input[name=title]").fill("Descaling")
    entry.locator(".rename-form button").click()
    expect(page.locator(f"#chat-history li[data-chat-id='{chat_id}'] > a")).to_have_text("Descaling")
    page.locator(f"#chat-history li[data-chat-id='{chat_id}'] summary").click()
    page.locator(f"#chat-history li[data-chat-id='{chat_id}'] .pin-chat").click()
    expect(page.locator(f"#chat-history li[data-chat-id='{chat_id}'] .pinned")).to_be_visible()
    r = api.post("/api/core/chat/getHistories", json={"appId": app_id, "offset": 0, "pageSize": 100})
    assert [c for c in r.json()["data"]["list"] if c["chatId"] == chat_id][0]["top"] is True
    page.locator(f"#chat-history li[data-chat-id='{chat_id}'] summary").click()
    page.locator(f"#chat-history li[data-chat-id='{chat_id}'] .delete-chat").click()
    page.wait_for_url(f"**/chat/{app_id}")
    expect(page.locator(f"#chat-history li[data-chat-id='{chat_id}']")).to_have_count(0)
    assert chat_id not in chats_listed(api, app_id)


def test_stop_generating_keeps_the_turn(logged_in: Page, api: httpx.Client, manual: dict,
                                        fake: FakeUpstream) -> None:
    page = logged_in
    app_id = new_app(api, manual["id"])
    page.goto(f"/chat/{app_id}")
    fake.reply("Descale every two hundred cups with citric acid, then run the program twice.",
               chunk_size=4, chunk_delay_s=0.3)
    ask(page, "How often to descale?")
    page.wait_for_function("() => document.querySelector(\"#messages li[data-answer='1'] .answer-text\")"
                           "?.textContent.length >= 4")
    page.click("#stop")
    wait_answered(page)
    expect(answer(page).locator(".answer-status")).to_have_text("Stopped.")
    shown = answer(page).locator(".answer-text").text_content()
    assert shown.startswith("Desc") and len(shown) < 70
    chat_id = page.url.rsplit("/", 1)[1]
    stored: list[dict] = []
    deadline = time.monotonic() + 30
    while not stored and time.monotonic() < deadline:  # stored once the server notices the client left
        stored = answers_stored(api, app_id, chat_id) if chat_id in chats_listed(api, app_id) else []
        time.sleep(0.2)
    assert stored and stored[0]["value"][0]["text"]["content"].startswith("Desc")
    fake.reply("Twice.")
    ask(page, "How many runs?")
    wait_answered(page)
    expect_answer(page, 2, "Twice.")


def test_switching_language_after_the_first_turn_stays_in_the_chat(logged_in: Page, api: httpx.Client,
                                                                     manual: dict, fake: FakeUpstream) -> None:
    page = logged_in
    app_id = new_app(api, manual["id"])
    page.goto(f"/chat/{app_id}")
    fake.reply("Use 18 grams.")
    ask(page, "How much coffee?")
    wait_answered(page)
    chat_path = urlsplit(page.url).path
    assert chat_path != f"/chat/{app_id}", "the new chat got no address of its own"
    page.click(".lang-switch a[data-lang='zh-CN']")
    page.wait_for_load_state()
    assert urlsplit(page.url).path == chat_path
    expect_answer(page, 1, "Use 18 grams.")
    page.click(".lang-switch a[data-lang='en']")  # back, for the tests after this one


@pytest.mark.parametrize("status", [500, 429])
def test_upstream_errors_show_in_the_conversation(logged_in: Page, api: httpx.Client, manual: dict,
                                                   fake: FakeUpstream, status: int) -> None:
    page = logged_in
    app_id = new_app(api, manual["id"])
    page.goto(f"/chat/{app_id}")
    fake.fail(status, headers={"Retry-After": "1"} if status == 429 else None)
    ask(page, "How often to descale?")
    wait_answered(page)
    error = answer(page).locator(".answer-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("Error:")
    assert len(error.text_content()) > len("Error: ")
    if status == 429:
        time.sleep(1.2)  # the channel's cooldown, so later tests find it serving again
    fake.reply("Every 200 cups.")
    ask(page, "Try again: how often?")
    wait_answered(page)
    expect_answer(page, 2, "Every 200 cups.")


def test_hostile_text_in_quotes_and_answers_stays_text(logged_in: Page, api: httpx.Client, fake: FakeUpstream,
                                                       dialogs: list[str]) -> None:
    page = logged_in
    dataset_id = create_dataset(api, unique("hostile"))
    add_text(api, dataset_id, "hostile.md", f"Cleaning tips {HOSTILE} for the espresso machine.")
    name = f"{HOSTILE} {unique('app')}"
    app_id = new_app(api, dataset_id, name=name, search={"mode": "fullText", "similarity": 0},
                     chatConfig={"welcomeText": f"Welcome {HOSTILE}", "openingQuestions": [HOSTILE]})
    page.goto("/apps")
    expect(page.locator(f"#apps tr[data-app-id='{app_id}'] td").first).to_have_text(name)
    page.goto(f"/chat/{app_id}")
    expect(page.locator(".chat-head h1")).to_have_text(name)
    expect(page.locator("#welcome .welcome-text")).to_have_text(f"Welcome {HOSTILE}")
    expect(page.locator(".opening-question")).to_have_text(HOSTILE)
    assert page.locator("main img").count() == 0
    fake.reply(f"Answer {HOSTILE} [1]", chunk_size=5, chunk_delay_s=0.02)
    ask(page, "Cleaning tips for the espresso machine?")
    wait_answered(page)
    expect_answer(page, 1, f"Answer {HOSTILE} [1]")
    answer(page).locator("a.cite-marker").click()
    expect(answer(page).locator(".quote-text")).to_contain_text(HOSTILE)
    page.reload()
    expect(answer(page).locator(".quote-text")).to_contain_text(HOSTILE, use_inner_text=False)
    assert page.locator("#messages img").count() == 0
    assert dialogs == []


def test_the_chat_on_a_phone_sized_screen(browser: Browser, ui_server: ServerThread, api: httpx.Client,
                                          manual: dict, fake: FakeUpstream, shoot) -> None:
    app_id = new_app(api, manual["id"], chatConfig={"welcomeText": "Hello from the phone.",
                                                    "openingQuestions": ["How often should I descale?"]})
    problems = PageProblems()
    context = browser.new_context(base_url=ui_server.base_url, viewport={"width": 390, "height": 844},
                                  is_mobile=True, has_touch=True)
    problems.watch(context)
    try:
        page = context.new_page()
        log_in(page)
        page.goto(f"/chat/{app_id}")
        expect(page.locator("#chat-side")).to_be_hidden()
        expect(page.locator("#welcome")).to_be_visible()
        fake.reply("Every 200 cups [1].", chunk_size=4, chunk_delay_s=0.02)
        ask(page, "How often should I descale?")
        wait_answered(page)
        expect_answer(page, 1, "Every 200 cups [1].")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing wider than the screen
        chat_id = page.url.rsplit("/", 1)[1]
        page.goto(f"/chat/{app_id}/{chat_id}")
        shoot(page, "chat-phone")
        page.click("#history-toggle")
        expect(page.locator("#chat-side")).to_be_visible()
        expect(page.locator(f"#chat-history li[data-chat-id='{chat_id}']")).to_be_visible()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
    assert not problems.csp_violations, problems.csp_violations


def test_import_view_and_export_a_fastgpt_workflow(logged_in: Page, api: httpx.Client, manual: dict,
                                                   fake: FakeUpstream, shoot) -> None:
    page = logged_in
    page.goto("/apps")
    page.click("#import-app")
    name = unique("Coffee flow")
    page.fill("#import-form input[name=name]", name)
    page.set_input_files("#import-form input[name=file]", str(WORKFLOWS / "export_search_chat.json"))
    page.click("#import-form button[type=submit]")
    page.wait_for_url("**/apps/*/workflow")
    app_id = int(page.url.split("/apps/")[1].split("/")[0])
    assert api.get(f"/api/apps/{app_id}").json()["type"] == "workflow"
    # the graph: one box per node, one curve per edge, each node's settings below
    expect(page.locator("#workflow-graph .node")).to_have_count(4)
    expect(page.locator("#workflow-graph path.edge")).to_have_count(2)
    chat_node = page.locator("#workflow-nodes details[data-node-id='chat']")
    expect(chat_node.locator("summary")).to_contain_text("AI 对话")
    chat_node.locator("summary").click()
    expect(chat_node.locator("dl")).to_be_visible()
    shoot(page, "app-workflow")
    # settings of a workflow app are its graph; its chat shows the file's welcome text
    page.goto(f"/apps/{app_id}")
    page.wait_for_url(f"**/apps/{app_id}/workflow")
    page.goto(f"/chat/{app_id}")
    expect(page.locator("#welcome")).to_contain_text("Ask me about coffee.")
    # export: FastGPT's file, downloaded as <name>.json
    page.goto(f"/apps/{app_id}/workflow")
    with page.expect_download() as download:
        page.click("#export-app")
    assert download.value.suggested_filename == f"{name}.json"
    exported = json.loads(Path(download.value.path()).read_text(encoding="utf-8"))
    assert set(exported) == {"nodes", "edges", "chatConfig"} and len(exported["nodes"]) == 4
    # a file that is not an app is refused with the reason, the app list untouched
    page.goto("/apps/import")
    page.fill("#import-form textarea[name=json]", "{\"nodes\": [")
    page.click("#import-form button[type=submit]")
    expect(page.locator(".alert-error")).to_contain_text("JSON")
    # a simple app shows the workflow its form compiles to
    simple = new_app(api, manual["id"])
    page.goto(f"/apps/{simple}/workflow")
    expect(page.locator("#workflow-nodes details[data-node-id='datasetSearch'] summary")).to_contain_text("Dataset search")
    expect(page.locator("#workflow-graph path.edge")).to_have_count(2)


def test_the_apps_list_is_paged(logged_in: Page, api: httpx.Client) -> None:
    page = logged_in
    made = [new_app_named(api, unique(f"paged-{i:02d}")) for i in range(21)]
    every = api.get("/api/apps").json()
    pages = -(-len(every) // 20)
    assert pages >= 2
    page.goto("/apps")
    rows = page.locator("#apps tbody tr")
    expect(rows).to_have_count(20)
    assert rows.first.get_attribute("data-app-id") == str(made[-1])  # the newest first
    expect(page.locator(".pager-position")).to_have_text(f"Page 1 of {pages} ({len(every)} in all)")
    expect(page.locator(".pager a[rel=prev]")).to_have_count(0)
    seen = []
    for number in range(1, pages + 1):
        seen += [int(r.get_attribute("data-app-id")) for r in rows.all()]
        if number < pages:
            with page.expect_navigation():
                page.click(".pager a[rel=next]")
    expect(page.locator(".pager a[rel=next]")).to_have_count(0)
    assert sorted(seen) == sorted(a["id"] for a in every) and len(seen) == len(set(seen))
    page.goto("/apps?page=999")  # past the end: the last page
    expect(page.locator(".pager-position")).to_have_text(f"Page {pages} of {pages} ({len(every)} in all)")
    for app_id in made:
        assert api.delete(f"/api/apps/{app_id}").status_code == 204


def tools_app(api: httpx.Client) -> int:
    """The tools workflow app of the integration tests (tools: an HTTP lookup, a greeting text template,
    a stop tool)."""
    graph = json.loads((WORKFLOWS / "tools_agent.json").read_text(encoding="utf-8"))
    r = api.post("/api/apps/import", params={"name": unique("tools")}, json=graph)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def expect_greeting_call(page: Page, name: str) -> None:
    """Answer 1: text, the greeting tool's call with its arguments and its real output as text, text."""
    body = answer(page).locator(".answer-body")
    expect(body.locator("> *")).to_have_count(3)
    assert body.evaluate("e => [...e.children].map(c => c.className)") == ["answer-text", "tool-call", "answer-text"]
    expect(body.locator(".answer-text").first).to_have_text("Let me greet them. ")
    expect(body.locator(".answer-text").last).to_have_text("Done: greeted them.(city checked: )")
    call = body.locator(".tool-call")
    expect(call.locator("summary")).to_contain_text("Greeting writer")
    expect(call.locator(".tool-call-response")).to_be_hidden()  # closed until opened
    call.locator("summary").click()
    expect(call.locator(".tool-call-params")).to_have_text(json.dumps({"name": name}))
    expect(call.locator(".tool-call-response")).to_have_text(f"Hello, {name}! (warm)")  # the text template's output
    expect(call.locator(".tool-call-running")).to_be_hidden()
    assert call.locator("b, img").count() == 0  # the model's arguments and the tool's output stay text


def test_tool_calls_show_in_the_answer_while_streaming_and_after_reload(logged_in: Page, api: httpx.Client,
                                                                       fake: FakeUpstream, dialogs: list[str],
                                                                       shoot) -> None:
    page = logged_in
    app_id = tools_app(api)
    name = f"<b>Ana</b> {HOSTILE}"
    page.goto(f"/chat/{app_id}")
    fake.tool_call("greet", {"name": name}, call_id="call_g", content="Let me greet them. ")
    fake.reply("Done: greeted them.", chunk_size=2, chunk_delay_s=0.3)
    ask(page, "Greet Ana")
    # the call is shown while the answer still streams, its output already there
    response = answer(page).locator(".tool-call .tool-call-response")
    expect(response).to_have_text(f"Hello, {name}! (warm)", use_inner_text=False)
    assert page.locator("#stop").is_visible()
    wait_answered(page)
    expect_greeting_call(page, name)
    second = fake.requests[-1].json["messages"][-1]
    assert second == {"role": "tool", "tool_call_id": "call_g", "content": f"Hello, {name}! (warm)"}
    chat_id = page.url.rsplit("/", 1)[1]
    [stored] = answers_stored(api, app_id, chat_id)
    assert [v["type"] for v in stored["value"]] == ["text", "tool", "text"]

    page.reload()  # the stored answer: the same blocks, from the chat record
    expect_greeting_call(page, name)
    shoot(page, "chat-tools")
    assert dialogs == []


def test_another_members_chat_says_it_is_someone_elses(browser: Browser, ui_server: ServerThread,
                                                       api: httpx.Client, fake: FakeUpstream) -> None:
    app_id = new_app_named(api, unique("shared-app"))
    members = []
    for _ in range(2):
        username = unique("member")
        r = api.post("/api/users", json={"username": username, "password": "member-password-1", "role": "member"})
        assert r.status_code == 201, r.text
        members.append(username)
    owner = login(ui_server.base_url, members[0], "member-password-1")
    chat_id = unique("bobs-chat")
    fake.reply("Monthly.")
    r = owner.post("/api/v1/chat/completions", json={"appId": app_id, "chatId": chat_id,
                                                     "messages": [{"role": "user", "content": "How often?"}]})
    assert r.status_code == 200, r.text
    owner.close()
    problems = PageProblems()
    context = new_context(browser, ui_server.base_url)
    problems.watch(context)
    try:
        page = context.new_page()
        log_in(page, members[1], "member-password-1")
        page.goto(f"/chat/{app_id}/{chat_id}")
        expect(page.locator("body")).to_have_attribute("data-chat-ready", "true")
        said = "This chat belongs to someone else. Start a new chat."
        expect(answer(page).locator(".answer-error")).to_have_text(f"Error: {said}")
        expect(page.locator("#messages")).not_to_contain_text("How often?")
        ask(page, "What did they ask?")  # the server refuses it (403 chat_forbidden): the same words
        wait_answered(page)
        expect(answer(page, 2).locator(".answer-error")).to_have_text(f"Error: {said}")
        set_language(page, "zh-CN")
        expect(answer(page).locator(".answer-error")).to_have_text("出错了： 此对话属于其他人，请新建对话。")
    finally:
        context.close()
    assert not problems.csp_violations, problems.csp_violations
    assert "What did they ask?" not in json.dumps(fake.last_request.json)


def test_a_refused_app_form_names_each_field_by_its_label_and_marks_its_input(logged_in: Page,
                                                                                api: httpx.Client) -> None:
    """Out-of-range numbers (the browser's own checks taken off) come back as the editor with what was typed,
    each bad field named by the label on the page, its input marked; nothing is created."""
    page = logged_in
    name = unique("refused")
    page.goto("/apps/new")
    page.fill("input[name=name]", name)
    page.fill("textarea[name=welcome_text]", "kept")
    for field, value in (("temperature", "5"), ("max_tokens", "0")):
        page.locator(f"input[name={field}]").evaluate("e => { e.removeAttribute('min'); e.removeAttribute('max') }")
        page.fill(f"input[name={field}]", value)
    page.click("#save-app")
    banner = page.locator(".form-errors")
    expect(banner.locator("li[data-field=temperature]")).to_have_text("Temperature: must be at most 2.")
    expect(banner.locator("li[data-field=max_tokens]")).to_have_text("Max answer tokens: must be at least 1.")
    expect(banner).not_to_contain_text("maxTokens")
    for field in ("temperature", "max_tokens"):
        expect(page.locator(f"input[name={field}]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("input[name=name]")).not_to_have_attribute("aria-invalid", "true")
    expect(page.locator("input[name=name]")).to_have_value(name)
    expect(page.locator("textarea[name=welcome_text]")).to_have_value("kept")
    expect(page.locator("input[name=temperature]")).to_have_value("5")
    assert name not in {app["name"] for app in api.get("/api/apps").json()}

    page.fill("input[name=temperature]", "0.5")
    page.fill("input[name=max_tokens]", "")
    page.click("#save-app")
    expect(page.locator(".alert-success")).to_be_visible()
    expect(page.locator("[aria-invalid]")).to_have_count(0)

    # an API key: created and shown once, and its form empty again
    app_id = int(page.url.split("/apps/")[1].split("?")[0])
    page.goto(f"/apps/{app_id}/keys")
    page.fill("#create-key input[name=name]", "website")
    page.click("#create-key button[type=submit]")
    expect(page.locator("#new-key")).to_be_visible()
    expect(page.locator("#create-key input[name=name]")).to_have_value("")
