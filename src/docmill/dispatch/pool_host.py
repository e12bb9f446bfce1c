"""The pool host: the one process that owns the local worker pool of `docmill serve`.

The server forks it at start-up, before the server has started a thread, after importing the
runner and the engine catalogue and freezing those objects out of the collector's reach
(`gc.freeze`). The host and every worker it forks therefore share the server's pages
(copy-on-write): a worker costs little more than the memory its own jobs touch, instead of a
second copy of FastAPI, SQLAlchemy and pydantic per process.

Why a process of its own rather than pebble inside the server: pebble forks a replacement
worker whenever one dies or retires, and forking the threaded server could copy into the
child a lock that another thread held at that instant (SQLite's allocator mutex, say),
leaving the child deadlocked. The host runs no database code, only pebble's threads and
this loop, so its forks are safe. The server sends it job ids over a pipe and gets back each
job's outcome; the database remains the source of truth (workers claim and finish jobs).

When the server can no longer fork safely (it has threads: a host that died is being
replaced), it starts the host as a fresh interpreter (spawn) instead; the host then imports
what it needs itself and nothing else changes.

Messages, server -> host: ("run", job_id, timeout_s), ("cancel", job_id), ("stop",).
Host -> server: ("done", job_id, outcome, detail) with outcome "ok", "timeout", "expired"
(the child died; detail is its exit code), "cancelled" or "error" (detail says what).
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import CancelledError, Future, TimeoutError
from functools import partial
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)


def preload() -> None:
    """What every worker should find imported: the runner, pebble, every engine module (their
    operation catalogue; heavy libraries load in a worker on first use), the faces' webhook
    builders (a worker that ends a job writes its webhook) and PDFium, which
    nearly every job uses (page counts, text layers, rendering): loaded once here and
    shared by all workers rather than loaded by each."""
    import pebble  # noqa: F401
    import pypdfium2  # noqa: F401

    import docmill.dispatch.runner  # noqa: F401
    from docmill.bootstrap import load_webhook_builders
    from docmill.engines.registry import engine_classes

    load_webhook_builders()
    engine_classes()


def freeze() -> None:
    """Move what is loaded so far out of the collector's reach: a collection in a child would
    otherwise write to every object header and un-share the parent's pages."""
    gc.collect()
    gc.freeze()


def outcome_of(future: Future) -> tuple[str, Any]:
    from pebble import ProcessExpired

    try:
        future.result()
    except TimeoutError:
        return "timeout", None
    except ProcessExpired as exc:
        return "expired", exc.exitcode
    except CancelledError:
        return "cancelled", None
    except BaseException as exc:  # noqa: BLE001 - run_job broke (database down, say)
        return "error", f"{type(exc).__name__}: {exc}"
    return "ok", None


class _Host:
    def __init__(self, conn: Connection, size: int, max_tasks: int) -> None:
        from pebble import ProcessPool

        from docmill.dispatch.worker_boot import init_worker

        self.conn = conn
        self.send_lock = threading.Lock()
        self.lock = threading.Lock()
        self.futures: dict[str, Future] = {}
        self.pool = ProcessPool(max_workers=size, max_tasks=max_tasks, initializer=init_worker,
                                initargs=(os.getpid(),),
                                context=multiprocessing.get_context("fork"))

    def serve(self) -> None:
        try:
            self._loop()
        finally:
            self.pool.stop()  # running jobs end; their outcomes still go to the server
            self.pool.join(timeout=10)
            for child in multiprocessing.active_children():  # a worker pebble lost track of
                child.kill()

    def _loop(self) -> None:
        from docmill.dispatch.runner import run_job

        while True:
            # A broken pool (a worker dead while idle, a failed fork) takes no new work: the
            # host then exits, and the server fails its jobs over and starts a new host.
            if not self.pool.active:
                log.error("the worker pool broke; the pool process exits")
                return
            if not self.conn.poll(1.0):
                continue
            try:
                message = self.conn.recv()
            except (EOFError, OSError):
                return  # the server is gone (a killed server leaves no orphans)
            if message[0] == "run":
                _, job_id, timeout_s = message
                try:
                    future = self.pool.schedule(run_job, args=(job_id,), timeout=timeout_s)
                except RuntimeError:  # the pool broke since the check above
                    log.exception("the worker pool broke; the pool process exits")
                    return
                with self.lock:
                    self.futures[job_id] = future
                future.add_done_callback(partial(self._report, job_id))
            elif message[0] == "cancel":
                with self.lock:
                    running = self.futures.get(message[1])
                if running is not None:
                    running.cancel()  # pebble kills the child if the job is running
            elif message[0] == "stop":
                return

    def _report(self, job_id: str, future: Future) -> None:
        from concurrent.futures.process import BrokenProcessPool

        outcome, detail = outcome_of(future)
        with self.lock:
            self.futures.pop(job_id, None)
        if outcome == "error" and isinstance(future.exception(), BrokenProcessPool):
            # pebble aborts every task of a broken pool, also those whose worker still runs;
            # the server learns of them when this host has exited and its workers with it.
            return
        with self.send_lock:
            try:
                self.conn.send(("done", job_id, outcome, detail))
            except OSError:  # the server is gone
                pass


def main(conn: Connection, server_end: Connection, size: int, max_tasks: int,
         forked: bool) -> None:
    """The host process's entry point (a `multiprocessing.Process` target)."""
    # Leave the server's process group and ignore SIGTERM/SIGINT, first of all: a signal sent
    # to the whole group (a terminal, an init system) reaches only the server, which then
    # drains its running jobs within the grace period instead of losing them.
    os.setpgrp()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server_end.close()  # so that the server's death reads as EOF here
    if forked:
        # Inherited from the server's event loop: a signal here (SIGCHLD, when a worker
        # exits) must not write into the server's wake-up socket.
        signal.set_wakeup_fd(-1)
    else:
        preload()
        freeze()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s pool %(process)d %(message)s")
    _Host(conn, size, max_tasks).serve()
