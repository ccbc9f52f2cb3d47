"""Images (.png, .jpg, .jpeg): their text read by OCR (see ``ocr``), chunks marked ``{"ocr": True}``.

Only the image's header is read here (Pillow, for its size, checked before Tesseract decodes
anything); Tesseract gets the bytes as uploaded.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ParsedDocument, Section, register_parser
from zhiku.knowledge.parsers import ocr
from zhiku.knowledge.parsers.sniff import content_kind, require_kind

_IMAGE_KINDS = ("a PNG image", "a JPEG image")


class ImageParser:
    name = "image"
    extensions: tuple[str, ...] = (".png", ".jpg", ".jpeg")

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        kind = content_kind(data)
        if kind not in _IMAGE_KINDS:  # a PNG named .jpg is fine; a ZIP named .png is not
            require_kind(data, filename, "a PNG image" if filename.lower().endswith(".png") else "a JPEG image")
        try:
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
        except Image.DecompressionBombError as exc:  # Pillow's own limit, far past ours
            raise UnsupportedFile(f"{filename} is too large an image to read ({exc}).", code="image_too_large") from exc
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            raise UnsupportedFile(f"{filename} is a damaged image ({exc}).", code="image_corrupt") from exc
        text = ocr.recognise(data, width, height)
        if not text.strip():
            raise UnsupportedFile(f"OCR found no text in {filename}.", code="ocr_no_text")
        return ParsedDocument.from_sections([Section(text, {"ocr": True})], "text",
                                            {"width": width, "height": height})


register_parser(ImageParser())
