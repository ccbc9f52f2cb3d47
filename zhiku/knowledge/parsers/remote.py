"""An external document parser (MinerU, Docling, Marker …) in FastGPT's custom-parser convention.

The file is posted as multipart field ``file`` (named ``file.<ext>``), with
``Authorization: Bearer <key>`` when a key is set; the answer is JSON
``{"pages": n, "markdown": "…", "error": …}``. A non-empty ``error``, an HTTP error status, an
answer that is not that JSON, or no answer within the timeout fails the file with
``parser_service_failed``: the built-in parser is not tried instead, so what was configured is
what ran. The answer is read up to a size limit, never whole into memory first.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import httpx

from zhiku.errors import UnsupportedFile
from zhiku.knowledge.parsers import ParsedDocument, extension_of, normalise_extension
from zhiku.knowledge.parsers.text import clean_extracted

# Markdown is text; a service that sends more than this for one upload is misbehaving.
MAX_RESPONSE_BYTES = 256 * 1024 * 1024
_CONNECT_TIMEOUT_SECONDS = 10.0
_DATA_IMAGE = re.compile(r"!\[([^\]]*)\]\(data:[^)]*\)")


class RemoteParser:
    """Not registered: the import builds one from the settings and tries it before the built-ins."""

    name = "remote"

    def __init__(self, url: str, extensions: Iterable[str], *, key: str = "", timeout: float = 600.0) -> None:
        self.url = url
        self.extensions = tuple(sorted({normalise_extension(e) for e in extensions if e.strip()}))
        self.key = key
        self.timeout = timeout

    def handles(self, filename: str) -> bool:
        return extension_of(filename) in self.extensions

    def parse(self, data: bytes, filename: str) -> ParsedDocument:
        extension = extension_of(filename)
        headers = {"Authorization": f"Bearer {self.key}"} if self.key else {}
        timeout = httpx.Timeout(self.timeout, connect=_CONNECT_TIMEOUT_SECONDS)
        try:
            with httpx.Client(timeout=timeout, follow_redirects=False) as client, client.stream(
                    "POST", self.url, files={"file": (f"file{extension}", data)}, headers=headers) as response:
                body = _read_capped(response)
                status = response.status_code
        except httpx.HTTPError as exc:
            raise _failed(filename, f"{type(exc).__name__}: {exc or 'no answer'}") from exc
        if status >= 400:
            raise _failed(filename, f"it answered HTTP {status}: {body[:300].decode('utf-8', 'replace')}")
        try:
            answer = json.loads(body)
        except ValueError as exc:
            raise _failed(filename, "its answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise _failed(filename, "its answer is not a JSON object")
        if answer.get("error"):
            raise _failed(filename, f"it reported: {str(answer['error'])[:500]}")
        markdown = answer.get("markdown")
        if not isinstance(markdown, str):
            raise _failed(filename, 'its answer has no "markdown" text')
        # Images come back inline as data URIs (MinerU, Marker): their alt text is what search can use.
        text = clean_extracted(_DATA_IMAGE.sub(lambda m: m.group(1), markdown))
        if not text.strip():
            raise UnsupportedFile(f"The document parser found no text in {filename}.", code="empty_file")
        metadata: dict[str, object] = {"parser": "remote"}
        if isinstance(answer.get("pages"), int):
            metadata["pages"] = answer["pages"]
        return ParsedDocument(text=text, format="markdown", metadata=metadata)


def _read_capped(response: httpx.Response) -> bytes:
    body = bytearray()
    for piece in response.iter_bytes():
        body += piece
        if len(body) > MAX_RESPONSE_BYTES:
            raise httpx.DecodingError(f"the answer is over {MAX_RESPONSE_BYTES} bytes")
    return bytes(body)


def _failed(filename: str, reason: str) -> UnsupportedFile:
    return UnsupportedFile(f"The document parser service could not parse {filename}: {reason}",
                           code="parser_service_failed")
