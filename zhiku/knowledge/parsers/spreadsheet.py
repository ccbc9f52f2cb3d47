"""Spreadsheets (.xlsx, .csv): every sheet a markdown table, its name kept on each chunk.

``read_tables`` is the reusable part: a file's sheets as ``Table`` values (header and rows of
plain strings, blank rows and columns dropped, ragged rows padded), for anything that reads
tables rather than text, such as a Q&A import. Workbooks are read with openpyxl in read-only
mode (rows stream from the sheet XML) after the package checks in ``office``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Iterator, Sequence
from pathlib import PurePosixPath

import openpyxl

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.decode import read_text
from zhiku.knowledge.parsers import ParsedDocument, Section, extension_of, register_parser
from zhiku.knowledge.parsers.office import check_package, damaged
from zhiku.knowledge.parsers.tables import Table, markdown_table, tidy_table

__all__ = ["Table", "read_tables", "SpreadsheetParser"]

_DELIMITERS = (",", "\t", ";")


def read_tables(data: bytes, filename: str) -> list[Table]:
    """The tables in a .xlsx (one per non-blank sheet, in workbook order) or .csv file (one, named
    after the file). Raise ``UnsupportedFile`` with a specific code when the file cannot be read."""
    extension = extension_of(filename)
    if extension == ".csv":
        return _csv_tables(data, filename)
    if extension == ".xlsx":
        return _xlsx_tables(data, filename)
    raise UnsupportedFile(f"{filename} is not a spreadsheet (.xlsx or .csv)", code="unsupported_file_type",
                          detail={"extension": extension, "supported": [".csv", ".xlsx"]})


def _csv_tables(data: bytes, filename: str) -> list[Table]:
    text = read_text(data).text
    first_line = text.split("\n", 1)[0]
    delimiter = max(_DELIMITERS, key=first_line.count)  # a tie (none of them) keeps the comma
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise UnsupportedFile(f"{filename} is not a readable CSV file ({exc}).", code="csv_invalid") from exc
    table = tidy_table(PurePosixPath(filename).stem, rows)
    return [table] if table else []


def _xlsx_tables(data: bytes, filename: str) -> list[Table]:
    check_package(data, filename, "xlsx")
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl reports a damaged part with whatever its XML or zip layer raised
        raise damaged(filename, exc) from exc
    try:
        tables = []
        for sheet in workbook.worksheets:
            table = tidy_table(sheet.title, _cells(sheet.iter_rows(values_only=True)))
            if table:
                tables.append(table)
        return tables
    except Exception as exc:  # as above: a part that fails while its rows stream
        raise damaged(filename, exc) from exc
    finally:
        workbook.close()


def _cells(rows: Iterable[Sequence[object]]) -> Iterator[list[str]]:
    for row in rows:
        yield [_cell_text(value) for value in row]


def _cell_text(value: object) -> str:
    """A cell as Excel shows it by default: whole numbers without ".0", dates without a midnight time."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    return str(value)


class SpreadsheetParser:
    name = "spreadsheet"
    extensions: tuple[str, ...] = (".xlsx", ".csv")

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        tables = read_tables(data, filename)
        if not tables:
            raise UnsupportedFile(f"{filename} has no cells with text in them.", code="empty_file")
        if filename.lower().endswith(".csv"):
            sections = [Section(markdown_table(table)) for table in tables]
        else:
            sections = [Section(f"## {table.name}\n\n{markdown_table(table)}", {"sheet": table.name})
                        for table in tables]
        return ParsedDocument.from_sections(sections, "markdown", {"tables": len(tables)})


register_parser(SpreadsheetParser())
