"""A fake OpenAI-compatible model server: a real HTTP server on loopback for tests and demos.

One instance serves ``POST /v1/chat/completions`` (JSON and SSE), ``POST /v1/completions``,
``POST /v1/embeddings``, ``POST /v1/rerank`` and ``GET /v1/models`` on ``127.0.0.1`` with an ephemeral port::

    with fake_upstream() as fake:
        fake.reply("Paris.")            # the next request answers "Paris."
        fake.fail(429, headers={"Retry-After": "7"})
        fake.tool_call("lookup", {"q": "x"})  # the next request answers with a call of tool "lookup"
        ...                              # point a client at fake.base_url
        assert fake.requests[0].json["model"] == "gpt-x"

Scripting: each queued :class:`Script` applies to exactly one request to a POST endpoint, in
order; when the queue is empty the default script answers (``set_default`` changes it). A
script without ``content`` answers :func:`default_answer`, which echoes the last user message so
tests can assert that the prompt reached the model. A script with ``tool_calls`` answers with those
calls in OpenAI's exact shapes (``message.tool_calls`` and finish reason ``tool_calls``; streamed, a
first chunk per call with its index, id and name, then its arguments in pieces); every request is
recorded (``requests``), so tests can assert the tools and tool messages a client sent. Token counts
come from :func:`count_tokens` and vectors from :func:`fake_embedding`, so tests can compute the
expected values.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import itertools
import json
import logging
import math
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

_INCOMPLETE_RESPONSE_LOG = "ASGI callable returned without completing response."


@dataclass(frozen=True)
class Script:
    """How the fake answers one request. The defaults give a normal, prompt answer."""

    content: str | None = None  # None: default_answer(messages)
    finish_reason: str = "stop"
    status: int = 200  # not 200, or an error_body: answer ``error_body`` with ``status`` and ``headers``
    error_body: Any = None  # dict → JSON, str → text; None → an OpenAI-style error for ``status``
    headers: dict[str, str] = field(default_factory=dict)
    latency_s: float = 0.0  # wait before answering
    chunk_delay_s: float = 0.0  # wait between streamed chunks
    chunk_size: int = 4  # characters of content per streamed chunk
    hang_s: float = 0.0  # > 0: never answer; after hang_s (or on stop) give up with a 504
    malformed: bool = False  # 200 whose body (or SSE data) is not valid JSON
    cut_after_chunks: int | None = None  # stream the role chunk and N content chunks, then cut
    drop_connection: bool = True  # how a cut ends: drop the TCP connection, or end the body cleanly
    omit_usage: bool = False
    # Calls the answer makes, each {"name", "arguments" (JSON text), "id"?}; content then defaults to none.
    tool_calls: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-cased names
    json: Any  # the parsed body; None when empty or not JSON
    body: bytes


def count_tokens(text: str) -> int:
    """The fake's token count: one token per four characters, rounded up."""
    return math.ceil(len(text) / 4)


def message_text(content: Any) -> str:
    """Text of a chat message's ``content``: a string, or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def default_answer(messages: list[dict[str, Any]]) -> str:
    """The answer when no content is scripted: echoes the last user message."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    return "Echo: " + (message_text(users[-1].get("content")) if users else "")


def fake_embedding(text: str, dim: int = 16) -> list[float]:
    """A deterministic unit vector derived from a hash of ``text``."""
    raw = b"".join(hashlib.sha256(f"{i}:{text}".encode()).digest() for i in range(math.ceil(dim / 8)))
    values = [v / 2**31 - 1.0 for v in struct.unpack(f">{dim}I", raw[: dim * 4])]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def openai_error(status: int, message: str | None = None) -> dict[str, Any]:
    """An error body in OpenAI's shape, with a code that matches ``status``."""
    kind, code = {
        400: ("invalid_request_error", None),
        401: ("invalid_request_error", "invalid_api_key"),
        404: ("invalid_request_error", "model_not_found"),
        429: ("rate_limit_error", "rate_limit_exceeded"),
    }.get(status, ("server_error", "server_error"))
    text = message or f"fake upstream error {status}"
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


