"""The knowledge-base pages in a real browser: create a dataset, drop two files at once and watch them
index live, search-test with citations, browse, find, edit and delete chunks, a hostile document shown as
text, and a failed import with its reason and a retry button."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests import documents
from tests.conftest import unique
from tests.integration.helpers import add_text, create_dataset
from tests.ui.conftest import set_language

pytestmark = pytest.mark.integration

HANDBOOK = [
    "Welcome to the tea house handbook. Staff read this before their first shift.",
    "Oolong is brewed at 90 degrees for three minutes in the small clay teapot.",
    "The tea house closes at nine in the evening; the last order is taken at half past eight.",
]
NOTES = """# Cake notes

The cheesecake is baked on Fridays. It needs eight eggs and a slow oven.
"""
HOSTILE = "<img src=x onerror=alert(1)>"
READY_TIMEOUT_MS = 180_000  # both files parsed and embedded by the server's worker on a busy machine


def collection_row(page: Page, name: str):
    return page.locator(f"#collections tr[data-name='{name}']")


def drop_files(page: Page, zone: str, paths: list[Path]) -> None:
    """Give the drop zone's file input several files at once, as a drop or the file chooser does."""
    page.set_input_files(f"{zone} input[type=file]", [str(p) for p in paths])


def drop_event(page: Page, zone: str, path: Path) -> None:
    """Drop a file on the zone the way a drag from the desktop does: a drop event carrying a DataTransfer."""
    page.evaluate("""([zone, name, b64]) => {
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], name));
        document.querySelector(zone).dispatchEvent(
            new DragEvent("drop", {dataTransfer: transfer, bubbles: true, cancelable: true}));
    }""", [zone, path.name, base64.b64encode(path.read_bytes()).decode()])


