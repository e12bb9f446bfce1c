"""The local dispatcher: a supervised pool of worker processes inside `docmill serve`.

Engines run in pebble's child processes, owned by the pool host (see `pool_host`), so a crash
or a hang kills a child, never the server: pebble reports a dead child and a job past its
timeout (after killing the child), and starts a replacement. The database stays the source
of truth; this side only picks ENQUEUED ids, sends them to the host, and turns a child's death
or timeout into the state machine's `worker_died` or `fail`. If the host itself dies, its
jobs count as died with their workers and a new host starts.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from docmill.core import jobs
from docmill.dispatch import pool_host
from docmill.dispatch.base import Dispatcher
from docmill.settings import Settings

log = logging.getLogger(__name__)


class _HostHandle:
    """One pool host process and the server's end of the pipe to it."""

    def __init__(self, process: BaseProcess, conn: Connection, forked: bool) -> None:
        self.process, self.conn, self.forked = process, conn, forked
        self.alive = True
        self.hung_up = False
        self.reader: threading.Thread | None = None
        # `stop` hangs up while the reader may be closing after the host exited: one at a
        # time, or one closes a descriptor the other has just closed (EBADF).
        self._closing = threading.Lock()

    def hang_up(self) -> None:
        """Close our end of the pipe so that the host reads EOF now. `shutdown` first: a
        thread blocked polling the pipe would keep a merely closed socket open."""
        self.hung_up = True
        with self._closing:
            try:
                with socket.fromfd(self.conn.fileno(), socket.AF_UNIX,
                                   socket.SOCK_STREAM) as sock:
                    sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # already closed
                pass
            self.conn.close()

    def close(self) -> None:
        with self._closing:
            self.conn.close()


