"""Gateway overhead: the same requests direct to a fake upstream, through Zhiku's gateway, through LiteLLM.

    .venv/bin/python bench/gateway.py                # latency at concurrency 1/16/64, max req/s
    .venv/bin/python bench/gateway.py --long         # … and Zhiku's RSS over 100k requests
    .venv/bin/python bench/gateway.py --targets direct,zhiku   # without LiteLLM
    .venv/bin/python bench/gateway.py --targets direct,zhiku --build old=/tmp/old-tree   # A/B of two builds

One run starts, all on loopback:

* a fake OpenAI-compatible upstream (a raw asyncio protocol in its own process, answering after a fixed
  latency, 20 ms by default, from precomputed bytes, so it is never the bottleneck);
* ``zhiku gateway serve`` (its own SQLite database in a temp dir; a channel to the upstream and a token
  made with the CLI), one process;
* with ``--build NAME=DIR``, another ``zhiku gateway serve`` from the source tree in DIR (the same
  virtualenv), a target named NAME taking its turns with the others: an A/B of two builds in one run
  (a build given twice shows the run-to-run spread of one build);
* LiteLLM's proxy, ``litellm[proxy]==1.108.7``, installed on first use into ``bench/.venv-litellm``
  (never a project dependency), one worker, no database, a master key, the same upstream.

The load generator is a raw asyncio client (uvloop when installed) over keep-alive connections, one
per concurrent request. Each row runs until ``--requests`` answers or ``--seconds``, whichever comes
first, in ``--slices`` slices (3) in which the targets take turns, each slice after a warm-up. Latency
is the whole non-stream answer; for streams it is the time to the first byte of the body (the first
event). "Added" is the target's percentile minus the direct one.
Max req/s is non-stream at ``--max-concurrency`` connections. Nothing is saved; the table is printed.

A probe process times a small unit of CPU work all along and the report says how much of the run (and
of each concurrency-16 row) the machine's CPUs were stalled: on a shared VM the host at times runs
every CPU at a fraction of its speed for tens of milliseconds, and a p99 depends on how many of those
windows a row happened to catch (see ``bench/README.md``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
LITELLM_VERSION = "1.108.7"  # never 1.107.0: that release was compromised
COMPROMISED_LITELLM = {"1.107.0"}
MODEL = "bench-model"
UPSTREAM_KEY = "sk-bench-upstream"
LITELLM_MASTER_KEY = "sk-bench-litellm-master"
LEVELS = (1, 16, 64)

# ---- the fake upstream (runs in its own process) ----------------------------------------------

_COMPLETION = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the bench."},
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 6, "total_tokens": 18},
}, separators=(",", ":")).encode()


def _chunk(event: dict | str) -> bytes:
    data = event if isinstance(event, str) else json.dumps(event, separators=(",", ":"))
    payload = f"data: {data}\n\n".encode()
    return f"{len(payload):x}\r\n".encode() + payload + b"\r\n"


def _stream_body() -> bytes:
    head = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": MODEL}
    first = {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
    events: list[dict | str] = [{**head, "choices": [first]}]
    for word in ("Hello", " from", " the", " bench."):
        events.append({**head, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
    events.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    usage = {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}
    events.append({**head, "choices": [], "usage": usage})
    events.append("[DONE]")
    return b"".join(_chunk(e) for e in events) + b"0\r\n\r\n"


_JSON_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                  + str(len(_COMPLETION)).encode() + b"\r\nConnection: keep-alive\r\n\r\n" + _COMPLETION)
_STREAM_RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n"
                    b"Cache-Control: no-cache\r\nConnection: keep-alive\r\n\r\n" + _stream_body())
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_STREAM_TRUE = re.compile(rb'"stream"\s*:\s*true')


class UpstreamProtocol(asyncio.Protocol):
    """HTTP/1.1 keep-alive, one request at a time per connection; answers after ``latency`` seconds."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            match = _CONTENT_LENGTH.search(self.buffer, 0, end + 2)
            total = end + 4 + (int(match.group(1)) if match else 0)
            if len(self.buffer) < total:
                return
            body = self.buffer[end + 4:total]
            self.buffer = self.buffer[total:]
            answer = _STREAM_RESPONSE if _STREAM_TRUE.search(body) else _JSON_RESPONSE
            asyncio.get_running_loop().call_later(self.latency, self._write, answer)

    def _write(self, answer: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


# ---- the stall probe (runs in its own process) -----------------------------------------------

PROBE_UNIT_SECONDS = 20e-6  # the probe's unit of work, timed every PROBE_PAUSE_SECONDS
PROBE_PAUSE_SECONDS = 0.002
PROBE_SLOW = 4  # a unit that took this many times its usual time was run on a stalled CPU
PROBE_GAP_SECONDS = 0.05  # slow units closer than this belong to one stall window


def _busy(rounds: int) -> None:
    for _ in range(rounds):
        pass


def probe_stalls(path: str) -> None:
    """Time a fixed small unit of pure CPU work every few ms; note each unit that ran 4× slower than usual.

    On this VM the host now and then runs both CPUs at a small fraction of their speed for tens of
    milliseconds (invisible in /proc/stat's steal time). Every process is slowed alike, so a target
    that spends more CPU per answer loses more in those windows; the report says how much of each row
    they covered. The probe costs about 1% of one CPU.
    """
    best = min(_timed(_busy, 10_000) for _ in range(50))
    rounds = max(100, int(10_000 * PROBE_UNIT_SECONDS / best))
    usual = sorted(_timed(_busy, rounds) for _ in range(200))[100]
    with open(path, "w", buffering=1, encoding="ascii") as out:
        while True:
            took = _timed(_busy, rounds)
            if took > PROBE_SLOW * usual:
                out.write(f"{time.perf_counter() - took:.6f} {took:.6f}\n")
            time.sleep(PROBE_PAUSE_SECONDS)


def _timed(work: Callable[[int], None], rounds: int) -> float:
    """The CPU time ``work`` took: a unit the guest's scheduler paused to run another process does not
    count as slow, one the host ran slowly does (the guest cannot tell that from running)."""
    started = time.thread_time()
    work(rounds)
    return time.thread_time() - started


def stall_windows(path: Path) -> list[tuple[float, float]]:
    """The probe's slow units merged into (start, end) windows (perf_counter seconds, system-wide).

    A lone slow unit (an interrupt, a page fault) is not a window: a window has two or more.
    """
    runs: list[list[float]] = []  # [start, end, slow units]
    with contextlib.suppress(OSError), open(path, encoding="ascii") as records:
        for line in records:
            start, took = (float(x) for x in line.split())
            if runs and start - runs[-1][1] < PROBE_GAP_SECONDS:
                runs[-1][1] = max(runs[-1][1], start + took)
                runs[-1][2] += 1
            else:
                runs.append([start, start + took, 1])
    return [(start, end) for start, end, units in runs if units >= 2]


def stalled_share(windows: list[tuple[float, float]], start: float, end: float) -> float:
    """The share of [start, end] inside stall windows."""
    inside = sum(max(0.0, min(b, end) - max(a, start)) for a, b in windows)
    return inside / (end - start) if end > start else 0.0


def serve_upstream(port: int, latency_ms: float) -> None:
    _use_uvloop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: UpstreamProtocol(latency_ms / 1000), "127.0.0.1", port,
                                          backlog=4096)
        stop = loop.create_future()
        loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
        async with server:
            await stop

    asyncio.run(main())


