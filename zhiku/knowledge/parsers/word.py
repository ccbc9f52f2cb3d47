"""Word documents (.docx) with python-docx, in document order: paragraphs, headings as markdown
headings, list items as markdown list items, tables as markdown tables.

Structure comes from paragraph styles ("Heading 2", "Title", "List Bullet", "List Number" and
other "List …" styles), which is what Word and most converters write.
"""

from __future__ import annotations

import io
import re

import docx
from docx.table import Table as DocxTable
from docx.text.paragraph import Paragraph

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ParsedDocument, register_parser
from zhiku.knowledge.parsers.office import check_package, damaged
from zhiku.knowledge.parsers.tables import markdown_table, tidy_table
from zhiku.knowledge.parsers.text import clean_extracted

_HEADING_STYLE = re.compile(r"heading (\d)", re.IGNORECASE)
_LIST_ITEM = re.compile(r"(?:-|1\.) ")


class WordParser:
    name = "word"
    extensions: tuple[str, ...] = (".docx",)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        check_package(data, filename, "docx")
        try:
            document = docx.Document(io.BytesIO(data))
            blocks = [_block(item) for item in document.iter_inner_content()]
        except Exception as exc:  # python-docx reports a damaged part with whatever its XML or zip layer raised
            raise damaged(filename, exc) from exc
        text = clean_extracted(_join([block for block in blocks if block.strip()]))
        if not text:
            raise UnsupportedFile(f"{filename} has no text in it.", code="empty_file")
        return ParsedDocument(text=text, format="markdown")


def _block(item: Paragraph | DocxTable) -> str:
    if isinstance(item, DocxTable):
        table = tidy_table("", ([cell.text for cell in row.cells] for row in item.rows))
        return markdown_table(table) if table else ""
    text = item.text.strip()
    if not text:
        return ""
    style = item.style  # looked up once: python-docx scans every style to find the default one
    style_name = (style.name if style is not None else "") or ""
    if style_name == "Title":
        return f"# {_one_line(text)}"
    if heading := _HEADING_STYLE.fullmatch(style_name):
        return f"{'#' * min(6, int(heading.group(1)))} {_one_line(text)}"
    if style_name.startswith("List"):
        marker = "1." if "Number" in style_name else "-"
        return f"{marker} {text}"
    return text


def _join(blocks: list[str]) -> str:
    """Blocks a blank line apart, except the items of one list, which stay together."""
    parts: list[str] = []
    for previous, block in zip(["", *blocks], blocks):
        if parts:
            parts.append("\n" if _LIST_ITEM.match(previous) and _LIST_ITEM.match(block) else "\n\n")
        parts.append(block)
    return "".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


register_parser(WordParser())
