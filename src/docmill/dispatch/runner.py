"""`run_job`: the one function every dispatcher calls, in a worker process.

It claims the job under a lease (a no-op if the job is already taken or finished, so a
duplicate broker message is harmless), renews the lease from the process's heartbeat thread
while the engine works, fetches inputs from the blob store, runs the engine with a throttled
progress reporter, stores outputs under a per-attempt prefix (removing what earlier attempts
that died left there), and records success or a classified failure. If the state machine
rejects the final write (the lease was lost and the job given to someone else, or it was
deleted), the outputs of this attempt are removed again.
"""

from __future__ import annotations

import atexit
import logging
import multiprocessing.util
import os
import shutil
import socket
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from pydantic import ValidationError

from docmill.core import jobs
from docmill.core.files import get_blob_store, job_prefix
from docmill.engines.base import EngineInput
from docmill.engines.registry import engine_for, get_operation
from docmill.errors import DocmillError, InvalidInput, NotFound, Timeout
from docmill.settings import get_settings

log = logging.getLogger(__name__)

# Exceptions a dispatcher raises inside the engine call to stop an overrunning job (Celery's
# soft time limit): they mean "timeout", not an engine failure. Dispatchers add to this.
timeout_exceptions: tuple[type[BaseException], ...] = ()


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class _Running:
    """Lease and progress bookkeeping of the job this worker process is running.

    Progress is written at most every `interval` seconds, the first time only once the job
    has run that long: a job that finishes sooner never writes progress at all (its SUCCESS
    sets 100), which spares short jobs a write transaction. An update the throttle holds back
    is not dropped but kept as pending, and the heartbeat writes it when its time comes, so
    the last phase shows even if the engine then goes quiet for a while."""

    def __init__(self, job_id: str, owner: str, lease_s: float, interval: float) -> None:
        self.job_id, self.owner, self.lease_s, self.interval = job_id, owner, lease_s, interval
        self.lock = threading.Lock()
        now = time.monotonic()
        self.next_renew = now + lease_s / 3
        self.last_write = now
        self.pending: tuple[int, str] | None = None
        self.best = 0
        self.finished = False
        self.lost = False

    def progress(self, percent: float, message: str = "") -> None:
        """The engine's progress callback."""
        with self.lock:
            if self.finished:
                return
            floor = max(self.best, self.pending[0] if self.pending else 0)
            update = (max(floor, int(max(0, min(99, percent)))), message)
            if time.monotonic() - self.last_write >= self.interval:
                self._write(*update)
            else:
                self.pending = update

    def _write(self, percent: int, message: str) -> None:
        self.pending = None
        self.best = percent
        self.last_write = time.monotonic()
        try:
            jobs.report_progress(self.job_id, self.owner, percent, message)
        except Exception:  # progress is best effort; the job goes on
            log.exception("progress write failed for %s", self.job_id)

    def next_due(self) -> float:
        due = self.next_renew
        if self.pending is not None:
            due = min(due, self.last_write + self.interval)
        return due

    def tick(self) -> None:
        """Heartbeat: renew the lease and write held-back progress, whichever is due."""
        with self.lock:
            if self.finished:
                return
            now = time.monotonic()
            if self.pending is not None and now >= self.last_write + self.interval:
                self._write(*self.pending)
            if now >= self.next_renew:
                try:
                    if jobs.renew_lease(self.job_id, self.owner, self.lease_s):
                        self.next_renew = now + self.lease_s / 3
                    else:
                        self.lost = True
                        self.next_renew = float("inf")
                except Exception:  # a database hiccup: try again next beat
                    log.exception("lease renewal failed for %s", self.job_id)
                    self.next_renew = now + self.lease_s / 3

    def finish(self) -> None:
        with self.lock:
            self.finished = True
            self.pending = None


