"""Deferred work that yields to new requests: a few items per turn of the event loop.

Work queued after a burst of answers (the rest of each stream, billing) would otherwise run all in
one turn, and a request that arrives meanwhile would wait behind all of it. A :class:`TurnQueue` runs
it in order from the next turn on (or after a delay), 1 + queued/8 items per turn, and the loop reads
its sockets between turns.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class TurnQueue(Generic[T]):
    """Items handed to ``run`` a few per loop turn; ``run`` returns False for an item that needed no
    work (it does not count towards the turn's share)."""

    def __init__(self, run: Callable[[T], bool], *, delay: float = 0.0) -> None:
        self._run = run
        self._delay = delay
        self._items: collections.deque[T] = collections.deque()
        # The loop whose turns drain the queue. A loop that stopped with its turn pending drains
        # nothing more, so another loop starts its own turns.
        self._loop: asyncio.AbstractEventLoop | None = None

    def put(self, item: T, loop: asyncio.AbstractEventLoop) -> None:
        self._items.append(item)
        if self._loop is not loop:
            self._loop = loop
            if self._delay:
                loop.call_later(self._delay, self._turn, loop)
            else:
                loop.call_soon(self._turn, loop)

    def run_all(self) -> None:
        """Run everything queued now (when the server stops)."""
        while self._items:
            self._run(self._items.popleft())
        self._loop = None

    def _turn(self, loop: asyncio.AbstractEventLoop) -> None:
        items = self._items
        try:
            share = 1 + len(items) // 8
            while items and share:
                if self._run(items.popleft()):
                    share -= 1
        finally:  # whatever one item raised, the queue goes on
            if items:
                loop.call_soon(self._turn, loop)
            elif self._loop is loop:
                self._loop = None