# ---- the load generator ----------------------------------------------------------------------


class ClientProtocol(asyncio.Protocol):
    """One keep-alive connection: send a request, resolve with (status, first body byte time, end time)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future | None = None
        self.buffer = b""
        self.header_end = -1
        self.first_byte = 0.0
        self.length = -1  # Content-Length, or -1 for chunked
        self.status = 0
        self.closing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future:
        self.buffer, self.header_end, self.first_byte = b"", -1, 0.0
        self.waiter = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if self.header_end < 0:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.header_end = end + 4
            head = self.buffer[:end]
            self.status = int(head[9:12])
            match = _CONTENT_LENGTH.search(head + b"\r\n")
            self.length = int(match.group(1)) if match else -1
            self.closing = b"connection: close" in head.lower()
        if not self.first_byte and len(self.buffer) > self.header_end:
            self.first_byte = now
        done = (len(self.buffer) - self.header_end >= self.length if self.length >= 0
                else self.buffer.endswith(b"0\r\n\r\n"))
        if done and self.waiter is not None and not self.waiter.done():
            self.waiter.set_result((self.status, self.first_byte or now, now))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("the server closed the connection"))


@dataclass
class Target:
    name: str
    port: int
    key: str
    process: subprocess.Popen | None = None

    def request(self, stream: bool) -> bytes:
        body = {"model": MODEL, "messages": [{"role": "user", "content": "Say hello to the benchmark."}],
                "max_tokens": 16}
        if stream:
            body["stream"] = True
        raw = json.dumps(body, separators=(",", ":")).encode()
        return (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
                f"Authorization: Bearer {self.key}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw


@dataclass
class Phase:
    latencies: list[float] = field(default_factory=list)  # seconds: whole answer, or first body byte
    errors: int = 0
    elapsed: float = 0.0
    spans: list[tuple[float, float]] = field(default_factory=list)  # perf_counter (start, end) measured
    cpu_seconds: float = float("nan")  # the target process's CPU time over the measured part

    @property
    def cpu_per_answer_us(self) -> float:
        return self.cpu_seconds / len(self.latencies) * 1e6 if self.latencies else float("nan")

    def extend(self, other: Phase) -> None:
        """Add another slice of the same row."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.elapsed += other.elapsed
        self.cpu_seconds = (other.cpu_seconds if math.isnan(self.cpu_seconds)
                            else self.cpu_seconds + other.cpu_seconds)
        self.spans += other.spans

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


