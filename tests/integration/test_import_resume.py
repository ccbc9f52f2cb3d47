"""Killing a worker mid-import and starting another finishes the import: no duplicate, no missing chunk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import cli_env
from zhiku.knowledge.chunker import split_text

pytestmark = pytest.mark.integration

PARAGRAPH = ("Section {i}. The harbour master logs every ship that enters port number {i}, with its cargo, its crew "
             "and the hour of arrival. Pilots guide the larger vessels past the sandbanks at the river mouth. ")


async def _state(url: str) -> dict:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            if (await conn.execute(text("SELECT to_regclass('collections')"))).scalar() is None:
                return {}  # the subprocess has not migrated the new database yet
            col = (await conn.execute(text(
                "SELECT id, status, chunk_count, indexed_count FROM collections ORDER BY id LIMIT 1"))).mappings().first()
            if col is None:
                return {}
            stats = (await conn.execute(text(
                "SELECT count(*) AS chunks, count(DISTINCT chunk_index) AS distinct_idx, "
                "min(chunk_index) AS lo, max(chunk_index) AS hi, sum(embedded) AS embedded FROM chunks "
                "WHERE collection_id = :c"), {"c": col["id"]})).mappings().one()
            vectors = (await conn.execute(text(
                "SELECT count(*) AS n, count(DISTINCT (chunk_id, part)) AS distinct_parts, "
                "count(DISTINCT chunk_id) AS chunks FROM chunk_vectors v JOIN chunks c ON c.id = v.chunk_id "
                "WHERE c.collection_id = :c"), {"c": col["id"]})).mappings().one()
            jobs = (await conn.execute(text("SELECT count(*) FROM jobs"))).scalar_one()
            return {**dict(col), **dict(stats), "vectors": dict(vectors), "jobs": jobs}
    finally:
        await engine.dispose()


def state(url: str) -> dict:
    return asyncio.run(_state(url))


def test_kill_mid_import_then_resume(fresh_db: str, tmp_path: Path) -> None:
    text_body = "\n\n".join(PARAGRAPH.format(i=i) for i in range(120))
    doc = tmp_path / "harbour.txt"
    doc.write_text(text_body)
    expected_chunks = len(split_text(text_body, chunk_size=1000, overlap_ratio=0.2, markdown=False))
    env = cli_env(fresh_db, tmp_path / "data", ZHIKU_EMBED_BATCH_SIZE="2", ZHIKU_JOB_LEASE_SECONDS="2",
                  ZHIKU_WORKER_POLL_SECONDS="0.2")

    importer = subprocess.Popen([sys.executable, "-m", "zhiku", "import", str(doc), "--dataset", "harbour"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    killed_at = None
    while time.monotonic() < deadline:
        s = state(fresh_db)
        if s and 0 < (s["indexed_count"] or 0) < s["chunk_count"]:
            importer.send_signal(signal.SIGKILL)
            killed_at = s["indexed_count"]
            break
        assert importer.poll() is None, "the import finished before it could be interrupted"
        time.sleep(0.05)
    importer.wait(timeout=30)
    assert killed_at is not None, "never saw a partly indexed collection"
    assert state(fresh_db)["status"] == "indexing"

    worker = subprocess.Popen([sys.executable, "-m", "zhiku", "worker"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            s = state(fresh_db)
            # ready, and the dead worker's leftover jobs were taken over (and found nothing to do)
            if s["status"] == "error" or (s["status"] == "ready" and s["jobs"] == 0):
                break
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGINT)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(worker.pid, signal.SIGKILL)

    s = state(fresh_db)
    assert s["status"] == "ready", s
    assert s["chunk_count"] == s["chunks"] == s["distinct_idx"] == expected_chunks
    assert (s["lo"], s["hi"]) == (0, expected_chunks - 1)
    assert s["embedded"] == expected_chunks and s["indexed_count"] == expected_chunks
    assert s["vectors"]["chunks"] == expected_chunks  # every chunk has its vectors
    assert s["vectors"]["n"] == s["vectors"]["distinct_parts"]  # and none twice
    assert s["jobs"] == 0
