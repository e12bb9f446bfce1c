"""Scale-out behaviour with real infrastructure: PostgreSQL, Celery on Redis, SeaweedFS S3,
several `docmill worker` processes and API processes that share nothing but those."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from server import DocmillServer, free_port

pytestmark = [pytest.mark.skipif(
    "distributed" not in os.environ.get("DOCMILL_TEST_BACKENDS", "sqlite,postgres,distributed"),
    reason="distributed backend not selected"), pytest.mark.backends("all")]


def submit(client, data, params, operation="diag.sleep"):
    path = data / "pdf" / "minimal-document.pdf"
    with open(path, "rb") as handle:
        response = client.post("/v1/jobs", data={"operation": operation,
                                                 "params": json.dumps(params)},
                               files={"file": (path.name, handle)})
    assert response.status_code == 202, response.text
    return response.json()


def wait_terminal(client, job_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("SUCCESS", "ERROR"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} never finished: {job}")


def count(server, sql, **params):
    engine = create_engine(server.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    engine.dispose()
    return rows


def test_killed_celery_worker_job_completes_on_the_other_once(make_server, data):
    srv = make_server("distributed", DOCMILL_ENABLE_DIAGNOSTICS="true", DOCMILL_WORKERS="1",
                      DOCMILL_LEASE_S="3").start()
    with srv.client() as client:
        job = submit(client, data, {"seconds": 4, "steps": 40})
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "PROCESSING":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        ((owner,),) = count(srv, "SELECT lease_owner FROM jobs WHERE id = :id", id=job["id"])
        pid = int(owner.rsplit(":", 1)[1])
        victim = next(w for w in srv.workers
                      if pid in [c.pid for c in psutil.Process(w.pid).children(recursive=True)])
        os.killpg(victim.pid, signal.SIGKILL)
        done = wait_terminal(client, job["id"])
        assert done["status"] == "SUCCESS", done
        assert done["attempts"] == 2 and done["result"]["pid"] != pid
        ((successes,),) = count(srv, "SELECT count(*) FROM job_events WHERE job_id = :id AND "
                                     "status = 'SUCCESS'", id=job["id"])
        assert successes == 1


def test_broker_restart_loses_no_queued_job(tmp_path, data):
    from conftest import s3_env

    redis_port = free_port()

    def start_redis():
        return subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    redis_proc = start_redis()
    time.sleep(0.5)
    srv = DocmillServer(tmp_path / "srv", backend="distributed", s3_env=s3_env(),
                        broker_url=f"redis://127.0.0.1:{redis_port}/0",
                        extra_env={"DOCMILL_ENABLE_DIAGNOSTICS": "true"})
    try:
        srv.cli("migrate")
        srv.create_key("acme")
        srv.distributed_workers = 0  # jobs stay queued in the broker
        srv.start()
        with srv.client() as client:
            ids = [submit(client, data, {}, operation="pdf.to-text")["id"] for _ in range(10)]
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
            redis_proc = start_redis()  # empty: every queued message is gone
            time.sleep(0.5)
            srv.workers = [srv.start_worker(0)]
            jobs = [wait_terminal(client, job_id, timeout=120) for job_id in ids]
        assert [j["status"] for j in jobs] == ["SUCCESS"] * 10
    finally:
        srv.destroy()
        redis_proc.terminate()


def test_two_api_processes_serve_the_same_jobs(server, data):
    if not server.distributed:
        pytest.skip("the embedded server is one process by design")
    port = free_port()
    env = dict(server.env, DOCMILL_PORT=str(port))
    other = subprocess.Popen([sys.executable, "-m", "docmill.cli", "serve", "--no-workers"],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
        headers = {"Authorization": f"Bearer {server.keys['acme']}"}
        with server.client() as first, httpx.Client(base_url=base, headers=headers,
                                                    timeout=60, trust_env=False) as second:
            job = submit(first, data, {"pages": "1"}, operation="pdf.to-text")
            done = second.get(f"/v1/jobs/{job['id']}", params={"wait": 60}).json()
            assert done["status"] == "SUCCESS"
            name = done["files"][0]["name"]
            via_first = first.get(f"/v1/jobs/{job['id']}/files/{name}").content
            via_second = second.get(f"/v1/jobs/{job['id']}/files/{name}").content
            assert via_first == via_second and via_first
            assert second.delete(f"/v1/jobs/{job['id']}").status_code == 204
            assert first.get(f"/v1/jobs/{job['id']}").status_code == 404
    finally:
        os.killpg(other.pid, signal.SIGTERM)
        other.wait(timeout=30)


def rabbitmq_vhost() -> str | None:
    """A fresh RabbitMQ vhost (so no other run's worker takes this test's messages), or None
    when RabbitMQ is not installed here."""
    import shutil
    import uuid

    if not shutil.which("rabbitmqctl"):
        return None
    vhost = f"docmill-{uuid.uuid4().hex[:8]}"
    for args in (["add_vhost", vhost], ["set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)
    return vhost


def test_rabbitmq_broker_runs_jobs_and_redispatches_lost_ones(tmp_path, data):
    """The same Celery dispatcher over AMQP: jobs run, and a message purged from the queue
    (a broker that lost it) is sent again by the sweeper."""
    from conftest import s3_env

    vhost = rabbitmq_vhost()
    if vhost is None:
        pytest.skip("RabbitMQ is not installed")
    broker = f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
    srv = DocmillServer(tmp_path / "srv", backend="distributed", s3_env=s3_env(),
                        broker_url=broker, extra_env={"DOCMILL_REDISPATCH_AFTER_S": "2"})
    try:
        srv.cli("migrate")
        srv.create_key("acme")
        srv.distributed_workers = 0
        srv.start()
        with srv.client() as client:
            ids = [submit(client, data, {}, operation="pdf.to-text")["id"] for _ in range(4)]
            from kombu import Connection

            with Connection(broker) as conn:  # pdf.* jobs go to the "default" queue
                purged = conn.default_channel.queue_purge("default")
            # the messages were really in RabbitMQ (the sweeper may already have re-sent one:
            # a duplicate message is harmless, the claim in the database decides), now gone
            assert purged >= 4
            srv.workers = [srv.start_worker(0)]
            jobs = [wait_terminal(client, job_id, timeout=120) for job_id in ids]
            assert [j["status"] for j in jobs] == ["SUCCESS"] * 4
            assert client.get(jobs[0]["files"][0]["url"]).text.startswith("Lorem ipsum")
    finally:
        srv.destroy()
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True,
                       timeout=60)