class _Heartbeat:
    """One thread per worker process, started with its first job and reused for every later
    one (a thread per job cost more than a short job's engine call). It is never woken: it
    looks for new jobs every `idle_s` and, while jobs run, at least every progress interval,
    which is soon enough for both the lease (renewed every third of it) and held-back
    progress, and costs a short job nothing. It serves every job the process runs at once
    (one, in the local pool; several in a threaded worker)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[_Running] = set()
        self.thread: threading.Thread | None = None
        self.pid = 0
        self.idle_s = 1.0

    def watch(self, running: _Running) -> None:
        with self.lock:
            self.running.add(running)
            if self.thread is None or self.pid != os.getpid() or not self.thread.is_alive():
                self.pid = os.getpid()
                self.idle_s = min(1.0, running.lease_s / 6)
                self.thread = threading.Thread(target=self._loop, daemon=True,
                                               name="docmill-heartbeat")
                self.thread.start()

    def unwatch(self, running: _Running) -> None:
        running.finish()
        with self.lock:
            self.running.discard(running)

    def _loop(self) -> None:
        while True:
            with self.lock:
                running = list(self.running)
            if not running:
                time.sleep(self.idle_s)
                continue
            now = time.monotonic()
            due = [r for r in running if r.next_due() <= now]
            if not due:
                delay = min(min(r.next_due() for r in running) - now,
                            max(0.05, min(r.interval for r in running)))
                time.sleep(max(delay, 0.001))
                continue
            for item in due:
                item.tick()


_heartbeat = _Heartbeat()


class _Workdirs:
    """Scratch folders for jobs, created once per process and emptied after every job.

    Creating and removing a folder per job cost more than a short job itself on some file
    systems (a directory removal is a journal commit on ext4); emptying one is cheap. A job
    takes a free folder (a new one if every folder is busy, so that jobs running at once in
    one process never share one) and gives it back emptied."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.free: list[Path] = []
        self.pid = 0

    def take(self) -> Path:
        with self.lock:
            if self.pid != os.getpid():  # a forked child: its parent's folders are not its own
                self.pid, self.free = os.getpid(), []
            while self.free:
                path = self.free.pop()
                if path.is_dir():
                    return path
        path = Path(tempfile.mkdtemp(prefix=f"docmill-worker-{os.getpid()}-"))
        # Removed when the process exits: atexit for a plain process, multiprocessing's
        # finalizers for a pool child (which leaves through os._exit, skipping atexit).
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        multiprocessing.util.Finalize(None, shutil.rmtree, args=(path,),
                                      kwargs={"ignore_errors": True}, exitpriority=1)
        return path

    def give_back(self, path: Path) -> None:
        try:
            entries = list(os.scandir(path))
        except OSError:
            return  # gone: forget it
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path)
                else:
                    os.unlink(entry.path)
            except OSError:
                shutil.rmtree(path, ignore_errors=True)  # cannot empty it: drop it
                return
        with self.lock:
            if self.pid == os.getpid():
                self.free.append(path)


_workdirs = _Workdirs()


def _local_blob_params(params, org_id: str, store, stack: ExitStack):
    """Replaces each of the operation's blob parameters (a key set by the core) by the path of
    a local copy, or by "" if that blob is gone; only the job's own organization's blobs are
    reachable (a key elsewhere is refused)."""
    update = {}
    for name in type(params).blob_params:
        key = getattr(params, name, None)
        if not key:
            continue
        if not key.startswith(f"{org_id}/") or ".." in key.split("/"):
            raise InvalidInput(f"parameter {name!r} names a file of another organization")
        try:
            update[name] = str(stack.enter_context(store.local_path(key)))
        except NotFound:
            log.warning("blob %s named by %s is gone", key, name)
            update[name] = ""
    return params.model_copy(update=update) if update else params


def run_job(job_id: str, owner: str | None = None) -> str:
    """Run one job to a terminal state if it is ours to run; returns what happened."""
    settings = get_settings()
    owner = owner or worker_identity()
    job = jobs.claim(job_id, owner, settings.lease_s)
    if job is None:
        return "not-claimed"
    running = _Running(job_id, owner, settings.lease_s, settings.progress_min_interval_s)
    _heartbeat.watch(running)
    store = get_blob_store()
    out_prefix = f"{job_prefix(job.org_id, job.id)}/output-{job.attempts}"
    for attempt in range(1, job.attempts):
        # an earlier attempt died (its worker killed mid-upload, say): what it stored is garbage
        store.delete_prefix(f"{job_prefix(job.org_id, job.id)}/output-{attempt}")
    workdir = _workdirs.take()
    try:
        try:
            operation = get_operation(job.operation)
            try:
                params = operation.params.model_validate(job.params)
            except ValidationError as exc:
                raise InvalidInput(f"invalid parameters: {exc}") from exc
            with ExitStack() as stack:
                inputs = [
                    EngineInput(stack.enter_context(store.local_path(f.blob_key)), f.name,
                                f.content_type)
                    for f in job.files_of("input")
                ]
                params = _local_blob_params(params, job.org_id, store, stack)
                engine = engine_for(operation)
                result = engine.run(operation.name, inputs, params, workdir, running.progress)
        except DocmillError as exc:
            jobs.fail(job_id, exc.code, exc.message, owner=owner)
            return exc.code
        except timeout_exceptions:
            error = Timeout(f"the job ran longer than its timeout ({job.timeout_s:g} s) "
                            "and was stopped")
            jobs.fail(job_id, error.code, error.message, owner=owner)
            return error.code
        except Exception as exc:  # an engine bug or a library choking on the document
            log.exception("job %s failed in the engine", job_id)
            jobs.fail(job_id, "engine_failed", f"{type(exc).__name__}: {exc}", owner=owner)
            return "engine_failed"
        outputs = []
        for position, out in enumerate(result.outputs):
            name = out.name or out.path.name
            key = f"{out_prefix}/{position}-{name}"
            store.put_file(key, out.path)
            outputs.append(jobs.OutputFile(name=name, blob_key=key, size=out.path.stat().st_size,
                                           content_type=out.content_type))
        data = dict(result.data)
        if result.warnings:
            data["warnings"] = result.warnings
        data.setdefault("pages_processed", result.pages)
        if jobs.succeed(job_id, owner, data, outputs):
            return "success"
        store.delete_prefix(out_prefix)  # our lease was lost: this attempt's files are orphans
        return "lost-lease"
    finally:
        _heartbeat.unwatch(running)
        _workdirs.give_back(workdir)

