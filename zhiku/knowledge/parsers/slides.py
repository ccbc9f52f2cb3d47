"""PowerPoint decks (.pptx) with python-pptx: one section per slide, its number on each chunk
(``{"slide": n}``): the title as a heading, the text of every shape (groups opened, tables as
markdown tables) in the slide's order, then the speaker notes.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator

import pptx
from pptx.enum.shapes import MSO_SHAPE_TYPE
from pptx.shapes.base import BaseShape

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ParsedDocument, Section, register_parser
from zhiku.knowledge.parsers.office import check_package, damaged
from zhiku.knowledge.parsers.tables import markdown_table, tidy_table
from zhiku.knowledge.parsers.text import clean_extracted


class SlidesParser:
    name = "slides"
    extensions: tuple[str, ...] = (".pptx",)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        check_package(data, filename, "pptx")
        try:
            deck = pptx.Presentation(io.BytesIO(data))
            sections = [Section(_slide_text(slide), {"slide": number})
                        for number, slide in enumerate(deck.slides, start=1)]
        except Exception as exc:  # python-pptx reports a damaged part with whatever its XML or zip layer raised
            raise damaged(filename, exc) from exc
        doc = ParsedDocument.from_sections(sections, "markdown", {"slides": len(sections)})
        if not doc.sections:
            raise UnsupportedFile(f"{filename} has no text on any slide or in any note.", code="empty_file")
        return doc


def _slide_text(slide: pptx.slide.Slide) -> str:
    title_shape = slide.shapes.title
    title = " ".join(title_shape.text_frame.text.split()) if title_shape is not None else ""
    blocks = [f"# {title}"] if title else []
    for shape in _shapes(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        blocks.append(_shape_text(shape))
    if slide.has_notes_slide and slide.notes_slide.notes_text_frame is not None:
        notes = slide.notes_slide.notes_text_frame.text.strip()
        if notes:
            blocks.append(f"Notes:\n{notes}")
    return clean_extracted("\n\n".join(block for block in blocks if block.strip()))


def _shapes(shapes: Iterable[BaseShape]) -> Iterator[BaseShape]:
    for shape in shapes:
        if shape.shape_type == MSO_SHAPE_TYPE.GROUP:
            yield from _shapes(shape.shapes)  # type: ignore[attr-defined]
        else:
            yield shape


def _shape_text(shape: BaseShape) -> str:
    if shape.has_table:
        rows = ([cell.text for cell in row.cells] for row in shape.table.rows)  # type: ignore[attr-defined]
        table = tidy_table("", rows)
        return markdown_table(table) if table else ""
    if shape.has_text_frame:
        return shape.text_frame.text.strip()  # type: ignore[attr-defined]
    return ""


register_parser(SlidesParser())
