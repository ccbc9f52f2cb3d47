"""Login over real HTTP: rate limits per account and per address, timing that hides which users exist,
and password hashing that keeps off the event loop.

A server of its own with small limits, so nothing here locks out ``root`` or the loopback address for the
other tests; each test speaks from its own addresses through ``X-Forwarded-For`` (uvicorn trusts it from
127.0.0.1) and logs in as users of its own.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from tests.conftest import make_settings, unique
from zhiku.auth.secrets import hash_password
from zhiku.auth.service import ROOT_USERNAME
from zhiku.db.models import User
from zhiku.embedding.registry import EmbedderRegistry
from zhiku.testing.server import ServerThread

pytestmark = pytest.mark.integration

ACCOUNT_MAX_FAILURES = 3
LOCKOUT_SECONDS = 1.0
ADDRESS_MAX_FAILURES = 6
ADDRESS_WINDOW_SECONDS = 5.0


@pytest.fixture(scope="module")
def limited(pg_url: str, data_dir: Path, embedders: EmbedderRegistry, server: ServerThread) -> Iterator[ServerThread]:
    settings = make_settings(pg_url, data_dir, worker_enabled=False, login_max_failures=ACCOUNT_MAX_FAILURES,
                             login_failure_window_seconds=60.0, login_lockout_seconds=LOCKOUT_SECONDS,
                             login_lockout_max_seconds=4.0, login_address_max_failures=ADDRESS_MAX_FAILURES,
                             login_address_window_seconds=ADDRESS_WINDOW_SECONDS)
    with ServerThread(settings, embedders) as running:
        yield running


@pytest.fixture
def http(limited: ServerThread) -> Iterator[httpx.Client]:
    """One client for the whole test: a new one per request costs more than a login's work on loopback."""
    with httpx.Client(base_url=limited.base_url, timeout=60) as client:
        yield client


def new_user(pg_url: str, password: str, status: str = "active") -> str:
    """A user in root's team, written straight to the database (there is no API that makes users)."""
    username = unique("login")

    async def insert() -> None:
        engine = create_async_engine(pg_url)
        async with AsyncSession(engine) as session:
            root = (await session.execute(select(User).where(User.username == ROOT_USERNAME))).scalar_one()
            session.add(User(username=username, password_hash=hash_password(password), role="user",
                             status=status, team_id=root.team_id))
            await session.commit()
        await engine.dispose()

    asyncio.run(insert())
    return username


def address() -> str:
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def attempt(http: httpx.Client, username: str, password: str, client_address: str) -> httpx.Response:
    return http.post("/api/auth/login", json={"username": username, "password": password},
                     headers={"X-Forwarded-For": client_address})


def assert_refused(r: httpx.Response, scope: str) -> int:
    assert r.status_code == 429, r.text
    assert r.json()["code"] == "too_many_login_attempts" and r.json()["detail"]["scope"] == scope
    return int(r.headers["Retry-After"])


def test_a_wrong_password_burst_locks_the_account_until_retry_after(http: httpx.Client, pg_url: str) -> None:
    username = new_user(pg_url, "right-password")
    burst_from = address()
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: attempt(http, username, "wrong", burst_from), range(10)))
    codes = sorted(r.status_code for r in answers)
    # guesses in flight hold their place, so exactly the limit gets a password check, however parallel
    assert codes == [401] * ACCOUNT_MAX_FAILURES + [429] * (10 - ACCOUNT_MAX_FAILURES), codes
    retry_after = max(assert_refused(r, "account") for r in answers if r.status_code == 429)
    assert 1 <= retry_after <= LOCKOUT_SECONDS + 1
    # locked for everyone, the right password too: the limit is per account, not per address
    assert_refused(attempt(http, username, "right-password", address()), "account")
    time.sleep(retry_after + 0.2)
    ok = attempt(http, username, "right-password", address())
    assert ok.status_code == 200, ok.text
    # the success cleared the failures: as many wrong guesses as before are answered 401 again
    for _ in range(ACCOUNT_MAX_FAILURES):
        assert attempt(http, username, "wrong", address()).status_code == 401


def test_an_address_is_limited_across_usernames_and_lets_in_again_after_the_window(
        http: httpx.Client, pg_url: str) -> None:
    username = new_user(pg_url, "right-password")
    guesser = address()
    with ThreadPoolExecutor(ADDRESS_MAX_FAILURES) as pool:  # in parallel, well inside the window
        answers = list(pool.map(lambda _: attempt(http, unique("nobody"), "guess", guesser),
                                range(ADDRESS_MAX_FAILURES)))
    assert [r.status_code for r in answers] == [401] * ADDRESS_MAX_FAILURES
    retry_after = assert_refused(attempt(http, username, "right-password", guesser), "address")
    assert 1 <= retry_after <= ADDRESS_WINDOW_SECONDS + 1
    assert attempt(http, username, "right-password", address()).status_code == 200  # others are let in
    time.sleep(retry_after + 0.2)
    assert attempt(http, username, "right-password", guesser).status_code == 200


def timed(http: httpx.Client, username: str, password: str) -> float:
    started = time.perf_counter()
    r = attempt(http, username, password, address())
    elapsed = time.perf_counter() - started
    assert r.status_code == 401, r.text
    return elapsed


def test_an_unknown_or_disabled_user_takes_as_long_as_a_wrong_password(http: httpx.Client, pg_url: str) -> None:
    username = new_user(pg_url, "right-password")
    disabled = [new_user(pg_url, "right-password", status="disabled") for _ in range(5)]  # each under its limit
    timed(http, unique("nobody"), "warm-up")
    wrong, unknown, off = [], [], []
    for i in range(5):  # interleaved; a success after each wrong guess keeps the account under its limit
        wrong.append(timed(http, username, "wrong"))
        assert attempt(http, username, "right-password", address()).status_code == 200
        unknown.append(timed(http, unique("nobody"), "wrong"))
        off.append(timed(http, disabled[i], "right-password"))
    wrong_median = statistics.median(wrong)
    for other in (statistics.median(unknown), statistics.median(off)):
        assert wrong_median / 3 < other < wrong_median * 3, (wrong, unknown, off)


def test_health_answers_while_a_burst_of_logins_is_hashed(http: httpx.Client) -> None:
    def health() -> float:
        started = time.perf_counter()
        assert http.get("/api/health").status_code == 200
        return time.perf_counter() - started

    baseline = statistics.median(health() for _ in range(5))
    finished: list[float] = []

    def wrong_login(_: int) -> None:
        attempt(http, unique("nobody"), "guess", address())
        finished.append(time.perf_counter())

    with ThreadPoolExecutor(20) as pool:
        burst = [pool.submit(wrong_login, i) for i in range(20)]
        time.sleep(0.3)  # the burst has arrived and its hashes are queued
        during = health()
        answered = time.perf_counter()
        for future in burst:
            future.result()
    # twenty argon2 checks take seconds of CPU; on the event loop they would hold /api/health behind them
    assert during < baseline + 1.0, (baseline, during)
    assert answered < max(finished), "the burst ended before the health check: it measured nothing"
