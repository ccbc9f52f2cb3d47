"""Turn uploaded bytes into text, recognising the encodings our users' files come in.

Order: a byte-order mark decides; else strict UTF-8; else UTF-8 with a little damage repaired;
else charset-normalizer's best guess.

Damaged UTF-8: one bad byte in a UTF-8 file, or a file cut in the middle of its last character,
must not send the whole file to a code-page guess, which reads it as confident garbage. So bytes
that are not strict UTF-8 are read as UTF-8 with each invalid sequence replaced by U+FFFD, and
that reading is kept when

- the damage is a few spots: at most one per 1,000 characters (one in any shorter file) and
  ``_MAX_DAMAGED_SPOTS`` in all, none longer than ``_MAX_SPOT_BYTES``. A spot is a run of
  invalid sequences less than 4 bytes apart, since one bad byte inside a character can break
  it into up to three invalid sequences;
- the rest shows the file is UTF-8: its well-formed multi-byte characters take at least
  ``_EVIDENCE_PER_REPLACED_BYTE`` times as many bytes as were replaced, and at least
  ``_MIN_EVIDENCE_BYTES`` (three Chinese characters). Chinese, Japanese or Korean legacy text
  read as UTF-8 has fewer well-formed bytes than invalid ones (measured on long text: GBK 0.7,
  Big5 0.8, EUC-JP 0.9, EUC-KR 0.5, Shift_JIS 0.3, random bytes 0.2); on short phrases chance
  is larger, and the minimum keeps them out (no false reading among 47,000 short GBK, Big5,
  EUC-KR, EUC-JP and Shift_JIS phrases). A single-byte code page has no well-formed multi-byte
  characters at all, so plain ASCII with a stray high byte is still left to the guess (it is
  likelier Windows-1252 than broken UTF-8).

An incomplete character at the very end (a cut file) is dropped, not replaced, and is not
counted as damage. A UTF-8 byte-order mark is evidence enough on its own. Bytes that look like
UTF-8 but are damaged beyond the limits are refused rather than guessed at. How many bytes were
replaced or dropped comes back with the text (``TextReading.metadata``) for the collection to
record.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import Any

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
# Damaged UTF-8 (see the module docstring).
_CHARACTERS_PER_DAMAGED_SPOT = 1000
_MAX_DAMAGED_SPOTS = 64
_MAX_SPOT_BYTES = 8  # a character is at most 4 bytes; a stray byte inside one makes 5
_SPOT_GAP = 4
_EVIDENCE_PER_REPLACED_BYTE = 4
_MIN_EVIDENCE_BYTES = 9
# UTF-16 without a byte-order mark (see _utf16_without_bom): at least this share of its characters
# are ASCII, and NULs on the other side of the byte pairs are at most this share of all NULs.
_UTF16_SAMPLE_BYTES = 64 * 1024
_UTF16_MIN_ASCII_SHARE = 0.02
_UTF16_MAX_STRAY_NULS = 0.25  # CJK characters such as U+4E00 have a NUL low byte


@dataclass(frozen=True)
class TextReading:
    """Decoded text, the encoding it was read as, and what had to be repaired to read it."""

    text: str
    encoding: str
    # Bytes of invalid UTF-8 sequences replaced by U+FFFD.
    replaced_bytes: int = 0
    # Bytes of an incomplete last character (the file was cut) left out.
    dropped_bytes: int = 0

    @property
    def metadata(self) -> dict[str, Any]:
        """What a collection records about the decoding; ``decode`` only when something was repaired."""
        if not (self.replaced_bytes or self.dropped_bytes):
            return {"encoding": self.encoding}
        repairs = {
            "encoding": self.encoding,
            "replaced_bytes": self.replaced_bytes,
            "dropped_bytes": self.dropped_bytes,
        }
        return {"encoding": self.encoding, "decode": repairs}


@dataclass(frozen=True)
class _Utf8Repair:
    text: str
    replaced_bytes: int
    damaged_spots: int
    longest_spot: int  # bytes, from the first invalid byte of a spot to the end of its last
    dropped_bytes: int
    multibyte_bytes: int  # in well-formed characters of more than one byte
    complete: bool  # False: it stopped at the first spot past _MAX_DAMAGED_SPOTS


def decode_text(data: bytes) -> tuple[str, str]:
    """Return ``(text, encoding)``; raise ``UnsupportedFile`` for empty, binary or undecodable data.

    ``read_text`` also tells what was repaired; use it where that is recorded."""
    reading = read_text(data)
    return reading.text, reading.encoding


def read_text(data: bytes) -> TextReading:
    """Decode ``data``; raise ``UnsupportedFile`` for empty, binary or undecodable data."""
    if not data.strip():
        raise _empty(data)
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError as exc:
                if encoding == "utf-8-sig":
                    repair = _repair_utf8(data[len(bom) :])
                    if _within_damage_limits(repair):
                        return _repaired(repair, encoding)
                reason = f"it starts with a {encoding} byte-order mark but is not valid {encoding}"
                raise _undecodable(reason) from exc
            return TextReading(_checked(text), encoding)
    if b"\x00" in data:
        reading = _utf16_without_bom(data)
        if reading is None:
            raise UnsupportedFile("The file looks binary (it contains NUL bytes), not text.", code="binary_file")
        return reading
    _refuse_control_characters(len(data) - len(data.translate(None, _CONTROLS)), len(data))
    try:
        return TextReading(_checked(data.decode("utf-8")), "utf-8")
    except UnicodeDecodeError:
        pass
    repair = _repair_utf8(data)
    if _looks_like_utf8(repair):
        if _within_damage_limits(repair):
            return _repaired(repair, "utf-8")
        raise _undecodable(_damage_reason(repair))
    for encoding in _guesses(data):
        try:
            return TextReading(_checked(data.decode(encoding)), encoding)
        except UnicodeDecodeError:
            continue
    raise _undecodable("it is not UTF-8 and no other encoding fits")


def _utf16_without_bom(data: bytes) -> TextReading | None:
    """UTF-16 without a byte-order mark, or None. Text has ASCII in it (spaces, newlines, digits),
    and each ASCII character's high byte is NUL, so the NULs of UTF-16 fall on one side of each
    byte pair (odd offsets in little-endian, even in big-endian); binary data has them on both."""
    sample = data[:_UTF16_SAMPLE_BYTES]
    at_even, at_odd = sample[0::2].count(0), sample[1::2].count(0)
    units = len(sample) // 2
    for nuls, stray, encoding in ((at_odd, at_even, "utf-16-le"), (at_even, at_odd, "utf-16-be")):
        if nuls >= _UTF16_MIN_ASCII_SHARE * units and stray <= _UTF16_MAX_STRAY_NULS * nuls:
            cut = len(data) % 2  # a file cut mid-character: the odd last byte is dropped
            try:
                text = data[: len(data) - cut].decode(encoding)
            except UnicodeDecodeError:
                return None
            return TextReading(_checked(text), encoding, dropped_bytes=cut)
    return None


def _repair_utf8(data: bytes) -> _Utf8Repair:
    """Read ``data`` as UTF-8, replacing each invalid sequence with U+FFFD and dropping an
    incomplete last character; stop once there are more damaged spots than any file may have."""
    view = memoryview(data)  # slicing a view copies nothing, however many invalid sequences there are
    pieces: list[str] = []
    position = replaced = spots = longest = dropped = 0
    spot_start = spot_end = -_SPOT_GAP
    read_up_to = len(data)
    while True:
        try:
            pieces.append(str(view[position:], "utf-8"))
            break
        except UnicodeDecodeError as exc:
            start, end = position + exc.start, position + exc.end
            pieces.append(str(view[position:start], "utf-8"))
            if _incomplete_character(data[start:]):
                dropped = len(data) - start
                read_up_to = start
                break
            if start - spot_end >= _SPOT_GAP:
                spots += 1
                spot_start = start
                if spots > _MAX_DAMAGED_SPOTS:
                    read_up_to = start
                    break
            spot_end = end
            longest = max(longest, spot_end - spot_start)
            pieces.append("\ufffd")
            replaced += end - start
            position = end
    text = "".join(pieces)
    multibyte_bytes = read_up_to - replaced - len(text.encode("ascii", errors="ignore"))
    complete = spots <= _MAX_DAMAGED_SPOTS
    return _Utf8Repair(text, replaced, spots, longest, dropped, multibyte_bytes, complete)


def _incomplete_character(tail: bytes) -> bool:
    """Whether ``tail`` is the start of a UTF-8 character that the end of the file cut off."""
    if len(tail) > 3:
        return False
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(tail, final=False) == ""
    except UnicodeDecodeError:
        return False


def _looks_like_utf8(repair: _Utf8Repair) -> bool:
    return repair.multibyte_bytes >= max(
        _MIN_EVIDENCE_BYTES, _EVIDENCE_PER_REPLACED_BYTE * repair.replaced_bytes
    )


def _within_damage_limits(repair: _Utf8Repair) -> bool:
    allowed = min(_MAX_DAMAGED_SPOTS, max(1, len(repair.text) // _CHARACTERS_PER_DAMAGED_SPOT))
    return repair.complete and repair.damaged_spots <= allowed and repair.longest_spot <= _MAX_SPOT_BYTES


def _damage_reason(repair: _Utf8Repair) -> str:
    if not repair.complete:
        return f"it looks like UTF-8 but has invalid bytes in more than {_MAX_DAMAGED_SPOTS} places"
    if repair.longest_spot > _MAX_SPOT_BYTES:
        return f"it looks like UTF-8 but has a run of {repair.longest_spot} invalid bytes"
    places = "place" if repair.damaged_spots == 1 else "places"
    return f"it looks like UTF-8 but has invalid bytes in {repair.damaged_spots} {places}, too many for its length"


def _repaired(repair: _Utf8Repair, encoding: str) -> TextReading:
    return TextReading(_checked(repair.text), encoding, repair.replaced_bytes, repair.dropped_bytes)


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
