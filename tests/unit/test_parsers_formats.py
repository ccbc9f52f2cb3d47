"""JSON, files whose extension lies, the external parser service, and text encodings."""

from __future__ import annotations

import codecs
import io
import os
import random
import zipfile

import pytest

from tests import documents
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.decode import read_text
from zhiku.knowledge.parsers import parser_for
from zhiku.knowledge.parsers.remote import RemoteParser

CHINESE = "知识库是一个用于存储和检索信息的系统。用户可以上传文档。"
TRADITIONAL = "知識庫是一個用於儲存和檢索資訊的系統。使用者可以上傳文件。"


def failure(data: bytes, name: str) -> UnsupportedFile:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for(name).parse(data, name)
    return caught.value


def test_json_is_pretty_printed_text() -> None:
    doc = parser_for("faq.json").parse(b'{"q":"\xe8\x90\xa5\xe4\xb8\x9a\xe6\x97\xb6\xe9\x97\xb4","tags":[1,2]}',
                                       "faq.json")
    assert doc.text == '{\n  "q": "营业时间",\n  "tags": [\n    1,\n    2\n  ]\n}'
    assert doc.format == "text"


def test_invalid_or_absurdly_nested_json_is_named() -> None:
    assert failure(b'{"q": "unterminated', "bad.json").code == "json_invalid"
    assert failure(b"[" * 100_000 + b"]" * 100_000, "deep.json").code == "json_invalid"


@pytest.mark.parametrize("name", ["notes.md", "notes.txt", "rows.csv", "data.json"])
def test_binary_noise_and_archives_named_as_text_are_refused(name: str) -> None:
    noise = random.Random(7).randbytes(20_000)
    assert failure(noise, name).code == "binary_file"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "hello " * 200)
    assert failure(buffer.getvalue(), name).code == "binary_file"


def test_unknown_types_keep_the_unsupported_file_type_error() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("movie.mp4")
    assert caught.value.code == "unsupported_file_type"


# --- encodings ---------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be"])
def test_unicode_with_and_without_a_byte_order_mark(encoding: str) -> None:
    text = f"标题 Title\n{CHINESE}\nline 3: 2026-03-01"
    assert read_text(text.encode(encoding)).text == text


@pytest.mark.parametrize(("text", "encoding"), [(CHINESE * 3, "gbk"), (CHINESE * 3, "gb18030"),
                                                  ("知识库问答", "gbk"), (TRADITIONAL * 2, "big5")])
def test_chinese_legacy_encodings(text: str, encoding: str) -> None:
    assert read_text(text.encode(encoding)).text == text


def test_utf16_without_a_mark_cut_mid_character_drops_the_last_byte() -> None:
    reading = read_text("tea 茶".encode("utf-16-le")[:-1])
    assert reading.text == "tea " and reading.dropped_bytes == 1


def test_undecodable_bytes_give_a_clear_error() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        read_text(codecs.BOM_UTF16_LE + b"\x00\xd8\x00\xd8 lone surrogates")
    assert caught.value.code == "undecodable_text" and "save it as UTF-8" in caught.value.message


# --- the external parser service -----------------------------------------------------------------


def test_the_parser_service_gets_the_file_and_its_markdown_is_used() -> None:
    with documents.ParserService() as service:
        parser = RemoteParser(f"{service.url}/ok", [".pdf", "docx"], key="sk-parse")
        assert parser.handles("a.PDF") and parser.handles("b.docx") and not parser.handles("c.txt")
        data = os.urandom(3000)
        doc = parser.parse(data, "report.pdf")
        [(path, headers, body)] = service.requests
    assert path == "/ok" and headers["Authorization"] == "Bearer sk-parse"
    assert data in body and b'filename="file.pdf"' in body
    assert doc.format == "markdown" and doc.text.startswith("# Parsed by the service")
    assert "The multipart field was file" in doc.text and doc.metadata == {"parser": "remote", "pages": 1}
    assert "Sales by month" in doc.text and "base64" not in doc.text  # an inlined image leaves its alt text


@pytest.mark.parametrize(("path", "reason"), [("/error", "the model crashed"), ("/crash", "HTTP 500"),
                                              ("/garbage", "not JSON"), ("/slow", "Timeout")])
def test_parser_service_failures_are_errors_of_the_file(path: str, reason: str) -> None:
    with documents.ParserService(slow_seconds=3) as service:
        parser = RemoteParser(f"{service.url}{path}", [".pdf"], timeout=0.5)
        with pytest.raises(UnsupportedFile) as caught:
            parser.parse(b"%PDF-1.4", "report.pdf")
    assert caught.value.code == "parser_service_failed" and reason in caught.value.message


def test_an_unreachable_parser_service_is_an_error_of_the_file() -> None:
    with documents.ParserService() as service:
        url = service.url
    with pytest.raises(UnsupportedFile) as caught:
        RemoteParser(f"{url}/ok", [".pdf"]).parse(b"%PDF-1.4", "report.pdf")
    assert caught.value.code == "parser_service_failed" and "ConnectError" in caught.value.message
