"""Bytes to text: encodings, refusing what is not text, and the parser registry."""

from __future__ import annotations

import codecs
import random

import pytest

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.decode import decode_text
from zhiku.knowledge.parsers import (
    ParsedDocument,
    parser_for,
    register_parser,
    supported_extensions,
)
from zhiku.knowledge.parsers.markdown import MarkdownParser
from zhiku.knowledge.parsers.text import TextParser

CHINESE = (
    "知识库是一个用于存储和检索信息的系统。用户可以上传文档，系统会自动切分文本并建立向量索引。"
    "提问时，系统先检索相关段落，再由大模型根据这些段落生成回答。"
)
TRADITIONAL = "知識庫是一個用於儲存和檢索資訊的系統。使用者可以上傳文件，系統會自動切分並建立索引。"


# --- decoding --------------------------------------------------------------------------------


def test_utf8() -> None:
    assert decode_text("Grüße, 世界!".encode()) == ("Grüße, 世界!", "utf-8")


def test_utf8_with_bom_drops_the_mark() -> None:
    assert decode_text(codecs.BOM_UTF8 + "标题\nbody".encode()) == ("标题\nbody", "utf-8-sig")


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_utf16_and_utf32_with_bom(encoding: str) -> None:
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    data = bom + "Windows 记事本 text\r\n".encode(encoding)
    text, detected = decode_text(data)
    assert text == "Windows 记事本 text\r\n"
    assert detected in ("utf-16", "utf-32")


def test_gb18030_chinese() -> None:
    text, encoding = decode_text((CHINESE * 3).encode("gb18030"))
    assert text == CHINESE * 3
    assert encoding == "gb18030"


@pytest.mark.parametrize("phrase", ["知识库问答", "测试一下编码", "文件名: 报告.txt", "价格：100元"])
def test_short_gbk(phrase: str) -> None:
    assert decode_text(phrase.encode("gbk")) == (phrase, "gb18030")


@pytest.mark.parametrize("text", [TRADITIONAL * 2, "知識庫問答", "測試一下編碼"])
def test_big5(text: str) -> None:
    assert decode_text(text.encode("big5")) == (text, "big5")


def test_short_korean_is_not_taken_for_chinese() -> None:
    text, _ = decode_text("비밀번호를 재설정하는 방법".encode("euc-kr"))
    assert text == "비밀번호를 재설정하는 방법"


def test_western_legacy_text() -> None:
    text, _ = decode_text("Café crème brûlée à la française".encode("cp1252"))
    assert text == "Café crème brûlée à la française"


@pytest.mark.parametrize(
    ("data", "message"),
    [(b"", "The file is empty."), (codecs.BOM_UTF8, "The file is empty.")],
)
def test_empty_file(data: bytes, message: str) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(data)
    assert caught.value.code == "empty_file"
    assert caught.value.message == message


@pytest.mark.parametrize("data", [b"  \n\t\r\n  ", " \u3000\n".encode("utf-16")])
def test_whitespace_only_file(data: bytes) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(data)
    assert caught.value.code == "empty_file"
    assert "only whitespace" in caught.value.message


def test_png_is_binary() -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00"
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(png)
    assert caught.value.code == "binary_file"
    assert caught.value.message == "The file looks binary (it contains NUL bytes), not text."


def test_random_bytes_are_binary() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(random.Random(1234).randbytes(4096))
    assert caught.value.code == "binary_file"


def test_control_characters_without_nul_are_binary() -> None:
    noise = bytes(b for b in random.Random(99).randbytes(4096) if b)
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(noise)
    assert caught.value.code == "binary_file"
    assert "control characters" in caught.value.message


def test_a_few_control_characters_are_tolerated() -> None:
    text = "Report\x0c page two\x1b[0m " + "plain words " * 20
    assert decode_text(text.encode()) == (text, "utf-8")


def test_invalid_bytes_after_a_bom_are_undecodable() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(codecs.BOM_UTF16_LE + b"\x00\xd8")  # a lone surrogate
    assert caught.value.code == "undecodable_text"
    assert "save it as UTF-8" in caught.value.message


def test_bytes_no_encoding_fits_are_undecodable() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        decode_text(bytes(range(0x80, 0x100)) * 4)
    assert caught.value.code == "undecodable_text"


# --- parsers ---------------------------------------------------------------------------------


def test_text_parser_normalises_lines_and_reports_encoding() -> None:
    data = "\r\n第一行   \r\nsecond line\t\r\n\r\nthird  \r\n\r\n".encode("gb18030") + (CHINESE * 2).encode(
        "gb18030"
    )
    doc = parser_for("notes.txt").parse(data, "notes.txt")
    assert doc == ParsedDocument(
        text="第一行\nsecond line\n\nthird\n\n" + CHINESE * 2,
        format="text",
        metadata={"encoding": "gb18030"},
    )


def test_markdown_parser_keeps_markdown_format() -> None:
    doc = parser_for("README.md").parse(b"# Title  \r\n\r\n| a | b |\r\n|---|---|\r\n", "README.md")
    assert doc == ParsedDocument(
        text="# Title\n\n| a | b |\n|---|---|", format="markdown", metadata={"encoding": "utf-8"}
    )


def test_parsers_pass_on_decoding_errors() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("image.md").parse(b"\x89PNG\r\n\x1a\n\x00\x00", "image.md")
    assert caught.value.code == "binary_file"


def test_registry_holds_the_built_ins() -> None:
    assert set(supported_extensions()) >= {".txt", ".md", ".markdown"}
    assert isinstance(parser_for("a.txt"), TextParser)
    assert isinstance(parser_for("a.md"), MarkdownParser)
    assert isinstance(parser_for("a.markdown"), MarkdownParser)


@pytest.mark.parametrize("filename", ["NOTES.TXT", "Readme.Md", "docs/Guide.MARKDOWN", r"C:\Users\me\a.Txt"])
def test_extension_lookup_is_case_insensitive(filename: str) -> None:
    assert parser_for(filename).extensions in ((".txt",), (".md", ".markdown"))


@pytest.mark.parametrize(("filename", "extension"), [("slides.key", ".key"), ("archive.TAR.GZ", ".gz")])
def test_unknown_extension_is_refused_with_the_supported_list(filename: str, extension: str) -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for(filename)
    error = caught.value
    assert error.code == "unsupported_file_type"
    assert f"'{extension}'" in error.message
    for supported in (".txt", ".md", ".markdown"):
        assert supported in error.message
    assert error.detail["extension"] == extension


def test_file_without_extension_is_refused() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("Makefile")
    assert caught.value.code == "unsupported_file_type"
    assert "without an extension" in caught.value.message


def test_third_party_parser_registers_through_the_same_seam(monkeypatch: pytest.MonkeyPatch) -> None:
    from zhiku.knowledge import parsers

    monkeypatch.setattr(parsers, "_PARSERS", dict(parsers._PARSERS))  # leave the real registry alone

    class ReversingParser:
        name = "reversed"
        extensions = (".REV", "md")

        def parse(self, data: bytes, filename: str) -> ParsedDocument:
            return ParsedDocument(text=data.decode()[::-1], format="text", metadata={})

    register_parser(ReversingParser())
    assert ".rev" in supported_extensions()
    assert parser_for("x.rev").parse(b"abc", "x.rev").text == "cba"
    assert parser_for("x.md").name == "reversed"  # a later registration overrides a built-in