async def _connect(port: int) -> ClientProtocol:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(ClientProtocol, "127.0.0.1", port)
    return protocol


async def load(target: Target, *, concurrency: int, stream: bool, requests: int, seconds: float,
               warmup: int, spread: float = 0.0) -> Phase:
    """``concurrency`` connections, each sending the next request when its last answer is complete.

    With ``spread`` (seconds) the connections start evenly spread over that time, as independent
    clients would, instead of in lockstep: against an upstream with a fixed latency, clients started
    together stay together, and every request then arrives in a burst of ``concurrency``.
    """
    request = target.request(stream)
    phase = Phase()
    issued = 0
    deadline = 0.0

    async def worker(index: int) -> None:
        nonlocal issued
        conn: ClientProtocol | None = None
        if spread:
            await asyncio.sleep(spread * index / concurrency)
        while True:
            if issued >= requests + warmup or (deadline and time.perf_counter() > deadline):
                break
            issued += 1
            measured = issued > warmup
            try:
                if conn is None or conn.transport is None or conn.closing:
                    if conn is not None and conn.transport is not None:
                        conn.transport.close()
                    conn = await _connect(target.port)
                started = time.perf_counter()
                status, first_byte, ended = await asyncio.wait_for(conn.send(request), 60)
            except (TimeoutError, OSError, ConnectionError):
                conn = None
                if measured:
                    phase.errors += 1
                continue
            if not measured:
                continue
            if status != 200:
                phase.errors += 1
                continue
            phase.latencies.append((first_byte if stream else ended) - started)
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    # Warm-up requests go first (issued by the same workers); the clock starts with the first measured one.
    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    while issued < warmup and not all(t.done() for t in tasks):
        await asyncio.sleep(0.001)
    started = time.perf_counter()
    deadline = started + seconds
    cpu_before = process_cpu_seconds(target)
    await asyncio.gather(*tasks)
    ended = time.perf_counter()
    phase.elapsed = ended - started
    phase.spans.append((started, ended))
    phase.cpu_seconds = process_cpu_seconds(target) - cpu_before
    return phase


