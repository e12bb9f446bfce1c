"""Pipeline runs: one parent job whose steps are ordinary jobs.

A run is a job (operation `pipeline.run`) that no worker takes: it is PROCESSING from the
start without a lease, and holds a copy of its pipeline's steps in `params`. Its steps are
ENQUEUED jobs like any other (`parent_id` = the run, `step`, `step_item`), so claims, leases,
retries, timeouts and both dispatchers work on them unchanged.

`advance(run)` is the whole orchestration, and it is idempotent: it reads the run's step
jobs, decides which steps are done, skipped (a `when` case or inputs that were all
skipped), failed or ready, and creates the jobs of the ready ones in one transaction that
holds the run's row (`FOR UPDATE` on PostgreSQL; SQLite writers are serial), guarded by a
unique (parent, step, item) index. A step with a job is never created again, so a finished
step never runs twice, whatever crashed. `advance_in` runs inside the transaction of a step
job's success (in a savepoint: jobs.py), so the next steps commit with it; `advance` runs
after the commit of a step's failure (in whichever process made it) and from the sweeper
for every live run, which repairs whatever that left undone.
"""

from __future__ import annotations

import graphlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError

from docmill import dispatch
from docmill.core import jobs, pipelines
from docmill.core.auth import Principal
from docmill.core.db import connection_scope, session_scope
from docmill.core.events import job_events
from docmill.core.files import get_blob_store, job_prefix
from docmill.core.inputs import InputStager
from docmill.core.models import Job, JobFile, JobStatus, Role, new_id, utcnow
from docmill.core.pipelines import RUN_INPUT, SPLIT_OPERATION, Case, Step
from docmill.engines.registry import get_operation
from docmill.errors import Conflict, DocmillError, InvalidInput, NotFound, UnsupportedFormat
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings

log = logging.getLogger(__name__)
RUN_OPERATION = "pipeline.run"
FAILED = (JobStatus.ERROR.value, JobStatus.EXPIRED.value, JobStatus.DELETED.value)


@dataclass
class RunOptions:
    face: str = "native"
    face_state: dict[str, Any] = field(default_factory=dict)
    webhook_url: str | None = None
    timeout_s: float | None = None
    retention_s: float | None = None
    deadline_s: float | None = None  # as `service.Submission.deadline_s`


# --- starting --------------------------------------------------------------------------------

def _check_run_inputs(steps: list[Step], staged: list[Any]) -> None:
    """The run's files against every step that reads them (as `submit` checks a job's); a
    branch (`when`) is checked when it is taken."""
    if not staged:
        raise InvalidInput("a pipeline run takes at least one input file")
    for step in steps:
        if RUN_INPUT not in step.inputs or step.when is not None:
            continue
        for _, case in step.variants():
            operation = get_operation(case.operation or step.operation or "")
            for item in staged:
                if step.foreach == "page" and not item.content_type.startswith("application/pdf"):
                    raise UnsupportedFormat(f"{item.name} is {item.content_type}; step "
                                            f"'{step.id}' runs per page of a PDF")
                operation.check_takes(item.name, item.content_type, f"step '{step.id}': ")


def start_run(principal: Principal, pipeline_ref: str, stager: InputStager,
              options: RunOptions | None = None) -> Job:
    """Create the run for inputs already staged under `stager.job_id`, and its first steps;
    on any refusal the staged files go away."""
    settings = get_settings()
    options = options or RunOptions()
    try:
        row = pipelines.get_pipeline(principal, pipeline_ref)
        _check_run_inputs(pipelines.parse_steps(row.steps), stager.staged)
        if options.webhook_url:
            policy_from_settings().check_url(options.webhook_url)
        now = utcnow()
        retention = options.retention_s or settings.retention_s
        run = Job(
            id=stager.job_id, org_id=principal.org_id, face=options.face,
            operation=RUN_OPERATION, status=JobStatus.PROCESSING.value, started_at=now,
            params={"pipeline_id": row.id, "pipeline_name": row.name, "version": row.version,
                    "steps": row.steps, "org_slug": principal.org_slug,
                    "role": principal.role.value},
            max_attempts=1, timeout_s=options.timeout_s or settings.pipeline_timeout_s,
            created_at=now, expires_at=now + timedelta(seconds=retention),
            deadline_at=(None if options.deadline_s is None
                         else now + timedelta(seconds=options.deadline_s)),
            webhook_url=options.webhook_url, face_state=options.face_state,
            message="started",
        )
        run.files = [JobFile(role="input", position=i, name=s.name, blob_key=s.blob_key,
                             size=s.size, content_type=s.content_type)
                     for i, s in enumerate(stager.staged)]
        with connection_scope() as conn:  # the run and its first steps commit together
            jobs.insert_job(conn, run)
            outcome = advance_in(conn, run.id)
            started = jobs.load_job(conn, run.id) or run
    except IntegrityError as exc:
        raise Conflict(f"a job with id {stager.job_id} already exists") from exc
    except BaseException:
        stager.discard()
        raise
    after_advance(*outcome)
    return started


