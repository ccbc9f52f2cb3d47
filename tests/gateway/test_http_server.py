"""The standalone gateway's HTTP serving of relay requests, on raw sockets: keep-alive, pipelining,
``Connection: close``, ``Expect: 100-continue``, trusted proxies, a client that hangs up, graceful
shutdown, and a body over the size limit refused."""

from __future__ import annotations

import asyncio
import collections
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import Admin, GatewayThread, gateway_settings, unique
from zhiku.gateway.http.event_stream import StreamGate

pytestmark = pytest.mark.integration


def request(key: str, body: dict | bytes, *, extra: str = "", version: str = "1.1") -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (f"POST /v1/chat/completions HTTP/{version}\r\nHost: gateway\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n{extra}\r\n").encode() + raw


def chat(model: str, text: str, **fields: object) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **fields}


class Reader:
    """HTTP/1.1 answers off one socket: status, lower-case headers, the body (length or chunked)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            assert self._more(), f"connection closed while waiting for {marker!r}"
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            assert self._more(), "connection closed inside a body"
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        lines = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines[1:])}
        if headers.get("transfer-encoding") == "chunked":
            body = b""
            while size := int(self._until(b"\r\n"), 16):
                body += self._exactly(size)
                assert self._exactly(2) == b"\r\n"
            assert self._until(b"\r\n") == b""
            return status, headers, body
        return status, headers, self._exactly(int(headers.get("content-length", "0")))

    def closed(self) -> bool:
        self.sock.settimeout(5)
        return not self.buffer and not self._more()


@pytest.fixture
def key_and_model(admin: Admin, fakes) -> tuple[str, str]:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    return admin.add_token(), model


def connect(server: GatewayThread) -> tuple[socket.socket, Reader]:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    return sock, Reader(sock)


def test_keep_alive_and_pipelined_requests_are_answered_in_order(gateway_server, key_and_model) -> None:
    key, model = key_and_model
    sock, reader = connect(gateway_server)
    with sock:
        sock.sendall(request(key, chat(model, "one")))
        status, headers, body = reader.answer()
        assert status == 200 and headers["content-type"] == "application/json"
        assert json.loads(body)["choices"][0]["message"]["content"] == "Echo: one"
        # Three more in one write, one of them streamed: each answer whole, in order, on the same connection.
        sock.sendall(request(key, chat(model, "two")) + request(key, chat(model, "three", stream=True))
                     + request(key, chat(model, "four")))
        answers = [reader.answer() for _ in range(3)]
        assert [a[0] for a in answers] == [200, 200, 200]
        assert json.loads(answers[0][2])["choices"][0]["message"]["content"] == "Echo: two"
        events = [line[6:] for line in answers[1][2].decode().split("\n") if line.startswith("data: ")]
        assert events[-1] == "[DONE]" and answers[1][1]["content-type"].startswith("text/event-stream")
        streamed = "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert streamed == "Echo: three"
        assert json.loads(answers[2][2])["choices"][0]["message"]["content"] == "Echo: four"


def test_connection_close_and_http_1_0_close_after_the_answer(gateway_server, key_and_model) -> None:
    key, model = key_and_model
    for extra, version in (("Connection: close\r\n", "1.1"), ("", "1.0")):
        sock, reader = connect(gateway_server)
        with sock:
            sock.sendall(request(key, chat(model, "bye"), extra=extra, version=version))
            status, headers, _ = reader.answer()
            assert status == 200 and headers["connection"] == "close"
            assert reader.closed()


def test_expect_100_continue_is_answered_before_the_body(gateway_server, key_and_model) -> None:
    key, model = key_and_model
    whole = request(key, chat(model, "later"), extra="Expect: 100-continue\r\n")
    head, _, body = whole.partition(b"\r\n\r\n")
    sock, reader = connect(gateway_server)
    with sock:
        sock.sendall(head + b"\r\n\r\n")
        assert reader._until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue"
        sock.sendall(body)
        status, _, answer = reader.answer()
        assert status == 200 and json.loads(answer)["choices"][0]["message"]["content"] == "Echo: later"


def test_a_trusted_proxy_forwards_the_client_address_for_subnet_checks(gateway_server, admin, fakes) -> None:
    model = unique("m")
    admin.add_channel(fakes[0], [model])
    key = admin.add_token(subnets=["10.0.0.0/8"])
    sock, reader = connect(gateway_server)
    with sock:
        sock.sendall(request(key, chat(model, "from the proxy")))  # the peer itself, 127.0.0.1: refused
        status, _, body = reader.answer()
        assert status == 403 and json.loads(body)["error"]["code"] == "ip_not_allowed"
        # 127.0.0.1 is a trusted proxy by default (uvicorn's FORWARDED_ALLOW_IPS), as on the ASGI path.
        sock.sendall(request(key, chat(model, "from the proxy"), extra="X-Forwarded-For: 10.1.2.3\r\n"))
        status, _, body = reader.answer()
        assert status == 200, body


@pytest.fixture(scope="module")
def small_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayThread]:
    tmp: Path = tmp_path_factory.mktemp("gw-small")
    settings = gateway_settings(tmp, f"sqlite:///{tmp / 'gateway.db'}", gateway_max_request_bytes=4096)
    running = GatewayThread(settings).start()
    yield running
    running.stop()


def test_a_body_over_the_limit_is_a_413_and_the_gateway_goes_on(small_gateway, fakes) -> None:
    admin = Admin(small_gateway.base_url)
    try:
        model = unique("m")
        admin.add_channel(fakes[0], [model])
        key = admin.add_token()
    finally:
        admin.close()
    sock, reader = connect(small_gateway)
    with sock:
        sock.sendall(request(key, chat(model, "x" * 10_000)))
        status, headers, body = reader.answer()
        error = json.loads(body)["error"]
        assert status == 413 and error["code"] == "request_too_large" and "4096" in error["message"]
        assert headers["connection"] == "close" and reader.closed()
    assert fakes[0].requests == []  # nothing reached the upstream
    sock, reader = connect(small_gateway)
    with sock:
        sock.sendall(request(key, chat(model, "small")))
        status, _, body = reader.answer()
        assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "Echo: small"


def test_a_client_that_hangs_up_mid_stream_stops_the_upstream(gateway_server, key_and_model, fakes) -> None:
    key, model = key_and_model
    fakes[0].reply("word " * 200, chunk_size=5, chunk_delay_s=0.1)
    sock, reader = connect(gateway_server)
    with sock:
        sock.sendall(request(key, chat(model, "talk", stream=True)))
        reader._until(b"\r\n\r\n")  # the head …
        reader._until(b"\n\n")  # … and the first event, then hang up
    deadline = time.monotonic() + 15
    while fakes[0].disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fakes[0].disconnects == 1  # long before the 20 s the whole answer would take


def test_graceful_shutdown_finishes_the_answers_in_flight(tmp_path: Path, fakes) -> None:
    settings = gateway_settings(tmp_path, f"sqlite:///{tmp_path / 'gateway.db'}")
    server = GatewayThread(settings).start()
    try:
        admin = Admin(server.base_url)
        try:
            model = unique("m")
            admin.add_channel(fakes[0], [model])
            key = admin.add_token()
        finally:
            admin.close()
        fakes[0].slow(1.0, "the whole answer")
        fakes[0].reply("a streamed answer", chunk_size=2, chunk_delay_s=0.1)
        whole_sock, whole = connect(server)
        stream_sock, streamed = connect(server)
        with whole_sock, stream_sock:
            whole_sock.sendall(request(key, chat(model, "one")))
            deadline = time.monotonic() + 15
            while len(fakes[0].requests) < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            stream_sock.sendall(request(key, chat(model, "two", stream=True)))
            streamed._until(b"\r\n\r\n")  # the stream has begun
            stopping = threading.Thread(target=server.stop)
            stopping.start()
            time.sleep(0.1)
            with pytest.raises(OSError):  # no new connections once it is stopping
                socket.create_connection(("127.0.0.1", server.port), timeout=5).close()
            status, _, body = whole.answer()
            assert status == 200 and json.loads(body)["choices"][0]["message"]["content"] == "the whole answer"
            chunked = b""  # the stream, whole: chunk by chunk to the last
            while size := int(streamed._until(b"\r\n"), 16):
                chunked += streamed._exactly(size)
                assert streamed._exactly(2) == b"\r\n"
            assert streamed._until(b"\r\n") == b""
            events = [line[6:] for line in chunked.decode().split("\n") if line.startswith("data: ")]
            assert events[-1] == "[DONE]"
            assert "".join(json.loads(e)["choices"][0]["delta"].get("content", "") for e in events[:-1]
                           if json.loads(e)["choices"]) == "a streamed answer"
            assert whole.closed() and streamed.closed()  # then the connections are closed
            stopping.join(30)
            assert not stopping.is_alive()
    finally:
        server.stop()


def test_the_stream_gate_lets_streams_on_a_few_per_loop_turn_and_skips_the_departed() -> None:
    """After the delay one waiter goes per loop turn (more when many wait); a cancelled one is skipped."""
    async def scenario(count: int, cancel: int | None) -> dict[int, int]:
        loop = asyncio.get_running_loop()
        gate = StreamGate(0.001)
        turn = 0
        ticking = True

        def tick() -> None:  # counts loop turns
            nonlocal turn
            turn += 1
            if ticking:
                loop.call_soon(tick)

        tick()
        released: dict[int, int] = {}  # waiter → the loop turn it was let on
        waiters = [gate.wait() for _ in range(count)]
        for index, waiter in enumerate(waiters):
            waiter.add_done_callback(lambda w, i=index: None if w.cancelled() else released.setdefault(i, turn))
        if cancel is not None:
            waiters[cancel].cancel()  # its client left
        await asyncio.gather(*waiters, return_exceptions=True)
        ticking = False
        return released

    released = asyncio.run(scenario(3, cancel=1))
    assert sorted(released) == [0, 2]  # both live waiters let on, the cancelled one skipped
    assert released[0] < released[2]  # … in order, on different turns

    released = asyncio.run(scenario(24, cancel=None))
    per_turn = sorted(collections.Counter(released.values()).values())
    assert len(released) == 24
    assert per_turn[-1] > 1  # with 24 waiting, a few go per turn
    assert len(per_turn) > 2  # … but not all at once
