"""The job state machine: one function per transition.

Each transition is a single conditional UPDATE whose WHERE clause states the state it leaves
(and, for a worker, that the worker still holds the lease). The database decides who wins, so
two workers can never both finish a job and a presumed-dead worker's late write is rejected.
Every transition that happens also writes a `job_events` row in the same transaction.

    ENQUEUED --claim--> PROCESSING --succeed--> SUCCESS
        ^                   |  \\--fail-------> ERROR
        +--requeue (lease lapsed, worker died, attempts left)
    any live state --deadline passed--> ERROR (timeout); a later success is refused
    any live state --expire--> EXPIRED;  --delete--> DELETED
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, bindparam, case, delete, insert, or_, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from docmill.core.db import changed_rows, connection_scope, session_scope
from docmill.core.models import Job, JobEvent, JobFile, JobStatus, PublicFile, utcnow

LIVE = (JobStatus.ENQUEUED.value, JobStatus.PROCESSING.value)
NOT_GONE = (*LIVE, JobStatus.SUCCESS.value, JobStatus.ERROR.value)
MAX_MESSAGE = 2000
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputFile:
    name: str
    blob_key: str
    size: int
    content_type: str


# --- prepared statements of the hot path -------------------------------------------------
# The transitions every job takes (submit, claim, succeed, read) run these Core statements,
# built once, on a bare connection: the ORM's per-call statement building, cache-key hashing
# and unit of work cost several times the SQL itself. Rows are turned back into detached
# `Job`/`JobFile` instances, so callers see the same objects a session would have loaded.

_JOBS, _FILES, _EVENTS = Job.__table__, JobFile.__table__, JobEvent.__table__


def _param(name: str, column: Any) -> Any:
    return bindparam(name, type_=column.type)


_INSERT_JOB = insert(_JOBS)
_INSERT_FILES = insert(_FILES).returning(_FILES.c.id, sort_by_parameter_order=True)
_INSERT_OUTPUTS = insert(_FILES)
_INSERT_EVENT = insert(_EVENTS)
_SELECT_JOB = select(_JOBS).where(_JOBS.c.id == bindparam("job_id_"))
_SELECT_JOB_FOR_UPDATE = _SELECT_JOB.with_for_update()
_SELECT_ORG_JOB = _SELECT_JOB.where(_JOBS.c.org_id == bindparam("org_id_"))
_SELECT_FILES = (select(_FILES).where(_FILES.c.job_id == bindparam("job_id_"))
                 .order_by(_FILES.c.position, _FILES.c.id))
_HELD = (_JOBS.c.id == bindparam("job_id_"),
         _JOBS.c.status == JobStatus.PROCESSING.value,
         _JOBS.c.lease_owner == bindparam("owner_"))
_CLAIM = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id_"), _JOBS.c.status == JobStatus.ENQUEUED.value)
    .values(
        status=JobStatus.PROCESSING.value,
        lease_owner=bindparam("owner_"),
        lease_until=_param("until_", _JOBS.c.lease_until),
        attempts=_JOBS.c.attempts + 1,
        started_at=case((_JOBS.c.started_at.is_(None), _param("now_", _JOBS.c.started_at)),
                        else_=_JOBS.c.started_at),
        progress=0,
        message="started",
    )
    .returning(*_JOBS.c)
)
_RENEW = update(_JOBS).where(*_HELD).values(lease_until=_param("until_", _JOBS.c.lease_until))
_PROGRESS = update(_JOBS).where(*_HELD).values(
    progress=case((_JOBS.c.progress < bindparam("percent_"), bindparam("percent_")),
                  else_=_JOBS.c.progress),
    message=bindparam("message_"),
)
_SUCCEED = (
    update(_JOBS).where(*_HELD, or_(_JOBS.c.deadline_at.is_(None),
                                    _JOBS.c.deadline_at > _param("now_", _JOBS.c.deadline_at)))
    .values(status=JobStatus.SUCCESS.value, progress=100, message=bindparam("message_"),
            result=_param("result_", _JOBS.c.result),
            finished_at=_param("now_", _JOBS.c.finished_at), lease_owner=None,
            lease_until=None)
    .returning(_JOBS.c.attempts, _JOBS.c.webhook_url, _JOBS.c.parent_id)
)
_SELECT_CHILDREN = (select(_JOBS).where(_JOBS.c.parent_id == bindparam("parent_id_"))
                    .order_by(_JOBS.c.created_at, _JOBS.c.step_item))
_SELECT_CHILD_FILES = (select(_FILES).join(_JOBS, _FILES.c.job_id == _JOBS.c.id)
                       .where(_JOBS.c.parent_id == bindparam("parent_id_"))
                       .order_by(_FILES.c.position, _FILES.c.id))
_NEXT_ENQUEUED = (select(_JOBS.c.id, _JOBS.c.timeout_s)
                  .where(_JOBS.c.status == JobStatus.ENQUEUED.value)
                  .order_by(_JOBS.c.created_at).limit(bindparam("limit_")))


def _detached(obj: Any) -> Any:
    make_transient_to_detached(obj)
    return obj


def job_from_rows(row: Row[Any], files: Iterable[Row[Any]]) -> Job:
    """A detached `Job` with its files from Core rows, as a session would have loaded it."""
    job = Job(**row._mapping)
    loaded = []
    for f in files:
        item = JobFile(**f._mapping)
        set_committed_value(item, "job", job)
        loaded.append(_detached(item))
    set_committed_value(job, "files", loaded)
    return _detached(job)


def load_job(conn: Connection, job_id: str, org_id: str | None = None,
             for_update: bool = False) -> Job | None:
    """The job (with its files) as this transaction sees it; with `org_id`, only if it
    belongs to that organization; `for_update` locks its row (PostgreSQL) until commit."""
    if for_update:
        row = conn.execute(_SELECT_JOB_FOR_UPDATE, {"job_id_": job_id}).first()
    elif org_id is None:
        row = conn.execute(_SELECT_JOB, {"job_id_": job_id}).first()
    else:
        row = conn.execute(_SELECT_ORG_JOB, {"job_id_": job_id, "org_id_": org_id}).first()
    if row is None:
        return None
    return job_from_rows(row, conn.execute(_SELECT_FILES, {"job_id_": job_id}))


def _fill_defaults(obj: Any, table: Any) -> dict[str, Any]:
    """Column values of a new object, with the column defaults a flush would apply to the
    attributes left unset."""
    values = {}
    for column in table.c:
        if column.key in obj.__dict__:
            values[column.key] = obj.__dict__[column.key]
            continue
        default = column.default
        if default is None:
            value = None
        else:
            value = default.arg if default.is_scalar else default.arg(None)
        setattr(obj, column.key, value)  # so that the detached object has every column loaded
        values[column.key] = value
    return values


def insert_job(conn: Connection, job: Job) -> Job:
    """INSERT a new job built in memory and its files, plus its ENQUEUED event; returns it
    detached, defaults and file ids filled in, as a flushed session would have."""
    files = list(job.files)
    conn.execute(_INSERT_JOB, _fill_defaults(job, _JOBS))
    if files:
        rows = []
        for f in files:
            f.job_id = job.id
            rows.append({k: v for k, v in _fill_defaults(f, _FILES).items() if k != "id"})
        for f, (file_id,) in zip(files, conn.execute(_INSERT_FILES, rows), strict=True):
            f.id = file_id
            make_transient_to_detached(f)
    _event(conn, job.id, JobStatus.ENQUEUED, 0, None, "submitted")
    make_transient_to_detached(job)
    return job


def _event(session: Session | Connection, job_id: str, status: JobStatus, attempt: int = 0,
           owner: str | None = None, detail: str = "") -> None:
    session.execute(_INSERT_EVENT, {"job_id": job_id, "at": utcnow(), "status": status.value,
                                    "attempt": attempt, "owner": owner,
                                    "detail": detail[:MAX_MESSAGE]})


def _after_terminal(session: Session, job_id: str) -> None:
    """Hook run inside the transaction of every SUCCESS/ERROR transition (webhook outbox)."""
    from docmill.core import webhooks

    webhooks.enqueue_for_job(session, job_id)


def _step_ended(parent_ids: Iterable[str | None]) -> None:
    """Hook run after the commit of a step job's SUCCESS/ERROR: its pipeline run moves on.
    Best effort: should this process die (or the advance fail) first, the sweeper does it."""
    parents = {p for p in parent_ids if p}
    if not parents:
        return
    from docmill.core import runs

    for parent_id in parents:
        runs.advance_safely(parent_id)


def claim(job_id: str, owner: str, lease_s: float) -> Job | None:
    """ENQUEUED -> PROCESSING under a lease. Returns the job, or None if someone else has it."""
    now = utcnow()
    with connection_scope() as conn:
        # UPDATE ... RETURNING: the winner reads its job in the same statement.
        row = conn.execute(_CLAIM, {"job_id_": job_id, "owner_": owner, "now_": now,
                                    "until_": now + timedelta(seconds=lease_s)}).first()
        if row is None:
            return None
        _event(conn, job_id, JobStatus.PROCESSING, row.attempts, owner)
        return job_from_rows(row, conn.execute(_SELECT_FILES, {"job_id_": job_id}))


def _held(job_id: str, owner: str) -> tuple[Any, ...]:
    return (Job.id == job_id, Job.status == JobStatus.PROCESSING.value, Job.lease_owner == owner)


def renew_lease(job_id: str, owner: str, lease_s: float) -> bool:
    with connection_scope() as conn:
        result = conn.execute(_RENEW, {"job_id_": job_id, "owner_": owner,
                                       "until_": utcnow() + timedelta(seconds=lease_s)})
        return result.rowcount == 1


def report_progress(job_id: str, owner: str, percent: int, message: str) -> bool:
    """Monotonic: a lower percent never overwrites a higher one; 100 is kept for SUCCESS."""
    percent = max(0, min(99, int(percent)))
    with connection_scope() as conn:
        result = conn.execute(_PROGRESS, {"job_id_": job_id, "owner_": owner,
                                          "percent_": percent,
                                          "message_": message[:MAX_MESSAGE]})
        return result.rowcount == 1


def _insert_outputs(session: Session | Connection, job_id: str,
                    outputs: Iterable[OutputFile]) -> None:
    rows = [{"job_id": job_id, "role": "output", "position": position, "name": out.name,
             "blob_key": out.blob_key, "size": out.size, "content_type": out.content_type}
            for position, out in enumerate(outputs)]
    if rows:
        session.execute(_INSERT_OUTPUTS, rows)


def succeed(job_id: str, owner: str, result: dict[str, Any], outputs: Iterable[OutputFile],
            message: str = "done") -> bool:
    """PROCESSING -> SUCCESS with the result and output files, if `owner` still holds it."""
    with connection_scope() as conn:
        done = conn.execute(_SUCCEED, {"job_id_": job_id, "owner_": owner, "message_": message,
                                       "result_": result, "now_": utcnow()}).first()
        if done is None:
            missed = True
        else:
            missed = False
            _insert_outputs(conn, job_id, outputs)
            _event(conn, job_id, JobStatus.SUCCESS, done.attempts, owner)
            if done.webhook_url:  # the outbox only ever has rows for jobs with a webhook
                # joins this transaction (inside a savepoint too), commits nothing
                with Session(bind=conn, join_transaction_mode="rollback_only") as session:
                    _after_terminal(session, job_id)
                    session.flush()
            advanced = _advance_parent(conn, done.parent_id) if done.parent_id else None
    if missed:
        fail_overdue(job_id)  # refused for its deadline: it ends now, not at the next sweep
        return False
    assert done is not None
    if advanced is not None:
        from docmill.core import runs

        runs.after_advance(*advanced)
    elif done.parent_id:
        _step_ended([done.parent_id])  # the advance failed in the transaction: again, alone
    return True


def _advance_parent(conn: Connection, parent_id: str) -> Any:
    """A step's success and its run's next steps commit together (no crash can fall between
    them), the advance in a savepoint so that its failure never costs the step's result."""
    from docmill.core import runs

    try:
        with conn.begin_nested():
            return runs.advance_in(conn, parent_id)
    except Exception:
        log.exception("could not advance pipeline run %s with its step", parent_id)
        return None