# --- planning: what state each step is in, and which jobs to create -------------------------

@dataclass
class _StepState:
    state: str  # waiting | running | done | skipped | failed | blocked
    operation: str | None = None
    branch: str | None = None
    jobs: list[Job] = field(default_factory=list)
    progress: float = 0.0
    failure: Job | None = None

    @property
    def settled(self) -> bool:
        return self.state in ("done", "skipped")

    def outputs(self) -> list[JobFile]:
        return [f for j in self.jobs if (j.step_item or 0) >= 0 for f in j.files_of("output")]


@dataclass
class _Create:
    step: str
    item: int
    operation: str
    params: dict[str, Any]
    files: list[JobFile]


@dataclass
class _Plan:
    states: dict[str, _StepState] = field(default_factory=dict)
    creates: list[_Create] = field(default_factory=list)
    problem: tuple[str, DocmillError] | None = None


def _from_jobs(items: list[Job], expected: int | None = None) -> tuple[str, float, Job | None]:
    failed = next((j for j in items if j.status in FAILED), None)
    if failed is not None:
        return "failed", 0.0, failed
    progress = sum(100 if j.status == JobStatus.SUCCESS.value else j.progress
                   for j in items) / (100 * max(1, expected or len(items)))
    done = all(j.status == JobStatus.SUCCESS.value for j in items)
    if done and (expected is None or len(items) == expected):
        return "done", 1.0, None
    return "running", progress, None


def _plan(run: Job, children: list[Job]) -> _Plan:
    steps = pipelines.parse_steps(run.params["steps"])
    by_id = {s.id: s for s in steps}
    mine: dict[str, list[Job]] = {}
    for job in sorted(children, key=lambda j: j.step_item or 0):
        mine.setdefault(job.step or "", []).append(job)
    plan = _Plan()
    order = graphlib.TopologicalSorter({s.id: s.dependencies() for s in steps}).static_order()
    fanout = get_settings().pipeline_max_fanout
    for sid in order:
        step, existing = by_id[sid], mine.get(sid, [])
        deps = [plan.states[d] for d in step.dependencies()]
        if any(d.state in ("failed", "blocked") for d in deps):
            plan.states[sid] = _StepState("blocked")
            continue
        if not all(d.settled for d in deps):
            plan.states[sid] = _StepState("waiting")
            continue
        branch, case = _branch(step, plan.states)
        if case is None:
            plan.states[sid] = _StepState("skipped", branch=branch)
            continue
        op = case.operation or step.operation or ""
        params = {**step.params, **case.params}
        files, any_skipped, refused = _gather(step, op, run, plan.states)
        state = plan.states[sid] = _StepState("running", op, branch, existing)
        if not files and any_skipped:
            state.state = "skipped"
            continue
        if not files and refused:
            plan.problem = (sid, UnsupportedFormat(
                f"{op} accepts none of its input files ({', '.join(sorted(refused))})"))
            break
        if step.foreach == "page":
            split = next((j for j in existing if j.step_item == -1), None)
            items = [j for j in existing if (j.step_item or 0) >= 0]
            if split is None:
                if len(files) != 1:
                    plan.problem = (sid, InvalidInput(f"'foreach: page' takes one PDF, got "
                                                      f"{len(files)} files"))
                    break
                plan.creates.append(_Create(sid, -1, SPLIT_OPERATION, {"every": 1}, files))
                continue
            status, _, failure = _from_jobs([split])
            if status != "done":
                state.state, state.failure = status, failure
                state.progress = split.progress / 1000
                continue
            files = split.files_of("output")
            expected = len(files)
        else:
            items = existing
            expected = len(files) if step.foreach == "file" else 1
        if not items and expected == 0:
            state.state = "done"  # nothing to fan out to
            continue
        if not items:
            if expected > fanout:
                plan.problem = (sid, InvalidInput(f"fans out to {expected} jobs; at most "
                                                  f"{fanout}"))
                break
            groups = [[f] for f in files] if step.foreach else [files]
            plan.creates.extend(_Create(sid, i, op, params, g) for i, g in enumerate(groups))
            continue
        state.state, state.progress, state.failure = _from_jobs(items, expected)
    return plan