def process_cpu_seconds(target: Target) -> float:
    """User + system CPU time of the target's process and its threads (NaN without a process)."""
    if target.process is None:
        return float("nan")
    try:
        with open(f"/proc/{target.process.pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ---- the targets -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(target: Target, timeout: float) -> None:
    """Until a real chat request through ``target`` answers 200."""
    deadline = time.monotonic() + timeout
    body = json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "ready?"}]}).encode()
    last = ""
    while time.monotonic() < deadline:
        if target.process is not None and target.process.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.process.returncode}")
        request = urllib.request.Request(f"http://127.0.0.1:{target.port}/v1/chat/completions", data=body,
                                         headers={"Authorization": f"Bearer {target.key}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                if response.status == 200:
                    return
        except (OSError, ValueError) as exc:  # not up yet (refused, reset, HTTP error, bad status line)
            last = str(exc)
        time.sleep(0.3)
    raise RuntimeError(f"{target.name} did not answer within {timeout:g}s: {last}")


def clean_env(**extra: str) -> dict[str, str]:
    drop = ("ZHIKU_", "LITELLM_", "OPENAI_", "SQL_DSN", "PG_URL", "DATABASE_URL", "CHAT_API_KEY")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(extra)
    return env


def start_upstream(latency_ms: float) -> Target:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve-upstream", str(port), "--latency-ms",
                                str(latency_ms)], cwd=ROOT)
    target = Target("direct", port, UPSTREAM_KEY, process)
    wait_ready(target, 30)
    return target


def start_zhiku(upstream: Target, workdir: Path, dsn: str | None, *, name: str = "zhiku",
                source: Path = ROOT) -> Target:
    """``zhiku gateway serve`` run from the source tree ``source`` (``-m`` imports from the cwd first)."""
    workdir = workdir / name
    workdir.mkdir()
    env = clean_env(ZHIKU_DATA_DIR=str(workdir / "zhiku-data"),
                    ZHIKU_SECRET_KEY="bench-secret-0123456789abcdef",
                    SQL_DSN=dsn or f"sqlite:///{workdir / 'gateway.db'}",
                    ZHIKU_LOG_LEVEL="warning", ZHIKU_GATEWAY_CHANNEL_TEST_SECONDS="0",
                    PYTHONPATH=os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])))
    zhiku = [sys.executable, "-m", "zhiku", "gateway"]

    def cli(*args: str) -> str:
        done = subprocess.run(zhiku + list(args), env=env, cwd=source, capture_output=True, text=True,
                              timeout=180, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"zhiku gateway {' '.join(args[:2])} failed: {done.stderr.strip()}")
        return done.stdout

    cli("channels", "add", "--type", "openai", "--name", "bench upstream", "--base-url",
        f"http://127.0.0.1:{upstream.port}/v1", "--key", UPSTREAM_KEY, "--models", MODEL)
    key = cli("tokens", "create", "--name", "bench").strip().splitlines()[-1]
    port = free_port()
    process = subprocess.Popen(zhiku + ["serve", "--port", str(port), "--host", "127.0.0.1"], env=env,
                               cwd=source, stdout=subprocess.DEVNULL)
    target = Target(name, port, key, process)
    wait_ready(target, 120)
    return target