_COMPLETE = (
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id_"), _JOBS.c.status == JobStatus.PROCESSING.value,
           _JOBS.c.lease_owner.is_(None))
    .values(status=JobStatus.SUCCESS.value, progress=100, message="done",
            result=_param("result_", _JOBS.c.result),
            finished_at=_param("now_", _JOBS.c.finished_at))
    .returning(_JOBS.c.webhook_url)
)


def complete(conn: Connection, job_id: str, result: dict[str, Any],
             outputs: Iterable[OutputFile]) -> bool:
    """PROCESSING -> SUCCESS of a job no worker holds (a pipeline run, finished by its
    steps), inside the caller's transaction; its outputs are rows naming blobs its steps
    stored."""
    done = conn.execute(_COMPLETE, {"job_id_": job_id, "result_": result,
                                    "now_": utcnow()}).first()
    if done is None:
        return False
    _insert_outputs(conn, job_id, outputs)
    _event(conn, job_id, JobStatus.SUCCESS)
    if done.webhook_url:
        # joins this transaction (inside a savepoint too), commits nothing
        with Session(bind=conn, join_transaction_mode="rollback_only") as session:
            _after_terminal(session, job_id)
            session.flush()
    return True


def load_children(conn: Connection, parent_id: str) -> list[Job]:
    """A pipeline run's step jobs with their files, in the order they were created."""
    rows = conn.execute(_SELECT_CHILDREN, {"parent_id_": parent_id}).all()
    files: dict[str, list[Row[Any]]] = {}
    for f in conn.execute(_SELECT_CHILD_FILES, {"parent_id_": parent_id}):
        files.setdefault(f.job_id, []).append(f)
    return [job_from_rows(row, files.get(row.id, ())) for row in rows]


