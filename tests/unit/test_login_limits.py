"""Login limits over a fake clock: lockouts per account, a sliding window per address, attempts in flight."""

from __future__ import annotations

import pytest

from zhiku.auth.login_limits import LoginLimits, LoginPolicy
from zhiku.errors import RateLimited

POLICY = LoginPolicy(account_max_failures=3, account_window_seconds=100.0, lockout_seconds=10.0,
                     lockout_max_seconds=25.0, address_max_failures=5, address_window_seconds=30.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(limits: LoginLimits, username: str, address: str) -> None:
    with limits.attempt(username, address) as attempt:
        attempt.failed()


def succeed(limits: LoginLimits, username: str, address: str) -> None:
    with limits.attempt(username, address) as attempt:
        attempt.succeeded()


def refusal(limits: LoginLimits, username: str, address: str) -> RateLimited:
    with pytest.raises(RateLimited) as caught, limits.attempt(username, address):
        pass
    error = caught.value
    assert error.status == 429 and error.code == "too_many_login_attempts"
    assert error.headers is not None and int(error.headers["Retry-After"]) == error.detail["retry_after"]
    return error


def test_an_account_is_locked_after_its_failures_and_each_lockout_doubles_up_to_the_cap() -> None:
    clock = Clock()
    limits = LoginLimits(POLICY, clock)
    for i in range(3):
        fail(limits, "alice", f"10.0.0.{i}")  # other addresses: the account limit is not per address
    error = refusal(limits, "alice", "10.0.0.99")
    assert error.detail["scope"] == "account" and error.headers == {"Retry-After": "10"}
    clock.now += 10
    for _ in range(3):
        fail(limits, "alice", "10.0.1.1")
    assert refusal(limits, "alice", "10.0.1.2").headers == {"Retry-After": "20"}
    clock.now += 20
    for _ in range(3):
        fail(limits, "alice", "10.0.2.1")
    assert refusal(limits, "alice", "10.0.2.2").headers == {"Retry-After": "25"}  # capped
    succeed(limits, "bob", "10.0.2.2")  # other accounts are not affected


def test_a_success_clears_the_failures_and_the_lockout_streak() -> None:
    clock = Clock()
    limits = LoginLimits(POLICY, clock)
    for _ in range(3):
        fail(limits, "alice", "a")
    clock.now += 10
    succeed(limits, "alice", "b")
    for _ in range(3):
        fail(limits, "alice", "c")
    assert refusal(limits, "alice", "d").headers == {"Retry-After": "10"}  # the first lockout again


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    limits = LoginLimits(POLICY, clock)
    fail(limits, "alice", "a")
    fail(limits, "alice", "b")
    clock.now += 101
    fail(limits, "alice", "c")
    fail(limits, "alice", "d")
    succeed(limits, "alice", "e")


def test_an_address_is_limited_whatever_usernames_it_tries_and_its_successes_do_not_reset_it() -> None:
    clock = Clock()
    limits = LoginLimits(POLICY, clock)
    for i in range(4):
        fail(limits, f"nobody-{i}", "10.1.1.1")
        clock.now += 1
    succeed(limits, "alice", "10.1.1.1")
    fail(limits, "nobody-4", "10.1.1.1")
    error = refusal(limits, "alice", "10.1.1.1")
    assert error.detail["scope"] == "address"
    assert error.headers == {"Retry-After": "26"}  # now 1004: the first failure (1000) leaves the 30 s window
    succeed(limits, "alice", "10.1.1.2")
    clock.now += 25
    refusal(limits, "alice", "10.1.1.1")
    clock.now += 1
    succeed(limits, "alice", "10.1.1.1")


def test_attempts_in_flight_hold_their_place_until_they_finish() -> None:
    limits = LoginLimits(POLICY, Clock())
    in_flight = [limits.attempt("alice", f"10.2.0.{i}") for i in range(3)]
    for attempt in in_flight:
        attempt.__enter__()
    assert refusal(limits, "alice", "10.2.0.9").headers == {"Retry-After": "1"}
    in_flight[0].__exit__(None, None, None)  # ended by an error: neither failure nor success
    with limits.attempt("alice", "10.2.0.9") as attempt:
        attempt.succeeded()


def test_a_refused_attempt_counts_for_nothing() -> None:
    clock = Clock()
    limits = LoginLimits(POLICY, clock)
    for i in range(5):
        fail(limits, f"nobody-{i}", "10.3.0.1")
    for _ in range(10):
        refusal(limits, "alice", "10.3.0.1")
    clock.now += 31
    for i in range(5):
        fail(limits, f"other-{i}", "10.3.0.1")


def test_idle_entries_are_pruned_and_huge_usernames_are_keyed_by_digest() -> None:
    clock = Clock()
    limits = LoginLimits(POLICY, clock)
    fail(limits, "x" * 10_000, "10.4.0.1")
    assert all(len(key) < 200 for key in limits._accounts)
    clock.now += 200
    succeed(limits, "alice", "10.4.0.2")
    assert "10.4.0.1" not in limits._addresses and len(limits._accounts) == 1
