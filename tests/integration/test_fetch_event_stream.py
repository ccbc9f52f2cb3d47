"""The safe fetcher's event stream against a real server on 127.0.0.1: events one at a time as they come
(split across writes, CRLF, several data lines, comments skipped), redirects followed, and its refusals: a
private address, an answer that is no event stream, an error status, an event over the limit, a stream open
past its deadline. Needs no database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest

from tests.integration.helpers import serving
from zhiku.errors import ZhikuError
from zhiku.knowledge.fetch import FetchPolicy, StreamEvent, open_event_stream

ALLOWED = FetchPolicy(allow_private=True, timeout_seconds=5, deadline_seconds=10)
SCRIPT = [b"event: endpoint\r\ndata: /messages?s=1\r\n\r\n",
          b": keep-alive\n\n",
          b'data: {"a":',  # an event split across writes
          b" 1}\n\n",
          b"event: message\ndata: line one\ndata: line two\n\n",
          b"data: last, with no blank line"]


class _Stream(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:
        _Stream.seen.append(self.path)
        if self.path == "/hop":
            self.send_response(302)
            self.send_header("Location", "/events")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        status = 500 if self.path == "/fail" else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if self.path == "/html" else "text/event-stream")
        self.end_headers()
        try:
            if self.path == "/events":
                for chunk in SCRIPT:
                    self.wfile.write(chunk)
                    time.sleep(0.02)
            elif self.path == "/big":
                self.wfile.write(b"data: small\n\n")
                time.sleep(0.2)
                self.wfile.write(b"data: " + b"x" * 3000)  # and it never ends
                time.sleep(2)
            elif self.path == "/forever":
                for _ in range(100):
                    self.wfile.write(b"data: tick\n\n")
                    time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def base() -> Iterator[str]:
    with serving(_Stream) as url:
        yield url


async def test_events_come_one_at_a_time_as_the_server_sends_them(base: str) -> None:
    async with open_event_stream(base + "/events", ALLOWED) as stream:
        first = await anext(stream)
        assert first == StreamEvent(name="endpoint", data=b"/messages?s=1")
        rest = [event async for event in stream]
    assert rest == [StreamEvent("message", b'{"a": 1}'), StreamEvent("message", b"line one\nline two"),
                    StreamEvent("message", b"last, with no blank line")]
    assert stream.url == base + "/events"


async def test_a_redirect_is_followed_and_the_stream_knows_where_it_ended(base: str) -> None:
    async with open_event_stream(base + "/hop", ALLOWED) as stream:
        assert (await anext(stream)).name == "endpoint"
        assert stream.url == base + "/events"  # what a relative endpoint is resolved against


async def test_a_private_address_is_refused_before_any_connection(base: str) -> None:
    _Stream.seen.clear()
    with pytest.raises(ZhikuError) as caught:
        async with open_event_stream(base + "/events", FetchPolicy()):
            pass
    assert caught.value.code == "url_private_address" and "ZHIKU_ALLOW_PRIVATE_URLS" in caught.value.message
    assert _Stream.seen == []


@pytest.mark.parametrize(("path", "code"), [("/html", "url_not_event_stream"), ("/fail", "url_http_error")])
async def test_an_answer_that_is_no_event_stream_is_refused(base: str, path: str, code: str) -> None:
    with pytest.raises(ZhikuError) as caught:
        async with open_event_stream(base + path, ALLOWED):
            pass
    assert caught.value.code == code and base + path in caught.value.message


async def test_an_event_over_the_limit_is_refused(base: str) -> None:
    async with open_event_stream(base + "/big", ALLOWED, max_event_bytes=1000) as stream:
        assert (await anext(stream)).data == b"small"
        with pytest.raises(ZhikuError) as caught:
            await anext(stream)
    assert caught.value.code == "url_too_large" and caught.value.detail == {"limit": 1000}


async def test_a_stream_is_read_no_longer_than_its_deadline(base: str) -> None:
    policy = FetchPolicy(allow_private=True, timeout_seconds=5, deadline_seconds=0.5)
    started = time.monotonic()
    ticks = 0
    with pytest.raises(ZhikuError) as caught:
        async with open_event_stream(base + "/forever", policy) as stream:
            async for _event in stream:
                ticks += 1
    assert caught.value.code == "url_timeout" and "0.5 seconds" in caught.value.message
    assert ticks > 2 and time.monotonic() - started < 3
