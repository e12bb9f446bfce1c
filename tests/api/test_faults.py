"""Fault injection with real processes: worker children killed mid-job, engines that hang.

Uses the opt-in `diag.sleep` operation (DOCMILL_ENABLE_DIAGNOSTICS) as a controllable slow
engine; the worker processes, the pool supervision and the database are the real ones.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from sqlalchemy import create_engine, text

BACKENDS = [b for b in os.environ.get("DOCMILL_TEST_BACKENDS", "sqlite,postgres").split(",") if b]

pytestmark = pytest.mark.backends("all")  # fault recovery depends on the database and dispatcher


def sleep_job(client, data, seconds, wait=0, **params):
    path = data / "pdf" / "minimal-document.pdf"
    form = {"operation": "diag.sleep"}
    if "timeout_s" in params:
        form["timeout_s"] = str(params.pop("timeout_s"))
    form["params"] = json.dumps({"seconds": seconds, **params})
    with open(path, "rb") as handle:
        response = client.post("/v1/jobs", params={"wait": wait} if wait else None, data=form,
                               files={"file": (path.name, handle)})
    assert response.status_code in (200, 202), response.text
    return response.json()


def wait_until(client, job_id, predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if predicate(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"timed out; last state {job}")


def transitions(server, job_id):
    engine = create_engine(server.database_url.replace("+psycopg", "+psycopg"))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status FROM job_events WHERE job_id = :id ORDER BY id"),
                            {"id": job_id}).scalars().all()
    engine.dispose()
    return rows


@pytest.fixture(params=BACKENDS)
def diag_server(request, make_server):
    srv = make_server(request.param, DOCMILL_ENABLE_DIAGNOSTICS="true", DOCMILL_WORKERS="1",
                      DOCMILL_MAX_ATTEMPTS="2", DOCMILL_LEASE_S="5").start()
    return srv


def test_worker_killed_mid_job_is_retried_and_succeeds_once(diag_server, data):
    with diag_server.client() as client:
        job = sleep_job(client, data, seconds=3, steps=30)
        wait_until(client, job["id"], lambda j: j["status"] == "PROCESSING" and j["progress"] > 0)
        (pid,) = diag_server.worker_pids()
        os.kill(pid, signal.SIGKILL)
        done = wait_until(client, job["id"], lambda j: j["status"] in ("SUCCESS", "ERROR"))
        assert done["status"] == "SUCCESS", done
        assert done["attempts"] == 2
        assert done["result"]["pid"] != pid
        assert transitions(diag_server, job["id"]).count("SUCCESS") == 1
        # the pool replaced the child and keeps working
        assert sleep_job(client, data, seconds=0.1, wait=30)["status"] == "SUCCESS"


def test_worker_dying_on_every_attempt_ends_worker_lost(diag_server, data):
    with diag_server.client() as client:
        job = sleep_job(client, data, seconds=0.4, crash=True)
        done = wait_until(client, job["id"], lambda j: j["status"] in ("SUCCESS", "ERROR"))
        assert done["status"] == "ERROR"
        assert done["error"]["code"] == "worker_lost"
        assert "2 attempts" in done["error"]["message"]
        assert transitions(diag_server, job["id"]).count("PROCESSING") == 2
        assert sleep_job(client, data, seconds=0.1, wait=30)["status"] == "SUCCESS"


def test_hung_engine_times_out_and_next_job_runs(diag_server, data):
    with diag_server.client() as client:
        started = time.monotonic()
        job = sleep_job(client, data, seconds=120, timeout_s=1.5)
        done = wait_until(client, job["id"], lambda j: j["status"] in ("SUCCESS", "ERROR"))
        assert time.monotonic() - started < 30
        assert done["status"] == "ERROR" and done["error"]["code"] == "timeout"
        assert "1.5 s timeout" in done["error"]["message"]
        assert sleep_job(client, data, seconds=0.1, wait=30)["status"] == "SUCCESS"
        assert client.get("/healthz").status_code == 200


def test_pool_process_killed_mid_job_is_replaced_and_the_job_retried(diag_server, data):
    import psutil

    with diag_server.client() as client:
        job = sleep_job(client, data, seconds=3, steps=30)
        wait_until(client, job["id"], lambda j: j["status"] == "PROCESSING" and j["progress"] > 0)
        (host,) = psutil.Process(diag_server.process.pid).children()
        (worker,) = diag_server.worker_pids()
        host.kill()  # the pool host; its worker dies with it (PR_SET_PDEATHSIG)
        psutil.wait_procs([host], timeout=10)
        done = wait_until(client, job["id"], lambda j: j["status"] in ("SUCCESS", "ERROR"))
        assert done["status"] == "SUCCESS", done
        assert done["attempts"] == 2
        assert done["result"]["pid"] != worker
        assert not psutil.pid_exists(worker) or psutil.Process(worker).status() == "zombie"
        assert transitions(diag_server, job["id"]).count("SUCCESS") == 1
        # a new pool host runs the next job; the server never went down
        assert sleep_job(client, data, seconds=0.1, wait=30)["status"] == "SUCCESS"
        new_hosts = [p.pid for p in psutil.Process(diag_server.process.pid).children()]
        assert host.pid not in new_hosts and new_hosts
        assert "the worker pool process died" in diag_server.log_tail(200)


def test_pool_shares_the_servers_memory(make_server, data):
    """The pool host is forked from the server after its imports and workers fork from the
    host: most of a worker's pages are the server's, shared copy-on-write, not its own."""
    import psutil

    srv = make_server("sqlite", DOCMILL_WORKERS="2").start()
    with srv.client() as client:
        path = data / "pdf" / "minimal-document.pdf"
        with open(path, "rb") as handle:
            response = client.post("/v1/jobs", params={"wait": 30},
                                   data={"operation": "pdf.to-text"},
                                   files={"file": (path.name, handle)})
        assert response.json()["status"] == "SUCCESS", response.text
    workers = [psutil.Process(pid) for pid in srv.worker_pids()]
    assert len(workers) == 2
    for worker in workers:
        info = worker.memory_full_info()
        # a worker maps the whole server image (FastAPI, SQLAlchemy, pydantic...) but owns
        # only what its own jobs touched
        assert info.uss < info.rss / 3, (info.uss, info.rss)


def test_idle_worker_killed_breaks_nothing(make_server, data):
    """pebble declares its pool broken when a worker dies while no task runs; the pool host
    then exits by itself and the server starts a new one, before any job is lost to it."""
    srv = make_server("sqlite", DOCMILL_WORKERS="2", DOCMILL_ENABLE_DIAGNOSTICS="true").start()
    with srv.client() as client:
        assert sleep_job(client, data, seconds=0.1, wait=30)["status"] == "SUCCESS"
        os.kill(srv.worker_pids()[0], signal.SIGKILL)
        time.sleep(3)
        for _ in range(3):
            done = sleep_job(client, data, seconds=0.1, wait=60)
            assert (done["status"], done["attempts"]) == ("SUCCESS", 1), done
    assert "the worker pool broke" in srv.log_tail(200)


def test_server_forced_to_exit_leaves_no_pool_behind(make_server, data):
    """A second Ctrl-C makes uvicorn exit without running the shutdown: the pool host and
    its workers must still go, and the server must not hang waiting for them."""
    import psutil

    srv = make_server("sqlite", DOCMILL_WORKERS="1", DOCMILL_ENABLE_DIAGNOSTICS="true").start()
    with srv.client() as client:
        assert sleep_job(client, data, seconds=0.1, wait=30)["status"] == "SUCCESS"
    pool = psutil.Process(srv.process.pid).children(recursive=True)
    assert len(pool) == 2  # the pool host and its worker
    srv.process.send_signal(signal.SIGINT)
    time.sleep(0.05)  # before the server acts on the first: uvicorn skips the shutdown
    srv.process.send_signal(signal.SIGINT)
    srv.process.wait(timeout=30)
    _gone, alive = psutil.wait_procs(pool, timeout=15)
    assert not alive, alive