def test_create_a_dataset_drop_two_files_search_and_edit_chunks(logged_in: Page, tmp_path: Path, shoot) -> None:
    page = logged_in
    page.goto("/datasets")
    create = page.locator("#create-dataset")
    if create.get_attribute("open") is None:
        create.locator("summary").click()
    name = unique("Tea house")
    page.fill("#create-dataset input[name=name]", name)
    page.fill("#create-dataset textarea[name=description]", "What new staff need to know")
    assert page.locator("#create-dataset select[name=embedding_model] option").count() >= 1
    assert "fake-chat" in page.locator("#create-dataset select[name=agent_model] option").all_text_contents()
    page.select_option("#create-dataset select[name=agent_model]", "fake-chat")
    page.fill("#create-dataset input[name=chunk_size]", "800")
    with page.expect_navigation():
        page.click("#create-dataset button[type=submit]")
    assert re.search(r"/datasets/\d+$", page.url), page.url
    expect(page.locator("h1")).to_have_text(name)
    expect(page.locator("main")).to_contain_text("fake-chat")

    handbook = tmp_path / "handbook.pdf"
    handbook.write_bytes(documents.pdf(HANDBOOK))
    notes = tmp_path / "cakes.md"
    notes.write_text(NOTES, encoding="utf-8")
    drop_files(page, "#file-drop", [handbook, notes])
    uploads = page.locator("#file-drop .uploads li")
    expect(uploads).to_have_count(2)
    expect(page.locator("#file-drop .uploads li.upload-done")).to_have_count(2)
    # The table shows both without a reload, then follows them to ready by itself (no reload either).
    expect(collection_row(page, "handbook.pdf")).to_have_count(1)
    expect(collection_row(page, "cakes.md")).to_have_count(1)
    expect(collection_row(page, "handbook.pdf")).to_have_attribute("data-status", "ready", timeout=READY_TIMEOUT_MS)
    expect(collection_row(page, "cakes.md")).to_have_attribute("data-status", "ready", timeout=READY_TIMEOUT_MS)
    expect(collection_row(page, "handbook.pdf")).to_contain_text("3 / 3")
    expect(page.locator("#collections")).to_have_attribute("data-busy", "false")
    shoot(page, "dataset-collections")
    dataset_url = page.url

    # Search test: the quote with its source and page, and its score breakdown (shot in each language:
    # the results are not part of a page a reload shows again).
    page.click("a[href$='/search']")
    for lang in ("en", "zh-CN"):
        if lang != "en":
            set_language(page, lang)
        page.fill("#search-form textarea[name=text]", "How hot is the water for oolong?")
        page.click("#search-form button[type=submit]")
        first = page.locator("#search-results .quote").first
        expect(first.locator(".citation")).to_have_text("handbook.pdf p. 2")
        expect(first).to_contain_text("90 degrees")
        expect(first.locator(".scores li")).not_to_have_count(0)
        page.evaluate("window.scrollTo(0, 0)")
        shoot(page, "dataset-search", langs=(lang,))
    set_language(page, "en")

    # The chunk browser: find a chunk by its text, edit it (text and an index text), delete another.
    page.goto(dataset_url)
    page.click("#collections a:has-text('handbook.pdf')")
    expect(page.locator("#chunks .chunk")).to_have_count(3)
    shoot(page, "chunk-browser")
    page.fill("input[name=q]", "clay teapot")
    page.click(".chunk-search button[type=submit]")
    chunk = page.locator("#chunks .chunk")
    expect(chunk).to_have_count(1)
    chunk.locator("button.edit").click()
    page.fill(".chunk-edit textarea[name=q]", "Oolong is brewed at 85 degrees for two minutes.")
    page.locator(".chunk-edit textarea[name=index_text]").last.fill("oolong water temperature")
    page.click(".chunk-edit button[type=submit]")
    expect(chunk.locator(".chunk-text")).to_have_text("Oolong is brewed at 85 degrees for two minutes.")
    expect(chunk.locator(".index-list")).to_contain_text("oolong water temperature")
    page.reload()
    expect(page.locator("#chunks .chunk")).to_have_count(0)  # the filter's words are gone from it now
    page.fill("input[name=q]", "85 degrees")
    page.click(".chunk-search button[type=submit]")
    expect(page.locator("#chunks .chunk-text")).to_have_text("Oolong is brewed at 85 degrees for two minutes.")

    page.click("text=Clear")
    expect(page.locator("#chunks .chunk")).to_have_count(3)
    page.locator("#chunks .chunk").filter(has_text="closes at nine").locator("button.btn-danger").click()
    expect(page.locator("#chunks .chunk")).to_have_count(2)
    page.reload()
    expect(page.locator("#chunks .chunk")).to_have_count(2)
    expect(page.locator("#chunk-total")).to_contain_text("2")

    page.goto("/datasets")
    expect(page.locator("#datasets")).to_contain_text(name)
    shoot(page, "datasets-list")


def test_a_hostile_document_shows_as_text(logged_in: Page, api: httpx.Client, dialogs: list[str]) -> None:
    page = logged_in
    dataset_id = create_dataset(api, unique("hostile"))
    page.goto(f"/datasets/{dataset_id}")
    page.locator("summary:has-text('Pasted text')").click()
    page.fill("#text-import input[name=name]", "<b>trap</b>.md")
    page.fill("#text-import textarea[name=text]", f"Warning sign {HOSTILE} in the kitchen")
    page.click("#text-import button[type=submit]")
    expect(page.locator("#import-result .alert-success")).to_be_visible()
    row = collection_row(page, "<b>trap</b>.md")
    expect(row).to_have_attribute("data-status", "ready", timeout=READY_TIMEOUT_MS)
    expect(row.locator("a")).to_have_text("<b>trap</b>.md")

    row.locator("a").click()
    expect(page.locator("#chunks .chunk-text")).to_have_text(f"Warning sign {HOSTILE} in the kitchen")
    assert page.locator("main img").count() == 0
    assert page.locator("main b").count() == 0

    page.goto(f"/datasets/{dataset_id}/search")
    page.fill("#search-form textarea[name=text]", "warning sign kitchen")
    page.check("#search-form input[value=fullText]")
    page.click("#search-form button[type=submit]")
    expect(page.locator("#search-results .quote .chunk-text")).to_have_text(f"Warning sign {HOSTILE} in the kitchen")
    expect(page.locator("#search-results .citation")).to_have_text("<b>trap</b>.md")
    assert page.locator("main img").count() == 0
    assert dialogs == []