def _branch(step: Step, states: dict[str, _StepState]) -> tuple[str | None, Case | None]:
    """(the case taken, what it sets, or None to skip the step)."""
    if step.when is None:
        return None, Case()
    source = states[step.when.step]
    value = None
    if source.state == "done" and source.jobs:
        value = pipelines.value_at(source.jobs[0].result or {}, step.when.field)
    key = "" if value is None else str(value)
    chosen = step.when.cases.get(key, step.when.default)
    name = key if key in step.when.cases else "default"
    return name, (chosen if isinstance(chosen, Case) else None)


def _gather(step: Step, op: str, run: Job,
            states: dict[str, _StepState]) -> tuple[list[JobFile], bool, set[str]]:
    """The step's input files (those its operation accepts; a page fan-out's PDFs), whether
    a source was skipped, and the types of the files left out."""
    offered: list[JobFile] = []
    skipped = False
    for source in step.inputs:
        if source == RUN_INPUT:
            offered.extend(run.files_of("input"))
            continue
        skipped |= states[source].state == "skipped"
        offered.extend(states[source].outputs())
    files = [f for f in offered if pipelines.accepts(op, f.content_type) and (
        step.foreach != "page" or f.content_type.split(";")[0] == "application/pdf")]
    refused = {f.content_type for f in offered} - {f.content_type for f in files}
    return files, skipped, refused


# --- advancing -------------------------------------------------------------------------------

def _principal(run: Job) -> Principal:
    params = run.params or {}
    return Principal(org_id=run.org_id, org_slug=str(params.get("org_slug", "")),
                     role=Role(params.get("role", Role.USER.value)), key_id="")


def _step_job(run: Job, create: _Create) -> Job:
    operation = get_operation(create.operation)
    params = pipelines.validate_step_params(_principal(run), create.operation, create.params)
    count = len(create.files)
    if not operation.min_inputs <= count <= operation.max_inputs:
        raise InvalidInput(f"{operation.name} takes {operation.min_inputs} to "
                           f"{operation.max_inputs} input file(s), got {count}")
    settings = get_settings()
    now = utcnow()
    job = Job(id=new_id(), org_id=run.org_id, face="native", operation=operation.name,
              params=params, status=JobStatus.ENQUEUED.value, max_attempts=settings.max_attempts,
              timeout_s=settings.default_timeout_s, created_at=now, expires_at=run.expires_at,
              message="queued", parent_id=run.id, step=create.step, step_item=create.item)
    job.files = [JobFile(role="input", position=i, name=f.name, blob_key=f.blob_key,
                         size=f.size, content_type=f.content_type)
                 for i, f in enumerate(create.files)]
    return job


def _phase(run: Job, plan: _Plan) -> tuple[int, str]:
    steps = run.params["steps"]
    states = plan.states
    total = sum(1.0 if s.settled else s.progress for s in states.values())
    percent = int(99 * total / max(1, len(steps)))
    running = [(i, s["id"]) for i, s in enumerate(steps)
               if states.get(s["id"]) and states[s["id"]].state == "running"]
    if not running:
        return percent, "running"
    index, sid = running[0]
    return percent, f"step {index + 1} of {len(steps)} ({sid}): {states[sid].operation}"


_PROGRESS = (update(Job.__table__)
             .where(Job.__table__.c.id == bindparam("run_id_"),
                    Job.__table__.c.status == JobStatus.PROCESSING.value)
             .values(progress=bindparam("percent_"), message=bindparam("message_")))


