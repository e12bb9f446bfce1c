"""Migrations on start (what compose.yaml and docs/operations.md promise): `serve` upgrades a
database left at an older revision, a `docmill worker` creates the schema of an empty
PostgreSQL database, and a worker and `serve --no-workers` started together on one both come up
on one migrated schema."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest
from server import DocmillServer
from sqlalchemy import create_engine, inspect, text

from docmill.core.migrate import alembic_config, upgrade

BACKENDS = os.environ.get("DOCMILL_TEST_BACKENDS", "sqlite,postgres,distributed").split(",")
OLDER_REVISION = "0006"  # before 0007 added the pipelines table and the jobs' step columns


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def schema(url: str) -> tuple[list[str], set[str], set[str]]:
    """The rows of alembic_version, the table names and the columns of jobs."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version"))
            versions = [row[0] for row in rows]
        found = inspect(engine)
        columns = {c["name"] for c in found.get_columns("jobs")}
        return versions, set(found.get_table_names()), columns
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", [b for b in ("sqlite", "postgres") if b in BACKENDS])
def test_serve_upgrades_an_older_schema_on_start(tmp_path, backend):
    srv = DocmillServer(tmp_path / "srv", backend=backend)
    try:
        upgrade(srv.database_url, OLDER_REVISION)
        versions, tables, job_columns = schema(srv.database_url)
        assert versions == [OLDER_REVISION]
        assert "pipelines" not in tables and "step" not in job_columns
        srv.start()
        versions, tables, job_columns = schema(srv.database_url)
        assert versions == [head_revision()] != [OLDER_REVISION]
        assert "pipelines" in tables and {"parent_id", "step", "step_item"} <= job_columns
        # the upgraded server serves: a key made now lists the (empty) pipelines of 0007
        srv.create_key("acme", admin=True)
        with srv.client() as client:
            response = client.get("/v1/pipelines")
        assert response.status_code == 200, response.text
    finally:
        srv.destroy()


@pytest.mark.skipif("distributed" not in BACKENDS, reason="distributed backend not selected")
def test_a_worker_alone_creates_the_schema_of_an_empty_database(tmp_path):
    from conftest import s3_env

    srv = DocmillServer(tmp_path / "srv", backend="distributed", s3_env=s3_env())
    try:
        with create_engine(srv.database_url).connect() as conn:
            assert not inspect(conn).get_table_names()
        srv.workers = [srv.start_worker(0)]  # returns once Celery says " ready."
        versions, tables, _ = schema(srv.database_url)
        assert versions == [head_revision()] and {"jobs", "pipelines"} <= tables
    finally:
        srv.destroy()


@pytest.mark.skipif("distributed" not in BACKENDS, reason="distributed backend not selected")
def test_worker_and_api_started_together_migrate_an_empty_database_once(tmp_path):
    from conftest import s3_env

    srv = DocmillServer(tmp_path / "srv", backend="distributed", s3_env=s3_env())
    with create_engine(srv.database_url).connect() as conn:
        assert not inspect(conn).get_table_names()  # empty: nobody ran `docmill migrate`
    log = open(srv.root / "both.log", "ab")  # noqa: SIM115 - the two processes write it
    started = [subprocess.Popen([sys.executable, "-m", "docmill.cli", *command], env=srv.env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
               for command in (["worker", "--hostname", "w0@%h"], ["serve", "--no-workers"])]
    srv.workers, srv.process = started[:1], started[1]
    try:
        deadline, ready = time.monotonic() + 90, None
        while time.monotonic() < deadline and ready != 200:
            assert all(p.poll() is None for p in started), \
                (srv.root / "both.log").read_text()[-4000:]
            try:
                ready = httpx.get(f"{srv.url}/readyz", timeout=2, trust_env=False).status_code
            except httpx.HTTPError:
                time.sleep(0.3)
        assert ready == 200, (srv.root / "both.log").read_text()[-4000:]
        while b" ready." not in (srv.root / "both.log").read_bytes():
            assert time.monotonic() < deadline and started[0].poll() is None, \
                (srv.root / "both.log").read_text()[-4000:]
            time.sleep(0.3)
        versions, tables, _ = schema(srv.database_url)
        assert versions == [head_revision()] and "jobs" in tables
        # a job goes through the API to the worker that migrated (or waited for the lock)
        srv.create_key("acme", admin=True)
        with srv.client() as client:
            response = client.post("/v1/jobs", data={"operation": "pdf.merge"},
                                   files=[("file", ("a.pdf", minimal_pdf())),
                                          ("file", ("b.pdf", minimal_pdf()))])
            assert response.status_code == 202, response.text
            job = client.get(f"/v1/jobs/{response.json()['id']}?wait=60").json()
        assert job["status"] == "SUCCESS", (job, (srv.root / "both.log").read_text()[-4000:])
    finally:
        srv.destroy()


def minimal_pdf() -> bytes:
    import io

    import pypdfium2 as pdfium

    document = pdfium.PdfDocument.new()
    document.new_page(200, 200)
    out = io.BytesIO()
    document.save(out)
    document.close()
    return out.getvalue()
