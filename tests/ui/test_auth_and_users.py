"""The web UI's login, account and users pages, language switch, CSRF and escaping, in a real browser."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import ROOT_PASSWORD
from tests.ui.conftest import log_in


def test_wrong_password_shows_an_error_and_the_right_one_lands_on_datasets(page: Page, shoot) -> None:
    page.goto("/")
    assert page.url.endswith("/login")
    shoot(page, "login")
    log_in(page, "root", "not-the-password")
    expect(page.locator(".alert-error")).to_have_text("Wrong username or password.")
    log_in(page, "root", ROOT_PASSWORD)
    assert page.url.endswith("/datasets")
    page.goto("/")
    assert page.url.endswith("/datasets")
