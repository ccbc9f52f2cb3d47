"""A private MariaDB server for the gateway's storage tests: own datadir, socket and port under a temp dir.

Run as user ``mysql`` when the tests run as root (CI), as the current user otherwise. When MariaDB is
not installed the tests that need it fail with how to install it — they never skip
(``scripts/test.sh`` installs ``mariadb-server`` when it runs as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

PASSWORD = "zhiku-test"
USER = "zhiku"


def _find(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}")
                                            if os.access(p, os.X_OK)), None)
        if found:
            return found
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MariaDB:
    def __init__(self) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="zkmaria-"))
        self.datadir = self.base / "data"
        self.rundir = self.base / "run"  # socket, pid file and error log: written by the server's user
        self.socket = self.rundir / "mysqld.sock"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> MariaDB:
        server = _find("mariadbd", "mysqld")
        install = _find("mariadb-install-db", "mysql_install_db")
        if server is None or install is None:
            raise RuntimeError("MariaDB is not installed: the gateway storage tests need it. Run "
                               "`bash scripts/test.sh` as root (it installs mariadb-server), or "
                               "`apt-get install -y mariadb-server`.")
        as_root = os.geteuid() == 0
        user_args = ["--user=mysql"] if as_root else []
        self.datadir.mkdir()
        self.rundir.mkdir()
        if as_root:
            os.chmod(self.base, 0o755)
            for path in (self.datadir, self.rundir):
                shutil.chown(path, "mysql", "mysql")
        log = self.base / "install.log"
        with log.open("wb") as out:
            done = subprocess.run([install, *user_args, f"--datadir={self.datadir}", "--auth-root-authentication-method=normal",
                                   "--skip-test-db"], stdout=out, stderr=subprocess.STDOUT, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {log.read_text()[-2000:]}")
        self.process = subprocess.Popen(
            [server, "--no-defaults", *user_args, f"--datadir={self.datadir}", f"--socket={self.socket}",
             f"--port={self.port}", "--bind-address=127.0.0.1", f"--pid-file={self.rundir / 'mysqld.pid'}",
             "--skip-name-resolve", "--innodb-buffer-pool-size=32M", "--skip-log-bin",
             f"--log-error={self.rundir / 'error.log'}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"MariaDB exited at start: {self._error_log()}")
            try:
                self._admin(f"CREATE USER IF NOT EXISTS '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'",
                            f"GRANT ALL PRIVILEGES ON *.* TO '{USER}'@'%'")
                return self
            except Exception as exc:
                if time.monotonic() > deadline:
                    log = self._error_log()
                    self.stop()
                    raise RuntimeError(f"MariaDB did not accept connections in {timeout:g}s: {log}") from exc
                time.sleep(0.3)

    def _error_log(self) -> str:
        path = self.rundir / "error.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no error log)"

    def _admin(self, *statements: str) -> None:
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.socket), user="root", password="", connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                for statement in statements:
                    cursor.execute(statement)
            conn.commit()
        finally:
            conn.close()

    def fresh_database(self) -> str:
        """A new empty database; returns its DSN in OneAPI's Go form (``user:pass@tcp(host:port)/db``)."""
        name = f"gw_{uuid.uuid4().hex[:10]}"
        self._admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        return f"{USER}:{PASSWORD}@tcp(127.0.0.1:{self.port})/{name}?charset=utf8mb4&parseTime=True&loc=Local"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)
