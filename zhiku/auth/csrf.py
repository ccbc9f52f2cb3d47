"""CSRF tokens for requests authenticated by the session cookie.

A browser sends the cookie with any request, also one another site makes it send; it cannot send a
header or form field the other site does not know. So a state-changing request that rides on the
cookie must also carry ``X-CSRF-Token`` (or, from a plain form, a ``csrf_token`` field) equal to a
keyed hash of the session token. The session token is the secret: a 256-bit value in an HttpOnly cookie
no script and no other site can read, so no server key is needed, and every process (the platform,
the standalone gateway) derives the same token without sharing one.
"""

from __future__ import annotations

import hashlib
import hmac

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_KEY = b"zhiku-csrf-v1"


def csrf_token(session_token: str) -> str:
    return hmac.new(_KEY, session_token.encode(), hashlib.sha256).hexdigest()


def csrf_matches(session_token: str, sent: str) -> bool:
    return bool(sent) and hmac.compare_digest(csrf_token(session_token), sent)


def cookie_request_allowed(method: str, session_token: str, sent: str) -> bool:
    """Whether a request authenticated by the session cookie may go on: reads always, changes only with
    the session's token."""
    return method in SAFE_METHODS or csrf_matches(session_token, sent)
