"""Opening a quote's source document in a real browser: the signed-in chat page's citation downloads the
uploaded file, a pasted-text source gets no link, the dataset page lists the same link, and a share link's
page offers it only when the link shows raw sources. The pages decide from the quote alone (its
``sourceKind``): they never ask what a cited collection is."""

from __future__ import annotations

import asyncio
import json
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset, upload, wait_collection
from tests.ui.conftest import PageProblems, new_context
from zhiku.testing.fake_upstream import FakeUpstream
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration

GUIDE_NAME = "grinder guide.md"
GUIDE = b"# Grinder guide\n\nSet the burr grinder to step 4 for espresso and purge 2 grams after a change.\n"
QUESTION = "Which grinder step for espresso?"


def new_app(api: httpx.Client, dataset_id: int) -> int:
    r = api.post("/api/apps", json={"name": unique("grinder"), "datasetIds": [dataset_id]})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def collection_lookups(page: Page) -> list[str]:
    """The ``GET /api/collections/{id}`` requests the page sends from now on (its source route is not one)."""
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url)
            if re.search(r"/api/collections/\d+(\?|$)", request.url) else None)
    return asked


def forget_source_kinds(database_url: str, collection_id: int) -> None:
    """Stored answers quoting the collection as answers stored before quotes said their source kind (from a
    thread of its own: Playwright's sync API keeps an event loop in this one)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> None:
        engine = create_async_engine(database_url)
        try:
            async with engine.begin() as conn:
                changed = await conn.execute(text(
                    "UPDATE chat_items SET quotes = (SELECT jsonb_agg(q - 'collectionType' - 'sourceKind') "
                    "FROM jsonb_array_elements(quotes) AS q) WHERE quotes @> CAST(:quoting AS jsonb)"),
                    {"quoting": json.dumps([{"collectionId": str(collection_id)}])})
                assert changed.rowcount >= 1
        finally:
            await engine.dispose()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, run()).result()


def ask_and_wait(page: Page, fake: FakeUpstream) -> None:
    fake.reply("Use step 4 [1].")
    page.fill("#question", QUESTION)
    page.click("#send")
    expect(page.locator("#send")).to_be_visible()
    expect(page.locator("#stop")).to_be_hidden()


@pytest.fixture
def guide(api: httpx.Client) -> dict:
    """A dataset holding the grinder guide as an uploaded file."""
    dataset_id = create_dataset(api, unique("grinder"))
    r = upload(api, dataset_id, GUIDE_NAME, GUIDE)
    assert r.status_code == 201, r.text
    assert wait_collection(api, r.json()["id"])["status"] == "ready"
    return {"dataset": dataset_id, "collection": r.json()["id"]}


def test_chat_citation_opens_the_uploaded_file(logged_in: Page, api: httpx.Client, guide: dict, fake: FakeUpstream,
                                               ui_server: ServerThread, tmp_path: Path) -> None:
    page = logged_in
    lookups = collection_lookups(page)
    page.goto(f"/chat/{new_app(api, guide['dataset'])}")
    ask_and_wait(page, fake)
    citation = page.locator("#cite-1-1")
    expect(citation.locator(".cite-source")).to_have_text(GUIDE_NAME)
    link = citation.locator("a.cite-open")
    expect(link).to_have_text("Open the source")
    expect(link).to_have_attribute("href", f"/api/collections/{guide['collection']}/source")
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == GUIDE_NAME
    saved = tmp_path / "downloaded"
    download.value.save_as(saved)
    assert saved.read_bytes() == GUIDE
    expect(citation).to_be_visible()  # a download: the chat page stays

    # the stored answer's quote says the same: the reopened chat offers the link too
    page.reload()
    expect(page.locator("#cite-1-1 a.cite-open")).to_have_attribute(
        "href", f"/api/collections/{guide['collection']}/source")
    assert lookups == []  # decided from the quote alone, streamed or stored

    # an answer stored before quotes carried their source kind: no link, and still no lookup
    forget_source_kinds(ui_server.settings.database_url, guide["collection"])
    page.reload()
    expect(page.locator("#cite-1-1 .cite-source")).to_have_text(GUIDE_NAME)
    expect(page.locator("#cite-1-1 a.cite-open")).to_have_count(0)
    assert lookups == []

    # the dataset page lists the same link for the collection
    page.goto(f"/datasets/{guide['dataset']}")
    row_link = page.locator(f"#collection-{guide['collection']} a.open-source")
    expect(row_link).to_have_attribute("href", f"/api/collections/{guide['collection']}/source")


def test_pasted_text_source_gets_no_link(logged_in: Page, browser: Browser, ui_server: ServerThread,
                                        api: httpx.Client, fake: FakeUpstream) -> None:
    page = logged_in
    lookups = collection_lookups(page)
    dataset_id = create_dataset(api, unique("pasted"))
    add_text(api, dataset_id, "grinder note.md", GUIDE.decode())
    app_id = new_app(api, dataset_id)
    page.goto(f"/chat/{app_id}")
    ask_and_wait(page, fake)
    expect(page.locator("#cite-1-1 .cite-source")).to_have_text("grinder note.md")
    page.wait_for_load_state("networkidle")
    expect(page.locator("#cite-1-1 a.cite-open")).to_have_count(0)
    assert lookups == []

    # nor on a share link's page that shows raw sources: the quote says there is nothing to open
    share_id = api.post("/api/support/outLink/create", json={"appId": str(app_id), "type": "share",
                                                              "name": unique("link"), "responseDetail": True,
                                                              "showRawSource": True}).json()["data"]
    context = new_context(browser, ui_server.base_url)
    try:
        visitor = context.new_page()
        visitor.goto(f"/chat/share/{share_id}")
        ask_and_wait(visitor, fake)
        expect(visitor.locator("#cite-1-1 .cite-source")).to_have_text("grinder note.md")
        expect(visitor.locator("#cite-1-1 a.cite-open")).to_have_count(0)
    finally:
        context.close()


def test_share_page_offers_the_source_only_when_the_link_allows(browser: Browser, ui_server: ServerThread,
                                                                 api: httpx.Client, guide: dict,
                                                                 fake: FakeUpstream) -> None:
    app_id = new_app(api, guide["dataset"])
    problems = PageProblems()
    for allowed in (False, True):
        r = api.post("/api/support/outLink/create", json={"appId": str(app_id), "type": "share",
                                                          "name": unique("link"), "responseDetail": True,
                                                          "showRawSource": allowed})
        share_id = r.json()["data"]
        context = new_context(browser, ui_server.base_url)
        problems.watch(context)
        try:
            page = context.new_page()
            page.goto(f"/chat/share/{share_id}")
            ask_and_wait(page, fake)
            expect(page.locator("#cite-1-1 .cite-source")).to_have_text(GUIDE_NAME)
            link = page.locator("#cite-1-1 a.cite-open")
            if not allowed:
                expect(link).to_have_count(0)
                continue
            asked: list[str] = []  # what any page of the context (the tab it opens too) requests
            context.on("request", lambda request: asked.append(request.url))
            link.click()
            for _ in range(100):
                url = next((u for u in asked if "/source?token=" in u), "")
                if url:
                    break
                page.wait_for_timeout(100)
            assert f"/api/collections/{guide['collection']}/source?token=" in url
            fetched = httpx.get(url, timeout=30)  # no cookies, no key: the short-lived link alone
            assert fetched.status_code == 200 and fetched.content == GUIDE
        finally:
            context.close()
    assert not problems.csp_violations, problems.csp_violations