def fail(job_id: str, code: str, message: str, *, owner: str | None = None,
         result: dict[str, Any] | None = None) -> bool:
    """-> ERROR with a classified code. With `owner`, only if that worker holds the lease;
    without, from any live state (the supervisor failing a job whose worker it killed)."""
    where = _held(job_id, owner) if owner else (Job.id == job_id, Job.status.in_(LIVE))
    return _fail(where, job_id, code, message, owner=owner, result=result)


def fail_overdue(job_id: str, now: datetime | None = None) -> bool:
    """A live job past its `deadline_at` -> ERROR `timeout`, finished at its deadline (the
    moment the promise broke, whenever the sweeper or a reader noticed)."""
    now = now or utcnow()
    where = (Job.id == job_id, Job.status.in_(LIVE), Job.deadline_at.is_not(None),
             Job.deadline_at <= now)
    return _fail(where, job_id, "timeout", "the job did not finish by its deadline",
                 finished_at=Job.deadline_at)


def overdue(now: datetime | None = None, limit: int = 500) -> list[str]:
    """Live jobs whose deadline has passed (for the sweeper to `fail_overdue`)."""
    now = now or utcnow()
    with session_scope(readonly=True) as session:
        return list(session.scalars(
            select(Job.id).where(Job.status.in_(LIVE), Job.deadline_at <= now)
            .order_by(Job.deadline_at).limit(limit)))


