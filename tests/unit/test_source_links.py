"""Source links and download headers without a database: what a token opens, when it stops, and the
attachment header for any file name."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography.fernet import Fernet

from zhiku.db.collection_types import has_source, source_kind
from zhiku.errors import Forbidden, NotFound
from zhiku.gateway.store.keybox import KeyBox
from zhiku.knowledge.sources import (
    MEMBER_LINK_SECONDS,
    CollectionSource,
    token_claims,
    source_link,
    source_of,
)
from zhiku.web.routers.collection_sources import download_headers

FILE = CollectionSource(collection_id=7, kind="file", name="manual.pdf", file_id="ab" * 32)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["token"][0]


def test_a_link_names_its_collection_and_file_until_it_expires() -> None:
    box = KeyBox(Fernet.generate_key())
    url = source_link(box, FILE, seconds=300, now=1_000)
    assert url.startswith("/api/collections/7/source?token=")
    assert token_claims(box, token_of(url), 7) == (FILE.file_id, 1_300)
    with pytest.raises(Forbidden) as foreign:
        token_claims(box, token_of(url), 8)
    assert foreign.value.code == "source_link_invalid"
    other_secret = KeyBox(Fernet.generate_key())
    with pytest.raises(Forbidden) as forged:
        token_claims(other_secret, token_of(url), 7)
    assert forged.value.code == "source_link_invalid"


def test_tokens_sealed_for_something_else_open_nothing() -> None:
    box = KeyBox(Fernet.generate_key())
    for plain in ("sk-channel-key", "zhiku-source-v1:7:abc", "zhiku-source-v1:7:abc:soon", ""):
        with pytest.raises(Forbidden):
            token_claims(box, box.encrypt(plain), 7)
    with pytest.raises(Forbidden):
        token_claims(box, "x" * 10_000, 7)


def test_a_url_collection_links_to_itself() -> None:
    box = KeyBox(Fernet.generate_key())
    link = CollectionSource(collection_id=3, kind="url", name="Docs", url="https://example.com/a?b=1")
    assert source_link(box, link, seconds=MEMBER_LINK_SECONDS) == "https://example.com/a?b=1"


class Row:
    def __init__(self, type_: str, meta: dict, file_id: str | None = "f" * 64) -> None:
        self.id, self.type, self.meta, self.file_id, self.name = 1, type_, meta, file_id, "Name"


def test_which_collections_have_a_source() -> None:
    assert source_of(Row("file", {"filename": "a.pdf"})).name == "a.pdf"  # type: ignore[arg-type]
    assert source_of(Row("qa_table", {"filename": "q.csv"})).content_type == "text/csv"  # type: ignore[arg-type]
    assert source_of(Row("link", {"url": "https://x.example/"})).url == "https://x.example/"  # type: ignore[arg-type]
    for row in (Row("text", {"filename": "t.md"}), Row("virtual", {}, None), Row("file", {}, None),
                Row("link", {})):
        with pytest.raises(NotFound) as missing:
            source_of(row)  # type: ignore[arg-type]
        assert missing.value.code == "no_source_file"
    assert [t for t in ("file", "qa_table", "link", "website", "text", "virtual") if has_source(t)] == \
        ["file", "qa_table", "link", "website"]
    # what a quote says (sourceKind) is what the route opens: a download, a redirect, or nothing
    assert [source_kind(t) for t in ("file", "qa_table", "link", "website", "text", "virtual", None)] == \
        ["file", "file", "url", "url", None, None, None]
    assert source_of(Row("qa_table", {"filename": "q.csv"})).kind == source_kind("qa_table")  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["report.pdf", "报告 2024.docx", 'a "quoted"\\name;.txt', "line\r\nbreak.md",
                                  "", "emoji 📄.md"])
def test_download_headers_are_ascii_and_keep_the_real_name(name: str) -> None:
    headers = download_headers(name)
    disposition = headers["Content-Disposition"]
    assert disposition.isascii() and "\r" not in disposition and "\n" not in disposition
    assert disposition.startswith("attachment; filename=\"")
    fallback = re.fullmatch(r'attachment; filename="([^"\\]*)"; filename\*=UTF-8\'\'([^\s;"]*)', disposition)
    assert fallback, disposition
    assert unquote(fallback.group(2)) == name
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Content-Security-Policy"].split(";")[0] == "sandbox"
