"""Password and key hashing.

Passwords are low-entropy, so they get argon2id. API keys and session tokens are
random 256-bit strings; a fast SHA-256 of them is as safe to store and lets the
database look them up by hash.

An argon2 hash or check costs a quarter of a second of CPU by design, so async
code calls :func:`hash_password_async` / :func:`check_password`: they run in a
small thread pool of their own, never on the event loop, and a burst of logins
queues there instead of taking every thread of the loop's default executor.
The sync functions stay for sync callers.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()

# Each hash already uses several argon2 lanes; more than a few at once only makes every login slower.
PASSWORD_HASH_THREADS = min(4, max(2, (os.cpu_count() or 2) // 2))
_hash_pool = ThreadPoolExecutor(max_workers=PASSWORD_HASH_THREADS, thread_name_prefix="zhiku-argon2")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password nobody knows, made once with the same parameters as real ones."""
    return _hasher.hash(secrets.token_urlsafe(32))


def _check(password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        verify_password(_dummy_hash(), password)  # same work as a real check, so timing tells nothing
        return False
    return verify_password(password_hash, password)


async def hash_password_async(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, hash_password, password)


async def check_password(password_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``None`` (no such user, or one who may not log in) checks a dummy hash
    and answers False, taking as long as a wrong password does."""
    return await asyncio.get_running_loop().run_in_executor(_hash_pool, _check, password_hash, password)


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(12)