def _fail(where: tuple[Any, ...], job_id: str, code: str, message: str, *,
          owner: str | None = None, result: dict[str, Any] | None = None,
          finished_at: Any = None) -> bool:
    with session_scope() as session:
        done = session.execute(
            update(Job).where(*where)
            .values(status=JobStatus.ERROR.value, error_code=code,
                    error_message=message[:MAX_MESSAGE], message=message[:MAX_MESSAGE],
                    result=result, finished_at=utcnow() if finished_at is None else finished_at,
                    lease_owner=None, lease_until=None)
        )
        if changed_rows(done) != 1:
            return False
        attempts, parent_id = session.execute(
            select(Job.attempts, Job.parent_id).where(Job.id == job_id)).one()
        _event(session, job_id, JobStatus.ERROR, attempts or 0, owner, f"{code}: {message}")
        _after_terminal(session, job_id)
    _step_ended([parent_id])
    return True


def _requeue_or_fail(session: Session, where: tuple[Any, ...], reason: str,
                     ended: list[str | None]) -> list[str]:
    """Give PROCESSING jobs matching `where` back to the queue while attempts remain, else fail
    them with `worker_lost` (adding their pipeline runs to `ended`). Returns the ids that
    changed."""
    changed: list[str] = []
    rows = session.execute(select(Job.id, Job.attempts, Job.max_attempts, Job.lease_owner,
                                  Job.parent_id).where(*where)).all()
    for job_id, attempts, max_attempts, owner, parent_id in rows:
        guard = (Job.id == job_id, Job.status == JobStatus.PROCESSING.value,
                 Job.attempts == attempts)
        if attempts < max_attempts:
            res = session.execute(
                update(Job).where(*guard).values(
                    status=JobStatus.ENQUEUED.value, lease_owner=None, lease_until=None,
                    message=f"retrying: {reason}")
            )
            status = JobStatus.ENQUEUED
        else:
            msg = (f"the worker running this job was lost on all {attempts} attempts "
                   f"({reason})")
            res = session.execute(
                update(Job).where(*guard).values(
                    status=JobStatus.ERROR.value, error_code="worker_lost", error_message=msg,
                    message=msg, finished_at=utcnow(), lease_owner=None, lease_until=None)
            )
            status = JobStatus.ERROR
        if changed_rows(res) == 1:
            _event(session, job_id, status, attempts, owner, reason)
            if status is JobStatus.ERROR:
                _after_terminal(session, job_id)
                ended.append(parent_id)
            changed.append(job_id)
    return changed


