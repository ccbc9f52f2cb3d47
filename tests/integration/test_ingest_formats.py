"""Every import format through the HTTP API: chunks, where each came from, statuses, error codes,
and the citation in search and chat answers. Real files, made here with the real libraries."""

from __future__ import annotations

import io
import random
import zipfile
from contextlib import closing
from pathlib import Path

import httpx
import pytest

from tests import documents
from tests.conftest import login, make_settings, unique
from tests.integration.helpers import add_text, create_dataset, upload, wait_collection
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration

TOPICS = {
    1: "Welcome to the garden handbook. It covers soil, watering, pruning and pests.",
    5: "Soil: mix compost into clay soil every spring to keep it loose.",
    12: "Pests: aphids gather under young leaves. Release ladybirds, which eat aphids, or spray them off.",
}
HANDBOOK = [TOPICS.get(page, f"Page {page} is about garden tools number {page}.") for page in range(1, 13)]


def imported(client: httpx.Client, dataset_id: int, name: str, data: bytes) -> dict:
    r = upload(client, dataset_id, name, data)
    assert r.status_code == 201, r.text
    return wait_collection(client, r.json()["id"])


def chunks_of(client: httpx.Client, collection_id: int) -> list[dict]:
    body = client.get(f"/api/collections/{collection_id}/chunks").json()
    assert body["total"] == len(body["items"])
    return body["items"]


def search(client: httpx.Client, dataset_id: int, text: str) -> list[dict]:
    r = client.post(f"/api/datasets/{dataset_id}/search", json={"text": text, "searchMode": "mixed"})
    assert r.status_code == 200, r.text
    return r.json()["quotes"]


def test_pdf_pages_are_kept_and_cited_in_search_and_chat(client: httpx.Client, server, fake) -> None:
    dataset_id = create_dataset(client, unique("handbook"))
    col = imported(client, dataset_id, "handbook.pdf", documents.pdf(HANDBOOK))
    assert col["status"] == "ready", col
    assert col["metadata"]["pages"] == 12
    chunks = chunks_of(client, col["id"])
    pages = [chunk["metadata"]["page"] for chunk in chunks]
    assert pages == sorted(pages) and set(pages) == set(range(1, 13))  # no chunk spans two pages
    for chunk in chunks:
        page = chunk["metadata"]["page"]
        assert HANDBOOK[page - 1][:30] in chunk["q"]

    [top, *_] = search(client, dataset_id, "how do I get rid of aphids")
    assert top["page"] == 12 and top["metadata"] == {"page": 12}
    assert top["citation"] == "handbook.pdf p. 12" and top["sourceName"] == "handbook.pdf"

    r = client.post("/api/apps", json={"name": unique("gardener"), "datasetIds": [dataset_id]})
    assert r.status_code == 201, r.text
    key = client.post("/api/keys", json={"name": "chat", "appId": r.json()["id"]}).json()["key"]
    fake.reply("Release ladybirds.")
    r = httpx.post(server.base_url + "/api/v1/chat/completions", headers={"Authorization": f"Bearer {key}"},
                   json={"messages": [{"role": "user", "content": "how do I get rid of aphids"}], "detail": True},
                   timeout=60)
    assert r.status_code == 200, r.text
    assert "(handbook.pdf p. 12)\nPests: aphids" in fake.last_request.json["messages"][-1]["content"]
    node = next(n for n in r.json()["responseData"] if n["moduleType"] == "datasetSearchNode")
    assert node["quoteList"][0]["citation"] == "handbook.pdf p. 12" and node["quoteList"][0]["page"] == 12


