"""The relay's HTTP pieces against raw byte-scripted servers on loopback: the upstream client (framing,
keep-alive, stale connections, failures), stream endings that keep or drop the connection, and the
server side's coalesced writes.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable
from typing import Union

import pytest

from zhiku.gateway.providers.base import closer, post, stream_chunks
from zhiku.gateway.providers.failures import UpstreamFailure
from zhiku.gateway.providers.upstream_http import (
    BadHTTP,
    BodyCut,
    ConnectFailed,
    Disconnected,
    ReadTimeout,
    UpstreamClient,
)

Answer = Union[bytes, Callable[[asyncio.StreamWriter], Awaitable[None]]]


class ScriptedServer:
    """Answers each request (on any connection) with the next scripted bytes, or runs the next action."""

    def __init__(self, *answers: Answer) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat/completions?x=1"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                self.requests.append(head + await reader.readexactly(length))
                answer = self.answers.pop(0)
                if callable(answer):
                    await answer(writer)
                else:
                    writer.write(answer)
                    await writer.drain()
                if writer.is_closing():
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def ok(body: bytes, *headers: str) -> bytes:
    extra = "".join(f"{h}\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() \
        + body


def chunked(*pieces: bytes) -> bytes:
    return b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces) + b"0\r\n\r\n"


def close_now(writer: asyncio.StreamWriter) -> Awaitable[None]:
    writer.close()
    return asyncio.sleep(0)


async def call(client: UpstreamClient, url: str, body: bytes = b'{"a":1}', timeout: float = 5.0):
    return await client.post(url, body, {"Content-Type": "application/json", "Authorization": "Bearer k"},
                             connect_timeout=timeout, read_timeout=timeout)


async def test_content_length_answers_reuse_one_connection() -> None:
    client = UpstreamClient()
    async with ScriptedServer(ok(b'{"n":1}'), ok(b'{"n":2}', "Connection: keep-alive")) as server:
        first = await call(client, server.url)
        assert first.status == 200 and first.headers["content-type"] == "application/json"
        assert await first.read() == b'{"n":1}' and first.at_eof
        first.release()
        second = await call(client, server.url, b"x" * 70_000)
        assert await second.read() == b'{"n":2}'
        second.release()
    assert server.connections == 1
    head = server.requests[0].split(b"\r\n\r\n")[0].decode()
    assert head.startswith("POST /v1/chat/completions?x=1 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}" in head
    assert "Content-Length: 7" in head and "Authorization: Bearer k" in head
    assert server.requests[1].endswith(b"x" * 70_000)
    await client.close()


async def test_chunked_bodies_in_any_split_interim_answers_and_gzip() -> None:
    payload = [b'data: {"x": 1}\n\n', b"data: [DONE]\n\n"]
    wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(*payload)[:-2] + b"X-Trailer: 1\r\n\r\n"

    async def byte_by_byte(writer: asyncio.StreamWriter) -> None:
        for i in range(len(wire)):
            writer.write(wire[i:i + 1])
            await writer.drain()
            await asyncio.sleep(0)

    zipped = gzip.compress(b'{"zipped": true}')
    client = UpstreamClient()
    async with ScriptedServer(byte_by_byte, b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"{}"),
                              ok(zipped, "Content-Encoding: gzip")) as server:
        streamed = await call(client, server.url)
        assert b"".join([c async for c in streamed.iter_chunks()]) == b"".join(payload) and streamed.at_eof
        streamed.release()
        interim = await call(client, server.url)
        assert interim.status == 200 and await interim.read() == b"{}"
        interim.release()
        unzipped = await call(client, server.url)
        assert await unzipped.read() == b'{"zipped": true}'
        unzipped.release()
    assert server.connections == 1
    await client.close()


async def test_answers_until_close_are_read_whole_and_not_pooled() -> None:
    async def until_close(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one, ")
        await writer.drain()
        writer.write(b"part two")
        writer.close()

    client = UpstreamClient()
    async with ScriptedServer(until_close, ok(b"again")) as server:
        response = await call(client, server.url)
        assert await response.read() == b"part one, part two"
        response.release()
        again = await call(client, server.url)
        assert await again.read() == b"again"
        again.release()
    assert server.connections == 2
    await client.close()


async def test_a_pooled_connection_closed_by_the_server_is_retried_once_on_a_new_one() -> None:
    client = UpstreamClient()
    async with ScriptedServer(ok(b"first"), close_now, ok(b"second")) as server:
        first = await call(client, server.url)
        assert await first.read() == b"first"
        first.release()
        second = await call(client, server.url)  # the pooled connection dies with this request: retried
        assert await second.read() == b"second"
        second.release()
    assert server.connections == 2 and len(server.requests) == 3
    await client.close()


async def test_failures_are_classified() -> None:
    async def cut(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()
        writer.close()

    async def silent(writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)

    client = UpstreamClient()
    async with ScriptedServer(cut, close_now, b"SSH-2.0-OpenSSH\r\n\r\n", silent) as server:
        response = await call(client, server.url)
        with pytest.raises(BodyCut):
            await response.read()
        with pytest.raises(Disconnected):  # a fresh connection closed before any answer: not retried
            await call(client, server.url)
        with pytest.raises(BadHTTP, match="not an HTTP answer"):
            await call(client, server.url)
        with pytest.raises(ReadTimeout):
            await call(client, server.url, timeout=0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    with pytest.raises(ConnectFailed, match="connection refused") as refused:
        await call(client, f"http://127.0.0.1:{free}/v1/x")
    assert refused.value.refused
    with pytest.raises(ConnectFailed, match="line break"):
        await client.post(f"http://127.0.0.1:{free}/", b"", {"Authorization": "Bearer k\r\nX-Evil: 1"},
                          connect_timeout=1, read_timeout=1)
    await client.close()


async def test_malformed_framing_and_huge_headers_are_bad_http() -> None:
    huge = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 1000) for i in range(80)) + \
        b"Content-Length: 2\r\n\r\n{}"
    bad_chunk = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"
    client = UpstreamClient()
    async with ScriptedServer(huge, bad_chunk, ok(b"fine")) as server:
        with pytest.raises(BadHTTP, match="headers are too large"):
            await call(client, server.url)
        response = await call(client, server.url)
        with pytest.raises(BadHTTP, match="malformed answer body"):
            await response.read()
        response.close()
        last = await call(client, server.url)
        assert await last.read() == b"fine"
        last.release()
    assert server.connections == 3  # neither broken connection went back to the pool
    await client.close()


async def test_stream_endings_keep_or_drop_the_connection() -> None:
    events = [b'data: {"choices":[]}\n\n', b"data: [DONE]\n\n"]
    whole = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n" + \
        chunked(*events)

    async def terminator_later(writer: asyncio.StreamWriter) -> None:
        writer.write(whole[:-5])  # everything but the final "0\r\n\r\n"
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(whole[-5:])
        await writer.drain()

    client = UpstreamClient()
    async with ScriptedServer(whole, terminator_later, whole, ok(b"last")) as server:
        # Read to the end, finished: straight back to the pool.
        response = await post(client, server.url, b"{}", {}, 5, "test", stream=True)
        assert b"".join([c async for c in stream_chunks(response, "test", 5)]) == b"".join(events)
        await closer(response)(True)
        # [DONE] read but the terminator still in flight: drained in the background, then pooled.
        response = await post(client, server.url, b"{}", {}, 5, "test", stream=True)
        chunks = stream_chunks(response, "test", 5)
        assert b"[DONE]" in await chunks.__anext__()
        await chunks.aclose()
        await closer(response)(True)
        for _ in range(200):
            if client._idle and any(client._idle.values()):
                break
            await asyncio.sleep(0.01)
        # Not finished (the client left): closed, so the upstream stops.
        response = await post(client, server.url, b"{}", {}, 5, "test", stream=True)
        await closer(response)(False)
        last = await call(client, server.url)
        assert await last.read() == b"last"
        last.release()
    assert server.connections == 2  # the first two streams shared one connection; the dropped one cost a new one
    await client.close()


async def test_non_2xx_answers_become_classified_failures_with_the_upstream_body() -> None:
    body = b'{"error": {"message": "slow down", "type": "rate_limit"}}'
    answer = (f"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nContent-Length: {len(body)}\r\n\r\n".encode()
              + body)
    client = UpstreamClient()
    async with ScriptedServer(answer) as server:
        with pytest.raises(UpstreamFailure) as failure:
            await post(client, server.url, b"{}", {}, 5, "channel 'x'", stream=False)
    assert failure.value.failure.status == 429 and failure.value.failure.retry_after == 7
    assert "slow down" in failure.value.failure.message
    await client.close()
