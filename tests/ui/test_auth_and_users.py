"""The web UI's login, account and users pages, language switch, CSRF, escaping and the offline API
reference, in a real browser against a real server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ROOT_PASSWORD, make_settings, unique
from tests.ui.conftest import PageProblems, log_in, new_context, own_database, set_language
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.testing.server import ServerThread

MEMBER_PASSWORD = "a-member-password"


def create_user(client: httpx.Client, username: str, role: str = "member") -> dict:
    r = client.post("/api/users", json={"username": username, "password": MEMBER_PASSWORD, "role": role})
    assert r.status_code == 201, r.text
    return r.json()


def test_wrong_password_shows_an_error_and_the_right_one_lands_on_datasets(page: Page, shoot) -> None:
    page.goto("/")
    assert page.url.endswith("/login")
    shoot(page, "login")
    log_in(page, "root", "not-the-password")
    expect(page.locator(".alert-error")).to_have_text("Wrong username or password.")
    expect(page.locator("input[name=username]")).to_have_value("root")
    log_in(page, "root", ROOT_PASSWORD)
    assert page.url.endswith("/datasets")
    page.goto("/")
    assert page.url.endswith("/datasets")
    page.goto("/login")  # logged in already: straight on
    assert page.url.endswith("/datasets")


def test_too_many_failed_logins_say_how_long_to_wait(page: Page, ui_server: ServerThread) -> None:
    name = unique("guesser")  # unknown names count like real ones; root is not locked for the other tests
    for _ in range(ui_server.settings.login_max_failures):
        log_in(page, name, "wrong-password")
        expect(page.locator(".alert-error")).to_have_text("Wrong username or password.")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/login")) as answer:
        log_in(page, name, "wrong-password")
    assert answer.value.status == 429 and answer.value.headers["retry-after"].isdigit()
    wait = answer.value.headers["retry-after"]
    expect(page.locator(".alert-error")).to_have_text(f"Too many failed logins. Try again in {wait} seconds.")
    set_language(page, "zh-CN")  # the switch reloads the login page; the lockout message was the POST's
    log_in(page, name, "wrong-password")
    expect(page.locator(".alert-error")).to_contain_text("登录失败次数过多")


def test_a_page_asked_for_without_a_login_comes_back_after_it(page: Page) -> None:
    page.goto("/account")
    assert "/login?next=%2Faccount" in page.url
    page.fill("input[name=username]", "root")
    page.fill("input[name=password]", ROOT_PASSWORD)
    with page.expect_navigation():
        page.click("form[data-testid=login-form] button[type=submit]")
    assert page.url.endswith("/account")
    expect(page.get_by_test_id("account-username")).to_have_text("root")


def test_login_refuses_to_send_anyone_to_another_site(page: Page, ui_server: ServerThread) -> None:
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        page.context.clear_cookies()
        page.goto("/login?next=" + quote(target, safe=""))
        page.fill("input[name=username]", "root")
        page.fill("input[name=password]", ROOT_PASSWORD)
        with page.expect_navigation():
            page.click("form[data-testid=login-form] button[type=submit]")
        assert page.url == ui_server.base_url + "/datasets", target


def test_logout_ends_the_session(logged_in: Page) -> None:
    logged_in.goto("/account")
    logged_in.click("[data-testid=account-menu]")
    with logged_in.expect_navigation():
        logged_in.click("form[action='/logout'] button")
    assert logged_in.url.endswith("/login")
    logged_in.goto("/account")
    assert "/login?next=" in logged_in.url


def test_the_language_switch_changes_the_page_text_and_the_browser_language_is_the_default(
        page: Page, browser: Browser, ui_server: ServerThread) -> None:
    page.goto("/login")
    expect(page.locator("h1")).to_have_text("Log in")
    set_language(page, "zh-CN")
    expect(page.locator("h1")).to_have_text("登录")
    page.goto("/login")  # the choice stays (the lang cookie)
    expect(page.locator("h1")).to_have_text("登录")
    log_in(page)
    expect(page.locator(".nav a[href='/datasets']")).to_have_text("知识库")
    set_language(page, "en")
    expect(page.locator(".nav a[href='/datasets']")).to_have_text("Knowledge bases")

    chinese_browser = new_context(browser, ui_server.base_url, lang="zh-CN")
    try:
        other = chinese_browser.new_page()
        other.goto("/login")
        expect(other.locator("h1")).to_have_text("登录")
        assert other.evaluate("document.documentElement.lang") == "zh-CN"
    finally:
        chinese_browser.close()


def test_an_admin_adds_and_disables_a_user_who_then_cannot_log_in(
        logged_in: Page, browser: Browser, ui_server: ServerThread, dialogs: list[str], shoot) -> None:
    name = unique("carol")
    logged_in.goto("/users")
    form = logged_in.get_by_test_id("create-user")
    form.locator("input[name=username]").fill(name)
    form.locator("input[name=password]").fill("short")
    form.locator("input[name=password]").evaluate("input => input.removeAttribute('minlength')")
    form.locator("button[type=submit]").click()
    expect(logged_in.locator("#users-panel .alert-error")).to_have_text("A password has 8 to 1000 characters.")
    expect(form.locator("input[name=username]")).to_have_value(name)  # kept for another try
    form = logged_in.get_by_test_id("create-user")
    form.locator("input[name=password]").fill(MEMBER_PASSWORD)
    form.locator("button[type=submit]").click()
    expect(logged_in.locator("#users-panel .alert-success")).to_have_text(f"User {name} was added.")
    row = logged_in.locator(f"tr[data-username='{name}']")
    expect(row.locator(".badge").nth(1)).to_have_text("Active")
    shoot(logged_in, "users")
    logged_in.set_viewport_size({"width": 390, "height": 844})  # a phone: the page fits, the table scrolls
    assert logged_in.evaluate("document.documentElement.scrollWidth") <= 390
    shoot(logged_in, "users-phone")
    logged_in.set_viewport_size({"width": 1280, "height": 800})

    row.locator("button[data-action=disable]").click()
    expect(row.locator(".badge").nth(1)).to_have_text("Disabled")
    assert dialogs and dialogs[-1].startswith("confirm: Disable " + name)

    with new_context(browser, ui_server.base_url) as other_browser:
        other = other_browser.new_page()
        log_in(other, name, MEMBER_PASSWORD)
        expect(other.locator(".alert-error")).to_have_text("Wrong username or password.")

        row.locator("button[data-action=enable]").click()
        expect(row.locator(".badge").nth(1)).to_have_text("Active")
        row.locator("details summary").click()
        row.locator("input[name=password]").fill("a-new-password-1")
        row.locator("details button[type=submit]").click()
        expect(logged_in.locator("#users-panel .alert-success")).to_have_text(
            f"The password of {name} was changed; their sessions ended.")
        log_in(other, name, MEMBER_PASSWORD)
        expect(other.locator(".alert-error")).to_be_visible()
        log_in(other, name, "a-new-password-1")
        assert other.url.endswith("/datasets")


def test_a_member_cannot_open_the_users_page(page: Page, client: httpx.Client) -> None:
    name = unique("member")
    create_user(client, name)
    log_in(page, name, MEMBER_PASSWORD)
    expect(page.locator(".nav a[href='/users']")).to_have_count(0)
    expect(page.locator(".nav a[href='/gateway']")).to_have_count(0)
    response = page.goto("/users")
    assert response is not None and response.status == 403
    expect(page.locator("h1")).to_have_text("Not allowed")
    expect(page.locator(".alert-error")).to_have_text("This page is for root and admins.")
    refused = page.request.post("/users", form={"username": unique("x"), "password": MEMBER_PASSWORD,
                                                "csrf_token": page.locator("meta[name=csrf-token]").get_attribute("content")})
    assert refused.status == 403


def test_a_cookie_request_that_changes_something_needs_the_csrf_token(logged_in: Page, client: httpx.Client) -> None:
    token = logged_in.locator("meta[name=csrf-token]").get_attribute("content")
    assert token
    name = unique("csrf")
    # a page route: the form field or the header
    refused = logged_in.request.post("/users", form={"username": name, "password": MEMBER_PASSWORD})
    assert refused.status == 403 and "out of date" in refused.text()
    wrong = logged_in.request.post("/users", form={"username": name, "password": MEMBER_PASSWORD},
                                   headers={"X-CSRF-Token": "0" * 64})
    assert wrong.status == 403
    assert not any(u["username"] == name for u in client.get("/api/users").json())
    ok = logged_in.request.post("/users", form={"username": name, "password": MEMBER_PASSWORD,
                                                "csrf_token": token})
    assert ok.status == 200 and any(u["username"] == name for u in client.get("/api/users").json())
    # the JSON API with the cookie alone: reads go, changes need the header
    assert logged_in.request.get("/api/users").status == 200
    body = {"username": name + "-api", "password": MEMBER_PASSWORD}
    refused = logged_in.request.post("/api/users", data=body)
    assert refused.status == 403 and refused.json()["code"] == "csrf_failed"
    created = logged_in.request.post("/api/users", data=body, headers={"X-CSRF-Token": token})
    assert created.status == 201, created.text()
    # the token is the session's: another login's token does not fit
    other = httpx.post(f"{client.base_url}/api/auth/login", json={"username": "root", "password": ROOT_PASSWORD})
    stranger = logged_in.request.post("/api/users", data={**body, "username": name + "-x"},
                                      headers={"X-CSRF-Token": other.json()["csrfToken"]})
    assert stranger.status == 403


def test_a_name_with_markup_shows_as_text(logged_in: Page, client: httpx.Client, dialogs: list[str]) -> None:
    hostile = f"<img src=x onerror=alert(1)> {unique('h')}"
    create_user(client, hostile)
    logged_in.goto("/users")
    row = logged_in.locator("#users-panel tbody tr", has_text=hostile)
    expect(row.locator("td.username")).to_have_text(hostile)
    assert logged_in.locator("#users-panel img").count() == 0
    assert logged_in.locator("img[src=x]").count() == 0
    row.locator("button[data-action=disable]").click()  # its confirm text holds the name too
    expect(row.locator(".badge").nth(1)).to_have_text("Disabled")
    assert logged_in.locator("img[src=x]").count() == 0
    assert not [d for d in dialogs if d.startswith("alert")], dialogs


def test_the_api_reference_works_offline_under_the_csp(page: Page, problems: PageProblems, ui_server: ServerThread) -> None:
    elsewhere: list[str] = []
    page.context.route(lambda url: not url.startswith(ui_server.base_url),
                       lambda route: (elsewhere.append(route.request.url), route.abort()))
    page.goto("/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Zhiku")
    expect(page.locator(".opblock-summary-path", has_text="/api/users").first).to_be_visible()
    assert elsewhere == []
    headers = httpx.get(f"{ui_server.base_url}/api/docs").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert "unsafe" not in headers["content-security-policy"]


def test_pages_and_the_api_send_their_own_policies(ui_server: ServerThread) -> None:
    base = ui_server.base_url
    page = httpx.get(f"{base}/login")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    api = httpx.get(f"{base}/api/auth/me")
    assert api.headers["content-security-policy"] == "frame-ancestors 'none'" and api.headers["x-frame-options"] == "DENY"
    share = httpx.get(f"{base}/chat/share/no-such-link", headers={"Accept": "text/html"})
    assert share.headers["content-type"].startswith("text/html")
    assert "frame-ancestors *" in share.headers["content-security-policy"] and "x-frame-options" not in share.headers
    missing = httpx.get(f"{base}/no-such-page", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "text/html" in missing.headers["content-type"]
    assert httpx.get(f"{base}/api/no-such-route").json()["code"] == "not_found"


def change_password(page: Page, current: str, new: str) -> None:
    """Send the account page's password form (the new password typed twice)."""
    form = page.get_by_test_id("password-form")
    form.locator("input[name=current_password]").fill(current)
    form.locator("input[name=new_password]").fill(new)
    form.locator("input[name=confirm_password]").fill(new)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


