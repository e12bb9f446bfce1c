"""What faces call: submit, read, list, wait for and delete jobs, scoped to an organization.

Faces never touch the database, the blob store or a dispatcher directly; they translate
their vendor's request into these calls and the results back into their vendor's shape.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from docmill import dispatch
from docmill.core import doctypes, jobs, runs, sweeper
from docmill.core.auth import Principal
from docmill.core.db import connection_scope, session_scope
from docmill.core.events import Subscription, job_events
from docmill.core.files import get_blob_store, job_prefix
from docmill.core.inputs import InputStager
from docmill.core.models import Job, JobEvent, JobFile, JobStatus, new_id, utcnow
from docmill.engines.registry import get_operation
from docmill.errors import Conflict, InvalidInput, NotFound
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings


@dataclass
class Submission:
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    face: str = "native"
    face_state: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    retention_s: float | None = None
    job_id: str | None = None
    # after this long from submission the job fails with `timeout` whatever its worker
    # does (see `jobs.fail_overdue`); None: only its per-attempt `timeout_s` applies
    deadline_s: float | None = None


def new_stager(principal: Principal, job_id: str | None = None,
               max_bytes: int | None = None) -> InputStager:
    settings = get_settings()
    return InputStager(principal.org_id, job_id or new_id(),
                       max_bytes or settings.max_upload_bytes)


def validate_params(operation_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Checks parameters against the operation's model; returns them normalised."""
    operation = get_operation(operation_name)
    try:
        model = operation.params.model_validate(params)
    except ValidationError as exc:
        problems = [
            {"param": ".".join(str(p) for p in err["loc"]) or "params", "message": err["msg"]}
            for err in exc.errors()
        ]
        text = "; ".join(f"{p['param']}: {p['message']}" for p in problems)
        raise InvalidInput(f"invalid parameters for {operation_name}: {text}",
                           problems=problems) from None
    return model.model_dump(mode="json", exclude_none=True)


def prepare_params(principal: Principal, operation: str,
                   params: dict[str, Any]) -> dict[str, Any]:
    """The caller's parameters with document types named by code filled in (see
    `doctypes.fill_type_params`), checked against the operation; for faces that want to
    refuse a request before storing its files."""
    filled = doctypes.fill_type_params(principal, operation, params)
    validate_params(operation, filled)
    return filled


def params_need_lookup(operation: str, params: dict[str, Any]) -> bool:
    """Whether `prepare_params` will read the database (else it is pure validation)."""
    return doctypes.names_types(operation, params)


def submit(principal: Principal, submission: Submission, stager: InputStager) -> Job:
    """Create the job for inputs already staged; on any refusal the staged files go away."""
    settings = get_settings()
    try:
        operation = get_operation(submission.operation)
        params = validate_params(submission.operation, prepare_params(
            principal, submission.operation, submission.params))
        staged = stager.staged
        if not (operation.min_inputs <= len(staged) <= operation.max_inputs):
            want = (str(operation.min_inputs) if operation.min_inputs == operation.max_inputs
                    else f"{operation.min_inputs} to {operation.max_inputs}")
            raise InvalidInput(f"{operation.name} takes {want} input file(s), got {len(staged)}")
        for item in staged:
            operation.check_takes(item.name, item.content_type)
        if submission.webhook_url:
            policy_from_settings().check_url(submission.webhook_url)
        now = utcnow()
        retention = submission.retention_s or settings.retention_s
        job = Job(
            id=stager.job_id, org_id=principal.org_id, face=submission.face,
            operation=operation.name, params=params, status=JobStatus.ENQUEUED.value,
            max_attempts=settings.max_attempts,
            timeout_s=submission.timeout_s or settings.default_timeout_s,
            created_at=now, expires_at=now + timedelta(seconds=retention),
            deadline_at=deadline_after(now, submission.deadline_s),
            webhook_url=submission.webhook_url, face_state=submission.face_state,
            message="queued",
        )
        job.files = [
            JobFile(role="input", position=i, name=s.name, blob_key=s.blob_key, size=s.size,
                    content_type=s.content_type) for i, s in enumerate(staged)
        ]
        with connection_scope() as conn:
            job = jobs.insert_job(conn, job)
    except IntegrityError as exc:
        raise Conflict(f"a job with id {stager.job_id} already exists") from exc
    except BaseException:
        stager.discard()
        raise
    dispatch.current().notify(job.id)
    return job


def deadline_after(start: datetime, seconds: float | None) -> datetime | None:
    return None if seconds is None else start + timedelta(seconds=seconds)


def _past_deadline(job: Job | None) -> bool:
    return (job is not None and job.deadline_at is not None and not job.job_status.is_terminal
            and job.deadline_at <= utcnow())


