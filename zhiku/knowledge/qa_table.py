"""Q&A tables, both ways: a CSV/XLSX whose columns are question, answer and extra index texts.

Reading: every sheet's rows (after its header row) become one chunk each: column 1 is ``q``,
column 2 ``a``, any further non-empty cells are ``custom`` index texts. Writing: FastGPT's dataset
export (``q,a,indexes`` then one column per index text, UTF-8 with a BOM so Excel reads it), which
reads back here as the same chunks.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from zhiku.config import Settings
from zhiku.db.models import Collection
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ParsedDocument
from zhiku.knowledge.parsers.spreadsheet import read_tables
from zhiku.knowledge.schemas import MAX_A_CHARS, MAX_INDEX_CHARS, MAX_INDEXES, MAX_Q_CHARS
from zhiku.retrieval.index_text import fulltext_text
from zhiku.retrieval.segment import index_document
from zhiku.safetext import clean

EXPORT_HEADER = ("q", "a", "indexes")


def qa_table_rows(collection: Collection, data: bytes,
                  settings: Settings | None = None) -> tuple[ParsedDocument, list[dict[str, Any]]]:
    """The chunk rows of a Q&A table (the parse step of a ``qa_table`` collection)."""
    filename = collection.meta.get("filename") or collection.name
    tables = read_tables(data, filename)
    xlsx = PurePosixPath(filename).suffix.lower() == ".xlsx"
    rows: list[dict[str, Any]] = []
    for table in tables:
        for number, cells in enumerate(table.rows, start=2):  # row 1 is the header
            q, a, indexes = _row(cells, filename, table.name if xlsx else None, number)
            if not q:
                continue  # a row without a question (an answer continued, a note) is not a chunk
            rows.append({"chunk_index": len(rows), "q": q, "a": a, "indexes": indexes, "headings": [],
                         "meta": {"sheet": table.name} if xlsx else {},
                         "fulltext": index_document(fulltext_text(q, a, indexes))})
    if not rows:
        raise UnsupportedFile(f"{filename} has no rows with a question in its first column (the first row is "
                              f"the header)", code="empty_file")
    return ParsedDocument(text="", format="text", metadata={"rows": len(rows)}), rows


def _row(cells: Sequence[str], filename: str, sheet: str | None,
         number: int) -> tuple[str, str, list[dict[str, str]]]:
    where = f"{filename}{f' sheet {sheet!r}' if sheet else ''} row {number}"
    q, a = clean(cells[0]).strip(), clean(cells[1]).strip() if len(cells) > 1 else ""
    texts = [clean(c).strip() for c in cells[2:]]
    indexes = [{"type": "custom", "text": t} for t in texts if t]
    for what, value, limit in (("question", q, MAX_Q_CHARS), ("answer", a, MAX_A_CHARS)):
        if len(value) > limit:
            raise UnsupportedFile(f"{where}: the {what} is {len(value)} characters long; at most {limit}",
                                  code="item_too_long", detail={"row": number, "limit": limit})
    if len(indexes) > MAX_INDEXES:
        raise UnsupportedFile(f"{where} has {len(indexes)} index texts; at most {MAX_INDEXES}",
                              code="too_many_indexes", detail={"row": number, "limit": MAX_INDEXES})
    for index in indexes:
        if len(index["text"]) > MAX_INDEX_CHARS:
            raise UnsupportedFile(f"{where}: an index text is {len(index['text'])} characters long; at most "
                                  f"{MAX_INDEX_CHARS}", code="item_too_long",
                                  detail={"row": number, "limit": MAX_INDEX_CHARS})
    return q, a, indexes


def csv_header() -> str:
    """The export's first line, after a BOM (so Excel reads UTF-8)."""
    return "\ufeff" + csv_line(EXPORT_HEADER)


def csv_row(q: str, a: str, indexes: Sequence[dict[str, Any]]) -> str:
    return csv_line([q, a, *(str(i.get("text") or "") for i in indexes)])


def csv_line(cells: Sequence[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerow(cells)
    return buffer.getvalue()