@pytest.fixture(params=["1234", None], ids=["fastgpt-default", "generated"])
def default_password_server(request: pytest.FixtureRequest, pg_url: str, tmp_path: Path,
                            embedders: EmbedderRegistry, ui_server: ServerThread) -> Iterator[tuple[ServerThread, str]]:
    """A server of its own whose root has FastGPT's default password 1234, or the one generated at its
    first start; with that password."""
    with own_database(pg_url) as url:
        settings = make_settings(url, tmp_path, root_password=request.param, gateway_enabled=False,
                                 worker_enabled=False)
        with ServerThread(settings, embedders) as running:
            assert running.platform is not None
            yield running, request.param or running.platform.root.generated_password


def test_the_banner_stays_until_root_changes_a_default_password(
        browser: Browser, default_password_server: tuple[ServerThread, str], shoot) -> None:
    server, password = default_password_server
    with new_context(browser, server.base_url) as context:
        page = context.new_page()
        log_in(page, "root", password)
        page.goto("/account")
        banner = page.locator("#root-password-banner")
        expect(banner).to_contain_text("The root password is still the generated one or a well-known default")
        if password == "1234":
            shoot(page, "account-with-banner")
        change_password(page, "wrong-password", "a-strong-new-root-password")
        expect(page.locator(".alert-error")).to_have_text("The current password is wrong.")
        expect(banner).to_be_visible()
        change_password(page, password, "password")
        expect(page.locator(".alert-error")).to_have_text("That password is a well-known default. Choose another.")
        change_password(page, password, "a-strong-new-root-password")
        expect(page.locator(".alert-success")).to_have_text("Your password has been changed.")
        expect(banner).to_have_count(0)
        page.goto("/account")
        expect(banner).to_have_count(0)
        if password == "1234":
            shoot(page, "account")
        assert page.url.endswith("/account")  # the session that changed the password stayed
        context.clear_cookies()
        log_in(page, "root", password)
        expect(page.locator(".alert-error")).to_have_text("Wrong username or password.")
        log_in(page, "root", "a-strong-new-root-password")
        assert page.url.endswith("/datasets")