def get_job(principal: Principal, job_id: str) -> Job:
    """The job as it is; one past its deadline is failed first (the sweeper would do it at
    its next pass; a reader never sees a broken promise as still running)."""
    with connection_scope(readonly=True) as conn:
        job = jobs.load_job(conn, job_id, org_id=principal.org_id)
    if _past_deadline(job):
        sweeper.end_overdue([job_id])
        with connection_scope(readonly=True) as conn:
            job = jobs.load_job(conn, job_id, org_id=principal.org_id)
    if job is None or job.job_status.is_gone:
        raise NotFound(f"job {job_id} not found")
    return job


def find_job(org_id: str, job_id: str) -> Job | None:
    """Like get_job but None instead of NotFound, and gone jobs included (faces that must
    tell expired from unknown)."""
    query = select(Job).options(selectinload(Job.files)).where(Job.id == job_id,
                                                               Job.org_id == org_id)
    with session_scope(readonly=True) as session:
        job = session.scalar(query)
    if _past_deadline(job):
        sweeper.end_overdue([job_id])
        with session_scope(readonly=True) as session:
            job = session.scalar(query)
    return job


def _encode_cursor(job: Job) -> str:
    raw = json.dumps([job.created_at.isoformat(), job.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, job_id = json.loads(raw)
        return datetime.fromisoformat(created), str(job_id)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("invalid cursor") from exc


def list_jobs(principal: Principal, *, status: str | None = None, operation: str | None = None,
              limit: int = 50, cursor: str | None = None,
              created_after: datetime | None = None,
              created_before: datetime | None = None) -> tuple[list[Job], str | None]:
    """Newest first, keyset-paginated (stable under concurrent inserts); the time bounds
    ride the (org, created_at) index."""
    limit = max(1, min(limit, 500))
    query = (select(Job).options(selectinload(Job.files))
             .where(Job.org_id == principal.org_id)
             .where(Job.status.not_in([JobStatus.EXPIRED.value, JobStatus.DELETED.value])))
    if status:
        try:
            query = query.where(Job.status == JobStatus(status.upper()).value)
        except ValueError:
            raise InvalidInput(f"unknown status {status!r}") from None
    if operation:
        query = query.where(Job.operation == operation)
    if created_after:
        query = query.where(Job.created_at >= created_after)
    if created_before:
        query = query.where(Job.created_at < created_before)
    if cursor:
        created, job_id = _decode_cursor(cursor)
        query = query.where(or_(Job.created_at < created,
                                and_(Job.created_at == created, Job.id < job_id)))
    query = query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)
    with session_scope(readonly=True) as session:
        rows = list(session.scalars(query).all())
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def job_transitions(principal: Principal, job_id: str) -> list[JobEvent]:
    """The job's transition log, oldest first (404 like `get_job`)."""
    get_job(principal, job_id)
    with session_scope(readonly=True) as session:
        return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)
                                    .order_by(JobEvent.id)).all())


def delete_job(principal: Principal, job_id: str) -> None:
    get_job(principal, job_id)  # 404 for unknown, gone or another org's job
    if not jobs.mark_gone(job_id, JobStatus.DELETED, org_id=principal.org_id):
        raise NotFound(f"job {job_id} not found")
    dispatch.current().cancel(job_id)
    get_blob_store().delete_prefix(job_prefix(principal.org_id, job_id))
    job_events.notify(job_id)
    runs.remove_steps(principal.org_id, job_id)  # a pipeline run's steps go with it


def job_file(principal: Principal, job_id: str, name: str, role: str = "output") -> JobFile:
    """A job's output (or, with `role="input"`, input) file by name."""
    job = get_job(principal, job_id)
    for item in job.files_of(role):
        if item.name == name:
            return item
    raise NotFound(f"job {job_id} has no {role} file {name!r}")


def new_job_id() -> str:
    """An id for a job about to be submitted (to `watch` it before it exists)."""
    return new_id()


def watch(job_id: str) -> Subscription:
    """Subscribe to a job's changes: `with service.watch(job_id) as w:` before submitting or
    reading it, then `wait_for(..., watch=w, known=job)` misses no change in between."""
    return job_events.subscribe(job_id)


async def wait_for(principal: Principal, job_id: str, timeout: float,
                   poll_s: float = 0.5, *, watch: Subscription | None = None,
                   known: Job | None = None) -> Job:
    """The job once terminal, or as it is when `timeout` runs out.

    With `watch` (subscribed before `known` was read or created), `known` stands in for the
    first read. Every re-read follows a change notification or `poll_s` without one."""
    deadline = time.monotonic() + max(0.0, timeout)
    with ExitStack() as stack:
        sub = watch or stack.enter_context(job_events.subscribe(job_id))
        job = known if watch is not None else None
        while True:
            if job is None:
                sub.clear()  # a change from now on wakes the next wait at once
                job = await asyncio.to_thread(get_job, principal, job_id)
            remaining = deadline - time.monotonic()
            if job.job_status.is_terminal or remaining <= 0:
                return job
            await sub.wait(min(poll_s, remaining))
            job = None
