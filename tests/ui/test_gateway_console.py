"""The gateway console in a real browser: channels, tokens, the relay, logs and the dashboard, as root of
``zhiku serve``; members refused; the standalone gateway's own console and login."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import login
from tests.gateway.conftest import ADMIN_TOKEN, GatewayThread, gateway_settings
from tests.ui.conftest import PageProblems, log_in, new_context
from zhiku.testing.fake_upstream import FakeUpstream, openai_error
from zhiku.testing.server import ServerThread

HOSTILE = "<img src=x onerror=alert(1)>"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def open_editor(page: Page) -> None:
    page.goto("/gateway/channels")
    with page.expect_navigation():
        page.click("#add-channel")


def add_channel(page: Page, fake: FakeUpstream, name: str, model: str) -> None:
    open_editor(page)
    fill_channel(page, fake, name, model)


def fill_channel(page: Page, fake: FakeUpstream, name: str, model: str) -> None:
    page.select_option("select[name=type]", "openai")
    page.fill("input[name=name]", name)
    page.fill("input[name=base_url]", fake.base_url)
    page.fill("input[name=key]", fake.api_key or "sk-any")
    page.fill("textarea[name=models]", model)


def channel_row(page: Page, name: str):  # noqa: ANN201 - a Playwright locator
    return page.locator("#channel-table tbody tr", has=page.locator(".gw-name", has_text=name))


def test_root_runs_a_channel_and_a_token_and_sees_the_request_counted(
        logged_in: Page, ui_server: ServerThread, fake: FakeUpstream, shoot, dialogs: list[str]) -> None:
    page = logged_in
    model, token_name = unique("console-model"), unique("console-token")
    channel_name = f"{HOSTILE} {unique('fake')}"

    # A channel for the fake upstream, through the editor (its type-specific fields come from the registry).
    open_editor(page)
    shoot(page, "gateway-channel-editor")
    fill_channel(page, fake, channel_name, model)
    page.select_option("select[name=type]", "azure")  # the editor swaps in the type's own fields
    expect(page.locator("input[name='config.api_version']")).to_have_attribute("placeholder", "2024-10-21")
    page.select_option("select[name=type]", "openai")
    expect(page.locator("input[name='config.api_version']")).to_have_count(0)
    expect(page.locator("input[name=base_url]")).to_have_value(fake.base_url)  # kept across the swap
    with page.expect_navigation():
        page.click("#save-channel")
    assert page.url.endswith("/gateway/channels")
    row = channel_row(page, channel_name)
    expect(row).to_have_count(1)
    expect(row.locator(".gw-name")).to_have_text(channel_name)  # the markup is text
    assert page.locator("#channel-table img").count() == 0

    # The test button: the latency, inline.
    row.locator(".test-button").click()
    expect(row.locator(".test-result")).to_have_text(re.compile(r"^OK in \d+ ms$"))
    assert fake.last_request.json["model"] == model
    shoot(page, "gateway-channels")

    # A token limited to the model; its key is shown once, in a dialog.
    page.goto("/gateway/tokens")
    page.click("#tokens-panel summary")
    page.fill("#token-form input[name=name]", token_name)
    page.fill("#token-form input[name=models]", model)
    page.click("#create-token")
    dialog = page.locator("dialog#key-dialog")
    expect(dialog).to_be_visible()
    key = page.locator("#new-key").inner_text().strip()
    assert key.startswith("sk-") and len(key) == 51
    page.click("#copy-key")
    dialog.locator("[data-dialog-close]").click()
    expect(page.locator("dialog#key-dialog")).to_have_count(0)
    page.reload()
    expect(page.locator("#token-table")).to_contain_text(token_name)
    assert key not in page.content()  # only its prefix from now on
    shoot(page, "gateway-tokens")

    # Two requests through the relay with that token: one answered, one the upstream refuses with markup.
    with httpx.Client(base_url=ui_server.base_url, timeout=30) as client:
        answered = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                               json={"model": model, "messages": [{"role": "user", "content": "hello"}]})
        assert answered.status_code == 200, answered.text
        fake.fail(400, body=openai_error(400, HOSTILE))
        refused = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                              json={"model": model, "messages": [{"role": "user", "content": "again"}]})
        assert refused.status_code == 400, refused.text

    # The logs, filtered by the token.
    page.goto("/gateway/logs")
    page.select_option("select[name=token_id]", label=f"{token_name} ({key[:8]}…)")
    with page.expect_navigation():
        page.click("#log-filters button[type=submit]")
    rows = page.locator("#log-table tbody tr.gw-log")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("400")  # the newest: the refusal, its error as text below it
    expect(page.locator("#log-table tr.gw-log-detail")).to_have_text(re.compile(re.escape(HOSTILE)))
    expect(rows.nth(1)).to_contain_text(model)
    expect(rows.nth(1)).to_contain_text("200")
    assert page.locator("#log-table img").count() == 0
    shoot(page, "gateway-logs")
    page.select_option("select[name=type]", "error")
    with page.expect_navigation():
        page.click("#log-filters button[type=submit]")
    expect(rows).to_have_count(1)
    token_id = page.locator("select[name=token_id]").input_value()
    page.goto(f"/gateway/logs?token_id={token_id}&since=2999-01-01T00:00")
    expect(rows).to_have_count(0)
    page.goto(f"/gateway/logs?token_id={token_id}&until=2999-01-01T00:00&model={model}")
    expect(rows).to_have_count(2)

    # The dashboard counts both requests for the model, one of them an error.
    page.goto("/gateway?days=7")
    expect(page.locator("#chart-model-requests svg title", has_text=f"{model}: 2")).to_have_count(1)
    expect(page.locator("#chart-model-errors svg title", has_text=f"{model}: 1")).to_have_count(1)
    assert int(page.locator("#total-requests").inner_text()) >= 2
    shoot(page, "gateway-dashboard")
    assert not [d for d in dialogs if d.startswith("alert")]


def test_a_channel_is_auto_disabled_tested_switched_reordered_and_deleted(
        logged_in: Page, ui_server: ServerThread, fake: FakeUpstream, dialogs: list[str]) -> None:
    page = logged_in
    name, model = unique("switch"), unique("switch-model")
    add_channel(page, fake, name, model)
    with page.expect_navigation():
        page.click("#save-channel")

    # A 401 from the upstream switches the channel off; the list says why, the upstream's words as text.
    root = login(ui_server.base_url)
    try:
        made = root.post("/api/token/", json={"name": unique("switch-token")})
        assert made.status_code == 201, made.text
        fake.fail(401, body=openai_error(401, HOSTILE))
        refused = httpx.post(f"{ui_server.base_url}/v1/chat/completions", timeout=30,
                             headers={"Authorization": f"Bearer {made.json()['key']}"},
                             json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 401, refused.text
    finally:
        root.close()
    page.reload()
    row = channel_row(page, name)
    expect(row.locator(".gw-status")).to_have_text("Auto-disabled")
    expect(row.locator(".gw-reason")).to_have_text(
        f"upstream answered 401: channel '{name}' (openai) answered 401: {HOSTILE}")
    assert page.locator("#channel-table img").count() == 0

    # A failing test shows the error inline and leaves it off; a passing one switches it back on.
    fake.fail(500)
    row.locator(".test-button").click()
    expect(row.locator(".test-result")).to_have_text(re.compile(r"^Failed after \d+ ms: .*500"))
    expect(row.locator(".gw-status")).to_have_text("Auto-disabled")
    row.locator(".test-button").click()
    expect(row.locator(".test-result")).to_have_text(re.compile(r"^OK in \d+ ms$"))
    expect(row.locator(".gw-status")).to_have_text("Enabled")

    row.get_by_role("button", name="Disable").click()
    expect(row.locator(".gw-status")).to_have_text("Disabled")
    row.get_by_role("button", name="Enable").click()
    expect(row.locator(".gw-status")).to_have_text("Enabled")
    row.locator("input[name=priority]").fill("7")
    row.locator("input[name=weight]").fill("3")
    with page.expect_response(lambda response: response.url.endswith("/order")):
        row.get_by_role("button", name="Save").click()
    page.reload()
    expect(channel_row(page, name).locator("input[name=priority]")).to_have_value("7")
    expect(channel_row(page, name).locator("input[name=weight]")).to_have_value("3")

    channel_row(page, name).get_by_role("link", name="Edit").click()
    page.fill("textarea[name=model_mapping]", "not json")
    page.click("#save-channel")
    expect(page.locator(".alert-error")).to_contain_text("Model mapping: not a JSON object")
    expect(page.locator("textarea[name=model_mapping]")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("textarea[name=model_mapping]")).to_have_value("not json")
    page.fill("textarea[name=model_mapping]", f'{{"{model}": "upstream-{model}"}}')
    with page.expect_navigation():
        page.click("#save-channel")
    page.goto(page.url)
    channel_row(page, name).get_by_role("button", name="Delete").click()
    expect(channel_row(page, name)).to_have_count(0)
    assert dialogs == [f"confirm: Delete channel {name}?"]


def test_users_quota_and_a_member_is_refused(logged_in: Page, ui_server: ServerThread, browser: Browser) -> None:
    page = logged_in
    page.goto("/gateway/users")
    username = unique("gw-user")
    page.click("#users-panel summary")
    page.fill("#user-form input[name=username]", username)
    page.fill("#user-form input[name=quota]", "100")
    page.click("#user-form button[type=submit]")
    row = page.locator("#user-table tbody tr", has=page.locator(".gw-name", has_text=username))
    expect(row.locator(".user-quota")).to_have_text("100")
    row.locator("input[name=add_quota]").fill("50")
    row.get_by_role("button", name="Add").click()
    expect(row.locator(".user-quota")).to_have_text("150")
    row.locator("select[name=role]").select_option("admin")
    row.locator("input[name=group]").fill("vip")
    row.get_by_role("button", name="Save").click()
    expect(row.locator("select[name=role]")).to_have_value("admin")
    expect(row.locator("input[name=group]")).to_have_value("vip")
    page.reload()
    expect(page.locator("#user-table")).to_contain_text(username)
    forged = page.request.post("/gateway/users", form={"username": unique("forged")})  # no CSRF token
    assert forged.status == 403

    # A member of the platform gets the 403 page, and the navigation does not offer the gateway.
    member, password = unique("member"), "member-password-1"
    root = login(ui_server.base_url)
    try:
        assert root.post("/api/users", json={"username": member, "password": password,
                                             "role": "member"}).status_code == 201
    finally:
        root.close()
    context = new_context(browser, ui_server.base_url)
    try:
        member_page = context.new_page()
        log_in(member_page, member, password)
        for path in ("/gateway", "/gateway/channels", "/gateway/tokens", "/gateway/logs"):
            response = member_page.goto(path)
            assert response is not None and response.status == 403, path
        expect(member_page.locator(".alert-error")).to_be_visible()
        expect(member_page.locator("nav.nav a[href='/gateway']")).to_have_count(0)
        refused = member_page.request.post("/gateway/channels", form={"name": "x", "models": "m"})
        assert refused.status == 403
    finally:
        context.close()


# ---- the standalone gateway ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    tmp: Path = tmp_path_factory.mktemp("gw-console")
    running = GatewayThread(gateway_settings(tmp, f"sqlite:///{tmp / 'gateway.db'}")).start()
    yield running
    running.stop()


def test_the_standalone_gateway_serves_its_console_to_its_admins(standalone: GatewayThread, browser: Browser,
                                                                  fake: FakeUpstream) -> None:
    admin_api = httpx.Client(base_url=standalone.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    made = admin_api.post("/api/user/", params={"access_token": "true"},
                          json={"username": unique("plain"), "role": "user"})
    assert made.status_code == 201, made.text
    plain_token = made.json()["access_token"]

    problems = PageProblems()
    context = new_context(browser, standalone.base_url)
    problems.watch(context)
    try:
        page = context.new_page()
        page.goto("/gateway/channels")
        assert "/login?next=" in page.url
        page.fill("input[name=access_token]", "not-a-token")
        page.click("form[data-testid=gateway-login-form] button[type=submit]")
        expect(page.locator(".alert-error")).to_be_visible()
        page.fill("input[name=access_token]", plain_token)  # a gateway user, not an admin
        page.click("form[data-testid=gateway-login-form] button[type=submit]")
        expect(page.locator(".alert-error")).to_have_attribute("data-code", "admin_required")
        assert page.context.cookies() == []

        page.fill("input[name=access_token]", ADMIN_TOKEN)
        with page.expect_navigation():
            page.click("form[data-testid=gateway-login-form] button[type=submit]")
        assert page.url.endswith("/gateway/channels")
        expect(page.locator("nav.nav a")).to_have_count(1)  # the console is the only area here
        name, model = unique("standalone"), unique("standalone-model")
        add_channel(page, fake, name, model)
        with page.expect_navigation():
            page.click("#save-channel")
        row = channel_row(page, name)
        row.locator(".test-button").click()
        expect(row.locator(".test-result")).to_have_text(re.compile(r"^OK in \d+ ms$"))
        assert admin_api.get("/api/channel/").json()["total"] >= 1

        # The login cookie is not the token, the JSON admin API does not take it, and writes need CSRF.
        cookie = next(c for c in page.context.cookies() if c["name"] == "zhiku_gateway_console")
        assert ADMIN_TOKEN not in cookie["value"] and cookie["httpOnly"]
        jar = {"zhiku_gateway_console": cookie["value"]}
        with httpx.Client(base_url=standalone.base_url, cookies=jar) as browserless:
            assert browserless.get("/api/channel/").status_code == 401
            assert browserless.get("/gateway/channels").status_code == 200
            assert browserless.post("/gateway/users", data={"username": unique("csrf")}).status_code == 403
            csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
            made_with_token = browserless.post("/gateway/users", data={"username": unique("csrf")},
                                               headers={"X-CSRF-Token": csrf or ""})
            assert made_with_token.status_code == 200

        docs = page.context.new_page()
        docs.goto("/api/docs")
        expect(docs.locator("#swagger-ui")).to_contain_text("/api/channel/")  # offline: vendored Swagger UI
        docs.close()
        with page.expect_navigation():
            page.click("[data-testid=account-menu]")
            page.click("form[action='/logout'] button")
        page.goto("/gateway")
        assert "/login" in page.url
    finally:
        context.close()
        admin_api.close()
    assert not problems.csp_violations


def relay_refusal(ui_server: ServerThread, key: str, model: str) -> str:
    """The error code the relay answers a request for ``model`` with this key."""
    with httpx.Client(base_url=ui_server.base_url, timeout=30) as client:
        r = client.post("/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                        json={"model": model, "messages": [{"role": "user", "content": "hello"}]})
    assert r.status_code in (401, 403), r.text
    return r.json()["error"]["code"]


def test_a_token_is_edited_after_creation(logged_in: Page, ui_server: ServerThread, shoot) -> None:
    page = logged_in
    name = unique("edited-token")
    page.goto("/gateway/tokens")
    page.click("#tokens-panel summary")
    page.fill("#token-form input[name=name]", name)
    page.click("#create-token")
    key = page.locator("#new-key").inner_text().strip()
    page.locator("dialog#key-dialog [data-dialog-close]").click()
    row = page.locator("#token-table tbody tr", has=page.locator(".gw-name", has_text=name))
    expect(row).to_contain_text("Unlimited")

    # quota, expiry, models and limits changed in the editor, and shown in the list
    with page.expect_navigation():
        row.locator("a", has_text="Edit").click()
    form = page.locator("#token-edit-form")
    expect(form.locator("input[name=name]")).to_have_value(name)
    expect(form.locator("input[name=unlimited_quota]")).to_be_checked()
    form.locator("input[name=unlimited_quota]").uncheck()
    form.locator("input[name=remain_quota]").fill("1234")
    form.locator("input[name=expires_at]").fill("2999-01-02T03:04")
    form.locator("input[name=models]").fill("model-a, model-b")
    form.locator("input[name=rpm_limit]").fill("7")
    with page.expect_navigation():
        page.click("#save-token")
    assert page.url.endswith("/gateway/tokens")
    for shown in ("1234", "2999-01-02 03:04", "model-a, model-b", "7 RPM"):
        expect(row).to_contain_text(shown)
    assert relay_refusal(ui_server, key, "model-c") == "model_not_allowed"  # the running gateway has it

    # the editor shows what is stored; a refused change keeps the form and changes nothing
    with page.expect_navigation():
        row.locator("a", has_text="Edit").click()
    expect(form.locator("input[name=unlimited_quota]")).not_to_be_checked()
    expect(form.locator("input[name=remain_quota]")).to_have_value("1234")
    expect(form.locator("input[name=expires_at]")).to_have_value("2999-01-02T03:04")
    expect(form.locator("input[name=models]")).to_have_value("model-a, model-b")
    shoot(page, "gateway-token-edit")  # (reloads the page: the form as stored)
    form.locator("input[name=tpm_limit]").evaluate("e => e.removeAttribute('min')")
    form.locator("input[name=tpm_limit]").fill("-5")
    form.locator("input[name=remain_quota]").fill("99")
    page.click("#save-token")
    expect(page.locator(".alert-error")).to_contain_text("Tokens per minute (0: no limit): must be at least 0.")
    expect(form.locator("input[name=tpm_limit]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("input[name=remain_quota]")).to_have_value("99")
    page.goto("/gateway/tokens")
    expect(row).to_contain_text("1234")

    # back to unlimited, any model, no expiry; then expired a minute ago: the relay refuses it
    with page.expect_navigation():
        row.locator("a", has_text="Edit").click()
    form.locator("input[name=unlimited_quota]").check()
    form.locator("input[name=expires_at]").fill("")
    form.locator("input[name=models]").fill("")
    with page.expect_navigation():
        page.click("#save-token")
    expect(row).to_contain_text("Unlimited")
    expect(row).to_contain_text("never")
    expect(row).not_to_contain_text("model-a")
    with page.expect_navigation():
        row.locator("a", has_text="Edit").click()
    form.locator("input[name=expires_at]").fill("2001-01-01T00:00")
    with page.expect_navigation():
        page.click("#save-token")
    assert relay_refusal(ui_server, key, "model-c") == "token_expired"
