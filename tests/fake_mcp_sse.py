"""An MCP server on 127.0.0.1 that speaks only MCP's older HTTP+SSE transport (protocol 2024-11-05), beside
the streamable-HTTP one in tests/integration/test_workflow_tools.py and with the same tools (``add``,
``shout``) and token (``Bearer mcp-token``).

``GET /sse`` opens the event stream: its first event, ``endpoint``, names ``/messages?session=<id>``; a
POST there is answered 202 and its JSON-RPC response goes out on that stream as a ``message`` event
(keep-alive comments in between). A POST to ``/sse`` itself, which is what a streamable-HTTP client tries
first, is answered ``post_status`` (405, as the SDKs' SSE servers answer it). The knobs on
:class:`SseMcpServer` script the failures the tests need.
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "Bearer mcp-token"


class SseMcpServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.sessions: dict[str, queue.Queue[bytes]] = {}
        self.seen: list[dict[str, Any]] = []  # every request: method, path, message, authorization, accept
        self.reset()

    def reset(self) -> None:
        self.seen.clear()
        self.post_status = 405  # the answer to a POST on the stream URL
        self.endpoint: str | None = "/messages?session={session}"  # None: the stream never names one
        self.first_event = b""  # sent before the endpoint event
        self.stream_type = "text/event-stream"
        self.answers = True  # False: requests are accepted and never answered

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/sse"


def _answer(message: dict[str, Any]) -> dict[str, Any]:
    if message["method"] == "initialize":
        result = {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}},
                  "serverInfo": {"name": "calc-sse", "version": "1"}}
    elif message["method"] == "tools/call":
        name, args = message["params"]["name"], message["params"]["arguments"]
        text = str(args["a"] + args["b"]) if name == "add" else str(args["text"]).upper()
        result = {"content": [{"type": "text", "text": text}]}
    else:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601, "message": "no such method"}}
    return {"jsonrpc": "2.0", "id": message["id"], "result": result}


class _Handler(BaseHTTPRequestHandler):
    server: SseMcpServer

    def _send(self, status: int, body: bytes = b"") -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _note(self, message: Any = None) -> None:
        self.server.seen.append({"method": self.command, "path": self.path, "message": message,
                                 "authorization": self.headers.get("authorization"),
                                 "accept": self.headers.get("accept")})

    def do_GET(self) -> None:
        self._note()
        if urlsplit(self.path).path != "/sse":
            self._send(404)
            return
        if self.headers.get("authorization") != TOKEN:
            self._send(401)
            return
        session = uuid.uuid4().hex
        outbox: queue.Queue[bytes] = queue.Queue()
        self.server.sessions[session] = outbox
        self.send_response(200)
        self.send_header("Content-Type", self.server.stream_type)
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        try:
            self.wfile.write(self.server.first_event)
            if self.server.endpoint is not None:
                self.wfile.write(b"event: endpoint\r\ndata: " +
                                 self.server.endpoint.format(session=session).encode() + b"\r\n\r\n")
            stop = time.monotonic() + 30
            while time.monotonic() < stop:
                try:
                    self.wfile.write(outbox.get(timeout=0.2))
                except queue.Empty:
                    self.wfile.write(b": keep-alive\n\n")  # also how a closed client is noticed
        except OSError:
            pass
        finally:
            self.server.sessions.pop(session, None)

    def do_POST(self) -> None:
        message = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"null")
        self._note(message)
        url = urlsplit(self.path)
        if url.path == "/sse":
            self._send(self.server.post_status, b"Method Not Allowed")
            return
        outbox = self.server.sessions.get(parse_qs(url.query).get("session", [""])[0])
        if url.path != "/messages" or outbox is None:
            self._send(404, b"no such session")
            return
        if self.headers.get("authorization") != TOKEN:
            self._send(401)
            return
        self._send(202, b"Accepted")
        if "id" in message and self.server.answers:
            outbox.put(b"event: message\ndata: " + json.dumps(_answer(message)).encode() + b"\n\n")

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def sse_mcp_server() -> Iterator[SseMcpServer]:
    with SseMcpServer() as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        yield httpd
        httpd.shutdown()
