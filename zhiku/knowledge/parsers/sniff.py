"""What a file's first bytes say it is, so a file whose extension lies is refused by name."""

from __future__ import annotations

from zhiku.errors import UnsupportedFile

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "a PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),  # an empty one
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    # OLE2: old binary Office files (.doc, .xls, .ppt), and password-protected .docx/.xlsx/.pptx.
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-format (.doc/.xls/.ppt) or password-protected Office file"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"),
)
# A PDF may have a little junk before its header; readers look this far for it.
_PDF_HEADER_WINDOW = 1024


def content_kind(data: bytes) -> str | None:
    """What the bytes are, in words ("a PDF"), or None when no known signature matches."""
    if b"%PDF-" in data[:_PDF_HEADER_WINDOW]:
        return "a PDF"
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    return None


def require_kind(data: bytes, filename: str, expected: str) -> None:
    """Raise ``wrong_file_type`` unless ``data`` is ``expected`` (one of ``content_kind``'s answers)."""
    if not data:
        raise UnsupportedFile(f"{filename} is empty (0 bytes).", code="empty_file")
    actual = content_kind(data)
    if actual == expected:
        return
    found = f"it is {actual}" if actual else "its content is not recognised"
    raise UnsupportedFile(f"{filename} is not {expected}: {found}. Check the file and its extension.",
                          code="wrong_file_type", detail={"expected": expected, "found": actual})