def test_a_failed_import_shows_its_reason_and_a_retry(logged_in: Page, api: httpx.Client, tmp_path: Path) -> None:
    page = logged_in
    dataset_id = create_dataset(api, unique("broken"))
    whole = documents.pdf(HANDBOOK)
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(whole[: len(whole) // 2])
    page.goto(f"/datasets/{dataset_id}")
    drop_event(page, "#file-drop", cut)
    row = collection_row(page, "cut.pdf")
    expect(row).to_have_attribute("data-status", "error", timeout=READY_TIMEOUT_MS)
    expect(row.locator(".error-reason")).to_contain_text("cut.pdf")
    retry = row.locator("button.retry")
    expect(retry).to_be_visible()
    retry.click()
    expect(page.locator("#collection-result .alert-success")).to_contain_text("cut.pdf")
    # It runs again from the stored file and fails the same way: the reason and the button come back.
    expect(row).to_have_attribute("data-status", "error", timeout=READY_TIMEOUT_MS)
    expect(row.locator("button.retry")).to_be_visible()


def test_long_lists_are_paged(logged_in: Page, api: httpx.Client) -> None:
    page = logged_in
    dataset_id = create_dataset(api, unique("paged"))
    text = "\n\n".join(f"## Rule {n}\n\nRule number {n} of the house." for n in range(45))
    collection = add_text(api, dataset_id, "rules.md", text)
    pushed = api.post(f"/api/collections/{collection['id']}/data",
                      json={"data": [{"q": f"Extra fact {n} about the house."} for n in range(45)]})
    assert pushed.status_code == 201, pushed.text
    total = api.get(f"/api/collections/{collection['id']}/chunks", params={"limit": 1}).json()["total"]
    assert total > 40
    page.goto(f"/datasets/{dataset_id}/collections/{collection['id']}/chunks")
    expect(page.locator("#chunks .chunk")).to_have_count(20)
    pages = -(-total // 20)
    expect(page.locator(".pager")).to_contain_text(f"1 of {pages}")
    page.click(".pager a[rel=next]")
    expect(page.locator(".pager")).to_contain_text(f"2 of {pages}")
    page.goto(f"/datasets/{dataset_id}/collections/{collection['id']}/chunks?page={pages}")
    expect(page.locator("#chunks .chunk")).to_have_count(total - 20 * (pages - 1))
    # Filtered, the pages count the matches only; a page past the end shows the last one.
    page.fill("input[name=q]", "extra FACT")
    page.click(".chunk-search button[type=submit]")
    expect(page.locator("#chunk-total")).to_contain_text("45")
    expect(page.locator(".pager")).to_contain_text("1 of 3")
    page.click(".pager a[rel=next]")
    expect(page.locator("#chunks .chunk").first).to_contain_text("Extra fact 20 about the house.")
    page.goto(f"/datasets/{dataset_id}/collections/{collection['id']}/chunks?q=extra+fact&page=99")
    expect(page.locator(".pager")).to_contain_text("3 of 3")
    expect(page.locator("#chunks .chunk")).to_have_count(5)
    page.goto(f"/datasets/{dataset_id}/collections/{collection['id']}/chunks?q=_")  # a wildcard in SQL, text here
    expect(page.locator("#chunk-total")).to_contain_text("0")


def test_the_create_form_shows_a_refusal_and_keeps_what_was_typed(logged_in: Page, api: httpx.Client) -> None:
    page = logged_in
    taken = unique("taken")
    create_dataset(api, taken)
    page.goto("/datasets")
    create = page.locator("#create-dataset")
    if create.get_attribute("open") is None:
        create.locator("summary").click()
    page.fill("#create-dataset input[name=name]", taken)
    page.fill("#create-dataset textarea[name=description]", "kept")
    page.click("#create-dataset button[type=submit]")
    expect(page.locator("main .alert-error")).to_contain_text(taken)
    expect(page.locator("#create-dataset textarea[name=description]")).to_have_value("kept")


def test_the_collections_list_pages_in_place_newest_first(logged_in: Page, api: httpx.Client) -> None:
    page = logged_in
    dataset_id = create_dataset(api, unique("many"))
    for n in range(23):  # empty collections (FastGPT's virtual ones): ready at once
        r = api.post("/api/core/dataset/collection/create",
                     json={"datasetId": str(dataset_id), "name": f"part-{n:02d}", "type": "virtual"})
        assert r.status_code == 200 and r.json()["code"] == 200, r.text
    page.goto(f"/datasets/{dataset_id}")
    rows = page.locator("#collections tbody tr")
    expect(rows).to_have_count(20)
    expect(rows.first).to_have_attribute("data-name", "part-22")
    expect(page.locator("#collections")).to_have_attribute("data-busy", "false")
    page.click("#collections .pager a[rel=next]")
    expect(rows).to_have_count(3)
    expect(rows.last).to_have_attribute("data-name", "part-00")
    assert re.search(rf"/datasets/{dataset_id}$", page.url), page.url  # the fragment changed, not the page
    # Tags are saved in place; the table reloads and shows them.
    rows.first.locator("input[name=tags]").fill("manual, v2")
    rows.first.locator(".tags-form button").click()
    expect(page.locator("#collection-result .alert-success")).to_contain_text("part-02")
    expect(page.locator("#collections tr[data-name='part-02'] input[name=tags]")).to_have_value("manual, v2")
    assert api.get(f"/api/collections/{rows.first.get_attribute('id').split('-')[1]}").json()["tags"] == \
        ["manual", "v2"]


def test_a_refused_import_form_names_the_field_by_its_label_and_keeps_what_was_typed(logged_in: Page,
                                                                                       api: httpx.Client) -> None:
    """The import forms post their result elsewhere (#import-result); a refused one is shown again in its own
    place, the bad input marked, in the page's language."""
    page = logged_in
    dataset_id = create_dataset(api, unique("refused"))
    page.goto(f"/datasets/{dataset_id}")
    page.locator("summary:has-text('Pasted text')").click()
    form = page.locator("#text-import")
    form.locator("input[name=name]").evaluate("e => e.removeAttribute('maxlength')")
    form.locator("input[name=name]").fill("n" * 501)
    form.locator("textarea[name=text]").fill("kept text")
    form.locator("input[name=tags]").fill("kept, tags")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-errors")).to_have_text("Name: at most 500 characters.")
    expect(form.locator("input[name=name]")).to_have_attribute("aria-invalid", "true")
    expect(form.locator("textarea[name=text]")).not_to_have_attribute("aria-invalid", "true")
    expect(form.locator("textarea[name=text]")).to_have_value("kept text")
    expect(form.locator("input[name=tags]")).to_have_value("kept, tags")
    expect(page.locator("#import-result .alert-success")).to_have_count(0)

    set_language(page, "zh-CN")
    page.locator("#import details.import-way").nth(1).locator("summary").click()
    form.locator("input[name=name]").evaluate("e => e.removeAttribute('maxlength')")
    form.locator("input[name=name]").fill("n" * 501)
    form.locator("textarea[name=text]").fill("kept text")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-errors")).to_have_text("名称：最多 500 个字符。")
    form.locator("input[name=name]").fill("fine.md")
    form.locator("button[type=submit]").click()
    expect(page.locator("#import-result .alert-success")).to_be_visible()
    expect(form.locator(".form-errors")).to_have_count(0)  # the form is empty again for the next import
    expect(form.locator("input[name=name]")).to_have_value("")
    expect(form.locator("input[name=name]")).not_to_have_attribute("aria-invalid", "true")
