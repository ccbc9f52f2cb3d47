"""Login rate limits: failed logins per account and per client address.

An account that fails ``account_max_failures`` times within ``account_window_seconds``
is locked for ``lockout_seconds``; each further lockout before the account has been
quiet for a whole window doubles that, up to ``lockout_max_seconds``. A successful
login clears the account's failures and lockouts. A client address may fail
``address_max_failures`` times per ``address_window_seconds`` (a sliding window),
whatever usernames it tries; its successes are not counted, so many people behind
one NAT can still log in. Unknown usernames are counted like real ones, so a 429
says nothing about whether an account exists. While refused, an attempt costs no
password hash and counts for nothing; the 429 carries ``Retry-After``.

Attempts in flight count against both limits until they finish, so a burst of
parallel guesses cannot slip past a limit before the first of them is recorded.

The counts live in memory, per process: each server process of a deployment keeps
its own (an attacker gets that many times the attempts), and a restart forgets them.
Anyone can lock an account by failing its logins; that is the price of a per-account
limit, and the lockout ends on its own.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal

from zhiku.config import Settings
from zhiku.errors import RateLimited

# Usernames longer than this are keyed by their digest, so a client cannot fill memory with huge names.
_MAX_KEY_CHARS = 128
_PRUNE_INTERVAL_SECONDS = 60.0


@dataclass(frozen=True)
class LoginPolicy:
    account_max_failures: int = 5
    account_window_seconds: float = 900.0
    lockout_seconds: float = 60.0
    lockout_max_seconds: float = 900.0
    address_max_failures: int = 20
    address_window_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginPolicy:
        return cls(account_max_failures=settings.login_max_failures,
                   account_window_seconds=settings.login_failure_window_seconds,
                   lockout_seconds=settings.login_lockout_seconds,
                   lockout_max_seconds=settings.login_lockout_max_seconds,
                   address_max_failures=settings.login_address_max_failures,
                   address_window_seconds=settings.login_address_window_seconds)


@dataclass
class _Account:
    failures: deque[float] = field(default_factory=deque)
    pending: int = 0
    lockouts: int = 0
    locked_until: float = 0.0
    last_failure: float = -math.inf


@dataclass
class _Address:
    failures: deque[float] = field(default_factory=deque)
    pending: int = 0


def _drop_older(failures: deque[float], before: float) -> None:
    while failures and failures[0] <= before:
        failures.popleft()


def _refused(scope: Literal["account", "address"], seconds: float) -> RateLimited:
    wait = max(1, math.ceil(seconds))
    whose = "for this account" if scope == "account" else "from this address"
    return RateLimited(f"too many failed logins {whose}; try again in {wait} s", code="too_many_login_attempts",
                       detail={"scope": scope, "retry_after": wait}, headers={"Retry-After": str(wait)})


class LoginLimits:
    """The counts of one process. Not thread-safe: use it from one event loop."""

    def __init__(self, policy: LoginPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._accounts: dict[str, _Account] = {}
        self._addresses: dict[str, _Address] = {}
        self._last_prune = clock()

    def attempt(self, username: str, address: str) -> LoginAttempt:
        """``with limits.attempt(name, addr) as attempt:`` — entering raises RateLimited when refused;
        call ``attempt.failed()`` or ``attempt.succeeded()`` inside; leaving otherwise records nothing."""
        key = username
        if len(username) > _MAX_KEY_CHARS:
            key = "sha256:" + hashlib.sha256(username.encode()).hexdigest()
        return LoginAttempt(self, key, address)

    # --- used by LoginAttempt -------------------------------------------------------

    def _begin(self, key: str, address: str) -> None:
        now = self._clock()
        self._prune_if_due(now)
        client = self._address(address, now)
        if len(client.failures) + client.pending >= self.policy.address_max_failures:
            raise _refused("address", self._address_wait(client, now))
        account = self._account(key, now)
        if account.locked_until > now:
            raise _refused("account", account.locked_until - now)
        if len(account.failures) + account.pending >= self.policy.account_max_failures:
            raise _refused("account", 1)  # guesses in flight fill the limit; they finish within moments
        client.pending += 1
        account.pending += 1

    def _finish(self, key: str, address: str, outcome: Literal["failed", "succeeded", "abandoned"]) -> None:
        now = self._clock()
        client = self._addresses.setdefault(address, _Address())
        account = self._accounts.setdefault(key, _Account())
        client.pending = max(0, client.pending - 1)
        account.pending = max(0, account.pending - 1)
        if outcome == "succeeded":
            account.failures.clear()
            account.lockouts = 0
            account.locked_until = 0.0
        elif outcome == "failed":
            client.failures.append(now)
            account.failures.append(now)
            account.last_failure = now
            if len(account.failures) >= self.policy.account_max_failures:
                account.lockouts += 1
                lockout = self.policy.lockout_seconds * 2 ** (account.lockouts - 1)
                account.locked_until = now + min(lockout, self.policy.lockout_max_seconds)
                account.failures.clear()

    # --- bookkeeping ----------------------------------------------------------------

    def _address(self, address: str, now: float) -> _Address:
        client = self._addresses.setdefault(address, _Address())
        _drop_older(client.failures, now - self.policy.address_window_seconds)
        return client

    def _address_wait(self, client: _Address, now: float) -> float:
        # Failures that must expire before one more attempt fits; in-flight ones finish within moments.
        excess = len(client.failures) + client.pending - self.policy.address_max_failures + 1
        if 0 < excess <= len(client.failures):
            return client.failures[excess - 1] + self.policy.address_window_seconds - now
        return 1

    def _account(self, key: str, now: float) -> _Account:
        account = self._accounts.setdefault(key, _Account())
        _drop_older(account.failures, now - self.policy.account_window_seconds)
        if self._account_idle(account, now):
            account.lockouts = 0
        return account

    def _account_idle(self, account: _Account, now: float) -> bool:
        """Nothing in flight, not locked, and quiet for a whole window: its lockouts are forgiven."""
        return (account.pending == 0 and account.locked_until <= now
                and now - max(account.last_failure, account.locked_until) >= self.policy.account_window_seconds)

    def _prune_if_due(self, now: float) -> None:
        if now - self._last_prune < _PRUNE_INTERVAL_SECONDS:
            return
        self._last_prune = now
        self._accounts = {k: a for k, a in self._accounts.items() if not self._account_idle(a, now)}
        address_cutoff = now - self.policy.address_window_seconds
        self._addresses = {k: c for k, c in self._addresses.items()
                           if c.pending or (c.failures and c.failures[-1] > address_cutoff)}


class LoginAttempt:
    """One login attempt holding its place in both limits from ``__enter__`` until it is recorded."""

    def __init__(self, limits: LoginLimits, key: str, address: str) -> None:
        self._limits, self._key, self._address = limits, key, address
        self._open = False

    def __enter__(self) -> LoginAttempt:
        self._limits._begin(self._key, self._address)
        self._open = True
        return self

    def failed(self) -> None:
        self._close("failed")

    def succeeded(self) -> None:
        self._close("succeeded")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._close("abandoned")

    def _close(self, outcome: Literal["failed", "succeeded", "abandoned"]) -> None:
        if self._open:
            self._open = False
            self._limits._finish(self._key, self._address, outcome)
