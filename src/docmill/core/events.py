"""In-process change notifications, so `?wait` and SSE answer the moment a job changes.

The database stays the truth: waiters re-read the job after every wake-up and also wake on a
short timeout, which covers changes made by other processes (workers elsewhere, another API
process) that this hub never hears about.

A waiter subscribes *before* it reads the job and keeps its subscription across reads, so a
change that lands between a read and the next wait is not lost: the subscription stays set
and the next wait returns at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Self


class Subscription:
    """Changes of one job, for one waiter on one event loop. Use as a context manager."""

    def __init__(self, hub: JobEvents, job_id: str) -> None:
        self.hub, self.job_id = hub, job_id
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    def clear(self) -> None:
        """Forget changes seen so far: call right before reading the job."""
        self.event.clear()

    async def wait(self, timeout: float) -> bool:
        """True if the job changed since the last `clear` (at once if it already had),
        False when `timeout` passed first."""
        if self.event.is_set():
            return True
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
            return True
        except TimeoutError:
            return False

    def __enter__(self) -> Self:
        self.hub._add(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.hub._remove(self)


class JobEvents:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Subscription]] = defaultdict(set)

    def notify(self, job_id: str) -> None:
        """Safe to call from any thread."""
        with self._lock:
            waiters = list(self._waiters.get(job_id, ()))
        for sub in waiters:
            sub.loop.call_soon_threadsafe(sub.event.set)

    def watched(self) -> bool:
        """Whether anyone waits on any job now."""
        return bool(self._waiters)

    def subscribe(self, job_id: str) -> Subscription:
        """`with hub.subscribe(job_id) as sub:` then read, `await sub.wait(t)`, clear, read..."""
        return Subscription(self, job_id)

    async def wait(self, job_id: str, timeout: float) -> None:
        """Return when `job_id` changes or `timeout` passes, whichever is first (a change
        before this call is not seen: prefer `subscribe`)."""
        with self.subscribe(job_id) as sub:
            await sub.wait(timeout)

    def _add(self, sub: Subscription) -> None:
        with self._lock:
            self._waiters[sub.job_id].add(sub)

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            waiters = self._waiters.get(sub.job_id)
            if waiters is not None:
                waiters.discard(sub)
                if not waiters:
                    del self._waiters[sub.job_id]


job_events = JobEvents()
