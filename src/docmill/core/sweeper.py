"""Housekeeping that keeps the promise "every job ends, and then disappears".

One background thread per server: re-queues jobs whose worker stopped renewing its lease,
moves on pipeline runs whose next step was never created (a crash between two steps),
fails jobs past their deadline (`timeout`), expires jobs past their retention (state first,
then their blobs), collects orphaned blob folders (a crash between writing inputs and
committing the job), and sends due webhooks.
Every step is an atomic transition, so several servers may sweep the same database.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from sqlalchemy import select

from docmill import dispatch
from docmill.core import jobs, public_files, runs, webhooks
from docmill.core.db import session_scope
from docmill.core.events import job_events
from docmill.core.files import get_blob_store, job_prefix
from docmill.core.models import Job, JobStatus
from docmill.settings import get_settings

log = logging.getLogger(__name__)
ORPHAN_AGE_S = 3600
ORPHAN_EVERY = 10  # full sweeps between two scans of the blob store


def sweep_leases() -> list[str]:
    changed = jobs.requeue_lapsed()
    for job_id in changed:
        job_events.notify(job_id)
        dispatch.current().notify(job_id)
    return changed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_local_workers() -> list[str]:
    """Jobs held by a worker process of this host that no longer exists (the server was
    killed, say) go back to the queue at once instead of waiting for their lease to lapse.
    Owners are `host:pid`; only this host's pids can be checked."""
    changed: list[str] = []
    prefix = f"{socket.gethostname()}:"
    for job_id, owner in jobs.processing_owners(prefix):
        pid_text = owner[len(prefix):]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            changed += jobs.worker_died(job_id, "worker process is gone", owner=owner)
    for job_id in changed:
        job_events.notify(job_id)
        dispatch.current().notify(job_id)
    return changed


def end_overdue(job_ids: list[str]) -> list[str]:
    """Fail these jobs with `timeout` if their deadline has passed, and stop what they still
    run: their worker, and a pipeline run's live steps."""
    ended = []
    for job_id in job_ids:
        if jobs.fail_overdue(job_id):
            dispatch.current().cancel(job_id)
            with session_scope(readonly=True) as session:
                org_id = session.scalar(select(Job.org_id).where(Job.id == job_id))
            if org_id is not None:
                runs.remove_steps(org_id, job_id, live_only=True)
            job_events.notify(job_id)
            ended.append(job_id)
    return ended


def sweep_deadlines() -> list[str]:
    return end_overdue(jobs.overdue())


def sweep_expired() -> int:
    store = get_blob_store()
    count = 0
    for job_id, org_id in jobs.due_for_expiry():
        if jobs.mark_gone(job_id, JobStatus.EXPIRED):
            dispatch.current().cancel(job_id)
            store.delete_prefix(job_prefix(org_id, job_id))
            job_events.notify(job_id)
            count += 1
    return count


def sweep_orphans(min_age_s: float = ORPHAN_AGE_S, batch: int = 500) -> int:
    """Blob folders with no live job behind them (none at all, older than `min_age_s`, or an
    expired/deleted one whose blob deletion was interrupted)."""
    store = get_blob_store()
    removed = 0
    cutoff = time.time() - min_age_s
    # `{org}/_name` folders are not jobs (uploads live under `{org}/_uploads`).
    prefixes = [p for p in store.list_prefixes(depth=2) if not p.split("/", 1)[1].startswith("_")]
    for start in range(0, len(prefixes), batch):
        chunk = prefixes[start:start + batch]
        job_ids = [p.split("/", 1)[1] for p in chunk]
        with session_scope(readonly=True) as session:
            known = dict(session.execute(
                select(Job.id, Job.status).where(Job.id.in_(job_ids))).all())
        for prefix, job_id in zip(chunk, job_ids, strict=True):
            status = known.get(job_id)
            if status is None:
                modified = store.last_modified(prefix)
                if modified is not None and modified > cutoff:
                    continue  # being staged right now
            elif not JobStatus(status).is_gone:
                continue
            store.delete_prefix(prefix)
            removed += 1
    return removed


class Sweeper(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True, name="sweeper")
        self.stopped = threading.Event()

    def run(self) -> None:
        settings = get_settings()
        last_full = 0.0
        sweeps = 0
        while not self.stopped.is_set():
            try:
                webhooks.deliver_due()
                if time.monotonic() - last_full >= settings.sweep_interval_s:
                    last_full = time.monotonic()
                    sweep_leases()
                    if settings.reclaim_dead_local_workers:
                        sweep_dead_local_workers()
                    sweep_deadlines()
                    runs.sweep_runs()
                    sweep_expired()
                    public_files.expire_due()
                    dispatch.current().housekeeping()
                    if sweeps % ORPHAN_EVERY == 0:
                        sweep_orphans()
                    sweeps += 1
            except Exception:
                log.exception("sweep failed; will try again")
            self.stopped.wait(min(1.0, settings.sweep_interval_s))

    def stop(self) -> None:
        self.stopped.set()
