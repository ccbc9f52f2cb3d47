"""Share links in a real browser: made and changed on the app's share page (address and iframe snippet to
copy), then visited in fresh browser contexts without cookies: the visitor streams answers, stops one, keeps
their own history (continue, rename, delete) in this browser, gives feedback, and sees only what the link
allows; another visitor sees none of it; an expired, revoked, used-up or rate-limited link says so."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
import time

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import unique
from tests.ui.conftest import PageProblems, new_context, set_language
from tests.ui.test_apps_and_chat import (
    answer,
    answers_stored,
    ask,
    continue_the_chat,
    expect_answer,
    new_app,
    tools_app,
    wait_answered,
)
from zhiku.auth.service import SESSION_COOKIE
from zhiku.testing.fake_upstream import FakeUpstream
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration


@contextmanager
def visitor(browser: Browser, ui_server: ServerThread, lang: str = "en",
            phone: bool = False) -> Iterator[Page]:
    """A page in a browser context of its own: no cookies, no login, its own localStorage."""
    problems = PageProblems()
    context = new_context(browser, ui_server.base_url, lang)
    if phone:
        context.close()
        context = browser.new_context(base_url=ui_server.base_url, viewport={"width": 390, "height": 844},
                                      is_mobile=True, has_touch=True, locale="en-US")
    problems.watch(context)
    try:
        yield context.new_page()
        assert SESSION_COOKIE not in {c["name"] for c in context.cookies()}  # the visitor never got a session
    finally:
        context.close()
    assert not problems.csp_violations, problems.csp_violations


def share_link(api: httpx.Client, app_id: int, **fields: object) -> str:
    """A link made through FastGPT's outLink API; its page's path."""
    r = api.post("/api/support/outLink/create", json={"appId": app_id, "name": unique("link"), **fields})
    assert r.status_code == 200, r.text
    return f"/chat/share/{r.json()['data']}"


def share_card(page: Page, path: str):  # noqa: ANN201 - a Playwright locator
    """The link's card on the app's share page."""
    return page.locator(f".share-link[data-share-id='{path.rsplit('/', 1)[1]}']")


def history_entry(page: Page, chat_id: str):  # noqa: ANN201 - a Playwright locator
    return page.locator(f"#chat-history li[data-chat-id='{chat_id}']")


def chat_id_of(page: Page) -> str:
    return page.evaluate("new URLSearchParams(location.search).get('chatId')")


def test_a_visitor_chats_through_a_share_link(logged_in: Page, api: httpx.Client, manual: dict, browser: Browser,
                                              ui_server: ServerThread, fake: FakeUpstream, shoot) -> None:
    app_id = new_app(api, manual["id"], chatConfig={"welcomeText": "Hello, visitor."})

    # The app's share page: a link that shows quotes, its address and iframe snippet to copy.
    admin = logged_in
    admin.goto(f"/apps/{app_id}/share")
    expect(admin.locator("#share-links .empty")).to_be_visible()
    form = admin.locator("#create-share-link")
    form.locator("input[name=name]").fill("Front desk")
    form.locator("input[name=qpm]").evaluate("e => e.removeAttribute('min')")
    form.locator("input[name=qpm]").fill("0")  # refused, with the reason
    form.locator("button[type=submit]").click()
    expect(admin.locator("#share-links .alert-error")).to_have_attribute("data-code", "validation_error")
    expect(admin.locator("#share-links .share-link")).to_have_count(0)
    form.locator("input[name=qpm]").fill("")
    form.locator("input[name=response_detail]").check()
    form.locator("button[type=submit]").click()
    link = admin.locator("#share-links .share-link")
    expect(link).to_have_count(1)
    url = link.locator(".share-url").input_value()
    assert url.startswith(f"{ui_server.base_url}/chat/share/") and len(url.rsplit("/", 1)[1]) == 24
    expect(link.locator(".share-iframe")).to_have_value(
        f'<iframe src="{url}" style="width: 100%; height: 600px; border: 0" allow="clipboard-write"></iframe>')
    expect(link).to_contain_text("Show quotes")
    link.locator("button[data-copy-target$='-url']").click()
    expect(link.locator("button[data-copy-target$='-url']")).to_have_text("Copied")
    shoot(admin, "app-share-links")
    path = url.removeprefix(ui_server.base_url)

    with visitor(browser, ui_server) as page:
        page.goto(path)
        expect(page.locator(".chat-head h1")).to_have_text(api.get(f"/api/apps/{app_id}").json()["name"])
        expect(page.locator("#welcome")).to_contain_text("Hello, visitor.")
        expect(page.locator("#no-history")).to_be_visible()
        assert page.locator(".chat-head a[href^='/apps/']").count() == 0  # no way into the app's settings

        # the answer streams, with its quote
        final = "Descale every 200 cups [1].\nRun the program twice."
        fake.reply(final, chunk_size=4, chunk_delay_s=0.2)
        ask(page, "How often should I descale?")
        page.wait_for_function("() => document.querySelector(\"#messages li[data-answer='1'] .answer-text\")"
                               "?.textContent.length >= 4")
        first = answer(page).locator(".answer-text").text_content()
        assert page.locator("#stop").is_visible() and len(first) < len(final)  # still streaming
        wait_answered(page)
        expect_answer(page, 1, final)
        expect(answer(page).locator("#cite-1-1 .cite-source")).to_have_text("espresso.md")
        chat_id = chat_id_of(page)
        assert chat_id and page.url.endswith(f"{path}?chatId={chat_id}")
        assert fake.last_request.json["messages"][-1]["content"].endswith("Question: How often should I descale?")

        # copy and feedback, stored on the visitor's chat
        answer(page).locator(".copy-answer").click()
        expect(answer(page).locator(".copy-answer")).to_have_text("Copied")
        answer(page).locator(".feedback-good").click()
        expect(answer(page).locator(".tool-status")).to_have_text("Thanks for the feedback.")
        [stored] = answers_stored(api, app_id, chat_id)
        assert stored["userGoodFeedback"] and stored["value"][0]["text"]["content"] == final

        # the history lists it; back to it after a new chat, continued with the old turn sent again
        expect(history_entry(page, chat_id)).to_contain_text("How often should I descale?")
        page.click("#new-chat")
        expect(page.locator("#messages li")).to_have_count(0)
        expect(page.locator("#welcome")).to_be_visible()
        history_entry(page, chat_id).locator("a").click()
        page.wait_for_url(f"**{path}?chatId={chat_id}")
        continue_the_chat(page, fake, final, lambda: shoot(page, "share-chat"))

        # rename in the history
        entry = history_entry(page, chat_id)
        entry.locator("summary").click()
        entry.locator("input[name=title]").fill("Descaling <b>now</b>")
        entry.locator(".rename-form button").click()
        expect(history_entry(page, chat_id).locator("> a")).to_have_text("Descaling <b>now</b>")

        # another visitor, on a phone: none of it, and not allowed to continue the first one's chat
        with visitor(browser, ui_server, phone=True) as other:
            other.goto(f"{path}?chatId={chat_id}")
            expect(other.locator("#messages li")).to_have_count(0)
            other.click("#history-toggle")
            expect(other.locator("#no-history")).to_be_visible()
            ask(other, "Let me in?")
            wait_answered(other)
            expect(answer(other).locator(".answer-error")).to_contain_text("belongs to someone else")
            assert other.evaluate("document.documentElement.scrollWidth") <= 390
        assert "Let me in?" not in fake.last_request.json["messages"][-1]["content"]

        # delete the open chat from the history: a new chat
        history_entry(page, chat_id).locator("summary").click()
        with page.expect_navigation():
            history_entry(page, chat_id).locator(".delete-chat").click()
        expect(history_entry(page, chat_id)).to_have_count(0)
        expect(page.locator("#no-history")).to_be_visible()
        assert chat_id_of(page) is None


def test_a_link_without_details_shows_no_quotes_and_stops(api: httpx.Client, manual: dict, browser: Browser,
                                                ui_server: ServerThread, fake: FakeUpstream) -> None:
    path = share_link(api, new_app(api, manual["id"]), responseDetail=False, showNodeStatus=False)
    with visitor(browser, ui_server) as page:
        page.goto(path)
        fake.reply("Descale every 200 cups [1].", chunk_size=4, chunk_delay_s=0.05)
        ask(page, "How often should I descale?")
        wait_answered(page)
        expect(answer(page).locator(".answer-text")).to_contain_text("Descale every 200 cups")
        expect(answer(page).locator(".citations")).to_have_count(0)
        expect(answer(page).locator(".cite-marker")).to_have_count(0)
        page.reload()
        expect(answer(page).locator(".answer-text")).to_contain_text("Descale every 200 cups")
        expect(answer(page).locator(".citations")).to_have_count(0)

        # stop: what came so far stays
        fake.reply("Descale every two hundred cups with citric acid, then run the program twice.",
                   chunk_size=4, chunk_delay_s=0.3)
        ask(page, "Tell me more?")
        page.wait_for_function("() => document.querySelector(\"#messages li[data-answer='2'] .answer-text\")"
                               "?.textContent.length >= 4")
        page.click("#stop")
        wait_answered(page)
        expect(answer(page, 2).locator(".answer-status")).to_have_text("Stopped.")
        assert answer(page, 2).locator(".answer-text").text_content().startswith("Desc")


def test_a_link_shows_tool_calls_only_with_node_status(api: httpx.Client, browser: Browser,
                                                      ui_server: ServerThread, fake: FakeUpstream) -> None:
    app_id = tools_app(api)
    for show in (True, False):
        path = share_link(api, app_id, showNodeStatus=show)
        with visitor(browser, ui_server) as page:
            page.goto(path)
            fake.tool_call("greet", {"name": "Ana"}, call_id="call_g")
            fake.reply("Greeted.")
            ask(page, "Greet Ana")
            wait_answered(page)
            page.wait_for_url(f"**{path}?chatId=*")
            for shown in ("streamed", "reopened"):
                expect(answer(page).locator(".answer-text").last).to_have_text("Greeted.(city checked: )")
                calls = answer(page).locator(".tool-call")
                if show:
                    expect(calls).to_have_count(1)
                    expect(calls.locator(".tool-call-response")).to_have_text("Hello, Ana! (warm)",
                                                                              use_inner_text=False)
                else:  # the link withholds the events and the stored calls
                    expect(calls).to_have_count(0)
                if shown == "streamed":
                    page.reload()


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_a_closed_link_says_so(api: httpx.Client, manual: dict, browser: Browser, ui_server: ServerThread,
                               lang: str, shoot) -> None:
    path = share_link(api, new_app(api, manual["id"]), limit={"expiredTime": "2001-01-01T00:00:00Z"})
    expected = {"en": "This share link has expired.", "zh-CN": "此分享链接已过期"}[lang]
    with visitor(browser, ui_server, lang) as page:
        response = page.goto(path)
        assert response is not None and response.status == 403
        expect(page.locator("#share-closed .alert-error")).to_contain_text(expected)
        if lang == "en":
            shoot(page, "share-closed")
        response = page.goto("/chat/share/nosuchlinknosuchlinknosu")
        assert response is not None and response.status == 401
        expect(page.locator("#share-closed .alert-error")).to_contain_text(
            {"en": "does not exist or was revoked", "zh-CN": "不存在或已被撤销"}[lang])


def test_revoked_used_up_and_rate_limited_links_say_so(logged_in: Page, api: httpx.Client, manual: dict,
                                                        browser: Browser, ui_server: ServerThread,
                                                        fake: FakeUpstream, dialogs: list[str]) -> None:
    app_id = new_app(api, manual["id"])
    used_up = share_link(api, app_id, limit={"maxUsagePoints": 0})
    limited = share_link(api, app_id, limit={"QPM": 1})
    with visitor(browser, ui_server) as page:
        page.goto(used_up)
        ask(page, "How often should I descale?")
        wait_answered(page)
        expect(answer(page).locator(".answer-error")).to_contain_text("has used up its allowance")

        # the app's share page raises the limit; the same visitor is answered now
        logged_in.goto(f"/apps/{app_id}/share")
        card = share_card(logged_in, used_up)
        expect(card).to_contain_text("0 of 0 points used")
        card.locator(".share-link-edit summary").click()
        expect(card.locator("input[name=max_usage_points]")).to_have_value("0")
        card.locator("input[name=max_usage_points]").fill("-1")
        card.locator(".save-share-link").click()
        expect(share_card(logged_in, used_up)).to_contain_text("0 points used")
        expect(share_card(logged_in, used_up)).not_to_contain_text("of 0 points")
        fake.reply("Every 200 cups.")
        ask(page, "How often should I descale, now?")
        wait_answered(page)
        expect_answer(page, 2, "Every 200 cups.")

        page.goto(limited)
        if datetime.now().second > 50:  # both questions in one clock minute, the QPM's window
            time.sleep(61 - datetime.now().second)
        fake.reply("Every 200 cups.")
        ask(page, "How often should I descale?")
        wait_answered(page)
        expect_answer(page, 1, "Every 200 cups.")
        ask(page, "And the dose?")
        wait_answered(page)
        expect(answer(page, 2).locator(".answer-error")).to_contain_text("Too many questions")

        # revoked on the app's share page while the visitor has the page open
        logged_in.goto(f"/apps/{app_id}/share")
        card = share_card(logged_in, limited)
        card.locator(".revoke-share-link").click()
        expect(card).to_have_count(0)
        assert any("Revoke the link" in d for d in dialogs)
        ask(page, "Still there?")
        wait_answered(page)
        expect(answer(page, 3).locator(".answer-error")).to_contain_text("does not exist or was revoked")
        page.reload()
        expect(page.locator("#share-closed")).to_contain_text("does not exist or was revoked")


def test_a_refused_share_link_names_its_field_in_chinese_and_a_create_empties_the_form(
        logged_in: Page, api: httpx.Client, manual: dict) -> None:
    app_id = new_app(api, manual["id"])
    page = logged_in
    page.goto(f"/apps/{app_id}/share")
    set_language(page, "zh-CN")
    form = page.locator("#create-share-link")
    name = unique("desk")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=show_raw_source]").check()
    form.locator("input[name=qpm]").evaluate("e => e.removeAttribute('min')")
    form.locator("input[name=qpm]").fill("0")
    form.locator("button[type=submit]").click()
    expect(page.locator("#share-links .form-errors")).to_have_text("每分钟提问数：不能小于 1。")
    expect(form.locator("input[name=qpm]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("input[name=name]")).not_to_have_attribute("aria-invalid", "true")
    expect(form.locator("input[name=name]")).to_have_value(name)  # what was typed is kept
    expect(form.locator("input[name=qpm]")).to_have_value("0")
    expect(form.locator("input[name=show_raw_source]")).to_be_checked()
    expect(page.locator("#share-links .share-link")).to_have_count(0)

    form.locator("input[name=qpm]").fill("30")
    form.locator("button[type=submit]").click()
    link = page.locator("#share-links .share-link")
    expect(link).to_have_count(1)
    expect(link.locator("h2")).to_have_text(name)
    expect(page.locator("#share-links .form-errors")).to_have_count(0)
    for field in ("name", "qpm", "expired_time", "max_usage_points", "hook_url"):  # empty for the next link
        expect(form.locator(f"input[name={field}]")).to_have_value("")
    expect(form.locator("input[name=show_raw_source]")).not_to_be_checked()
    expect(form.locator("[aria-invalid]")).to_have_count(0)

    # a refused change: that link's editor stays open with what was typed; the create form is not marked
    link.locator(".share-link-edit summary").click()
    editor = link.locator(".share-link-edit form")
    editor.locator("input[name=max_usage_points]").evaluate("e => e.removeAttribute('min')")
    editor.locator("input[name=max_usage_points]").fill("-5")
    editor.locator(".save-share-link").click()
    expect(page.locator("#share-links .form-errors")).to_have_text("用量上限（积分，-1：不限）：不能小于 -1。")
    expect(editor.locator("input[name=max_usage_points]")).to_have_attribute("aria-invalid", "true")
    expect(editor.locator("input[name=max_usage_points]")).to_have_value("-5")
    expect(form.locator("[aria-invalid]")).to_have_count(0)
    stored = api.get("/api/support/outLink/list", params={"appId": app_id}).json()["data"]
    assert [link["limit"]["maxUsagePoints"] for link in stored] == [-1]  # nothing of the refused change kept
