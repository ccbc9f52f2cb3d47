"""PDF parsing: pages in order with their numbers, and each way a PDF can be unreadable named."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests import documents
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import parser_for

PAGES = ["第一页：龙井茶产于杭州西湖。The first page talks about green tea.",
         "",  # a blank page
         "Page three: Keemun black tea comes from Anhui province. 祁门红茶产于安徽。"]


def parse(data: bytes, name: str = "handbook.pdf"):
    return parser_for(name).parse(data, name)


def failure(data: bytes, name: str = "handbook.pdf") -> UnsupportedFile:
    with pytest.raises(UnsupportedFile) as caught:
        parse(data, name)
    return caught.value


def test_each_page_is_a_section_with_its_number_and_blank_pages_drop_out() -> None:
    doc = parse(documents.pdf(PAGES))
    assert [section.meta for section in doc.sections] == [{"page": 1}, {"page": 3}]
    assert "龙井茶产于杭州西湖" in doc.sections[0].text and "green tea" in doc.sections[0].text
    assert "Keemun black tea" in doc.sections[1].text
    assert doc.metadata == {"pages": 3}
    assert doc.text.index("green tea") < doc.text.index("Keemun")


def test_a_password_protected_pdf_is_named_as_such() -> None:
    error = failure(documents.pdf(["secret recipe"], password="s3cret"))
    assert error.code == "pdf_encrypted" and "password" in error.message


def test_a_truncated_pdf_is_named_as_such() -> None:
    data = documents.pdf(PAGES)
    for cut in (len(data) // 3, len(data) - 10):
        assert failure(data[:cut]).code == "pdf_truncated"


def test_a_damaged_pdf_is_named_as_such() -> None:
    error = failure(b"%PDF-1.7\n" + b"this is not a PDF body at all\n" * 50 + b"%%EOF\n")
    assert error.code == "pdf_corrupt"


def test_a_zip_named_pdf_is_refused_by_its_content() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "hello")
    error = failure(buffer.getvalue())
    assert error.code == "wrong_file_type" and "ZIP" in error.message


def test_a_pdf_with_no_text_at_all_is_an_error_never_an_empty_success() -> None:
    error = failure(documents.pdf([""]))
    assert error.code == "pdf_no_text" and "no extractable text (scanned PDF?)" in error.message


def test_scanned_pages_are_read_by_ocr_and_marked() -> None:
    data = documents.scanned_pdf([["Invoice number 4711", "Payment due in March"]])
    doc = parse(data, "scan.pdf")
    [section] = doc.sections
    assert section.meta == {"page": 1, "ocr": True}
    assert "Invoice number 4711" in section.text and "Payment due in March" in section.text
    assert doc.metadata["scanned_pages"] == [1]


def test_a_mixed_pdf_without_tesseract_keeps_its_text_pages_and_lists_the_scans(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no tesseract on it
    text_pages = documents.pdf(["A page with a text layer about oolong tea."])
    scanned = documents.scanned_pdf([["Scanned page"]])
    import pypdfium2 as pdfium

    merged = pdfium.PdfDocument.new()
    merged.import_pages(pdfium.PdfDocument(text_pages))
    merged.import_pages(pdfium.PdfDocument(scanned))
    buffer = io.BytesIO()
    merged.save(buffer)
    doc = parse(buffer.getvalue())
    assert [section.meta for section in doc.sections] == [{"page": 1}]
    assert doc.metadata["scanned_pages"] == [2]
    assert doc.metadata["ocr_error"]["code"] == "ocr_unavailable"


def test_a_scanned_pdf_without_tesseract_says_how_to_enable_ocr(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    error = failure(documents.scanned_pdf([["Scanned page"]]))
    assert error.code == "ocr_unavailable"
    assert "no extractable text (scanned PDF?)" in error.message and "apt-get install tesseract-ocr" in error.message