def test_office_files_spreadsheets_and_json_import_with_their_structure(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("office"))
    word = imported(client, dataset_id, "guide.docx", documents.word([
        ("title", "Tea guide"), ("h1", "Brewing"), ("p", "Brew longjing at 80 degrees for two minutes."),
        ("bullet", "warm the cup"), ("table", [["tea", "temperature"], ["longjing", "80"], ["keemun", "95"]])]))
    deck = imported(client, dataset_id, "deck.pptx", documents.slides([
        ("Agenda", "Opening of the new shop", ""), ("Budget", "Rent is 3000 a month", ""),
        ("Kettles", "The shop buys three copper kettles", "Ask the supplier about delivery dates.")]))
    rows = [["sku", "name", "stock"]] + [[f"T-{i:03}", f"Tea number {i}", i * 3] for i in range(1, 120)]
    book = imported(client, dataset_id, "stock.xlsx", documents.workbook({"Q1": rows, "Empty": []}))
    sheet = imported(client, dataset_id, "faq.csv", "问题,答案\n营业时间,每天九点到五点\n".encode("gb18030"))
    data = imported(client, dataset_id, "config.json", b'{"shop": {"name": "Teahouse", "open": true}}')
    for col in (word, deck, book, sheet, data):
        assert col["status"] == "ready", col

    [text] = [chunk["q"] for chunk in chunks_of(client, word["id"])]
    assert "# Brewing" in text and "- warm the cup" in text and "| longjing | 80 |" in text

    deck_chunks = chunks_of(client, deck["id"])
    assert [chunk["metadata"] for chunk in deck_chunks] == [{"slide": 1}, {"slide": 2}, {"slide": 3}]
    assert "Ask the supplier about delivery dates." in deck_chunks[2]["q"]
    [top, *_] = search(client, dataset_id, "copper kettles delivery")
    assert top["citation"] == "deck.pptx slide 3" and top["page"] is None

    book_chunks = chunks_of(client, book["id"])
    assert len(book_chunks) > 1 and all(chunk["metadata"] == {"sheet": "Q1"} for chunk in book_chunks)
    for chunk in book_chunks:
        assert "| sku | name | stock |\n| --- | --- | --- |" in chunk["q"]  # every chunk repeats the header
    body_rows = [line for chunk in book_chunks for line in chunk["q"].split("\n") if line.startswith("| T-")]
    assert body_rows == [f"| T-{i:03} | Tea number {i} | {i * 3} |" for i in range(1, 120)]  # whole, once each
    [top, *_] = search(client, dataset_id, "T-077 Tea number 77")
    assert top["citation"] == "stock.xlsx sheet Q1" and "| T-077 | Tea number 77 | 231 |" in top["q"]

    assert "| 营业时间 | 每天九点到五点 |" in chunks_of(client, sheet["id"])[0]["q"]
    assert chunks_of(client, data["id"])[0]["q"] == '{\n  "shop": {\n    "name": "Teahouse",\n    "open": true\n  }\n}'


def test_images_and_scanned_pdfs_are_read_by_ocr_and_found_by_search(client: httpx.Client) -> None:
    dataset_id = create_dataset(client, unique("scans"))
    image = imported(client, dataset_id, "notice.png", documents.text_image(["Library opening hours", "营业时间"]))
    scan = imported(client, dataset_id, "invoice.pdf",
                    documents.scanned_pdf([["Cover page"], ["Invoice number 4711", "Payment due in March"]]))
    assert image["status"] == "ready" and scan["status"] == "ready", (image, scan)
    assert [chunk["metadata"] for chunk in chunks_of(client, image["id"])] == [{"ocr": True}]
    assert [chunk["metadata"] for chunk in chunks_of(client, scan["id"])] == [{"page": 1, "ocr": True},
                                                                              {"page": 2, "ocr": True}]
    [top, *_] = search(client, dataset_id, "when is the payment for invoice 4711 due")
    assert "Payment due in March" in top["q"] and top["citation"] == "invoice.pdf p. 2"
    assert top["metadata"] == {"page": 2, "ocr": True}
    [top, *_] = search(client, dataset_id, "library opening hours")
    assert top["citation"] == "notice.png" and "营业时间" in top["q"]


