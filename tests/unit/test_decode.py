"""Damaged UTF-8: a bad byte is replaced and counted, a cut last character is dropped, and
neither sends the file to a code-page guess; legacy encodings and binary data are unaffected."""

from __future__ import annotations

import codecs
import random

import pytest

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.decode import TextReading, decode_text, read_text
from zhiku.knowledge.parsers import parser_for

# Mixed Chinese and English, as our users' notes are: every line has 3-byte characters in UTF-8.
NOTES = (
    "# Zhiku 知识库 FAQ\n"
    "用户可以上传文档 (txt, md)，系统会自动切分文本并建立向量索引。\n"
    "Search combines full-text and vector recall; 检索结果按相关度排序。\n"
    "提问时，系统先检索相关段落，再由大模型根据这些段落生成回答。\n"
)
SIMPLIFIED_REPORT = (
    "关于知识库系统的季度报告\n\n"
    "一、概述：本季度共导入文档一千二百份，其中合同三百份、技术手册五百份、会议纪要四百份。"
    "系统平均响应时间为零点八秒，用户满意度较上季度提高了百分之十五。\n"
    "二、问题：部分旧文件使用国标编码保存，导入时需要识别编码；个别扫描件无法提取文字。\n"
    "三、计划：下季度将支持表格问答，并优化中文分词与检索排序。\n"
)
TRADITIONAL_NOTICE = (
    "圖書館公告\n\n"
    "本館自下週一起延長開放時間，平日開放至晚上九點，週末開放至下午六點。"
    "借閱期限為三十天，逾期每日收取新臺幣五元。如有疑問，請洽服務臺或來電詢問。\n"
    "館藏資料庫已更新，讀者可於線上查詢書目並預約借閱。\n"
)


def _insert(data: bytes, index: int, extra: bytes) -> bytes:
    return data[:index] + extra + data[index:]


def _utf8_boundary_near(data: bytes, index: int) -> int:
    """The first character boundary at or after ``index``."""
    while data[index] & 0xC0 == 0x80:
        index += 1
    return index


# --- one bad byte ----------------------------------------------------------------------------


