"""The parser seam: one parser per file format turns uploaded bytes into text.

A parser is anything with a ``name``, the ``extensions`` it handles and a ``parse`` method.
Built-in parsers register themselves through ``register_parser``, exactly as a third-party
one would; a new format is a new module here that calls it. A parser that knows where its text
sits in the file (a PDF's pages, a deck's slides, a workbook's sheets) returns it as
``Section``s: the import chunks each on its own and keeps its ``meta`` on every chunk, which
search quotes and citations carry ("handbook.pdf p. 12").

Parsers run in worker threads, a few files at a time; each must check a file's size and shape
(``sniff``, ``office``) before handing it to a library, and fail with ``UnsupportedFile`` and a
specific code, never with a library's own exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any, Literal, Protocol

from zhiku.errors import UnsupportedFile


@dataclass(frozen=True)
class Section:
    """A part of a document that no chunk crosses (a PDF page, a slide, a sheet), and where it is:
    ``meta`` goes on each of its chunks (``{"page": 12}``, ``{"slide": 3}``, ``{"sheet": "Q1"}``,
    ``{"ocr": True}``)."""

    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParsedDocument:
    """Text extracted from a file. ``format`` tells the chunker whether markdown structure applies;
    ``metadata`` is about the whole file (its encoding, pages without text) and goes on its
    collection. ``sections``, when a parser gives them, are chunked one by one."""

    text: str
    format: Literal["text", "markdown"]
    metadata: dict[str, Any] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()

    @classmethod
    def from_sections(cls, sections: Iterable[Section], format: Literal["text", "markdown"],
                      metadata: dict[str, Any] | None = None) -> ParsedDocument:
        """A document of ``sections``, blank ones left out; its text is theirs, a blank line apart."""
        kept = tuple(section for section in sections if section.text.strip())
        return cls(text="\n\n".join(section.text for section in kept), format=format,
                   metadata=metadata or {}, sections=kept)

    def parts(self) -> tuple[Section, ...]:
        """What to chunk: the sections, or the whole text as one."""
        return self.sections or (Section(self.text),)


class Parser(Protocol):
    name: str
    extensions: tuple[str, ...]  # with the leading dot: (".md", ".markdown")

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        """Raise ``UnsupportedFile`` (with a specific code) when the bytes cannot become text."""
        ...


_PARSERS: dict[str, Parser] = {}


def register_parser(parser: Parser) -> None:
    """Make ``parser`` handle its extensions. A later registration for an extension replaces an
    earlier one, so a plugin can override a built-in."""
    for extension in parser.extensions:
        _PARSERS[normalise_extension(extension)] = parser


def extension_of(filename: str) -> str:
    """``filename``'s extension, lower-case, with its dot ("" when it has none)."""
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower()


def parser_for(filename: str) -> Parser:
    """The parser for ``filename``'s extension (case-insensitive)."""
    extension = extension_of(filename)
    parser = _PARSERS.get(extension)
    if parser is None:
        supported = ", ".join(supported_extensions())
        kind = f"'{extension}' files" if extension else "files without an extension"
        raise UnsupportedFile(
            f"{kind} are not supported; supported file types: {supported}",
            code="unsupported_file_type",
            detail={"extension": extension, "supported": list(supported_extensions())},
        )
    return parser


def supported_extensions() -> tuple[str, ...]:
    return tuple(sorted(_PARSERS))


def normalise_extension(extension: str) -> str:
    extension = extension.strip().lower()
    return extension if extension.startswith(".") else f".{extension}"


# Built-ins register on import, through the same seam as anyone else.
from zhiku.knowledge.parsers import html, markdown, spreadsheet, text  # noqa: E402, F401
from zhiku.knowledge.parsers import image, jsonfile, pdf, slides, word  # noqa: E402, F401