def test_without_tesseract_ocr_fails_with_how_to_enable_it(client: httpx.Client, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    dataset_id = create_dataset(client, unique("no-ocr"))
    monkeypatch.setenv("PATH", str(tmp_path))  # the worker runs in this process: no tesseract on its PATH
    col = imported(client, dataset_id, "sign.png", documents.text_image(["Closed on Sundays"]))
    assert col["status"] == "error" and col["error_code"] == "ocr_unavailable"
    assert "apt-get install tesseract-ocr tesseract-ocr-chi-sim" in col["error"]


def test_hostile_files_fail_alone_and_the_dataset_keeps_working(client: httpx.Client, server) -> None:
    dataset_id = create_dataset(client, unique("hostile"))
    good = add_text(client, dataset_id, "keep.md", "# Keep\n\nThe teapot lives on the second shelf.")
    r = upload(client, dataset_id, "empty.pdf", b"")
    assert r.status_code == 400 and r.json()["code"] == "empty_file"

    handbook = documents.pdf(HANDBOOK[:3])
    noise = random.Random(3).randbytes(100_000)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.txt", "hello")
    assert server.settings.upload_max_bytes > 50 * 1024 * 1024  # the long line below fits the upload limit
    expected = {
        "cut.pdf": (handbook[: len(handbook) // 2], "pdf_truncated"),
        "locked.pdf": (documents.pdf(["secret"], password="pw"), "pdf_encrypted"),
        "bomb.docx": (documents.zip_bomb("docx"), "zip_bomb"),
        "bomb.xlsx": (documents.zip_bomb("xlsx"), "zip_bomb"),
        "bomb.pptx": (documents.zip_bomb("pptx"), "zip_bomb"),
        "archive.pdf": (archive.getvalue(), "wrong_file_type"),
        "noise.md": (noise, "binary_file"),
        "one-line.txt": (b"tea " * (50 * 1024 * 1024 // 4), "text_too_long"),
    }
    results = {name: imported(client, dataset_id, name, data) for name, (data, _) in expected.items()}
    for name, (_, code) in expected.items():
        col = results[name]
        assert col["status"] == "error" and col["error_code"] == code, (name, col)
        assert col["error"] and col["chunk_count"] == 0, (name, col)

    ragged = imported(client, dataset_id, "ragged.csv", b"name,price,note\ntea,3\ncake,2.5,fresh,extra\n\n,,\n")
    assert ragged["status"] == "ready"
    assert chunks_of(client, ragged["id"])[0]["q"] == (
        "| name | price | note |  |\n| --- | --- | --- | --- |\n| tea | 3 |  |  |\n| cake | 2.5 | fresh | extra |")

    still = client.get(f"/api/collections/{good['id']}").json()
    assert still["status"] == "ready" and still["chunk_count"] == good["chunk_count"]
    [top, *_] = search(client, dataset_id, "where is the teapot")
    assert top["sourceName"] == "keep.md"


def test_a_configured_parser_service_is_tried_first_and_its_failures_are_collection_errors(
        fresh_db: str, tmp_path: Path, embedders) -> None:
    with documents.ParserService() as service:
        settings = make_settings(fresh_db, tmp_path / "data", parser_url=f"{service.url}/parse",
                                 parser_types=".pdf, docx", parser_key="sk-parser")
        with ServerThread(settings, embedders) as running, closing(login(running.base_url)) as client:
            dataset_id = create_dataset(client, unique("parsed"))
            service.behave_as = "/ok"
            col = imported(client, dataset_id, "report.pdf", documents.pdf(["The built-in parser would read this."]))
            assert col["status"] == "ready", col
            assert col["metadata"]["parser"] == "remote"
            [chunk] = chunks_of(client, col["id"])
            assert chunk["q"].startswith("# Parsed by the service") and "The multipart field was file" in chunk["q"]
            path, headers, _ = service.requests[-1]
            assert path == "/parse" and headers["Authorization"] == "Bearer sk-parser"

            calls = len(service.requests)
            plain = imported(client, dataset_id, "notes.md", b"# Notes\n\nNot for the service.")
            assert plain["status"] == "ready" and len(service.requests) == calls  # not a configured type

            service.behave_as = "/error"
            failed = imported(client, dataset_id, "other.docx", documents.word([("p", "text")]))
            assert failed["status"] == "error" and failed["error_code"] == "parser_service_failed"
            assert "the model crashed" in failed["error"]
            assert client.get(f"/api/collections/{col['id']}").json()["status"] == "ready"
