"""Office Open XML packages (.docx, .xlsx, .pptx): checked as ZIP archives before any part is inflated.

The checks read only the archive's central directory: the number of parts, the total size
they declare once inflated, and the compression ratio of each large part. A zip bomb is
refused on those numbers. Reading a part never yields more bytes than the directory declared
for it (Python's ``zipfile`` stops there and then fails the CRC check), so the declared sizes
bound the memory a parser can use.
"""

from __future__ import annotations

import io
import zipfile

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers.sniff import require_kind

MAX_PARTS = 10_000
MAX_UNCOMPRESSED_BYTES = 256 * 1024 * 1024
# python-docx and python-pptx build a tree of all their XML (several times its size in memory);
# openpyxl reads sheets in read-only mode, streaming, so workbooks are held to the total only.
MAX_TREE_XML_BYTES = 64 * 1024 * 1024
_TREE_PARSED = {"docx", "pptx"}
# Office XML compresses 5-30x; deflate cannot pass ~1030x. Small parts may compress more and are harmless.
MAX_COMPRESSION_RATIO = 200
_RATIO_CHECK_FROM_BYTES = 1024 * 1024

# The part each package type must have ([Content_Types].xml lists it too, but the path is enough).
MAIN_PARTS = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml", "pptx": "ppt/presentation.xml"}
_NAMES = {"docx": "a Word document (.docx)", "xlsx": "an Excel workbook (.xlsx)",
          "pptx": "a PowerPoint deck (.pptx)"}


def check_package(data: bytes, filename: str, kind: str) -> None:
    """Raise ``UnsupportedFile`` unless ``data`` is a safe-to-open package of ``kind`` (docx, xlsx, pptx)."""
    require_kind(data, filename, "a ZIP archive")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            parts = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise UnsupportedFile(f"{filename} is a damaged or truncated ZIP archive ({exc}).",
                              code="corrupt_file") from exc
    if len(parts) > MAX_PARTS:
        raise _bomb(filename, f"it has {len(parts)} parts; at most {MAX_PARTS}")
    total = sum(part.file_size for part in parts)
    if total > MAX_UNCOMPRESSED_BYTES:
        raise _bomb(filename, f"it would inflate to {total} bytes; at most {MAX_UNCOMPRESSED_BYTES}")
    for part in parts:
        if part.file_size >= _RATIO_CHECK_FROM_BYTES:
            ratio = part.file_size / max(1, part.compress_size)
            if ratio > MAX_COMPRESSION_RATIO:
                raise _bomb(filename, f"its part {part.filename} is compressed {ratio:.0f} to 1; "
                                      f"at most {MAX_COMPRESSION_RATIO} to 1")
    xml = sum(part.file_size for part in parts if part.filename.endswith((".xml", ".rels")))
    if kind in _TREE_PARSED and xml > MAX_TREE_XML_BYTES:
        raise UnsupportedFile(f"{filename} has {xml} bytes of document XML; at most {MAX_TREE_XML_BYTES} can be "
                              "read. Split it into smaller files.", code="office_too_large")
    if MAIN_PARTS[kind] not in {part.filename for part in parts}:
        raise UnsupportedFile(f"{filename} is a ZIP archive but not {_NAMES[kind]}.", code="wrong_file_type",
                              detail={"expected": _NAMES[kind]})


def _bomb(filename: str, reason: str) -> UnsupportedFile:
    return UnsupportedFile(f"{filename} was refused before unpacking: {reason} (a zip bomb?).",
                           code="zip_bomb")


def damaged(filename: str, exc: Exception) -> UnsupportedFile:
    """The error for a package that passed the checks but that its library could not read."""
    return UnsupportedFile(f"{filename} could not be read: {type(exc).__name__}: {exc}", code="corrupt_file")
