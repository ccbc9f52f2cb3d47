"""Markdown files: decoded like text, kept as markdown so the chunker follows headings,
code fences and tables."""

from __future__ import annotations

from zhiku.knowledge.decode import read_text
from zhiku.knowledge.parsers import ParsedDocument, register_parser
from zhiku.knowledge.parsers.text import clean_text


class MarkdownParser:
    name = "markdown"
    extensions: tuple[str, ...] = (".md", ".markdown")

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        reading = read_text(data)
        # Trailing spaces (a markdown hard break) are dropped too: they carry no meaning for search.
        return ParsedDocument(text=clean_text(reading.text), format="markdown", metadata=reading.metadata)


register_parser(MarkdownParser())
