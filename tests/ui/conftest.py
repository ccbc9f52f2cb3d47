"""Fixtures for the web UI's tests: a real server, Debian's chromium driven by Playwright.

``ui_server`` is the shared test server (tests/conftest.py's ``server``: embedded PostgreSQL, the bundled
embedder, the fake model upstream). ``page`` is a fresh browser context per test, in English unless the
test switches; it fails the test when the page hit a Content-Security-Policy violation, and records
the JavaScript dialogs that opened in ``dialogs`` (each accepted). ``logged_in`` is such a page logged in
as root through the login form. ``shoot(page, name)`` saves full-page screenshots of the page as it is
now to ``ui-screenshots/<lang>/<name>.png`` for English and Chinese (it reloads the page in each
language, so call it on a page a GET can show again).

A missing chromium fails these tests: install it with ``apt-get install chromium`` (scripts/test.sh does).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import ROOT_PASSWORD, login, new_database, unique
from tests.integration.helpers import add_text, create_dataset
from zhiku.testing.server import ServerThread

MANUAL = """# Espresso machine manual

## Descaling
Descale the machine every 200 cups with citric acid. Run the descaling program twice.

## Grinding
Use a fine grind for espresso. The dose is 18 grams for a double shot.
"""

SCREENSHOTS = Path(__file__).resolve().parents[2] / "ui-screenshots"
LANGS = ("en", "zh-CN")


@contextmanager
def own_database(pg_url: str) -> Iterator[str]:
    """``tests.conftest.new_database`` for a test that runs beside Playwright: its sync API keeps an event
    loop in the main thread, so the database is made and dropped from a thread of its own."""
    made = new_database(pg_url)
    with ThreadPoolExecutor(max_workers=1) as pool:
        url = pool.submit(made.__enter__).result()
        try:
            yield url
        finally:
            pool.submit(made.__exit__, None, None, None).result()


@pytest.fixture(scope="session")
def ui_server(server: ServerThread) -> ServerThread:
    return server


# Package scope: Playwright's sync API keeps an event loop running in this thread while it is open, so it
# must be closed before the tests after tests/ui (asyncio.run would refuse to start) run.
@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as running:
        yield running


def launch_chromium(playwright: Playwright) -> Browser:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("Debian's chromium is not installed (apt-get install chromium; scripts/test.sh does it as root)")
    return playwright.chromium.launch(executable_path=executable,
                                      args=["--headless", "--no-sandbox", "--disable-gpu"])


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    launched = launch_chromium(playwright)
    yield launched
    launched.close()


class PageProblems:
    """What a page did that a test should know about: CSP violations and JavaScript dialogs."""

    def __init__(self) -> None:
        self.csp_violations: list[str] = []
        self.dialogs: list[str] = []

    def watch(self, context: BrowserContext) -> None:
        def on_page(page: Page) -> None:
            page.on("console", lambda message: self.csp_violations.append(message.text)
                    if "Content Security Policy" in message.text else None)
            page.on("dialog", lambda dialog: (self.dialogs.append(f"{dialog.type}: {dialog.message}"),
                                              dialog.accept()))

        context.on("page", on_page)


def new_context(browser: Browser, base_url: str, lang: str = "en") -> BrowserContext:
    context = browser.new_context(base_url=base_url, locale="zh-CN" if lang == "zh-CN" else "en-US",
                                  viewport={"width": 1280, "height": 800})
    context.set_default_timeout(30_000)
    return context


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def dialogs(problems: PageProblems) -> list[str]:
    """``"<type>: <message>"`` of each alert/confirm/prompt the page opened (each was accepted, so a
    confirm goes ahead)."""
    return problems.dialogs


@pytest.fixture
def context(browser: Browser, ui_server: ServerThread, problems: PageProblems) -> Iterator[BrowserContext]:
    ctx = new_context(browser, ui_server.base_url)
    problems.watch(ctx)
    yield ctx
    ctx.close()
    assert not problems.csp_violations, f"the page broke its Content-Security-Policy: {problems.csp_violations}"


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, username: str = "root", password: str = ROOT_PASSWORD) -> None:
    """Log in through the login form and wait for the page it lands on."""
    page.goto("/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form[data-testid=login-form] button[type=submit]")


@pytest.fixture
def api(ui_server: ServerThread) -> Iterator[httpx.Client]:
    client = login(ui_server.base_url)
    yield client
    client.close()


@pytest.fixture
def manual(api: httpx.Client) -> dict:
    """A dataset with the espresso manual, indexed."""
    name = unique("espresso")
    dataset_id = create_dataset(api, name)
    collection = add_text(api, dataset_id, "espresso.md", MANUAL)
    assert collection["status"] == "ready", collection
    return {"id": dataset_id, "name": name}


@pytest.fixture
def logged_in(page: Page) -> Page:
    log_in(page)
    assert not page.url.rstrip("/").endswith("/login"), "root could not log in through the form"
    return page


def page_language(page: Page) -> str:
    return page.evaluate("document.documentElement.lang")


def set_language(page: Page, lang: str) -> None:
    """Switch the UI language the way a user does (the switch in the layout), staying on the page."""
    with page.expect_navigation():
        page.click(f".lang-switch a[data-lang='{lang}']")
    assert page_language(page) == lang


@pytest.fixture
def shoot() -> Callable[..., None]:
    def take(page: Page, name: str, langs: tuple[str, ...] = LANGS) -> None:
        before = page_language(page)
        for lang in langs:
            if page_language(page) != lang:
                set_language(page, lang)
            page.wait_for_load_state("networkidle")  # what the page's scripts fetch is shown too
            folder = SCREENSHOTS / lang
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        if page_language(page) != before:
            set_language(page, before)

    return take