def worker_died(job_id: str, reason: str, owner: str | None = None) -> list[str]:
    """The supervisor saw the process running `job_id` (held by `owner`, if known) die."""
    where = [Job.id == job_id, Job.status == JobStatus.PROCESSING.value]
    if owner is not None:
        where.append(Job.lease_owner == owner)
    ended: list[str | None] = []
    with session_scope() as session:
        changed = _requeue_or_fail(session, tuple(where), reason, ended)
    _step_ended(ended)
    return changed


def processing_owners(owner_prefix: str) -> list[tuple[str, str]]:
    """(job id, lease owner) of PROCESSING jobs whose owner starts with `owner_prefix`."""
    with session_scope(readonly=True) as session:
        rows = session.execute(
            select(Job.id, Job.lease_owner).where(Job.status == JobStatus.PROCESSING.value,
                                                  Job.lease_owner.startswith(owner_prefix))
        ).all()
    return [(job_id, owner) for job_id, owner in rows if owner is not None]


def requeue_lapsed(now: datetime | None = None) -> list[str]:
    """Jobs whose worker stopped renewing its lease (died with its machine, say)."""
    now = now or utcnow()
    ended: list[str | None] = []
    with session_scope() as session:
        changed = _requeue_or_fail(
            session,
            (Job.status == JobStatus.PROCESSING.value, Job.lease_until < now),
            "lease expired", ended,
        )
    _step_ended(ended)
    return changed


def release(job_id: str, owner: str | None = None) -> bool:
    """A worker shutting down gives its job back without spending an attempt (without
    `owner`: the supervisor giving back a job whose child it stopped)."""
    where = _held(job_id, owner) if owner else (Job.id == job_id,
                                                 Job.status == JobStatus.PROCESSING.value)
    with session_scope() as session:
        res = session.execute(
            update(Job).where(*where).values(
                status=JobStatus.ENQUEUED.value, lease_owner=None, lease_until=None,
                attempts=Job.attempts - 1, message="requeued: worker shutting down")
        )
        if changed_rows(res) == 1:
            _event(session, job_id, JobStatus.ENQUEUED, 0, owner, "released on shutdown")
        return changed_rows(res) == 1


def mark_gone(job_id: str, status: JobStatus, org_id: str | None = None) -> bool:
    """-> EXPIRED or DELETED; the caller then deletes the job's blobs."""
    assert status.is_gone
    where = [Job.id == job_id, Job.status.in_(NOT_GONE)]
    if org_id is not None:
        where.append(Job.org_id == org_id)
    with session_scope() as session:
        res = session.execute(
            update(Job).where(*where).values(
                status=status.value, lease_owner=None, lease_until=None,
                finished_at=case((Job.finished_at.is_(None), utcnow()), else_=Job.finished_at))
        )
        if changed_rows(res) != 1:
            return False
        session.execute(delete(JobFile).where(JobFile.job_id == job_id))
        # its published outputs' public links die with it (their blobs are deleted next)
        session.execute(delete(PublicFile).where(PublicFile.job_id == job_id))
        _event(session, job_id, status)
        return True


def due_for_expiry(now: datetime | None = None, limit: int = 500) -> list[tuple[str, str]]:
    now = now or utcnow()
    with session_scope(readonly=True) as session:
        rows = session.execute(
            select(Job.id, Job.org_id).where(Job.status.in_(NOT_GONE), Job.expires_at < now)
            .order_by(Job.expires_at).limit(limit)
        ).all()
    return [(r[0], r[1]) for r in rows]


def next_enqueued(limit: int, exclude: Iterable[str] = ()) -> list[tuple[str, float]]:
    """Oldest ENQUEUED jobs (id, timeout_s) for a dispatcher with free slots."""
    if limit <= 0:
        return []
    excluded = list(exclude)
    with connection_scope(readonly=True) as conn:
        rows = conn.execute(_NEXT_ENQUEUED, {"limit_": limit + len(excluded)}).all()
    skip = set(excluded)
    return [(r[0], r[1]) for r in rows if r[0] not in skip][:limit]
