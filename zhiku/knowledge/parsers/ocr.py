"""Optical character recognition with the Tesseract command (``tesseract-ocr`` and
``tesseract-ocr-chi-sim`` packages), for images and PDF pages without a text layer.

Tesseract runs as a subprocess, one image at a time, with a time limit and one thread; images
are size-checked before it sees them. Without Tesseract and both languages, OCR fails with
``ocr_unavailable`` and a message that says how to enable it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers.text import clean_extracted

LANGUAGES = "chi_sim+eng"
TIMEOUT_SECONDS = 180
# Tesseract holds a few bytes per pixel; a page scanned at 300 DPI is about 9 megapixels.
MAX_PIXELS = 40_000_000
INSTALL_HINT = ("Install Tesseract with Chinese and English (Debian/Ubuntu: apt-get install tesseract-ocr "
                "tesseract-ocr-chi-sim) on the machine that runs the import worker, then retry the import.")
# Tesseract's Chinese output puts a space between characters; the text has none.
_CJK = "\u3000-\u303f\u3400-\u9fff\uff00-\uffef"
_SPACE_IN_CJK = re.compile(f"(?<=[{_CJK}]) +(?=[{_CJK}])")


def tesseract() -> str:
    """The Tesseract command, checked to have the languages OCR uses; raise ``ocr_unavailable`` if not."""
    command = shutil.which("tesseract")
    if command is None:
        raise UnsupportedFile(f"OCR is not available: Tesseract is not installed. {INSTALL_HINT}",
                              code="ocr_unavailable")
    missing = set(LANGUAGES.split("+")) - _languages(command)
    if missing:
        raise UnsupportedFile(f"OCR is not available: Tesseract lacks the language data {', '.join(sorted(missing))}. "
                              f"{INSTALL_HINT}", code="ocr_unavailable")
    return command


def recognise(image: bytes, width: int, height: int) -> str:
    """The text Tesseract reads in ``image`` (PNG or JPEG bytes of ``width`` x ``height`` pixels)."""
    if width * height > MAX_PIXELS:
        raise UnsupportedFile(f"The image is {width}x{height} pixels; OCR takes at most {MAX_PIXELS:,} pixels.",
                              code="image_too_large")
    command = tesseract()
    env = {**os.environ, "OMP_THREAD_LIMIT": "1"}  # one core per file: other imports and searches need the rest
    try:
        result = subprocess.run([command, "stdin", "stdout", "-l", LANGUAGES], input=image, capture_output=True,
                                timeout=TIMEOUT_SECONDS, env=env, check=False)
    except subprocess.TimeoutExpired as exc:
        raise UnsupportedFile(f"OCR took longer than {TIMEOUT_SECONDS} seconds on one image and was stopped.",
                              code="ocr_timeout") from exc
    if result.returncode != 0:
        reason = result.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no message"]
        raise UnsupportedFile(f"OCR failed: {reason[0][:300]}", code="ocr_failed")
    return _SPACE_IN_CJK.sub("", clean_extracted(result.stdout.decode("utf-8", "replace")))


@functools.lru_cache(maxsize=4)
def _languages(command: str) -> frozenset[str]:
    try:
        listed = subprocess.run([command, "--list-langs"], capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    lines = listed.stdout.decode("utf-8", "replace").splitlines()
    return frozenset(line.strip() for line in lines[1:] if line.strip())