def test_one_stray_byte_between_characters_keeps_utf8_and_is_counted() -> None:
    data = NOTES.encode()
    middle = _utf8_boundary_near(data, len(data) // 2)
    reading = read_text(_insert(data, middle, b"\xff"))
    before, after = data[:middle].decode(), data[middle:].decode()
    assert reading == TextReading(before + "\ufffd" + after, "utf-8", replaced_bytes=1, dropped_bytes=0)


def test_one_flipped_byte_inside_a_chinese_character_keeps_utf8() -> None:
    data = bytearray(NOTES.encode())
    index = NOTES.index("索")
    start = len(NOTES[:index].encode())
    data[start + 1] = 0xFF  # 索 is three bytes: the lead stays, its first continuation byte is broken
    reading = read_text(bytes(data))
    assert reading.encoding == "utf-8"
    # The broken character becomes replacement characters; everything around it is intact.
    assert reading.text == NOTES[:index] + "\ufffd\ufffd\ufffd" + NOTES[index + 1 :]
    assert reading.replaced_bytes == 3
    assert reading.metadata == {
        "encoding": "utf-8",
        "decode": {"encoding": "utf-8", "replaced_bytes": 3, "dropped_bytes": 0},
    }


def test_decode_text_keeps_its_pair_for_damaged_utf8() -> None:
    data = NOTES.encode()
    text, encoding = decode_text(_insert(data, _utf8_boundary_near(data, 40), b"\x80"))
    assert encoding == "utf-8"
    assert text.count("\ufffd") == 1
    assert text.replace("\ufffd", "") == NOTES


def test_a_utf8_bom_file_with_one_bad_byte_keeps_utf8() -> None:
    data = NOTES.encode()
    middle = _utf8_boundary_near(data, len(data) // 2)
    reading = read_text(codecs.BOM_UTF8 + _insert(data, middle, b"\xfe"))
    assert reading.encoding == "utf-8-sig"
    assert reading.text == data[:middle].decode() + "\ufffd" + data[middle:].decode()
    assert reading.replaced_bytes == 1


def test_a_long_file_may_have_one_damaged_spot_per_thousand_characters() -> None:
    text = NOTES * 35
    assert 4000 <= len(text) < 5000  # four damaged spots allowed
    data = text.encode()
    step = len(data) // 5
    damaged = data
    for spot in range(4, 0, -1):  # from the end, so earlier offsets stay valid
        damaged = _insert(damaged, _utf8_boundary_near(damaged, spot * step), b"\xff")
    reading = read_text(damaged)
    assert reading.encoding == "utf-8"
    assert reading.replaced_bytes == 4
    assert reading.text.replace("\ufffd", "") == text

    one_more = _insert(damaged, _utf8_boundary_near(damaged, step // 2), b"\xff")
    with pytest.raises(UnsupportedFile) as caught:
        read_text(one_more)
    assert caught.value.code == "undecodable_text"
    assert "looks like UTF-8 but has invalid bytes in 5 places" in caught.value.message


def test_two_damaged_spots_in_a_short_file_are_refused_not_guessed() -> None:
    data = NOTES.encode()
    damaged = _insert(
        _insert(data, _utf8_boundary_near(data, 150), b"\xff"), _utf8_boundary_near(data, 30), b"\xff"
    )
    with pytest.raises(UnsupportedFile) as caught:
        read_text(damaged)
    assert caught.value.code == "undecodable_text"
    assert "save it as UTF-8" in caught.value.message


def test_a_long_run_of_invalid_bytes_is_refused() -> None:
    # A GBK phrase pasted into a UTF-8 file is lost text, not one bad byte.
    data = (NOTES * 20).encode()
    middle = _utf8_boundary_near(data, len(data) // 2)
    with pytest.raises(UnsupportedFile) as caught:
        read_text(_insert(data, middle, "编码错误的段落".encode("gbk")))
    assert caught.value.code == "undecodable_text"
    assert "run of" in caught.value.message


# --- a file cut mid-character ----------------------------------------------------------------


@pytest.mark.parametrize("cut", [1, 2])
def test_a_file_cut_mid_character_decodes_all_but_that_character(cut: int) -> None:
    text = NOTES.rstrip("\n") + "检索"
    data = text.encode()[:-cut]
    reading = read_text(data)
    assert reading == TextReading(text[:-1], "utf-8", replaced_bytes=0, dropped_bytes=3 - cut)
    assert reading.metadata["decode"] == {"encoding": "utf-8", "replaced_bytes": 0, "dropped_bytes": 3 - cut}


def test_a_cut_bom_file_decodes_all_but_the_last_character() -> None:
    data = codecs.BOM_UTF8 + "标题\n正文内容".encode()
    assert decode_text(data[:-1]) == ("标题\n正文内", "utf-8-sig")


def test_a_cut_file_with_one_bad_byte_counts_only_the_bad_byte() -> None:
    text = NOTES.rstrip("\n") + "检索"
    data = text.encode()[:-1]
    middle = _utf8_boundary_near(data, len(data) // 2)
    reading = read_text(_insert(data, middle, b"\xff"))
    assert reading.encoding == "utf-8"
    assert (reading.replaced_bytes, reading.dropped_bytes) == (1, 2)
    assert reading.text == data[:middle].decode() + "\ufffd" + data[middle:-2].decode()


# --- what is not damaged UTF-8 is read as before ---------------------------------------------


def test_valid_utf8_reports_no_repairs() -> None:
    reading = read_text(NOTES.encode())
    assert reading == TextReading(NOTES, "utf-8")
    assert reading.metadata == {"encoding": "utf-8"}


def test_a_real_gbk_file() -> None:
    data = SIMPLIFIED_REPORT.encode("gbk")
    assert read_text(data) == TextReading(SIMPLIFIED_REPORT, "gb18030")


def test_a_real_big5_file() -> None:
    data = TRADITIONAL_NOTICE.encode("big5")
    assert read_text(data) == TextReading(TRADITIONAL_NOTICE, "big5")


@pytest.mark.parametrize("phrase", ["知识库问答", "成回答。测", "系统先检", "文件名: 报告.txt"])
def test_short_gbk_that_is_partly_valid_utf8_is_not_taken_for_damaged_utf8(phrase: str) -> None:
    # '知识库问答' in GBK reads as two well-formed UTF-8 characters, one bad spot and a cut end.
    assert decode_text(phrase.encode("gbk")) == (phrase, "gb18030")


def test_english_with_a_windows_quote_is_left_to_the_guess() -> None:
    # No well-formed multi-byte character: nothing says UTF-8, and Windows-1252 reads it right.
    text = "The quick brown fox jumps over the lazy dog. " * 30 + "It\u2019s fine."
    decoded, encoding = decode_text(text.encode("cp1252"))
    assert decoded == text
    assert encoding != "utf-8"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_binary_is_still_refused(seed: int) -> None:
    noise = bytes(b for b in random.Random(seed).randbytes(4096) if b >= 0x20)  # no NUL, no controls
    with pytest.raises(UnsupportedFile) as caught:
        read_text(noise)
    assert caught.value.code == "undecodable_text"
    assert caught.value.message.startswith("The file's text encoding could not be recognised")


# --- the count reaches the collection's metadata ---------------------------------------------


@pytest.mark.parametrize("filename", ["notes.txt", "notes.md"])
def test_parsers_carry_the_repair_count_in_their_metadata(filename: str) -> None:
    data = NOTES.encode()
    doc = parser_for(filename).parse(_insert(data, _utf8_boundary_near(data, 60), b"\xff"), filename)
    assert doc.metadata == {
        "encoding": "utf-8",
        "decode": {"encoding": "utf-8", "replaced_bytes": 1, "dropped_bytes": 0},
    }
    assert doc.text.count("\ufffd") == 1
