"""Word and PowerPoint files, and the package checks every Office format goes through first."""

from __future__ import annotations

import io
import os
import zipfile

import pytest

from tests import documents
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import office, parser_for


def failure(data: bytes, name: str) -> UnsupportedFile:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for(name).parse(data, name)
    return caught.value


def test_word_headings_lists_and_tables_in_document_order() -> None:
    data = documents.word([
        ("title", "Garden handbook"),
        ("h1", "Watering"),
        ("p", "Tomatoes need deep watering twice a week."),
        ("bullet", "water early"),
        ("bullet", "water the roots"),
        ("number", "fill the can"),
        ("table", [["plant", "water | when"], ["tomato", "twice a week"], ["", ""], ["basil", "daily"]]),
        ("h2", "Pests"),
        ("p", "Aphids gather under young leaves."),
    ])
    doc = parser_for("garden.docx").parse(data, "garden.docx")
    assert doc.format == "markdown"
    assert doc.text == (
        "# Garden handbook\n\n# Watering\n\nTomatoes need deep watering twice a week.\n\n"
        "- water early\n- water the roots\n1. fill the can\n\n"
        "| plant | water \\| when |\n| --- | --- |\n| tomato | twice a week |\n| basil | daily |\n\n"
        "## Pests\n\nAphids gather under young leaves.")


def test_slides_keep_titles_text_notes_and_their_numbers() -> None:
    data = documents.slides([("Quarterly results", "Revenue grew 12%\nCosts fell", "Mention the new tea shop."),
                             ("", "", ""),
                             ("价格", "龙井 88 元", "")])
    doc = parser_for("deck.pptx").parse(data, "deck.pptx")
    assert [section.meta for section in doc.sections] == [{"slide": 1}, {"slide": 3}]
    assert doc.sections[0].text == ("# Quarterly results\n\nRevenue grew 12%\nCosts fell\n\n"
                                    "Notes:\nMention the new tea shop.")
    assert doc.sections[1].text == "# 价格\n\n龙井 88 元"


@pytest.mark.parametrize(("kind", "name"), [("docx", "bomb.docx"), ("xlsx", "bomb.xlsx"), ("pptx", "bomb.pptx")])
def test_zip_bombs_are_refused_by_compression_ratio_before_inflating(kind: str, name: str) -> None:
    data = documents.zip_bomb(kind)
    assert len(data) < 1024 * 1024
    error = failure(data, name)
    assert error.code == "zip_bomb" and "compressed" in error.message


def test_a_package_that_would_inflate_past_the_total_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("word/document.xml", os.urandom(1024))
        for i in range(3):
            archive.writestr(f"word/media/image{i}.bin", os.urandom(512 * 1024))  # incompressible
    monkeypatch.setattr(office, "MAX_UNCOMPRESSED_BYTES", 1024 * 1024)
    error = failure(buffer.getvalue(), "big.docx")
    assert error.code == "zip_bomb" and "inflate to" in error.message


def test_one_office_type_named_as_another_is_refused() -> None:
    error = failure(documents.word([("p", "hello")]), "sheet.xlsx")
    assert error.code == "wrong_file_type" and "Excel" in error.message


def test_old_binary_or_password_protected_office_files_are_named() -> None:
    ole2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000)
    error = failure(ole2, "report.docx")
    assert error.code == "wrong_file_type" and "password-protected" in error.message


def test_a_truncated_package_is_damaged() -> None:
    data = documents.slides([("Title", "Body text", "")])
    assert failure(data[: len(data) // 2], "deck.pptx").code == "corrupt_file"


def test_a_package_with_a_broken_part_is_damaged() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<not xml")
        archive.writestr("word/document.xml", "<not xml")
    assert failure(buffer.getvalue(), "broken.docx").code == "corrupt_file"


def test_word_xml_too_large_for_a_document_tree_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(office, "MAX_TREE_XML_BYTES", 1000)
    error = failure(documents.word([("p", "x" * 5000)]), "long.docx")
    assert error.code == "office_too_large"
    # A workbook is read streaming: the same limit does not apply to it.
    assert parser_for("rows.xlsx").parse(documents.workbook({"S": [["a"], ["x" * 5000]]}), "rows.xlsx").text