class _IncompleteResponseFilter(logging.Filter):
    """Hide uvicorn's complaint about the stream we cut on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _INCOMPLETE_RESPONSE_LOG


class FakeUpstream:
    def __init__(self, *, api_key: str | None = None, embedding_dim: int = 16,
                 models: tuple[str, ...] = ("fake-chat", "fake-embedding")) -> None:
        self.api_key = api_key
        self.embedding_dim = embedding_dim
        self.models = models
        self.default = Script()
        self._queue: deque[Script] = deque()
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._log_filter = _IncompleteResponseFilter()
        self.port = 0
        self.disconnects = 0  # requests whose client went away before the response was complete

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeUpstream:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        # log_config=None: leave the process's logging configuration alone.
        config = uvicorn.Config(self, interface="asgi3", lifespan="off", http="h11", ws="none",
                                loop="asyncio", log_config=None, access_log=False,
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._stopping.clear()
        logging.getLogger("uvicorn.error").addFilter(self._log_filter)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]},
                                        name=f"fake-upstream-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is None or self._thread is None:
            return
        self._stopping.set()  # wakes hanging requests so shutdown is quick
        self._server.should_exit = True
        self._thread.join(timeout=10)
        logging.getLogger("uvicorn.error").removeFilter(self._log_filter)
        self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- scripting -------------------------------------------------------------------------

    def enqueue(self, script: Script) -> FakeUpstream:
        with self._lock:
            self._queue.append(script)
        return self

    def _queue_one(self, **fields: Any) -> FakeUpstream:
        # A queued script keeps the default's pacing and usage settings, never its failure mode.
        base = dataclasses.replace(self.default, content=None, status=200, error_body=None, headers={},
                                   hang_s=0.0, malformed=False, cut_after_chunks=None, tool_calls=(),
                                   finish_reason="stop")
        return self.enqueue(dataclasses.replace(base, **fields))

    def reply(self, content: str, **fields: Any) -> FakeUpstream:
        """Answer the next request with ``content``; ``fields`` are other :class:`Script` fields."""
        return self._queue_one(content=content, **fields)

    def fail(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> FakeUpstream:
        return self._queue_one(status=status, error_body=body, headers=dict(headers or {}))

    def tool_call(self, name: str, arguments: Any = None, *, call_id: str | None = None,
                  **fields: Any) -> FakeUpstream:
        """Answer the next request with one call of tool ``name``; ``arguments`` is JSON text or a value
        to encode. For several calls in one answer use ``tool_calls``."""
        return self.tool_calls([{"name": name, "arguments": arguments, "id": call_id}], **fields)

    def tool_calls(self, calls: list[dict[str, Any]], **fields: Any) -> FakeUpstream:
        """Answer the next request with these calls ({"name", "arguments", "id"?} each)."""
        scripted = []
        for call in calls:
            arguments = call.get("arguments")
            scripted.append({"id": call.get("id") or f"call_fake{next(self._ids)}", "name": call["name"],
                             "arguments": arguments if isinstance(arguments, str)
                             else json.dumps({} if arguments is None else arguments)})
        fields.setdefault("finish_reason", "tool_calls")
        return self._queue_one(tool_calls=tuple(scripted), **fields)

    def hang(self, seconds: float = 60.0) -> FakeUpstream:
        return self._queue_one(hang_s=seconds)

    def malformed(self) -> FakeUpstream:
        return self._queue_one(malformed=True)

    def cut_stream(self, after_chunks: int = 1, *, drop_connection: bool = True,
                   content: str | None = None) -> FakeUpstream:
        return self._queue_one(cut_after_chunks=after_chunks, drop_connection=drop_connection,
                               content=content)

    def slow(self, latency_s: float, content: str | None = None) -> FakeUpstream:
        return self._queue_one(latency_s=latency_s, content=content)

    def omit_usage(self, content: str | None = None) -> FakeUpstream:
        return self._queue_one(omit_usage=True, content=content)

    def set_default(self, **fields: Any) -> FakeUpstream:
        """Change the persistent behaviour, e.g. ``set_default(latency_s=0.02, chunk_size=2)``."""
        self.default = dataclasses.replace(self.default, **fields)
        return self

    def reset(self) -> None:
        """Forget scripts, recorded requests and default changes (for a shared server)."""
        with self._lock:
            self._queue.clear()
            self._requests.clear()
            self.disconnects = 0
        self.default = Script()

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self._requests[-1]

    def _next_script(self) -> Script:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    # ---- the ASGI app ----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        with self._lock:
            self._requests.append(RecordedRequest(request.method, request.url.path,
                                                  {k.lower(): v for k, v in request.headers.items()},
                                                  payload, body))
        completed = False

        async def tracked_send(message: Any) -> None:
            nonlocal completed
            if message.get("type") == "http.response.body" and not message.get("more_body", False):
                completed = True  # before the real send wakes the watcher below
            await send(message)

        async def watch_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            if not completed:
                with self._lock:
                    self.disconnects += 1

        watcher = asyncio.ensure_future(watch_disconnect())
        try:
            response = await self._respond(request.method, request.url.path, request.headers, payload,
                                           body, tracked_send)
            if response is not None:
                await response(scope, receive, tracked_send)
        finally:
            watcher.cancel()

    async def _respond(self, method: str, path: str, headers: Any, payload: Any, body: bytes,
                       send: Send) -> Response | None:
        if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
            return JSONResponse(openai_error(401, "Incorrect API key provided."), status_code=401)
        if method == "GET" and path == "/v1/models":
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
            return JSONResponse({"object": "list", "data": data})
        routes = {"/v1/chat/completions": self._chat, "/v1/completions": self._legacy,
                  "/v1/embeddings": self._embeddings, "/v1/rerank": self._rerank}
        if path not in routes:
            return JSONResponse(openai_error(404, f"no route {method} {path}"), status_code=404)
        if method != "POST":
            return JSONResponse(openai_error(405, "method not allowed"), status_code=405)
        if not isinstance(payload, dict) or not payload.get("model"):
            return JSONResponse(openai_error(400, "body must be JSON with a model"), status_code=400)

        script = self._next_script()
        refused = await self._scripted_refusal(script, openai_error, hung=(504, "fake upstream hung"))
        if refused is not None:
            return refused
        return await routes[path](payload, script, send)

    async def _scripted_refusal(self, script: Script, error_body: Any, *, hung: tuple[int, str]) -> Response | None:
        """What every wire format does alike with a script: hang, wait, or answer with an error.

        ``error_body(status, message=None)`` builds the format's own error body. None: answer normally.
        """
        if script.hang_s > 0:
            deadline = time.monotonic() + script.hang_s
            while not self._stopping.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return JSONResponse(error_body(*hung), status_code=hung[0])
        if script.latency_s > 0:
            await asyncio.sleep(script.latency_s)
        if script.status != 200 or script.error_body is not None:
            error = error_body(script.status) if script.error_body is None else script.error_body
            if isinstance(error, str):
                return Response(error, status_code=script.status, headers=script.headers)
            return JSONResponse(error, status_code=script.status, headers=script.headers)
        return None

    def _usage(self, prompt: str, completion: str) -> dict[str, int]:
        prompt_tokens, completion_tokens = count_tokens(prompt), count_tokens(completion)
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    async def _chat(self, payload: dict[str, Any], script: Script, send: Send) -> Response | None:
        messages = payload.get("messages") or []
        prompt = "".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
        calls = script.tool_calls
        text = (default_answer(messages) if not calls else "") if script.content is None else script.content
        usage = None if script.omit_usage else self._usage(prompt, text + "".join(c["arguments"] for c in calls))
        head = {"id": f"chatcmpl-fake-{next(self._ids)}", "object": "chat.completion",
                "created": int(time.time()), "model": payload["model"], "system_fingerprint": "fp_fake"}
        if payload.get("stream"):
            with_usage = bool((payload.get("stream_options") or {}).get("include_usage"))
            chunk = {**head, "object": "chat.completion.chunk"}
            if with_usage:
                chunk["usage"] = None  # OpenAI sends a null usage on every chunk but the last

            def choice(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
                return {**chunk, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                              "finish_reason": finish_reason}]}

            events = [choice({"role": "assistant", "content": "" if text or not calls else None}, None)]
            events += [choice({"content": piece}, None) for piece in _pieces(text, script.chunk_size)]
            for index, call in enumerate(calls):
                start = {"index": index, "id": call["id"], "type": "function",
                         "function": {"name": call["name"], "arguments": ""}}
                if index == 0 and not text:  # OpenAI starts the first call in the role chunk
                    events[0]["choices"][0]["delta"].update(tool_calls=[start], refusal=None)
                else:
                    events.append(choice({"tool_calls": [start]}, None))
                events += [choice({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None)
                           for piece in _pieces(call["arguments"], script.chunk_size)]
            events.append(choice({}, script.finish_reason))
            if with_usage and usage is not None:
                events.append({**chunk, "choices": [], "usage": usage})
            await self._stream(events, script, send)
            return None
        if script.malformed:
            return Response('{"id": "chatcmpl-broken", "choices": [', media_type="application/json")
        message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
        if calls:
            message["tool_calls"] = [{"id": c["id"], "type": "function",
                                      "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]
        result = {**head, "choices": [{"index": 0, "message": message, "logprobs": None,
                                       "finish_reason": script.finish_reason}]}
        if usage is not None:
            result["usage"] = usage
        return JSONResponse(result)

    async def _legacy(self, payload: dict[str, Any], script: Script, send: Send) -> Response | None:
        prompt = payload.get("prompt") or ""
        prompt = prompt if isinstance(prompt, str) else "".join(str(p) for p in prompt)
        text = "Echo: " + prompt if script.content is None else script.content
        usage = None if script.omit_usage else self._usage(prompt, text)
        head = {"id": f"cmpl-fake-{next(self._ids)}", "object": "text_completion",
                "created": int(time.time()), "model": payload["model"]}

        def choice(piece: str, finish_reason: str | None) -> dict[str, Any]:
            return {**head, "choices": [{"text": piece, "index": 0, "logprobs": None,
                                         "finish_reason": finish_reason}]}

        if payload.get("stream"):
            events = [choice(piece, None) for piece in _pieces(text, script.chunk_size)]
            events.append(choice("", script.finish_reason))
            if (payload.get("stream_options") or {}).get("include_usage") and usage is not None:
                events.append({**head, "choices": [], "usage": usage})
            await self._stream(events, script, send)
            return None
        if script.malformed:
            return Response('{"id": "cmpl-broken", "choices": [', media_type="application/json")
        result = choice(text, script.finish_reason)
        if usage is not None:
            result["usage"] = usage
        return JSONResponse(result)

    async def _embeddings(self, payload: dict[str, Any], script: Script, send: Send) -> Response:
        if script.malformed:
            return Response('{"object": "list", "data": [', media_type="application/json")
        inputs = payload.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or []]
        dim = int(payload.get("dimensions") or self.embedding_dim)
        as_base64 = payload.get("encoding_format") == "base64"
        data = []
        for index, text in enumerate(texts):
            vector: Any = fake_embedding(text, dim)
            if as_base64:
                vector = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        result: dict[str, Any] = {"object": "list", "data": data, "model": payload["model"]}
        if not script.omit_usage:
            tokens = sum(count_tokens(t) for t in texts)
            result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse(result)

    async def _rerank(self, payload: dict[str, Any], script: Script, send: Send) -> Response:
        """Jina/Cohere-style rerank: a document's score is the share of query words it contains."""
        if script.malformed:
            return Response('{"results": [', media_type="application/json")
        query_words = set(str(payload.get("query") or "").lower().split())
        documents = [d.get("text", "") if isinstance(d, dict) else str(d) for d in payload.get("documents") or []]
        scores = [len(query_words & set(d.lower().split())) / (len(query_words) or 1) for d in documents]
        order = sorted(range(len(documents)), key=lambda i: (-scores[i], i))[: payload.get("top_n") or None]
        result: dict[str, Any] = {"model": payload["model"], "results": [
            {"index": i, "relevance_score": scores[i]} for i in order]}
        if not script.omit_usage:
            tokens = count_tokens(str(payload.get("query") or "") + "".join(documents))
            result["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse(result)

    async def _stream(self, events: list[dict[str, Any]], script: Script, send: Send) -> None:
        """Send SSE by hand: a deliberate cut must be able to leave the response unfinished."""
        lines = [f"data: {json.dumps(event)}\n\n" for event in events]
        if script.malformed:
            lines.insert(1, "data: {\"choices\": [\n\n")
        cut = script.cut_after_chunks is not None
        lines = lines[: 1 + script.cut_after_chunks] if cut else lines + ["data: [DONE]\n\n"]
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream; charset=utf-8"),
                                (b"cache-control", b"no-cache")]})
        for line in lines:
            await send({"type": "http.response.body", "body": line.encode(), "more_body": True})
            if script.chunk_delay_s > 0:
                await asyncio.sleep(script.chunk_delay_s)
        if not (cut and script.drop_connection):
            # Returning without this message makes uvicorn close the connection mid-body.
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def _pieces(text: str, size: int) -> list[str]:
    size = max(1, size)
    return [text[i: i + size] for i in range(0, len(text), size)]


@contextlib.contextmanager
def fake_upstream(**options: Any) -> Iterator[FakeUpstream]:
    """A started :class:`FakeUpstream`, stopped on exit; ``options`` go to its constructor."""
    with FakeUpstream(**options) as fake:
        yield fake
