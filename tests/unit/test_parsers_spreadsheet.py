"""Spreadsheets: read_tables (XLSX and CSV) and the markdown tables the chunker splits by rows."""

from __future__ import annotations

import codecs
import datetime as dt

import pytest

from tests.documents import workbook
from zhiku.errors import UnsupportedFile
from zhiku.knowledge.chunker import split_text
from zhiku.knowledge.parsers import parser_for
from zhiku.knowledge.parsers.spreadsheet import Table, read_tables
from zhiku.knowledge.parsers.tables import markdown_table


def test_xlsx_sheets_become_tables_with_blank_rows_and_columns_dropped() -> None:
    data = workbook({
        "价目表": [["品名", None, "价格", "备注"], [], ["龙井", None, 88.0, None], ["祁门红茶", None, 66.5, "限量"]],
        "blank": [[], [None, None]],
        "Dates": [["day", "ok"], [dt.datetime(2026, 3, 1), True]],
    })
    assert read_tables(data, "prices.xlsx") == [
        Table("价目表", ("品名", "价格", "备注"), (("龙井", "88", ""), ("祁门红茶", "66.5", "限量"))),
        Table("Dates", ("day", "ok"), (("2026-03-01", "TRUE"),)),
    ]


def test_ragged_csv_rows_are_padded_not_shifted() -> None:
    data = "question,answer,extra\nq1,a1\nq2,a2,x2,overflow\n,,\nq3\n".encode()
    [table] = read_tables(data, "faq.csv")
    assert table == Table("faq", ("question", "answer", "extra", ""),
                          (("q1", "a1", "", ""), ("q2", "a2", "x2", "overflow"), ("q3", "", "", "")))


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "gb18030", "big5"])
def test_csv_encodings(encoding: str) -> None:
    text = "問題,答案\n營業時間,每天九點到五點\n"
    if encoding == "gb18030":
        text = "问题,答案\n营业时间,每天九点到五点\n"
    [table] = read_tables(text.encode(encoding), "hours.csv")
    assert table.rows == ((text.split("\n")[1].split(",")[0], text.split("\n")[1].split(",")[1]),)


def test_tab_separated_csv() -> None:
    [table] = read_tables(b"a\tb\n1\t2\n", "t.csv")
    assert table.header == ("a", "b") and table.rows == (("1", "2"),)


def test_markdown_table_keeps_pipes_and_line_breaks_inside_cells() -> None:
    table = Table("t", ("a|b", "c"), (("line one\nline two", "x"),))
    assert markdown_table(table) == "| a\\|b | c |\n| --- | --- |\n| line one line two | x |"


def test_every_chunk_of_a_long_table_repeats_the_header_and_keeps_rows_whole() -> None:
    rows = [[f"item {i}", f"描述第{i}行，" + "内容" * (i % 7 + 3)] for i in range(300)]
    data = workbook({"Q1": [["name", "description"], *rows]})
    doc = parser_for("stock.xlsx").parse(data, "stock.xlsx")
    [section] = doc.sections
    assert section.meta == {"sheet": "Q1"}
    chunks = split_text(section.text, chunk_size=300, overlap_ratio=0.2, markdown=True)
    assert len(chunks) > 10
    seen = []
    for chunk in chunks:
        lines = chunk.text.split("\n")
        assert lines[0] == "## Q1"
        body = [line for line in lines[1:] if line.strip()]
        assert body[:2] == ["| name | description |", "| --- | --- |"], chunk.text
        seen.extend(body[2:])
    assert seen == [f"| item {i} | 描述第{i}行，{'内容' * (i % 7 + 3)} |" for i in range(300)]


def test_csv_without_any_text_is_an_empty_file() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        parser_for("blank.csv").parse(b",,\n,,\n", "blank.csv")
    assert caught.value.code == "empty_file"


def test_a_workbook_that_is_not_a_zip_is_refused_by_content() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        read_tables(b"%PDF-1.7\n...", "book.xlsx")
    assert caught.value.code == "wrong_file_type" and "a PDF" in caught.value.message


def test_bom_only_csv_is_empty() -> None:
    with pytest.raises(UnsupportedFile) as caught:
        read_tables(codecs.BOM_UTF8, "x.csv")
    assert caught.value.code == "empty_file"
