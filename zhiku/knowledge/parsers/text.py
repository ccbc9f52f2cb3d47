"""Plain text files."""

from __future__ import annotations

import re

from zhiku.knowledge.decode import read_text
from zhiku.knowledge.parsers import ParsedDocument, register_parser


def clean_text(text: str) -> str:
    """Unix newlines, no trailing whitespace on any line, no blank lines at either end."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "\n".join(line.rstrip() for line in lines).strip("\n")


# Control characters, noncharacters and lone surrogates that binary formats can carry in their text.
_EXTRACTED_JUNK = re.compile("[\x00-\x08\x0c\x0e-\x1f\x7f\ufffe\uffff\ud800-\udfff]")


def clean_extracted(text: str) -> str:
    """Text taken out of a binary format (PDF, Office, OCR): ``clean_text`` without control characters;
    a vertical tab (Word's line break) becomes a newline."""
    return clean_text(_EXTRACTED_JUNK.sub("", text.replace("\x0b", "\n")))


class TextParser:
    name = "text"
    extensions: tuple[str, ...] = (".txt",)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        reading = read_text(data)
        return ParsedDocument(text=clean_text(reading.text), format="text", metadata=reading.metadata)


register_parser(TextParser())