class LocalDispatcher(Dispatcher):
    def __init__(self, settings: Settings, on_change: Callable[[str], None] = lambda _id: None):
        self.settings = settings
        self.on_change = on_change
        self.size = max(1, settings.workers)
        self.max_inflight = self.size * 2  # one running and one waiting per child
        self.inflight: dict[str, tuple[float, _HostHandle]] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.host: _HostHandle | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        self._launch_host()
        self.thread = threading.Thread(target=self._loop, name="local-dispatcher", daemon=True)
        self.thread.start()

    def _launch_host(self) -> None:
        # Under the lock, so that `stop` either sees the new host and stops it or makes this
        # a no-op: a host started behind its back would keep the server from exiting.
        with self.lock:
            if self.stopping.is_set():
                return
            handle = self._start_host()
            self.host = handle
        handle.reader = threading.Thread(target=self._read, args=(handle,),
                                         name="local-dispatcher-results", daemon=True)
        handle.reader.start()
        log.info("worker pool of %d started (pool process %d, %s)", self.size,
                 handle.process.pid, "forked" if handle.forked else "spawned")

    def _start_host(self) -> _HostHandle:
        # Fork (sharing the server's pages) only while this process has no other thread:
        # at start-up. Later, e.g. replacing a host that died, a fresh interpreter.
        forked = ("fork" in multiprocessing.get_all_start_methods()
                  and threading.active_count() == 1 and _os_threads() == 1)
        if forked:
            from docmill.core.db import get_engine

            pool_host.preload()
            get_engine().dispose()  # no database connection may cross the fork
            pool_host.freeze()
        context = (multiprocessing.get_context("fork") if forked
                   else multiprocessing.get_context("spawn"))
        server_end, host_end = context.Pipe()
        process = context.Process(
            target=pool_host.main, name="docmill-pool",
            args=(host_end, server_end, self.size, self.settings.worker_max_tasks, forked))
        process.start()
        host_end.close()
        handle = _HostHandle(process, server_end, forked)
        # However this process ends, the pipe closes before multiprocessing joins its
        # children at exit: the host then reads EOF and exits, and the join returns.
        multiprocessing.util.Finalize(handle, handle.hang_up, exitpriority=100)
        return handle

    def describe(self) -> dict[str, object]:
        host = self.host
        return {"dispatcher": "local", "workers_here": self.size,
                "pool_alive": bool(host and host.alive and host.process.is_alive()),
                "in_pool": len(self.inflight)}

    def notify(self, job_id: str) -> None:
        # With every slot taken there is nothing to do until a job finishes, and `_finished`
        # wakes the loop then (which reads the queue afresh): no wake-up per submit.
        if len(self.inflight) < self.max_inflight:
            self.wake.set()

    def cancel(self, job_id: str) -> None:
        with self.lock:
            entry = self.inflight.get(job_id)
            if entry is not None and entry[1].alive:
                self._send(entry[1], ("cancel", job_id))

    def _send(self, host: _HostHandle, message: tuple[Any, ...]) -> bool:
        """Called with `self.lock` held (messages are tiny; the host reads continuously)."""
        try:
            host.conn.send(message)
            return True
        except (OSError, ValueError):  # the host is gone; `_read` cleans up
            return False

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
        with self.lock:
            host = self.host
            if host is None or not host.alive:
                return
            free = self.max_inflight - len(self.inflight)
            busy = list(self.inflight)
        if free <= 0:
            return
        for job_id, timeout_s in jobs.next_enqueued(free, exclude=busy):
            with self.lock:
                if not host.alive or self.stopping.is_set():
                    return  # the job stays ENQUEUED for the next host / the next start
                self.inflight[job_id] = (timeout_s, host)
                if not self._send(host, ("run", job_id, timeout_s)):
                    del self.inflight[job_id]
                    return

    def _read(self, host: _HostHandle) -> None:
        """Outcomes from one host, until it exits."""
        while True:
            ready = wait([host.conn, host.process.sentinel])
            if host.conn not in ready:  # the host exited: take what it sent before
                while self._receive(host, block=False):
                    pass
                break
            if not self._receive(host, block=True):
                break
        with self.lock:
            host.alive = False
            lost = [job_id for job_id, (_, owner) in self.inflight.items() if owner is host]
        host.process.join(timeout=5)
        _kill_group(host.process)  # a worker that outlived its host
        host.close()
        for job_id in lost:  # their workers died with the host
            self._finished(job_id, "pool-died", host.process.exitcode)
        if self.stopping.is_set() or host.hung_up:  # stopped by us, or this process exits
            return
        log.error("the worker pool process died (exit code %s); starting a new one",
                  host.process.exitcode)
        delay = 1.0  # no tight loop if it keeps dying
        while not self.stopping.wait(delay):
            try:
                self._launch_host()
                break
            except Exception:
                log.exception("could not start a new worker pool; trying again")
                delay = min(delay * 2, 60.0)
        self.wake.set()

    def _receive(self, host: _HostHandle, block: bool) -> bool:
        """One outcome from `host`; False once there is none to come (or none now)."""
        try:
            if not block and not host.conn.poll():
                return False
            _, job_id, outcome, detail = host.conn.recv()
        except (EOFError, OSError):
            return False
        self._finished(job_id, outcome, detail)
        return True

    def _finished(self, job_id: str, outcome: str, detail: Any) -> None:
        with self.lock:
            entry = self.inflight.pop(job_id, None)
        if entry is None:
            return
        timeout_s = entry[0]
        try:
            if outcome == "timeout":
                jobs.fail(job_id, "timeout", f"the job ran longer than its {timeout_s:g} s "
                          "timeout and was stopped")
            elif outcome == "ok" or (outcome == "cancelled" and not self.stopping.is_set()):
                pass  # run_job recorded the outcome / the job was deleted
            elif self.stopping.is_set():
                # Shutting down: the pool ends running jobs; the job is given back without
                # spending an attempt.
                jobs.release(job_id)
            elif outcome == "expired":
                jobs.worker_died(job_id, f"worker process died (exit code {detail})")
            elif outcome == "pool-died":
                jobs.worker_died(job_id, f"the worker pool process died (exit code {detail})")
            else:  # run_job broke (database down, say)
                log.error("worker failed running job %s: %s", job_id, detail)
                jobs.worker_died(job_id, f"worker error: {detail}")
        except Exception:
            log.exception("could not record the outcome of job %s", job_id)
        finally:
            self.on_change(job_id)
            self.wake.set()

    def stop(self, grace_s: float) -> None:
        with self.lock:
            self.stopping.set()
        self.wake.set()
        if self.thread:
            self.thread.join(timeout=5)
        deadline = time.monotonic() + grace_s
        if self.inflight:
            log.info("waiting up to %.0f s for %d running jobs", grace_s, len(self.inflight))
        while self.inflight and time.monotonic() < deadline:
            time.sleep(0.05)
        with self.lock:
            host = self.host
            if host is not None and host.alive:
                self._send(host, ("stop",))
        if host is not None:
            host.process.join(timeout=15)
            if host.process.is_alive():
                host.process.kill()
                host.process.join(timeout=5)
            _kill_group(host.process)
            host.hang_up()
            # The reader records the outcomes the host sent while stopping (a job it popped
            # from `inflight` is released there): let it finish, or the process could exit
            # with that job still PROCESSING under a dead owner.
            if host.reader is not None and host.reader is not threading.current_thread():
                host.reader.join(timeout=15)
        with self.lock:
            leftover = list(self.inflight)
            self.inflight.clear()
        for job_id in leftover:  # stopped before finishing: back to the queue, no attempt spent
            jobs.release(job_id)


def _os_threads() -> int:
    """Threads of this process as the kernel counts them (native ones included)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def _kill_group(process: BaseProcess) -> None:
    """SIGKILL what is left of an exited host's process group (it made its own group, and
    its workers are in it)."""
    if process.exitcode is None or process.pid is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
