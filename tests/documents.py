"""Real documents made in the test with the real libraries: PDFs (fpdf2; text, scanned, password),
Word, PowerPoint and Excel files, images with text (Pillow), and zip bombs.

Fonts come from the machine (fontconfig): DejaVu Sans for Latin text and a CJK font for Chinese
(scripts/test.sh installs ``fonts-noto-cjk``); a missing font fails the test that needs it.
"""

from __future__ import annotations

import io
import subprocess
import zipfile
from collections.abc import Sequence
from functools import cache

import docx
import openpyxl
import pptx
from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont


@cache
def cjk_font() -> str:
    listed = subprocess.run(["fc-list", ":lang=zh", "-f", "%{file}\n"], capture_output=True, text=True,
                            check=False).stdout.split()
    regular = sorted(path for path in listed if "Regular" in path or "zenhei" in path.lower())
    assert regular or listed, "no Chinese font installed: apt-get install fonts-noto-cjk (scripts/test.sh does)"
    return (regular or sorted(listed))[0]


@cache
def latin_font() -> str:
    path = subprocess.run(["fc-match", "-f", "%{file}", "DejaVu Sans"], capture_output=True, text=True,
                          check=False).stdout.strip()
    assert path.endswith((".ttf", ".otf")), "DejaVu Sans is not installed: apt-get install fonts-dejavu-core"
    return path


def pdf(pages: Sequence[str], *, password: str | None = None) -> bytes:
    """A PDF with a text layer, one string per page (Chinese works)."""
    document = FPDF()
    if password:
        document.set_encryption(owner_password=password + "-owner", user_password=password)
    document.add_font("cjk", fname=cjk_font())
    document.set_font("cjk", size=11)
    for text in pages:
        document.add_page()
        if text:
            document.multi_cell(0, 6, text)
    return bytes(document.output())


def scanned_pdf(pages: Sequence[Sequence[str]]) -> bytes:
    """A PDF whose pages are pictures of text (no text layer), as a scanner makes them."""
    document = FPDF()
    for lines in pages:
        document.add_page()
        document.image(text_image(lines, scale=2), x=10, y=10, w=190)
    return bytes(document.output())


def text_image(lines: Sequence[str], *, image_format: str = "PNG", scale: int = 1) -> bytes | Image.Image:
    """Black text on white, large enough for OCR; PNG/JPEG bytes, or the image itself for ``scale`` > 1."""
    size = 48 * scale
    fonts = {False: ImageFont.truetype(latin_font(), size), True: ImageFont.truetype(cjk_font(), size)}
    image = Image.new("L", (int(size * 0.75 * max(len(line) for line in lines)) + 200, (len(lines) + 1) * size * 2),
                      255)
    draw = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        chinese = any(ord(char) > 0x2e80 for char in line)
        draw.text((60, 60 + row * size * 2), line, font=fonts[chinese], fill=0)
    if scale > 1:
        return image
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


def word(blocks: Sequence[tuple[str, object]]) -> bytes:
    """A .docx from (kind, content) blocks: ("title"|"h1"|"h2"|"p"|"bullet"|"number", text) or ("table", rows)."""
    document = docx.Document()
    styles = {"bullet": "List Bullet", "number": "List Number"}
    for kind, content in blocks:
        if kind == "table":
            rows = list(content)  # type: ignore[call-overload]
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            for r, row in enumerate(rows):
                for c, cell in enumerate(row):
                    table.cell(r, c).text = cell
        elif kind == "title":
            document.add_heading(str(content), 0)
        elif kind in ("h1", "h2", "h3"):
            document.add_heading(str(content), int(kind[1]))
        else:
            document.add_paragraph(str(content), style=styles.get(kind))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def slides(deck: Sequence[tuple[str, str, str]]) -> bytes:
    """A .pptx with one slide per (title, body, speaker notes)."""
    presentation = pptx.Presentation()
    for title, body, notes in deck:
        slide = presentation.slides.add_slide(presentation.slide_layouts[1])
        slide.shapes.title.text = title
        slide.placeholders[1].text = body
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    buffer = io.BytesIO()
    presentation.save(buffer)
    return buffer.getvalue()


def workbook(sheets: dict[str, Sequence[Sequence[object]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


MAIN_PARTS = {"docx": "word/document.xml", "xlsx": "xl/workbook.xml", "pptx": "ppt/presentation.xml"}


def zip_bomb(kind: str, inflated_bytes: int = 64 * 1024 * 1024) -> bytes:
    """An Office package whose main part inflates from a few dozen KB to ``inflated_bytes`` of zeros."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        with archive.open(MAIN_PARTS[kind], "w", force_zip64=True) as part:
            block = b"\0" * (1024 * 1024)
            for _ in range(inflated_bytes // len(block)):
                part.write(block)
    return buffer.getvalue()


class ParserService:
    """A document-parser service in FastGPT's custom-parser convention, on 127.0.0.1 in a thread.

    ``POST /ok`` answers ``{"pages": 1, "markdown": …}`` naming the uploaded file's part name and size;
    ``/error`` answers ``{"error": …}``; ``/crash`` answers HTTP 500; ``/garbage`` answers non-JSON;
    ``/slow`` answers after ``slow_seconds``. Setting ``behave_as`` to one of those paths makes every
    path behave so. ``requests`` records (path, headers, body) of each call.
    """

    def __init__(self, slow_seconds: float = 3.0) -> None:
        import http.server
        import json
        import threading
        import time

        service = self
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.behave_as: str | None = None

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                service.requests.append((self.path, dict(self.headers), body))
                status, answer, path = 200, b"", service.behave_as or self.path
                if path == "/ok":
                    named = b'name="file"; filename="file.' in body
                    answer = json.dumps({"pages": 1, "markdown": f"# Parsed by the service\n\nThe multipart field "
                                         f"was {'file' if named else 'missing'}; {len(body)} bytes came.\n\n"
                                         f"![Sales by month](data:image/png;base64,{'iVBORw0KGgo' * 500})"}).encode()
                elif path == "/error":
                    answer = json.dumps({"pages": 0, "markdown": "", "error": "the model crashed"}).encode()
                elif path == "/crash":
                    status, answer = 500, b"Internal Server Error"
                elif path == "/garbage":
                    answer = b"<html>not json</html>"
                elif path == "/slow":
                    time.sleep(slow_seconds)
                    answer = b'{"markdown": "late"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> ParserService:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
