"""PDF files: the text layer of each page with pypdfium2 (PDFium), in its reading order, one section
per page so every chunk keeps its page number.

A page without a text layer (a scan) is rendered and OCR'd when Tesseract is installed; its
chunks are marked ``{"ocr": True}``. Without Tesseract such pages are listed in the
collection's metadata, and a PDF with no text at all fails with ``ocr_unavailable``. An
encrypted, truncated or damaged PDF fails with a code naming the cause.

PDFium is not thread-safe (not even across documents), and imports parse in worker threads:
every PDFium call here holds ``_PDFIUM``. OCR runs outside it, one page at a time, so a long
scan holds one rendered page in memory, not all of them.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ParsedDocument, Section, register_parser
from zhiku.knowledge.parsers import ocr
from zhiku.knowledge.parsers.sniff import require_kind
from zhiku.knowledge.parsers.text import clean_extracted

_PDFIUM = threading.Lock()
# The last bytes of a complete PDF hold its end-of-file marker (writers may pad a little after it).
_EOF_WINDOW = 4096
# A page with less text than this (a scan with a stamped page number) is treated as a scan.
_MIN_TEXT_LAYER_CHARS = 8
# Pages are rendered for OCR at up to 300 DPI, and never past this many pixels.
_OCR_DPI = 300
_RENDER_PIXELS = 12_000_000
MAX_OCR_PAGES = 500


class PdfParser:
    name = "pdf"
    extensions: tuple[str, ...] = (".pdf",)

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        require_kind(data, filename, "a PDF")
        if b"%%EOF" not in data[-_EOF_WINDOW:]:
            raise UnsupportedFile(f"{filename} is truncated: the PDF's end-of-file marker is missing, so pages may "
                                  "be lost. Upload the complete file.", code="pdf_truncated")
        sections: list[Section] = []
        scanned: list[int] = []  # pages with images and (next to) no text
        ocr_error: UnsupportedFile | None = None
        with _document(data, filename) as document:
            pages = _page_count(document)
            for number in range(1, pages + 1):
                text, has_images = _page_text(document, number)
                if _visible_chars(text) >= _MIN_TEXT_LAYER_CHARS or not has_images:
                    sections.append(Section(text, {"page": number}))  # a blank page drops out below
                    continue
                scanned.append(number)
                if ocr_error is None and len(scanned) <= MAX_OCR_PAGES:
                    try:
                        sections.append(_ocr_page(document, number, text))
                        continue
                    except UnsupportedFile as exc:  # no Tesseract, or it failed: keep what the page has
                        ocr_error = exc
                sections.append(Section(text, {"page": number}))
        metadata: dict[str, Any] = {"pages": pages}
        if scanned:
            metadata["scanned_pages"] = scanned
        if ocr_error is not None:
            metadata["ocr_error"] = {"code": ocr_error.code, "message": ocr_error.message}
        if len(scanned) > MAX_OCR_PAGES:
            metadata["ocr_skipped_pages"] = scanned[MAX_OCR_PAGES:]
        doc = ParsedDocument.from_sections(sections, "text", metadata)
        if doc.sections:
            return doc
        if ocr_error is not None:
            raise UnsupportedFile(f"{filename} has no extractable text (scanned PDF?) and could not be OCR'd: "
                                  f"{ocr_error.message}", code=ocr_error.code)
        raise UnsupportedFile(f"{filename} has no extractable text (scanned PDF?): neither a text layer nor OCR "
                              "found any.", code="pdf_no_text")


def _ocr_page(document: pdfium.PdfDocument, number: int, text_layer: str) -> Section:
    ocr.tesseract()  # before rendering: without it, there is nothing to render for
    image, width, height = _render(document, number)
    read = ocr.recognise(image, width, height)
    if _visible_chars(read) <= _visible_chars(text_layer):
        return Section(text_layer, {"page": number})
    return Section(read, {"page": number, "ocr": True})


@contextmanager
def _document(data: bytes, filename: str) -> Iterator[pdfium.PdfDocument]:
    with _PDFIUM:
        try:
            document = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            raise _open_error(filename, exc) from exc
    try:
        yield document
    except pdfium.PdfiumError as exc:  # a page PDFium cannot load: the document is damaged past it
        raise UnsupportedFile(f"{filename} is damaged: a page could not be read ({exc}).",
                              code="pdf_corrupt") from exc
    finally:
        with _PDFIUM:
            document.close()


def _open_error(filename: str, exc: pdfium.PdfiumError) -> UnsupportedFile:
    if exc.err_code == pdfium_c.FPDF_ERR_PASSWORD:
        return UnsupportedFile(f"{filename} is password-protected; remove the password and upload it again.",
                               code="pdf_encrypted")
    if exc.err_code == pdfium_c.FPDF_ERR_SECURITY:
        return UnsupportedFile(f"{filename} uses an unsupported encryption scheme; save an unencrypted copy.",
                               code="pdf_encrypted")
    return UnsupportedFile(f"{filename} is damaged and cannot be read as a PDF ({exc}).", code="pdf_corrupt")


def _page_count(document: pdfium.PdfDocument) -> int:
    with _PDFIUM:
        return len(document)


def _page_text(document: pdfium.PdfDocument, number: int) -> tuple[str, bool]:
    """The page's text layer, and whether it has images (a scan is one)."""
    with _PDFIUM:
        page = document[number - 1]
        try:
            textpage = page.get_textpage()
            try:
                text = textpage.get_text_range()
            finally:
                textpage.close()
            has_images = any(True for _ in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=2))
        finally:
            page.close()
    return clean_extracted(text), has_images


def _render(document: pdfium.PdfDocument, number: int) -> tuple[bytes, int, int]:
    """The page as a grayscale PNM image for Tesseract, and its size in pixels."""
    with _PDFIUM:
        page = document[number - 1]
        try:
            width, height = page.get_size()  # in points, 72 to the inch
            scale = min(_OCR_DPI / 72, math.sqrt(_RENDER_PIXELS / max(1.0, width * height)))
            bitmap = page.render(scale=scale, grayscale=True)
            image = bitmap.to_pil()
            bitmap.close()
        finally:
            page.close()
    buffer = io.BytesIO()
    image.save(buffer, format="PPM")
    return buffer.getvalue(), image.width, image.height


def _visible_chars(text: str) -> int:
    return len("".join(text.split()))


register_parser(PdfParser())
