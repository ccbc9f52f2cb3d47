"""Load benchmark: chat, search and a big import at once against one `zhiku serve` on the embedded default.

    .venv/bin/python bench/load.py [--seconds 180] [--chat 20] [--search 5] [--files 200]

One `zhiku serve` subprocess (embedded PostgreSQL, bundled embedder, the fake model upstream as its chat
model) is loaded over loopback in two phases of ``--seconds`` each:

1. ``--chat`` chat clients (the app chat API, whole answers), ``--search`` search-test clients, and one
   import of ``--files`` SciFact abstracts (uploads, then waiting until every collection is ready);
2. the same, with 3 maximal questions a second mixed in: half exactly at the question limit (they must
   be answered, or, while the long-question lane's queue is full, refused at once with 503
   ``long_questions_busy`` and ``Retry-After``), half one character over it (they must get 413
   ``query_too_long``).

It prints p50/p99 of chat and search per phase, every error (anything but a 200 and the intended 413s is
an error), the database's peak connections (open and busy) sampled from ``pg_stat_activity``, and the
server's resident memory at the start and end. Chat answers come from the fake upstream, so chat
latency is the platform's own: search, prompt assembly, the gateway, storing the turn.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zhiku.retrieval.settings import MAX_QUERY_CHARS  # noqa: E402
from zhiku.testing.fake_upstream import FakeUpstream  # noqa: E402
from zhiku.testing.server import free_port  # noqa: E402

EVAL = ROOT.parent / "shared" / "data" / "eval" / "scifact"
PASSWORD = "bench-load-password"
SERVER_LOG = Path(tempfile.gettempdir()) / "zhiku-load-serve.log"
HANZI = "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天"


@dataclass
class Phase:
    name: str
    chat: list[float] = field(default_factory=list)
    search: list[float] = field(default_factory=list)
    maximal_answered: int = 0
    maximal: list[float] = field(default_factory=list)
    refused_413: int = 0
    shed_503: int = 0
    shed: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    import_seconds: float | None = None
    peak_open: int = 0
    peak_busy: int = 0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0

    def error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def corpus(n: int) -> list[dict]:
    docs = []
    with (EVAL / "corpus.jsonl").open() as f:
        for line in f:
            docs.append(json.loads(line))
            if len(docs) >= n:
                break
    return docs


def questions() -> list[str]:
    with (EVAL / "queries-train.jsonl").open() as f:
        return [json.loads(line)["text"] for line in f][:500]


class Server:
    """`zhiku serve` on a fresh data dir and its own embedded PostgreSQL."""

    def __init__(self, data: Path, model_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIKU_")
               and k not in ("PG_URL", "OPENAI_BASE_URL", "CHAT_API_KEY", "DEFAULT_ROOT_PSW")}
        env.update(ZHIKU_DATA_DIR=str(data), DEFAULT_ROOT_PSW=PASSWORD, ZHIKU_LOG_LEVEL="warning",
                   OPENAI_BASE_URL=model_url, CHAT_API_KEY="sk-fake", ZHIKU_CHAT_MODEL="fake-chat")
        self.pg_dir = data / "pg"
        self.log = SERVER_LOG.open("w")  # outside the run's temporary folder, so it outlives the run
        self.proc = subprocess.Popen([sys.executable, "-m", "zhiku", "serve", "--port", str(self.port)],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"zhiku serve exited with {self.proc.returncode}; see {self.log.name}")
            try:
                if httpx.get(self.base + "/api/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise SystemExit("zhiku serve did not become healthy in 3 minutes")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


async def sample_database(server: Server, phase: Phase, stop: asyncio.Event) -> None:
    """Peak connections of the server's pool, open and busy, from PostgreSQL's own view."""
    import asyncpg

    sockets = sorted(server.pg_dir.rglob(".s.PGSQL.*"))
    sockets = [s for s in sockets if not s.name.endswith(".lock")]
    if not sockets:
        phase.error("no PostgreSQL socket found to sample the pool")
        return
    socket = sockets[0]
    conn = await asyncpg.connect(host=str(socket.parent), port=int(socket.name.rsplit(".", 1)[1]),
                                 user="postgres", database="postgres")
    own = conn.get_server_pid()
    try:
        while not stop.is_set():
            row = await conn.fetchrow(
                "SELECT count(*) AS open, count(*) FILTER (WHERE state <> 'idle') AS busy FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> $1", own)
            phase.peak_open = max(phase.peak_open, row["open"])
            phase.peak_busy = max(phase.peak_busy, row["busy"])
            await asyncio.sleep(0.1)
    finally:
        await conn.close()


async def prepare(http: httpx.AsyncClient, docs: list[dict]) -> tuple[str, int, int]:
    r = await http.post("/api/auth/login", json={"username": "root", "password": PASSWORD})
    r.raise_for_status()
    http.headers["Authorization"] = f"Bearer {r.json()['token']}"
    r = await http.post("/api/datasets", json={"name": "load-search"})
    r.raise_for_status()
    search_id = r.json()["id"]
    text = "\n\n".join(f"# {d['title']}\n\n{d['text']}" for d in docs)
    r = await http.post(f"/api/datasets/{search_id}/collections/text", json={"name": "scifact.md", "text": text})
    r.raise_for_status()
    await wait_ready(http, [r.json()["id"]], timeout=600)
    r = await http.post("/api/apps", json={"name": "load", "datasetIds": [search_id]})
    r.raise_for_status()
    r2 = await http.post("/api/keys", json={"name": "load", "appId": r.json()["id"]})
    r2.raise_for_status()
    return r2.json()["key"], search_id, r.json()["id"]


async def wait_ready(http: httpx.AsyncClient, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(ids)
    while waiting:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} collections not ready after {timeout:.0f}s")
        for cid in list(waiting):
            r = await http.get(f"/api/collections/{cid}")
            status = r.json()["status"]
            if status == "ready":
                waiting.discard(cid)
            elif status == "error":
                raise RuntimeError(f"collection {cid} failed: {r.json()['error']}")
        await asyncio.sleep(1.0)


async def run_phase(server: Server, admin: httpx.AsyncClient, key: str, search_id: int, phase: Phase,
                    docs: list[dict], seconds: float, chat_clients: int, search_clients: int,
                    maximal_per_second: float, seed: int) -> None:
    rng = random.Random(seed)
    asked = questions()
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    headers = {"Authorization": f"Bearer {key}"}

    async def chat_client(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                r = await http.post("/api/v1/chat/completions", headers=headers,
                                    json={"messages": [{"role": "user", "content": rng.choice(asked)}]})
            except httpx.HTTPError as exc:
                phase.error(f"chat {type(exc).__name__}")
                continue
            if r.status_code == 200:
                phase.chat.append(time.perf_counter() - started)
            else:
                phase.error(f"chat {r.status_code}")

    async def search_client(http: httpx.AsyncClient) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                r = await http.post(f"/api/datasets/{search_id}/search", json={"text": rng.choice(asked)},
                                    headers={"Authorization": admin.headers["Authorization"]})
            except httpx.HTTPError as exc:
                phase.error(f"search {type(exc).__name__}")
                continue
            if r.status_code == 200:
                phase.search.append(time.perf_counter() - started)
            else:
                phase.error(f"search {r.status_code}")

    async def maximal(http: httpx.AsyncClient) -> None:
        tasks: set[asyncio.Task] = set()
        over = False
        while not stop.is_set():
            over = not over
            size = MAX_QUERY_CHARS + 1 if over else MAX_QUERY_CHARS
            question = "".join(rng.choice(HANZI) for _ in range(size))
            task = asyncio.create_task(one_maximal(http, question, over))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            await asyncio.sleep(1 / maximal_per_second)
        await asyncio.gather(*tasks)

    async def one_maximal(http: httpx.AsyncClient, question: str, over: bool) -> None:
        started = time.perf_counter()
        try:
            r = await http.post("/api/v1/chat/completions", headers=headers,
                                json={"messages": [{"role": "user", "content": question}]})
        except httpx.HTTPError as exc:
            phase.error(f"maximal {type(exc).__name__}")
            return
        took = time.perf_counter() - started
        if over and r.status_code == 413 and r.json()["error"]["code"] == "query_too_long":
            phase.refused_413 += 1
        elif not over and r.status_code == 200:
            phase.maximal_answered += 1
            phase.maximal.append(took)
        elif (not over and r.status_code == 503 and r.json()["error"]["code"] == "long_questions_busy"
              and r.headers.get("retry-after")):
            phase.shed_503 += 1
            phase.shed.append(took)
        else:
            phase.error(f"maximal {'over' if over else 'at'} the limit: {r.status_code}")

    async def importer() -> None:
        started = time.perf_counter()
        r = await admin.post("/api/datasets", json={"name": f"load-import-{phase.name}"})
        r.raise_for_status()
        dataset_id = r.json()["id"]
        ids = []
        for i, doc in enumerate(docs):
            r = await admin.post(f"/api/datasets/{dataset_id}/collections/file",
                                 files={"file": (f"doc{i:03d}.txt", f"{doc['title']}\n\n{doc['text']}".encode())})
            if r.status_code != 201:
                phase.error(f"upload {r.status_code}")
                continue
            ids.append(r.json()["id"])
        try:
            await wait_ready(admin, ids, timeout=seconds * 3)
            phase.import_seconds = time.perf_counter() - started
        except RuntimeError as exc:
            phase.error(f"import: {exc}")

    async with httpx.AsyncClient(base_url=server.base, timeout=120, limits=limits) as http:
        phase.rss_start_mb = rss_mb(server.proc.pid)
        sampler = asyncio.create_task(sample_database(server, phase, stop))
        workers = [asyncio.create_task(chat_client(http)) for _ in range(chat_clients)]
        workers += [asyncio.create_task(search_client(http)) for _ in range(search_clients)]
        if maximal_per_second:
            workers.append(asyncio.create_task(maximal(http)))
        import_task = asyncio.create_task(importer())
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*workers)
        await import_task
        await sampler
        phase.rss_end_mb = rss_mb(server.proc.pid)


def report(phase: Phase, seconds: float) -> None:
    print(f"\n== {phase.name}")
    for name, values in (("chat", phase.chat), ("search", phase.search)):
        print(f"  {name:7s} {len(values):6d} answered ({len(values) / seconds:6.1f}/s)   "
              f"p50 {pct(values, 50) * 1000:7.0f} ms   p99 {pct(values, 99) * 1000:7.0f} ms")
    if phase.maximal_answered or phase.refused_413 or phase.shed_503:
        print(f"  maximal questions: {phase.maximal_answered} answered (p50 {pct(phase.maximal, 50) * 1000:.0f} ms, "
              f"p99 {pct(phase.maximal, 99) * 1000:.0f} ms), {phase.shed_503} refused 503 long_questions_busy "
              f"(p50 {pct(phase.shed, 50) * 1000:.0f} ms), {phase.refused_413} refused 413 (intended)")
    done = f"{phase.import_seconds:.0f} s" if phase.import_seconds is not None else "not finished"
    print(f"  import of the files: {done}")
    print(f"  database connections (peak): {phase.peak_open} open, {phase.peak_busy} busy")
    print(f"  server memory: {phase.rss_start_mb:.0f} MB at start, {phase.rss_end_mb:.0f} MB at end")
    errors = ", ".join(f"{k}: {v}" for k, v in sorted(phase.errors.items())) or "none"
    print(f"  errors: {errors}")


async def main_async(args: argparse.Namespace) -> int:
    docs = corpus(args.files + 300)
    with tempfile.TemporaryDirectory(prefix="zhiku-load-") as tmp, FakeUpstream() as fake:
        fake.set_default(content="The answer, in a few words, from the fake model.")
        server = Server(Path(tmp) / "data", fake.base_url)
        try:
            server.wait_healthy()
            async with httpx.AsyncClient(base_url=server.base, timeout=120) as admin:
                key, search_id, _ = await prepare(admin, docs[args.files:])
                phases = [Phase("phase 1: chat + search + import"),
                          Phase("phase 2: the same + 3 maximal questions/s")]
                for i, phase in enumerate(phases):
                    await run_phase(server, admin, key, search_id, phase, docs[:args.files], args.seconds,
                                    args.chat, args.search, maximal_per_second=3.0 if i else 0.0, seed=i)
                    report(phase, args.seconds)
        finally:
            server.stop()
    failed = sum(sum(p.errors.values()) for p in phases)
    print(f"\nerrors in total: {failed} (the goal: 0); the server's log: {SERVER_LOG}")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--chat", type=int, default=20)
    parser.add_argument("--search", type=int, default=5)
    parser.add_argument("--files", type=int, default=200)
    args = parser.parse_args()
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