def advance_in(conn: Connection, run_id: str) -> tuple[Job | None, _Plan, list[str]]:
    """One step of the orchestration inside the caller's transaction, which holds the run's
    row: (the run if live, the plan, the ids of the step jobs created). A run whose steps
    are all done is completed here too; failures are left to `_conclude`."""
    run = jobs.load_job(conn, run_id, for_update=True)
    if (run is None or run.status != JobStatus.PROCESSING.value
            or run.operation != RUN_OPERATION):
        return None, _Plan(), []
    plan = _plan(run, jobs.load_children(conn, run_id))
    new_jobs: list[Job] = []
    if plan.problem is None and not _timed_out(run):
        for create in plan.creates:  # all built first: a refusal creates none
            try:
                new_jobs.append(_step_job(run, create))
            except DocmillError as exc:
                plan.problem = (create.step, exc)
                new_jobs = []
                break
    for job in new_jobs:
        jobs.insert_job(conn, job)
    if plan.problem is None and _all_settled(plan):  # finished work stands, late or not
        result, outputs = _summary(run, plan)
        jobs.complete(conn, run.id, result, outputs)
    elif plan.problem is None:
        percent, message = _phase(run, plan)
        if percent > run.progress or message != run.message:
            conn.execute(_PROGRESS, {"run_id_": run_id, "percent_": max(percent, run.progress),
                                     "message_": message})
    return run, plan, [j.id for j in new_jobs]


def _all_settled(plan: _Plan) -> bool:
    return bool(plan.states) and all(s.settled for s in plan.states.values())


def after_advance(run: Job | None, plan: _Plan, created: list[str]) -> None:
    """After the commit: dispatch the new step jobs, end a failed run, wake waiters."""
    for job_id in created:
        dispatch.current().notify(job_id)
    if run is not None:
        _conclude(run, plan)
        job_events.notify(run.id)


def advance(run_id: str) -> None:
    """Move the run on as far as its finished steps allow (see the module docstring)."""
    with connection_scope() as conn:
        outcome = advance_in(conn, run_id)
    after_advance(*outcome)


def _timed_out(run: Job) -> bool:
    return utcnow() > run.created_at + timedelta(seconds=run.timeout_s)


def _conclude(run: Job, plan: _Plan) -> None:
    """The run's end, if it failed (a success is recorded inside `advance_in`)."""
    failed = next(((sid, s) for sid, s in plan.states.items() if s.state == "failed"), None)
    if plan.problem is not None:
        sid, exc = plan.problem
        _fail(run, exc.code, f"step '{sid}': {exc.message}")
    elif failed is not None:
        sid, state = failed
        job = state.failure
        code = (job.error_code if job is not None else None) or "step_failed"
        detail = (job.error_message if job is not None else None) or (
            f"its job is {job.status.lower()}" if job is not None else "failed")
        _fail(run, code, f"step '{sid}' failed: {detail}")
    elif _timed_out(run) and not _all_settled(plan):
        _fail(run, "timeout", f"the run took longer than its {run.timeout_s:g} s timeout")


def _fail(run: Job, code: str, message: str) -> None:
    if jobs.fail(run.id, code, message):
        remove_steps(run.org_id, run.id, live_only=True)


def _summary(run: Job, plan: _Plan) -> tuple[dict[str, Any], list[jobs.OutputFile]]:
    """The run's result (every step's state, jobs and results; `data`: the last step run
    once whose result has `data`, e.g. the extraction) and its files (the outputs of the
    steps no other step reads or branches on)."""
    steps = pipelines.parse_steps(run.params["steps"])
    read = {src for s in steps for src in s.dependencies()}
    summary: list[dict[str, Any]] = []
    data: Any = None
    outputs: list[jobs.OutputFile] = []
    names: set[str] = set()
    for step in steps:
        state = plan.states[step.id]
        entry: dict[str, Any] = {"id": step.id, "status": "SKIPPED" if state.state == "skipped"
                                 else "SUCCESS", "operation": state.operation,
                                 "jobs": [j.id for j in state.jobs]}
        if state.branch is not None:
            entry["branch"] = state.branch
        items = [j for j in state.jobs if (j.step_item or 0) >= 0]
        if step.foreach:
            entry["results"] = [j.result for j in items]
        elif items:
            entry["result"] = items[0].result
            if isinstance((items[0].result or {}).get("data"), dict):
                data = (items[0].result or {})["data"]
        summary.append(entry)
        if step.id in read or state.state != "done":
            continue
        for f in state.outputs():
            name = f.name if f.name not in names else f"{step.id}-{f.name}"
            names.add(name)
            outputs.append(jobs.OutputFile(name, f.blob_key, f.size, f.content_type))
    result: dict[str, Any] = {"pipeline": {"id": run.params.get("pipeline_id"),
                                           "name": run.params.get("pipeline_name"),
                                           "version": run.params.get("version")},
                              "steps": summary}
    if data is not None:
        result["data"] = data
    return result, outputs


