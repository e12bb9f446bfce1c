"""The distributed dispatcher: the same `run_job` as a Celery task on Redis or RabbitMQ.

The database stays the source of truth; a broker message is only a hint to run a job id.
A message for a job already taken or finished is a no-op (the claim fails), so redelivery
and re-dispatch are harmless. Messages are acknowledged late and rejected if the worker is
lost; one queue per operation family keeps slow OCR from starving fast conversions; soft and
hard time limits come from the job's timeout. Lost messages (a broker restarted without
persistence, say) are found by `redispatch_lost` in the API's sweeper, which compares what
the broker holds with what the database says is waiting.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import select, update

from docmill.core import jobs
from docmill.core.db import session_scope
from docmill.core.models import Job, JobStatus, utcnow
from docmill.dispatch.base import Dispatcher
from docmill.settings import Settings, get_settings

log = logging.getLogger(__name__)
TASK_NAME = "docmill.run_job"
HARD_LIMIT_GRACE_S = 15


def queue_for(operation: str, settings: Settings | None = None) -> str:
    """The queue of an operation: the longest matching prefix in `celery_routes`."""
    routes = (settings or get_settings()).celery_routes
    best = ""
    for prefix in routes:
        if operation.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return routes.get(best, "default") if best else "default"


def all_queues(settings: Settings | None = None) -> list[str]:
    return sorted({"default", *(settings or get_settings()).celery_routes.values()})


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("docmill", broker=settings.broker_url)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        worker_max_tasks_per_child=settings.worker_max_tasks or None,
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"visibility_timeout": 3600},
        worker_cancel_long_running_tasks_on_connection_loss=True,
    )

    from docmill.bootstrap import load_webhook_builders
    from docmill.dispatch import runner

    load_webhook_builders()  # a worker ends jobs, and so writes their webhooks
    runner.timeout_exceptions = (SoftTimeLimitExceeded,)

    @app.task(name=TASK_NAME, acks_late=True, reject_on_worker_lost=True)
    def run_job_task(job_id: str) -> str:
        from docmill.dispatch.runner import run_job

        try:
            return run_job(job_id)
        except SoftTimeLimitExceeded:
            # run_job classifies the limit inside the engine; this fires only outside it.
            jobs.fail(job_id, "timeout", "the job ran longer than its timeout and was stopped")
            return "timeout"

    return app


_app: Celery | None = None


def celery_app() -> Celery:
    global _app
    if _app is None:
        _app = make_celery()
    return _app


def send(job_id: str, operation: str, timeout_s: float) -> None:
    celery_app().send_task(
        TASK_NAME, args=[job_id], queue=queue_for(operation),
        soft_time_limit=timeout_s, time_limit=timeout_s + HARD_LIMIT_GRACE_S,
    )
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(dispatched_at=utcnow()))


def broker_depth(queue: str) -> int | None:
    """Messages waiting in `queue`, or None if the broker cannot say."""
    try:
        with celery_app().connection_for_write() as conn:
            _name, count, _consumers = conn.default_channel.queue_declare(
                queue=queue, passive=True)
            return int(count)
    except Exception:  # noqa: BLE001 - a queue not declared yet holds nothing
        return 0


def redispatch_lost(min_age_s: float) -> list[str]:
    """Re-send ENQUEUED jobs whose message the broker no longer holds.

    Per queue: if the broker holds fewer messages than the database has jobs waiting (and
    dispatched over `min_age_s` ago), the oldest of those are sent again, as many as are
    missing. A duplicate is harmless: its claim fails.
    """
    cutoff = utcnow() - timedelta(seconds=min_age_s)
    with session_scope(readonly=True) as session:
        rows = session.execute(
            select(Job.id, Job.operation, Job.timeout_s, Job.dispatched_at)
            .where(Job.status == JobStatus.ENQUEUED.value)
            .order_by(Job.created_at)
        ).all()
    by_queue: dict[str, list[tuple[str, str, float, datetime | None]]] = {}
    for job_id, operation, timeout_s, dispatched_at in rows:
        by_queue.setdefault(queue_for(operation), []).append(
            (job_id, operation, timeout_s, dispatched_at))
    resent: list[str] = []
    for queue, waiting in by_queue.items():
        depth = broker_depth(queue)
        if depth is None:
            continue
        missing = len(waiting) - depth
        stale = [w for w in waiting if w[3] is None or w[3] < cutoff]
        for job_id, operation, timeout_s, _ in stale[:max(0, missing)]:
            try:
                send(job_id, operation, timeout_s)
            except Exception:  # noqa: BLE001 - broker still down: next sweep tries again
                log.warning("broker unavailable; %d jobs wait for re-dispatch", len(stale))
                return resent
            resent.append(job_id)
    if resent:
        log.warning("re-dispatched %d jobs whose broker message was lost", len(resent))
    return resent


class CeleryDispatcher(Dispatcher):
    """Used by API processes: sends a message per enqueued job."""

    def start(self) -> None:
        celery_app()

    def stop(self, grace_s: float) -> None:
        pass

    def describe(self) -> dict[str, object]:
        return {"dispatcher": "celery", "workers_here": 0}

    def notify(self, job_id: str) -> None:
        with session_scope(readonly=True) as session:
            row = session.execute(select(Job.operation, Job.timeout_s, Job.status)
                                  .where(Job.id == job_id)).first()
        if row is None or row[2] != JobStatus.ENQUEUED.value:
            return
        try:
            send(job_id, row[0], row[1])
        except Exception:  # broker down: the job waits in the database for redispatch
            log.exception("could not send job %s to the broker; it will be re-dispatched", job_id)

    def housekeeping(self) -> None:
        redispatch_lost(get_settings().redispatch_after_s)
