"""Split a text too long for the model into consecutive windows that each fit.

Only the embedder's ``count_tokens`` is needed, so this works for any model: the
longest prefix that fits is found by binary search over character offsets, then
moved back to the last whitespace or punctuation in its final fifth so a window
rarely ends inside a word.
"""

from __future__ import annotations

from collections.abc import Callable

_BREAKS = frozenset(" \t\n\r\u3000。！？；，、.!?;,:：）)]}")


def _fits(count: Callable[[str], int], limit: int) -> Callable[[str], bool]:
    return lambda piece: count(piece) <= limit


def split_windows(text: str, count: Callable[[str], int], limit: int) -> list[str]:
    """Consecutive pieces of ``text``, each with ``count(piece) <= limit``, together the whole text.

    ``count`` measures a piece the way the model will see it (special tokens
    included); ``limit`` must leave room for at least one character.
    """
    fits = _fits(count, limit)
    windows: list[str] = []
    start = 0
    while start < len(text):
        rest = text[start:]
        if fits(rest):
            windows.append(rest)
            break
        # grow an upper bound that does not fit, then search below it
        good, bad = 0, min(len(rest), max(limit, 16))
        while fits(rest[:bad]):
            good, bad = bad, min(len(rest), bad * 2)
        while bad - good > 1:
            mid = (good + bad) // 2
            if fits(rest[:mid]):
                good = mid
            else:
                bad = mid
        if good == 0:
            raise ValueError(f"a single character at offset {start} is over the limit of {limit} tokens")
        cut = good
        for k in range(good, max(good - good // 5, 1) - 1, -1):
            if rest[k - 1] in _BREAKS:
                cut = k
                break
        windows.append(rest[:cut])
        start += cut
    return windows