def notify_changed(job_id: str) -> None:
    """A job changed in a worker of this server: wake its waiters, and its run's (a run ends
    in the worker that finished its last step, which this process does not otherwise hear
    of). The run is looked up only while someone waits on a job."""
    job_events.notify(job_id)
    if not job_events.watched():
        return
    with connection_scope(readonly=True) as conn:
        parent = conn.execute(select(Job.parent_id).where(Job.id == job_id)).scalar()
    if parent:
        job_events.notify(parent)


def advance_safely(run_id: str) -> None:
    try:
        advance(run_id)
    except Exception:  # the sweeper tries again
        log.exception("could not advance pipeline run %s; the sweeper will", run_id)


def sweep_runs() -> int:
    """Advance every live run: the safety net for a crash between two steps."""
    with session_scope(readonly=True) as session:
        ids = session.scalars(select(Job.id).where(Job.status == JobStatus.PROCESSING.value,
                                                   Job.operation == RUN_OPERATION)).all()
    for run_id in ids:
        advance_safely(run_id)
    return len(ids)


# --- reading, cancelling, deleting ------------------------------------------------------------

def get_run(principal: Principal, run_id: str) -> Job:
    with connection_scope(readonly=True) as conn:
        run = jobs.load_job(conn, run_id, org_id=principal.org_id)
    if run is None or run.job_status.is_gone or run.operation != RUN_OPERATION:
        raise NotFound(f"pipeline run {run_id} not found")
    return run


def step_jobs(run_id: str) -> list[Job]:
    """The run's step jobs (gone ones left out), in creation order."""
    with connection_scope(readonly=True) as conn:
        return [j for j in jobs.load_children(conn, run_id) if not j.job_status.is_gone]


def remove_steps(org_id: str, run_id: str, live_only: bool = False) -> int:
    """Stop and delete the run's step jobs (only the unfinished ones with `live_only`)."""
    states = jobs.LIVE if live_only else jobs.NOT_GONE
    with session_scope(readonly=True) as session:
        ids = session.scalars(select(Job.id).where(Job.parent_id == run_id,
                                                   Job.org_id == org_id,
                                                   Job.status.in_(states))).all()
    store = get_blob_store()
    for job_id in ids:
        if jobs.mark_gone(job_id, JobStatus.DELETED, org_id=org_id):
            dispatch.current().cancel(job_id)
            store.delete_prefix(job_prefix(org_id, job_id))
            job_events.notify(job_id)
    return len(ids)


def cancel_run(principal: Principal, run_id: str) -> Job:
    """The run ends as ERROR `cancelled`; its steps are stopped and removed."""
    run = get_run(principal, run_id)
    if not jobs.fail(run.id, "cancelled", "the run was cancelled"):
        raise Conflict(f"pipeline run {run_id} has already finished")
    remove_steps(run.org_id, run.id)
    job_events.notify(run.id)
    return get_run(principal, run_id)


def run_view(run: Job, base: str | None = None) -> dict[str, Any]:
    """The run as the native API shows it: its job view plus its step jobs."""
    from docmill.core.views import job_view

    view = job_view(run, base)
    view["pipeline"] = {"id": run.params.get("pipeline_id"),
                        "name": run.params.get("pipeline_name"),
                        "version": run.params.get("version")}
    view["steps"] = [{"step": j.step, "item": j.step_item, "job_id": j.id,
                      "operation": j.operation, "status": j.status, "progress": j.progress,
                      "attempts": j.attempts}
                     for j in step_jobs(run.id)]
    return view
