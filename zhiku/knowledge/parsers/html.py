"""Web pages: the main text only (menus, footers, scripts and styles dropped), as markdown with headings,
lists and tables, by trafilatura; the ``<title>`` is kept as the page's name.

The encoding is the page's own: a byte-order mark, else its ``<meta charset>`` or ``<meta http-equiv=
"Content-Type">`` declaration, else the charset the server sent in its Content-Type header (a fetched page
carries it in as a declaration, see :func:`declare_charset`), else ``decode.read_text``'s recognition.
A declaration the bytes do not fit is passed over for the next way, as a browser would show the page
rather than fail.

Markup never survives as markup: trafilatura returns text, and any ``<`` that was text on the page comes
out escaped (``\\<script>``), so a markdown renderer shows it as the characters it was.
"""

from __future__ import annotations

import codecs
import re
from typing import Any

import trafilatura
from lxml.html import HtmlElement

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.decode import TextReading, read_text
from zhiku.knowledge.parsers import ParsedDocument, register_parser
from zhiku.knowledge.parsers.text import clean_text

# The HTML standard looks for a declaration in the first 1024 bytes; real pages put long scripts and
# styles before it often enough that a little more is read.
_PRESCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+?charset\s*=\s*["']?\s*([a-zA-Z0-9_:.+-]+)""", re.IGNORECASE)
# WHATWG's label mapping, where Python's codec is narrower than what browsers read under the label.
_BROWSER_ENCODINGS = {"ascii": "cp1252", "latin_1": "cp1252", "iso8859_1": "cp1252", "gb2312": "gb18030",
                      "gbk": "gb18030", "big5": "big5hkscs", "utf_16": "utf-8", "utf_16_le": "utf-8",
                      "utf_16_be": "utf-8"}
_BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)
MAX_TITLE_CHARS = 500  # the collections.name column
_WHITESPACE = re.compile(r"\s+")
_CONTROL = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


def declared_charset(data: bytes) -> str | None:
    """The Python codec named by the page's own ``<meta>`` declaration, or None."""
    match = _META_CHARSET.search(data[:_PRESCAN_BYTES])
    return _codec(match.group(1).decode("ascii")) if match else None


def declare_charset(data: bytes, charset: str | None) -> bytes:
    """``data`` with ``charset`` (from an HTTP header) declared in front, unless the page declares its own
    encoding or starts with a byte-order mark: the stored page then carries everything needed to read it."""
    codec = _codec(charset) if charset else None
    if codec is None or data.startswith(_BOMS) or declared_charset(data):
        return data
    return f'<meta charset="{codec}">\n'.encode("ascii") + data


def decode_html(data: bytes) -> TextReading:
    """The page's text, read in its own encoding (see the module docstring)."""
    declared = None if data.startswith(_BOMS) else declared_charset(data)
    if declared and data.strip():
        try:
            return TextReading(data.decode(declared), declared)
        except UnicodeDecodeError:
            pass  # a wrong declaration: recognise the encoding instead
    return read_text(data)


def page_title(page: HtmlElement | None) -> str | None:
    """The ``<title>``, on one line and fit for a name (no control characters), or None."""
    if page is None:
        return None
    title = page.findtext(".//title")
    if not title:
        return None
    title = _WHITESPACE.sub(" ", _CONTROL.sub(" ", title)).strip()
    return title[:MAX_TITLE_CHARS] or None


def title_of(data: bytes) -> str | None:
    """The ``<title>`` of the page in ``data``, or None (also when the bytes are not readable as text)."""
    try:
        return page_title(trafilatura.load_html(decode_html(data).text))
    except UnsupportedFile:
        return None


def _codec(label: str) -> str | None:
    try:
        name = codecs.lookup(label.strip()).name
    except LookupError:
        return None
    return _BROWSER_ENCODINGS.get(name.replace("-", "_"), name)


class HtmlParser:
    name = "html"
    extensions: tuple[str, ...] = (".html", ".htm")

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        reading = decode_html(data)
        page = trafilatura.load_html(reading.text)
        if page is None:
            raise UnsupportedFile(f"{filename} could not be read as HTML", code="invalid_html")
        metadata: dict[str, Any] = dict(reading.metadata)
        title = page_title(page)
        if title:
            metadata["title"] = title
        text = trafilatura.extract(page, output_format="markdown", include_formatting=True, include_tables=True,
                                   include_links=False, include_images=False, include_comments=False)
        if not text:  # too little for main-text detection (a short page): all of its visible text
            text = trafilatura.html2txt(reading.text)
        text = clean_text(text or "")
        if not text:
            raise UnsupportedFile(f"{filename} contains no text to index", code="empty_file")
        return ParsedDocument(text=text, format="markdown", metadata=metadata)


register_parser(HtmlParser())
