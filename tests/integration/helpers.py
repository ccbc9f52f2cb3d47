"""Small helpers shared by the integration tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering with ``handler``, for as long as the block runs; yields its
    base URL."""
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}"
        finally:
            httpd.shutdown()


def wait_collection(client: httpx.Client, collection_id: int, timeout: float = 120) -> dict:
    """Poll until the collection is ready or failed; return its last state."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.get(f"/api/collections/{collection_id}")
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] in ("ready", "error"):
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"collection {collection_id} still {body['status']} after {timeout}s: {body}")
        time.sleep(0.2)


def create_dataset(client: httpx.Client, name: str) -> int:
    r = client.post("/api/datasets", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def add_text(client: httpx.Client, dataset_id: int, name: str, text: str) -> dict:
    r = client.post(f"/api/datasets/{dataset_id}/collections/text", json={"name": name, "text": text})
    assert r.status_code == 201, r.text
    return wait_collection(client, r.json()["id"])


def upload(client: httpx.Client, dataset_id: int, filename: str, data: bytes) -> httpx.Response:
    return client.post(f"/api/datasets/{dataset_id}/collections/file", files={"file": (filename, data)})


def sql_rows(url: str, query: str, **params: object) -> list[dict]:
    """Rows of one SQL query against the database at ``url``, as dicts (a short-lived engine of its own)."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> list[dict]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return [dict(r) for r in (await conn.execute(text(query), params)).mappings()]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def push(client: httpx.Client, collection_id: int, items: list[dict], **body: object) -> httpx.Response:
    return client.post(f"/api/collections/{collection_id}/data", json={"data": items, **body})
