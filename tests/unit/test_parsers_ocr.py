"""Images read by Tesseract (which must be installed: scripts/test.sh installs it), and what
happens without it."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import pytest

from tests import documents
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ocr, parser_for


def test_tesseract_with_chinese_and_english_is_installed() -> None:
    assert ocr.tesseract()  # raises ocr_unavailable, with how to install it, when it is not


@pytest.mark.parametrize(("name", "image_format"), [("sign.png", "PNG"), ("sign.jpg", "JPEG")])
def test_english_text_in_an_image(name: str, image_format: str) -> None:
    data = documents.text_image(["Opening hours: 9 to 17", "Closed on Sundays"], image_format=image_format)
    doc = parser_for(name).parse(data, name)
    [section] = doc.sections
    assert section.meta == {"ocr": True}
    assert "Opening hours: 9 to 17" in section.text and "Closed on Sundays" in section.text


def test_chinese_text_in_an_image_has_no_spaces_between_characters() -> None:
    data = documents.text_image(["营业时间", "每天九点开门"])
    doc = parser_for("notice.png").parse(data, "notice.png")
    assert "营业时间" in doc.text and "九点开门" in doc.text


def test_a_png_named_jpg_is_still_an_image() -> None:
    data = documents.text_image(["Tea menu"], image_format="PNG")
    assert "Tea menu" in parser_for("menu.jpg").parse(data, "menu.jpg").text


def test_an_image_without_text() -> None:
    from PIL import Image
    import io

    buffer = io.BytesIO()
    Image.new("L", (400, 300), 255).save(buffer, format="PNG")
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("blank.png").parse(buffer.getvalue(), "blank.png")
    assert caught.value.code == "ocr_no_text"


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header(width: int, height: int) -> bytes:
    """The start of a grayscale PNG of that size: its header and a first, tiny piece of pixel data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 64))



@pytest.mark.parametrize("width", [8_000, 20_000])  # past our limit; past Pillow's too
def test_a_huge_image_is_refused_from_its_header_before_decoding(width: int) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("huge.png").parse(_png_header(width, width), "huge.png")
    assert caught.value.code == "image_too_large"


def test_a_file_named_png_that_is_not_an_image() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("fake.png").parse(b"%PDF-1.4 not an image", "fake.png")
    assert caught.value.code == "wrong_file_type"
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("cut.png").parse(b"\x89PNG\r\n\x1a\n\0\0", "cut.png")
    assert caught.value.code == "image_corrupt"


def test_without_tesseract_an_image_says_how_to_enable_ocr(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("sign.png").parse(documents.text_image(["Hello"]), "sign.png")
    assert caught.value.code == "ocr_unavailable"
    assert "apt-get install tesseract-ocr tesseract-ocr-chi-sim" in caught.value.message


def test_tesseract_without_the_chinese_language_data_is_unavailable(monkeypatch: pytest.MonkeyPatch,
                                                                    tmp_path: Path) -> None:
    fake = tmp_path / "tesseract"
    fake.write_text("#!/bin/sh\necho 'List of available languages (1):'\necho eng\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(UnsupportedFile) as caught:
        ocr.tesseract()
    assert caught.value.code == "ocr_unavailable" and "chi_sim" in caught.value.message
