"""The job state machine against real databases: two processes race for the same jobs and
exactly one wins each; late writes from a worker that lost its lease are rejected."""

from __future__ import annotations

import multiprocessing
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server import DATA

JOBS = 200


def _make_jobs(count: int, **fields) -> list[str]:
    from docmill.core.auth import get_or_create_org
    from docmill.core.db import session_scope
    from docmill.core.models import Job, utcnow

    org = get_or_create_org("race")
    ids = []
    with session_scope() as session:
        for _ in range(count):
            job = Job(org_id=org.id, operation="pdf.to-text", params={},
                      expires_at=utcnow() + timedelta(hours=1), **fields)
            session.add(job)
            session.flush()
            ids.append(job.id)
    return ids


def _racer(url: str, owner: str, ids: list[str], barrier, results) -> None:
    os.environ["DOCMILL_DATABASE_URL"] = url
    from docmill.core import jobs

    barrier.wait()
    won = [job_id for job_id in ids if jobs.claim(job_id, owner, 30) is not None]
    finished = [job_id for job_id in ids if jobs.succeed(job_id, owner, {"by": owner}, [])]
    results.put((owner, won, finished))


def test_two_processes_race_to_claim(database):
    ids = _make_jobs(JOBS)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(database, f"w{i}", ids, barrier, results))
             for i in range(2)]
    for proc in procs:
        proc.start()
    outcome = {owner: (won, finished) for owner, won, finished in
               (results.get(timeout=120) for _ in procs)}
    for proc in procs:
        proc.join(timeout=30)
    won_a, fin_a = outcome["w0"]
    won_b, fin_b = outcome["w1"]
    assert not set(won_a) & set(won_b), "a job was claimed twice"
    assert set(won_a) | set(won_b) == set(ids)
    assert set(fin_a) == set(won_a) and set(fin_b) == set(won_b)

    from sqlalchemy import func, select

    from docmill.core.db import session_scope
    from docmill.core.models import Job, JobEvent

    with session_scope(readonly=True) as session:
        successes = session.scalar(select(func.count()).select_from(JobEvent)
                                   .where(JobEvent.status == "SUCCESS"))
        owners = dict(session.execute(select(Job.id, Job.result)).all())
    assert successes == JOBS
    assert all(owners[i]["by"] == "w0" for i in won_a)


def test_late_write_from_lost_lease_is_rejected(database):
    from docmill.core import jobs
    from docmill.core.models import utcnow

    (job_id,) = _make_jobs(1, max_attempts=3)
    assert jobs.claim(job_id, "old", lease_s=0.01)
    assert jobs.requeue_lapsed(utcnow() + timedelta(seconds=1)) == [job_id]
    assert jobs.claim(job_id, "new", lease_s=30).attempts == 2
    assert not jobs.report_progress(job_id, "old", 50, "zombie")
    assert not jobs.succeed(job_id, "old", {"by": "old"}, [])
    assert not jobs.fail(job_id, "engine_failed", "zombie", owner="old")
    assert jobs.report_progress(job_id, "new", 40, "working")
    assert jobs.report_progress(job_id, "new", 10, "never backwards")
    assert jobs.succeed(job_id, "new", {"by": "new"}, [])
    assert not jobs.succeed(job_id, "new", {"by": "again"}, [])
    from docmill.core.db import session_scope
    from docmill.core.models import Job

    with session_scope(readonly=True) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.result, job.progress) == ("SUCCESS", {"by": "new"}, 100)


def test_lapsed_job_fails_after_max_attempts(database):
    from docmill.core import jobs
    from docmill.core.db import session_scope
    from docmill.core.models import Job, utcnow

    (job_id,) = _make_jobs(1, max_attempts=2)
    for attempt in (1, 2):
        assert jobs.claim(job_id, f"w{attempt}", lease_s=0.01).attempts == attempt
        assert jobs.requeue_lapsed(utcnow() + timedelta(seconds=1)) == [job_id]
    with session_scope(readonly=True) as session:
        job = session.get(Job, job_id)
        assert job.status == "ERROR" and job.error_code == "worker_lost"
        assert "2 attempts" in job.error_message
    assert jobs.claim(job_id, "w3", 30) is None


def test_a_gone_job_takes_its_public_links_with_it(database):
    from docmill.core import jobs, public_files
    from docmill.core.models import JobStatus, utcnow
    from docmill.errors import NotFound

    (job_id,) = _make_jobs(1)
    assert jobs.claim(job_id, "w1", 30) is not None
    output = jobs.OutputFile(name="a.pdf", blob_key=f"x/{job_id}/output-1/0-a.pdf", size=3,
                             content_type="application/pdf")
    assert jobs.succeed(job_id, "w1", {}, [output])
    (link,) = public_files.publish_outputs(job_id, _org_of(job_id),
                                           utcnow() + timedelta(hours=1))
    assert public_files.get_public(link.id).job_id == job_id
    assert jobs.mark_gone(job_id, JobStatus.DELETED)
    with pytest.raises(NotFound):
        public_files.get_public(link.id)


def _org_of(job_id: str) -> str:
    from docmill.core.db import session_scope
    from docmill.core.models import Job

    with session_scope(readonly=True) as session:
        return session.get(Job, job_id).org_id


def test_a_retry_removes_what_the_dead_attempt_stored(database, tmp_path):
    """Attempt 1 died after storing part of its outputs; attempt 2 succeeds and leaves only
    its own outputs in the blob store."""
    from docmill.core.db import session_scope
    from docmill.core.files import get_blob_store, job_prefix
    from docmill.core.models import Job, JobFile, JobStatus
    from docmill.dispatch.runner import run_job

    data = DATA / "pdf"
    (job_id,) = _make_jobs(1)
    org_id = _org_of(job_id)
    prefix = job_prefix(org_id, job_id)
    store = get_blob_store()
    store.put_file(f"{prefix}/input/0-a.pdf", data / "minimal-document.pdf")
    stale = tmp_path / "half.txt"
    stale.write_text("half")
    store.put_file(f"{prefix}/output-1/0-half.txt", stale)
    with session_scope() as session:
        session.add(JobFile(job_id=job_id, role="input", position=0, name="a.pdf",
                            blob_key=f"{prefix}/input/0-a.pdf", size=1,
                            content_type="application/pdf"))
        session.get(Job, job_id).attempts = 1  # attempt 1 ran and died; the job was requeued
    assert run_job(job_id, owner="w2") == "success"
    with session_scope(readonly=True) as session:
        job = session.get(Job, job_id)
        assert (job.status, job.attempts) == (JobStatus.SUCCESS.value, 2)
        outputs = [f.blob_key for f in job.files if f.role == "output"]
    assert outputs and all("/output-2/" in key for key in outputs)
    assert all(store.exists(key) for key in outputs)
    assert not store.exists(f"{prefix}/output-1/0-half.txt")