def litellm_python() -> Path:
    """bench/.venv-litellm with litellm[proxy]==1.108.7, created on first use."""
    python = LITELLM_VENV / "bin" / "python"
    if not python.exists():
        print(f"creating {LITELLM_VENV.relative_to(ROOT)} with litellm[proxy]=={LITELLM_VERSION} "
              "(first run only) …", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    show_version = "import importlib.metadata as m; print(m.version('litellm'))"
    version = subprocess.run([str(python), "-c", show_version], capture_output=True, text=True,
                             check=True).stdout.strip()
    if version in COMPROMISED_LITELLM or version != LITELLM_VERSION:
        raise RuntimeError(f"{LITELLM_VENV} holds litellm {version}, not {LITELLM_VERSION}: delete the "
                           "folder and run again")
    return python


def start_litellm(upstream: Target, workdir: Path) -> Target:
    python = litellm_python()
    config = workdir / "litellm.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"http://127.0.0.1:{upstream.port}/v1",
            "api_key": UPSTREAM_KEY}}],
        "general_settings": {"master_key": LITELLM_MASTER_KEY},
        "litellm_settings": {"telemetry": False},
    }, indent=1))
    port = free_port()
    env = clean_env(LITELLM_LOG="ERROR", LITELLM_LOCAL_MODEL_COST_MAP="True", DISABLE_SCHEMA_UPDATE="true",
                    NO_DOCS="True")
    process = subprocess.Popen([str(python.parent / "litellm"), "--config", str(config), "--host",
                                "127.0.0.1", "--port", str(port), "--num_workers", "1"],
                               env=env, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = Target("litellm", port, LITELLM_MASTER_KEY, process)
    wait_ready(target, 300)
    return target


def stop(target: Target) -> None:
    if target.process is None or target.process.poll() is not None:
        return
    target.process.send_signal(signal.SIGINT if target.name != "direct" else signal.SIGTERM)
    try:
        target.process.wait(20)
    except subprocess.TimeoutExpired:
        target.process.kill()
        target.process.wait(10)


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


# ---- the run ---------------------------------------------------------------------------------


def _use_uvloop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


async def measure(targets: list[Target], args: argparse.Namespace) -> dict[tuple[str, int, bool], Phase]:
    """Each row in ``--slices`` slices, the targets taking turns, so all meet the machine's stalls alike."""
    results: dict[tuple[str, int, bool], Phase] = {}
    slices = max(1, args.slices)
    for concurrency in LEVELS:
        for stream in (False, True):
            for index in range(slices):
                for target in targets:
                    phase = await load(target, concurrency=concurrency, stream=stream,
                                       requests=math.ceil(args.requests / slices),
                                       seconds=args.seconds / slices,
                                       warmup=max(20, 2 * concurrency) if index == 0 else concurrency,
                                       spread=0.0 if args.lockstep else args.latency_ms / 1000)
                    if index == 0:
                        results[(target.name, concurrency, stream)] = phase
                    else:
                        results[(target.name, concurrency, stream)].extend(phase)
            for target in targets:
                phase = results[(target.name, concurrency, stream)]
                print(f"  {target.name:8} c={concurrency:<3} {'stream' if stream else 'whole ':6} "
                      f"{len(phase.latencies):6} answers in {phase.elapsed:5.1f}s, {phase.errors} errors",
                      flush=True)
    return results


async def max_rate(targets: list[Target], args: argparse.Namespace) -> dict[str, Phase]:
    rates = {}
    for target in targets:
        rates[target.name] = phase = await load(target, concurrency=args.max_concurrency, stream=False,
                                                requests=10**9, seconds=args.seconds,
                                                warmup=args.max_concurrency)
        print(f"  {target.name:8} max rate: {phase.rate:7.0f} req/s ({phase.errors} errors)", flush=True)
    return rates


async def long_run(zhiku: Target, args: argparse.Namespace) -> list[tuple[int, float]]:
    assert zhiku.process is not None
    samples = [(0, rss_mib(zhiku.process.pid))]
    step = args.long_requests // 10
    for index, done in enumerate(range(step, args.long_requests + 1, step)):
        stream = index % 2 == 1  # alternate whole answers and streams, so both paths show their memory
        phase = await load(zhiku, concurrency=64, stream=stream, requests=step, seconds=3600, warmup=0)
        samples.append((done, rss_mib(zhiku.process.pid)))
        print(f"  zhiku long run: {done:7} requests, RSS {samples[-1][1]:.1f} MiB, {phase.rate:.0f} req/s "
              f"({'stream' if stream else 'whole'}), {phase.errors} errors", flush=True)
    return samples


def report(targets: list[Target], results: dict, rates: dict[str, Phase], samples: list[tuple[int, float]],
           args: argparse.Namespace, loop_name: str) -> None:
    names = [t.name for t in targets]
    spread = "in lockstep" if args.lockstep else "spread over one upstream latency"
    print()
    print(f"Gateway benchmark — upstream latency {args.latency_ms:g} ms, loopback, {os.cpu_count()} CPUs, "
          f"load generator: raw asyncio ({loop_name}), up to {args.requests} answers or {args.seconds:g} s "
          f"per row in {args.slices} slices (targets taking turns), connections {spread}")
    print(f"machine load average (1 min): {args.load_before:.2f} before the run, {os.getloadavg()[0]:.2f} "
          "after (other work on this machine competes for the same CPUs)")
    print("latency in ms; 'added' = target percentile − direct percentile; stream = time to first body byte")
    print()
    columns = ("p50", "p99", "+p50", "+p99", "req/s", "err")
    header = (f"{'target':8} {'conc':>4} │ " + " ".join(f"{c:>7}" for c in columns) + " │ "
              + " ".join(f"{c:>7}" for c in ("ttfb50", "ttfb99", "+p50", "+p99", "err")))
    print(f"{'':13} │ {'non-stream':^47} │ {'stream (first byte)':^39}")
    print(header)
    print("─" * len(header))
    for concurrency in LEVELS:
        for name in names:
            whole = _cells(results, name, concurrency, stream=False)
            first = _cells(results, name, concurrency, stream=True)
            print(f"{name:8} {concurrency:>4} │ {whole} │ {first}")
        print("─" * len(header))
    print("server CPU per answer (µs, the target's own process): " + "; ".join(
        f"{name} " + ", ".join(f"c={c} {results[(name, c, False)].cpu_per_answer_us:.0f}/"
                               f"{results[(name, c, True)].cpu_per_answer_us:.0f}" for c in LEVELS)
        for name in names if name != "direct") + " (whole/stream)")
    print(f"max non-stream req/s at {args.max_concurrency} connections ({args.seconds:g} s): "
          + ", ".join(f"{n} {rates[n].rate:.0f}" + (f" ({rates[n].errors} errors)" if rates[n].errors else "")
                      for n in names))
    growth = 0.0
    if samples:
        base = samples[1][1] if len(samples) > 1 else samples[0][1]
        growth = (samples[-1][1] - base) / base * 100
        print("zhiku RSS (MiB) by requests served: "
              + ", ".join(f"{n // 1000}k {mib:.1f}" for n, mib in samples)
              + f"; growth from {samples[1][0] // 1000}k to {samples[-1][0] // 1000}k: {growth:+.1f}%")
    _report_stalls(results, names, args)
    if "zhiku" in names:
        print("goals: " + "; ".join(f"{label}: {'met' if ok else 'NOT met'}"
                                     for label, ok in _goals(results, rates, names, samples, growth)))


def _report_stalls(results: dict, names: list[str], args: argparse.Namespace) -> None:
    phases = list(results.values())
    first, last = min(a for p in phases for a, _ in p.spans), max(b for p in phases for _, b in p.spans)
    windows = [w for w in stall_windows(args.stall_file) if w[1] > first and w[0] < last]
    probe = (f"a probe process timing {PROBE_UNIT_SECONDS * 1e6:.0f} µs of CPU work every "
             f"{PROBE_PAUSE_SECONDS * 1000:.0f} ms")
    if not windows:
        print(f"machine stalls ({probe}): none seen")
        return
    lengths = sorted((b - a) * 1000 for a, b in windows)

    def share(phase: Phase) -> str:
        stalled = sum(stalled_share(windows, a, b) * (b - a) for a, b in phase.spans)
        return f"{stalled / phase.elapsed * 100:.0f}%" if phase.elapsed else "-"

    rows = "; ".join(f"{name} {share(results[(name, 16, False)])}/{share(results[(name, 16, True)])}"
                     for name in names)
    median = lengths[len(lengths) // 2]
    print(f"machine stalls ({probe}; 'stalled' = ≥ {PROBE_SLOW}× slower): {len(windows)} windows in "
          f"{last - first:.0f} s, median {median:.0f} ms, longest {lengths[-1]:.0f} ms, "
          f"{stalled_share(windows, first, last) * 100:.1f}% of the time; "
          f"share of the c=16 rows stalled (whole/stream): {rows}")


def _added(results: dict, name: str, concurrency: int, stream: bool, q: float) -> float:
    return results[(name, concurrency, stream)].pct(q) - results[("direct", concurrency, stream)].pct(q)


def _cells(results: dict, name: str, concurrency: int, *, stream: bool) -> str:
    phase: Phase = results[(name, concurrency, stream)]
    added = ["", ""] if name == "direct" else [f"{_added(results, name, concurrency, stream, q):+.1f}"
                                               for q in (.5, .99)]
    cells = [_fmt(phase.pct(.5)), _fmt(phase.pct(.99)), *added]
    if not stream:
        cells.append(f"{phase.rate:.0f}")
    cells.append(str(phase.errors))
    return " ".join(f"{c:>7}" for c in cells)


def _goals(results: dict, rates: dict[str, Phase], names: list[str], samples: list[tuple[int, float]],
           growth: float) -> list[tuple[str, bool]]:
    goals = [("added p50 ≤ 2 ms at c=16", _added(results, "zhiku", 16, False, .5) <= 2),
             ("added p99 ≤ 10 ms at c=16", _added(results, "zhiku", 16, False, .99) <= 10),
             ("stream first byte: added p50 ≤ 2 ms and p99 ≤ 10 ms at c=16",
              _added(results, "zhiku", 16, True, .5) <= 2 and _added(results, "zhiku", 16, True, .99) <= 10),
             ("≥ 1,000 non-stream req/s", rates["zhiku"].rate >= 1000)]
    if "litellm" in names:
        lower = all(_added(results, "zhiku", c, s, q) < _added(results, "litellm", c, s, q)
                    for c in LEVELS for s in (False, True) for q in (.5, .99))
        goals.append(("lower added latency than LiteLLM at every concurrency (p50, p99, both modes)", lower))
    if samples:
        goals.append(("RSS flat (±10%) over the long run", abs(growth) <= 10))
    return goals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="the fake upstream's latency (default 20)")
    parser.add_argument("--targets", default="direct,zhiku,litellm",
                        help="comma-separated: direct,zhiku,litellm")
    parser.add_argument("--requests", type=int, default=3000, help="answers per row at most (default 3000)")
    parser.add_argument("--seconds", type=float, default=6.0, help="seconds per row at most (default 6)")
    parser.add_argument("--slices", type=int, default=3,
                        help="each row measured in this many slices, the targets taking turns (default 3)")
    parser.add_argument("--max-concurrency", type=int, default=128, help="connections for the max req/s row")
    parser.add_argument("--long", action="store_true", help="also Zhiku's RSS over --long-requests requests")
    parser.add_argument("--long-requests", type=int, default=100_000)
    parser.add_argument("--lockstep", action="store_true",
                        help="start each row's connections together, not spread over one upstream latency")
    parser.add_argument("--build", action="append", default=[], metavar="NAME=DIR",
                        help="also run the gateway from the source tree DIR as target NAME (repeatable)")
    parser.add_argument("--zhiku-dsn", default=None,
                        help="the gateway's database (default: SQLite in a temp dir)")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--probe-stalls", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_upstream:
        serve_upstream(args.serve_upstream, args.latency_ms)
        return
    if args.probe_stalls:
        probe_stalls(args.probe_stalls)
        return
    wanted = [t.strip() for t in args.targets.split(",") if t.strip()]
    if "direct" not in wanted:
        wanted.insert(0, "direct")
    loop_name = _use_uvloop()
    args.load_before = os.getloadavg()[0]
    workdir = Path(tempfile.mkdtemp(prefix="zhiku-bench-gw-"))
    targets: list[Target] = []
    args.stall_file = workdir / "stalls.txt"
    probe = subprocess.Popen([sys.executable, __file__, "--probe-stalls", str(args.stall_file)], cwd=ROOT)
    try:
        upstream = start_upstream(args.latency_ms)
        targets.append(upstream)
        if "zhiku" in wanted:
            targets.append(start_zhiku(upstream, workdir, args.zhiku_dsn))
        for build in args.build:
            name, _, source = build.partition("=")
            targets.append(start_zhiku(upstream, workdir, args.zhiku_dsn, name=name,
                                       source=Path(source).resolve()))
        if "litellm" in wanted:
            targets.append(start_litellm(upstream, workdir))
        print(f"targets up: {', '.join(t.name for t in targets)}", flush=True)
        results = asyncio.run(measure(targets, args))
        rates = asyncio.run(max_rate(targets, args))
        zhiku = next((t for t in targets if t.name == "zhiku"), None)
        samples = asyncio.run(long_run(zhiku, args)) if args.long and zhiku is not None else []
        report(targets, results, rates, samples, args, loop_name)
    finally:
        for target in reversed(targets):
            with contextlib.suppress(Exception):
                stop(target)
        probe.terminate()
        probe.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
