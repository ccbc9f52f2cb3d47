"""Turn uploaded bytes into text, recognising the encodings our users' files come in.

Order: a byte-order mark decides; else strict UTF-8; else charset-normalizer's best guess.
Legacy Chinese files (GBK/GB18030, Big5) are common among our users, but charset-normalizer
needs a few dozen characters to judge them: on a short file its guess between the East Asian
double-byte encodings is close to random. So when it finds no language evidence, we first try
reading the bytes as GB18030 and then Big5, and keep a reading that gives plausible Chinese.
"""

from __future__ import annotations

import codecs
import re

import charset_normalizer

from zhiku.errors import UnsupportedFile

# Checked in order: the UTF-32 LE mark begins with the UTF-16 LE mark.
_BOMS: tuple[tuple[bytes, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# Tie-breakers among equally good guesses; earlier wins.
_PREFERRED = ("gb18030", "big5", "cp1252")
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANZI = re.compile(r"[\u4e00-\u9fff]")
# ASCII, CJK punctuation, ideographs, full-width forms, general punctuation: what Chinese text is made of.
_CHINESE_TEXT = re.compile(r"[\x00-\x7f\u00b7\u2010-\u2027\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]*")
# charset-normalizer may name a subset; the superset decodes everything the subset does.
_SUPERSETS = {"gb2312": "gb18030", "gbk": "gb18030"}
# charset-normalizer finds language evidence in a few hundred bytes of Chinese; below this size
# it may not, and the plausible-Chinese reading is tried first.
_SHORT_FILE = 4096
# Text never has more control characters than this (tab, newline, CR, FF, VT and ESC excepted).
_MAX_CONTROL_RATIO = 0.05
_CONTROLS = bytes(b for b in [*range(0x20), 0x7F] if chr(b) not in "\t\n\r\f\v\x1b")
_DELETE_CONTROLS = dict.fromkeys(_CONTROLS)


def decode_text(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)``; raise ``UnsupportedFile`` for empty, binary or undecodable data."""
    if not data.strip():
        raise _empty(data)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                reason = f"it starts with a {encoding} byte-order mark but is not valid {encoding}"
                raise _undecodable(reason) from exc
            return _checked(text), encoding
    if b"\x00" in data:
        raise UnsupportedFile("The file looks binary (it contains NUL bytes), not text.", code="binary_file")
    _refuse_control_characters(len(data) - len(data.translate(None, _CONTROLS)), len(data))
    try:
        return _checked(data.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    for encoding in _guesses(data):
        try:
            return _checked(data.decode(encoding)), encoding
        except UnicodeDecodeError:
            continue
    raise _undecodable("it is not UTF-8 and no other encoding fits")


def _guesses(data: bytes) -> list[str]:
    """Encodings to try, best first: charset-normalizer's candidates, ties broken by
    ``_PREFERRED``, behind a plausible Chinese reading when it found no language evidence."""
    matches = list(charset_normalizer.from_bytes(data))
    ranked: list[str] = []
    if len(data) <= _SHORT_FILE and (not matches or matches[0].coherence == 0):
        ranked += _short_chinese_reading(data)
    if matches:
        best = (matches[0].chaos, -matches[0].coherence)
        tied = [m.encoding for m in matches if (m.chaos, -m.coherence) == best]
        ranked += sorted(tied, key=lambda e: _PREFERRED.index(e) if e in _PREFERRED else len(_PREFERRED))
        ranked += [m.encoding for m in matches if m.encoding not in tied]
    return [_SUPERSETS.get(encoding, encoding) for encoding in ranked]


def _short_chinese_reading(data: bytes) -> list[str]:
    """GB18030 or Big5, if reading the bytes that way gives plausible Chinese.

    The same bytes are often valid Korean (EUC-KR) or Japanese (EUC-JP) too; a reading that is
    almost all Hangul, or has kana, is left to charset-normalizer.
    """
    korean = _read(data, "cp949")
    hangul = sum("\uac00" <= char <= "\ud7a3" for char in korean or "")
    wide = sum(ord(char) > 0x7F and not char.isspace() for char in korean or "")
    japanese = _read(data, "euc_jp")
    if (wide and hangul >= 0.9 * wide) or (japanese and _KANA.search(japanese)):
        return []
    for encoding in ("gb18030", "big5"):
        text = _read(data, encoding)
        if text is None or _KANA.search(text) or not _HANZI.search(text) or not _CHINESE_TEXT.fullmatch(text):
            continue
        # GB18030 decodes almost any byte pair; common simplified text stays within GB2312.
        if encoding == "gb18030" and _read(data, "gb2312") is None:
            continue
        return [encoding]
    return []


def _read(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError:
        return None


def _checked(text: str) -> str:
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise _empty(text)
    _refuse_control_characters(len(text) - len(text.translate(_DELETE_CONTROLS)), len(text))
    return text


def _refuse_control_characters(controls: int, total: int) -> None:
    if controls > _MAX_CONTROL_RATIO * total:
        raise UnsupportedFile(
            f"The file looks binary ({controls / total:.0%} of it is control characters), not text.",
            code="binary_file",
        )


def _empty(data: bytes | str) -> UnsupportedFile:
    if not data:
        return UnsupportedFile("The file is empty.", code="empty_file")
    return UnsupportedFile("The file contains only whitespace; there is no text to index.", code="empty_file")


def _undecodable(reason: str) -> UnsupportedFile:
    return UnsupportedFile(
        f"The file's text encoding could not be recognised ({reason}); save it as UTF-8 and upload it again.",
        code="undecodable_text",
    )
