"""Which texts of a chunk get embedded.

A chunk longer than the model's input gets several vectors, one per window,
instead of being silently truncated (FastGPT's "index size" behaviour).
"""

from __future__ import annotations

import re
from typing import Callable

# Break after sentence punctuation (Chinese and Latin) or at line ends; keep the punctuation.
_BREAKS = re.compile(r"(?<=[。！？；!?;\n])|(?<=\. )")


def chunk_text(q: str, a: str) -> str:
    return f"{q}\n{a}" if a.strip() else q


def windows(text: str, count: Callable[[str], int], limit: int) -> list[str]:
    """Split ``text`` into consecutive windows of at most ``limit`` tokens, at sentence breaks when possible."""
    if count(text) <= limit:
        return [text]
    pieces = [p for p in _BREAKS.split(text) if p]
    out: list[str] = []
    current = ""
    for piece in pieces:
        if count(piece) > limit:
            if current:
                out.append(current)
                current = ""
            out.extend(_hard_split(piece, count, limit))
            continue
        if current and count(current + piece) > limit:
            out.append(current)
            current = piece
        else:
            current += piece
    if current:
        out.append(current)
    return [w for w in out if w.strip()]


def _hard_split(text: str, count: Callable[[str], int], limit: int) -> list[str]:
    """No break inside: cut by characters, shrinking until each window fits."""
    out: list[str] = []
    rest = text
    while rest:
        size = len(rest)
        while size > 1 and count(rest[:size]) > limit:
            # shrink proportionally to the overshoot, at least one character per step
            size = max(1, min(size - 1, int(size * limit / max(count(rest[:size]), 1))))
        out.append(rest[:size])
        rest = rest[size:]
    return out
