"""Tables as every parser hands them on: a name, a header row and data rows of plain strings.

``tidy_table`` applies the rules every source of tables shares (spreadsheets, Word and slide
tables): blank rows and columns dropped, ragged rows padded on the right so no cell moves to
another column. ``markdown_table`` renders one for the chunker, which keeps a row whole and
repeats the header atop every chunk a table spans.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """``header`` and every row have the same number of cells."""

    name: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


def tidy_table(name: str, rows: Iterable[Sequence[str]]) -> Table | None:
    """The first non-blank row is the header. None when every row is blank."""
    kept = [[cell.strip() for cell in row] for row in rows]
    kept = [row for row in kept if any(row)]
    if not kept:
        return None
    width = max(len(row) for row in kept)
    padded = [row + [""] * (width - len(row)) for row in kept]
    columns = [i for i in range(width) if any(row[i] for row in padded)]
    table = [tuple(row[i] for i in columns) for row in padded]
    return Table(name=name, header=table[0], rows=tuple(table[1:]))


def markdown_table(table: Table) -> str:
    """A pipe table; cell text is escaped so a ``|`` or a line break stays inside its cell."""
    lines = [_row(table.header), "| " + " | ".join("---" for _ in table.header) + " |"]
    lines.extend(_row(row) for row in table.rows)
    return "\n".join(lines)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _cell(text: str) -> str:
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())
