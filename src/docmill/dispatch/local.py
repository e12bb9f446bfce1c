"""The local dispatcher: a supervised pool of worker processes inside `docmill serve`.

Engines run in pebble's child processes, so a crash or a hang kills a child, never the
server: pebble reports a dead child as `ProcessExpired` and a job past its timeout as
`TimeoutError` (after killing the child), and starts a replacement. The database stays the
source of truth; this loop only picks ENQUEUED ids, hands them to the pool, and turns a
child's death or timeout into the state machine's `worker_died` or `fail`.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, TimeoutError, wait
from functools import partial

from pebble import ProcessExpired, ProcessPool

from docmill.core import jobs
from docmill.dispatch.base import Dispatcher
from docmill.settings import Settings

log = logging.getLogger(__name__)

PRELOAD = ["docmill.dispatch.forkserver_boot"]


class LocalDispatcher(Dispatcher):
    def __init__(self, settings: Settings, on_change: Callable[[str], None] = lambda _id: None):
        self.settings = settings
        self.on_change = on_change
        self.size = max(1, settings.workers)
        self.max_inflight = self.size * 2  # one running and one waiting per child
        self.inflight: dict[str, Future] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.pool: ProcessPool | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        # forkserver: children fork from a clean, single-threaded process that has already
        # imported the runner, never from the threaded server.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        from docmill.dispatch.worker_boot import init_worker

        self.pool = ProcessPool(max_workers=self.size, max_tasks=self.settings.worker_max_tasks,
                                initializer=init_worker, context=context)
        self.thread = threading.Thread(target=self._loop, name="local-dispatcher", daemon=True)
        self.thread.start()

    def notify(self, job_id: str) -> None:
        # With every slot taken there is nothing to do until a job finishes, and `_done` wakes
        # the loop then (and it reads the queue afresh): no wake-up and queue read per submit.
        if len(self.inflight) < self.max_inflight:
            self.wake.set()

    def cancel(self, job_id: str) -> None:
        with self.lock:
            future = self.inflight.get(job_id)
        if future is not None:
            future.cancel()  # pebble kills the child if the job is running

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.settings.poll_interval_s)
            self.wake.clear()
            if self.stopping.is_set():
                break
            try:
                self._fill()
            except Exception:
                log.exception("dispatcher could not read the queue; retrying")

    def _fill(self) -> None:
        assert self.pool is not None
        with self.lock:
            free = self.max_inflight - len(self.inflight)
            busy = list(self.inflight)
        for job_id, timeout_s in jobs.next_enqueued(free, exclude=busy):
            from docmill.dispatch.runner import run_job

            future = self.pool.schedule(run_job, args=(job_id,), timeout=timeout_s)
            with self.lock:
                self.inflight[job_id] = future
            future.add_done_callback(partial(self._done, job_id, timeout_s))

    def _done(self, job_id: str, timeout_s: float, future: Future) -> None:
        try:
            future.result()
        except TimeoutError:
            jobs.fail(job_id, "timeout", f"the job ran longer than its {timeout_s:g} s timeout "
                      "and was stopped")
        except BaseException as exc:
            if self.stopping.is_set():
                # Shutting down: pebble ends running jobs (ProcessExpired, BrokenProcessPool,
                # CancelledError); the job is given back without spending an attempt.
                jobs.release(job_id)
            elif isinstance(exc, ProcessExpired):
                jobs.worker_died(job_id, f"worker process died (exit code {exc.exitcode})")
            elif not isinstance(exc, CancelledError):  # run_job broke (database down, say)
                log.error("worker failed running job %s: %r", job_id, exc)
                jobs.worker_died(job_id, f"worker error: {type(exc).__name__}: {exc}")
        finally:
            with self.lock:
                self.inflight.pop(job_id, None)
            self.on_change(job_id)
            self.wake.set()

    def stop(self, grace_s: float) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread:
            self.thread.join(timeout=5)
        with self.lock:
            pending = list(self.inflight.values())
        if pending:
            log.info("waiting up to %.0f s for %d running jobs", grace_s, len(pending))
            wait(pending, timeout=grace_s)
        if self.pool:
            self.pool.stop()
            self.pool.join(timeout=10)
        with self.lock:
            leftover = list(self.inflight)
        for job_id in leftover:  # stopped before finishing: back to the queue, no attempt spent
            jobs.release(job_id)
