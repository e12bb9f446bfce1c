"""The policies the core owns for every face, against real databases: a job's deadline
(enforced by the sweeper and on read, a late success refused), race-free publishing of
outputs, and the one download with an RFC 6266 file name."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest

from .test_state_machine import _make_jobs, _org_of


def _job(job_id: str):
    from docmill.core.db import session_scope
    from docmill.core.models import Job

    with session_scope(readonly=True) as session:
        return session.get(Job, job_id)


def _events(job_id: str) -> list[str]:
    from sqlalchemy import select

    from docmill.core.db import session_scope
    from docmill.core.models import JobEvent

    with session_scope(readonly=True) as session:
        return list(session.scalars(select(JobEvent.status).where(JobEvent.job_id == job_id)
                                    .order_by(JobEvent.id)))


def test_the_sweeper_fails_a_job_past_its_deadline_and_refuses_its_late_success(database):
    from docmill.core import jobs, sweeper
    from docmill.core.models import JobStatus, utcnow

    deadline = utcnow() - timedelta(seconds=1)
    late, early, free = _make_jobs(1, deadline_at=deadline) + _make_jobs(
        1, deadline_at=utcnow() + timedelta(hours=1)) + _make_jobs(1)
    for job_id in (late, early, free):
        assert jobs.claim(job_id, "w1", 30) is not None
    assert sweeper.sweep_deadlines() == [late]
    job = _job(late)
    assert (job.status, job.error_code) == (JobStatus.ERROR.value, "timeout")
    assert job.finished_at == deadline and job.lease_owner is None  # ended at its deadline
    assert not jobs.succeed(late, "w1", {"late": True}, [])  # the worker's late write
    job = _job(late)
    assert (job.status, job.result) == (JobStatus.ERROR.value, None)
    assert _events(late) == ["PROCESSING", "ERROR"]  # one end, no SUCCESS after it
    for job_id in (early, free):  # not due, or no deadline at all
        assert _job(job_id).status == JobStatus.PROCESSING.value
        assert jobs.succeed(job_id, "w1", {}, [])


def test_a_success_after_the_deadline_is_refused_before_any_sweep(database):
    from docmill.core import jobs
    from docmill.core.models import JobStatus, utcnow

    (job_id,) = _make_jobs(1, deadline_at=utcnow() - timedelta(milliseconds=1))
    assert jobs.claim(job_id, "w1", 30) is not None
    assert not jobs.succeed(job_id, "w1", {}, [])
    job = _job(job_id)
    assert (job.status, job.error_code) == (JobStatus.ERROR.value, "timeout")


def test_reading_a_job_past_its_deadline_fails_it(database):
    from docmill.core import service
    from docmill.core.auth import Principal, Role
    from docmill.core.models import JobStatus, utcnow

    (job_id,) = _make_jobs(1, deadline_at=utcnow() - timedelta(seconds=1))  # never claimed
    org_id = _org_of(job_id)
    principal = Principal(org_id=org_id, org_slug="race", role=Role.USER, key_id="k")
    job = service.get_job(principal, job_id)
    assert (job.status, job.error_code) == (JobStatus.ERROR.value, "timeout")
    assert service.find_job(org_id, job_id).status == JobStatus.ERROR.value


def test_submit_sets_the_deadline_the_face_asks_for(database, tmp_path):
    from docmill.core import service
    from docmill.core.auth import Principal, Role, get_or_create_org

    org = get_or_create_org("deadline")
    principal = Principal(org_id=org.id, org_slug=org.slug, role=Role.USER, key_id="k")
    source = tmp_path / "a.html"
    source.write_text("<p>hello</p>")
    made = {}
    for deadline in (None, 90.0):
        stager = service.new_stager(principal)
        stager.add_stream("a.html", source.open("rb"))
        made[deadline] = service.submit(principal, service.Submission(
            operation="html.to-pdf", deadline_s=deadline), stager)
    assert made[None].deadline_at is None
    job = made[90.0]
    assert job.deadline_at - job.created_at == timedelta(seconds=90)


def test_concurrent_publishers_create_one_link_per_output(database):
    from docmill.core import jobs, public_files
    from docmill.core.models import utcnow

    (job_id,) = _make_jobs(1)
    assert jobs.claim(job_id, "w1", 30) is not None
    outputs = [jobs.OutputFile(name=f"{i}.pdf", blob_key=f"x/{job_id}/output-1/{i}.pdf",
                               size=3, content_type="application/pdf") for i in range(3)]
    assert jobs.succeed(job_id, "w1", {}, outputs)
    org_id = _org_of(job_id)
    expires = utcnow() + timedelta(hours=1)
    barrier = threading.Barrier(8)
    seen: list[list[str]] = []
    failures: list[BaseException] = []

    def publish() -> None:
        barrier.wait()
        try:
            seen.append([p.id for p in public_files.publish_outputs(job_id, org_id, expires)])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=publish) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not failures, failures
    assert len(seen) == 8 and all(ids == seen[0] for ids in seen)  # the same links, in order
    assert len(set(seen[0])) == 3
    from sqlalchemy import func, select

    from docmill.core.db import session_scope
    from docmill.core.models import PublicFile

    with session_scope(readonly=True) as session:
        assert session.scalar(select(func.count()).select_from(PublicFile)
                              .where(PublicFile.job_id == job_id)) == 3
    names = [public_files.get_public(i).name for i in seen[0]]
    assert names == ["0.pdf", "1.pdf", "2.pdf"]


@pytest.mark.parametrize(("name", "header"), [
    ("report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
    ("my file é.pdf",
     "attachment; filename=\"my file _.pdf\"; filename*=UTF-8''my%20file%20%C3%A9.pdf"),
    ('a"b\\c;d.pdf', "attachment; filename=\"a_b_c;d.pdf\"; filename*=UTF-8''a%22b%5Cc%3Bd.pdf"),
    ("日本語.txt", "attachment; filename=\"___.txt\"; "
                  "filename*=UTF-8''%E6%97%A5%E6%9C%AC%E8%AA%9E.txt"),
])
def test_content_disposition_has_the_utf8_name_and_an_ascii_fallback(name, header):
    from docmill.faces.download import content_disposition

    assert content_disposition("attachment", name) == header


def test_a_non_ascii_name_downloads_with_its_header(database, tmp_path: Path):
    from urllib.parse import unquote

    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from docmill.core.files import get_blob_store
    from docmill.faces.download import stream_blob

    source = tmp_path / "src.bin"
    source.write_bytes(b"\x00payload" * 1000)
    get_blob_store().put_file("org/job/output-1/0-x.pdf", source)
    app = FastAPI()

    @app.get("/file")
    async def file() -> object:
        return await stream_blob("org/job/output-1/0-x.pdf", "application/pdf",
                                 "Übersicht März.pdf", disposition="inline")

    @app.get("/gone")
    async def gone() -> object:
        return await stream_blob("org/job/output-1/missing.pdf", "application/pdf", "x.pdf")

    from docmill.errors import NotFound

    with TestClient(app) as client:
        response = client.get("/file")
        assert response.status_code == 200 and response.content == source.read_bytes()
        header = response.headers["content-disposition"]
        assert header == ("inline; filename=\"_bersicht M_rz.pdf\"; "
                          "filename*=UTF-8''%C3%9Cbersicht%20M%C3%A4rz.pdf")
        encoded = header.split("filename*=UTF-8''", 1)[1]
        assert unquote(encoded, errors="strict") == "Übersicht März.pdf"  # as a client reads it
        with pytest.raises(NotFound):  # its job expired: the face's handler answers 404
            client.get("/gone")
