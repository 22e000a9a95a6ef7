"""Handing work between `minigpt serve`'s threads and the web server's event loop.

The engine writes every story in a thread of its own (engine.py); the requests wait for their
characters in uvicorn's event loop. A Mailbox carries the engine's events to the loop with one
wake-up of the loop per engine step for all the stories of that step (16 streams' pieces), not
one per event. The look-inside views (/api/next, /api/attention.png) go the other way: Looks
runs them one at a time in a worker thread of their own, on the same read-only weights as the
engine, so they neither wait for the stories nor race with them, nor hold up the event loop.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor

from .webapi import Busy

MAX_LOOKS_WAITING = 8  # look-inside requests queued for their thread before the next is "busy"


class Mailbox:
    """Carries the engine thread's events to an event loop: one wake-up of the loop for all the
    events of a step (16 streams' pieces), not one per event."""

    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
    _create = threading.Lock()

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.items: list[tuple[asyncio.Queue, tuple]] = []
        self.lock = threading.Lock()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Mailbox:
        with cls._create:
            if loop not in cls._by_loop:
                cls._by_loop[loop] = cls(loop)
            return cls._by_loop[loop]

    def post(self, queue: asyncio.Queue, item: tuple) -> bool:
        """Queue an item for delivery; False when the loop is closed."""
        with self.lock:
            first = not self.items
            self.items.append((queue, item))
        if first:
            try:
                self.loop.call_soon_threadsafe(self._deliver)
            except RuntimeError:
                return False
        return True

    def _deliver(self) -> None:
        with self.lock:
            items, self.items = self.items, []
        for queue, item in items:
            queue.put_nowait(item)


class Looks:
    """The look-inside views' own thread: one view at a time, at most MAX_LOOKS_WAITING queued."""

    def __init__(self):
        self.pool: ThreadPoolExecutor | None = None  # made on first use, again after close()
        self.waiting = 0

    async def run(self, function, *args):
        if self.waiting >= MAX_LOOKS_WAITING:
            raise Busy()
        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minigpt-look")
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)
        finally:
            self.waiting -= 1

    def close(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False)
