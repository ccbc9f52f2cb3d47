"""Plain text files."""

from __future__ import annotations

from zhiku.knowledge.decode import read_text
from zhiku.knowledge.parsers import ParsedDocument, register_parser


def clean_text(text: str) -> str:
    """Unix newlines, no trailing whitespace on any line, no blank lines at either end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


class TextParser:
    name = "text"
    extensions: tuple[str, ...] = (".txt",)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        reading = read_text(data)
        return ParsedDocument(text=clean_text(reading.text), format="text", metadata=reading.metadata)


register_parser(TextParser())
