"""The promise every face makes: a job always ends, its result lives for the retention period
and then disappears, and the caller is told. Real servers, killed and restarted."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from standardwebhooks.webhooks import Webhook

BACKENDS = [b for b in os.environ.get("DOCMILL_TEST_BACKENDS", "sqlite,postgres").split(",") if b]

pytestmark = pytest.mark.backends("all")  # restarts, recovery and webhooks depend on the database


def submit(client, path: Path, operation="diag.sleep", params=None, wait=0, **form):
    with open(path, "rb") as handle:
        response = client.post("/v1/jobs", params={"wait": wait} if wait else None,
                               data={"operation": operation, "params": json.dumps(params or {}),
                                     **form},
                               files={"file": (path.name, handle)})
    assert response.status_code in (200, 202), response.text
    return response.json()


def wait_all(client, ids, timeout=120):
    deadline = time.monotonic() + timeout
    pending = set(ids)
    jobs = {}
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            job = client.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in ("SUCCESS", "ERROR"):
                jobs[job_id] = job
                pending.discard(job_id)
        time.sleep(0.2)
    assert not pending, f"{len(pending)} jobs never finished"
    return jobs


def query(server, sql, **params):
    engine = create_engine(server.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    engine.dispose()
    return rows


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_server_stopped_with_jobs_in_flight_finishes_all_after_restart(make_server, data,
                                                                       backend, how):
    srv = make_server(backend, DOCMILL_ENABLE_DIAGNOSTICS="true", DOCMILL_WORKERS="2",
                      DOCMILL_SHUTDOWN_GRACE_S="1").start()
    source = data / "pdf" / "minimal-document.pdf"
    with srv.client() as client:
        ids = [submit(client, source, params={"seconds": 0.4, "steps": 4})["id"]
               for _ in range(50)]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = [s for (s,) in query(srv, "SELECT status FROM jobs")]
            if states.count("SUCCESS") >= 3 and "PROCESSING" in states:
                break
            time.sleep(0.05)
    srv.stop(how)
    srv.start()
    with srv.client() as client:
        jobs = wait_all(client, ids)
        assert all(j["status"] == "SUCCESS" for j in jobs.values()), \
            [j["error"] for j in jobs.values() if j["status"] != "SUCCESS"]
        for job in list(jobs.values())[:10]:
            body = client.get(job["files"][0]["url"]).content
            assert body == source.read_bytes()
    successes = query(srv, "SELECT job_id, count(*) FROM job_events WHERE status = 'SUCCESS' "
                           "GROUP BY job_id")
    assert len(successes) == 50 and all(n == 1 for _, n in successes)


def test_sigterm_drains_running_jobs_within_grace(make_server, data):
    srv = make_server("sqlite", DOCMILL_ENABLE_DIAGNOSTICS="true", DOCMILL_WORKERS="1",
                      DOCMILL_SHUTDOWN_GRACE_S="20").start()
    with srv.client() as client:
        job = submit(client, data / "pdf" / "minimal-document.pdf",
                     params={"seconds": 2, "steps": 10})
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] != "PROCESSING":
            time.sleep(0.05)
    srv.stop(signal.SIGTERM)
    (status,), = query(srv, "SELECT status FROM jobs WHERE id = :id", id=job["id"])
    assert status == "SUCCESS"


def test_expired_job_answers_404_and_its_files_are_gone(make_server, data):
    srv = make_server("sqlite", DOCMILL_RETENTION_S="6").start()
    with srv.client() as client:
        job = submit(client, data / "pdf" / "minimal-document.pdf", "pdf.to-text", wait=30)
        assert job["status"] == "SUCCESS"
        (org_id,), = query(srv, "SELECT org_id FROM jobs WHERE id = :id", id=job["id"])
        folder = srv.root / "blobs" / org_id / job["id"]
        assert any(folder.rglob("*.txt"))
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{job['id']}").status_code != 404:
            assert time.monotonic() < deadline, "job never expired"
            time.sleep(0.3)
        assert client.get(job["files"][0]["url"]).status_code == 404
        deadline = time.monotonic() + 10
        while folder.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not folder.exists()
        (status,), = query(srv, "SELECT status FROM jobs WHERE id = :id", id=job["id"])
        assert status == "EXPIRED"


def test_orphaned_blob_folders_are_collected(make_server, data):
    srv = make_server("sqlite")
    srv.cli("migrate")
    (org_id,), = query(srv, "SELECT id FROM organizations WHERE slug = 'acme'")
    orphan = srv.root / "blobs" / org_id / str(uuid.uuid4())
    (orphan / "input").mkdir(parents=True)
    (orphan / "input" / "0-x.pdf").write_bytes(b"%PDF-1.4 crash between write and commit")
    old = time.time() - 7200
    for path in (orphan, orphan / "input", orphan / "input" / "0-x.pdf"):
        os.utime(path, (old, old))
    fresh = srv.root / "blobs" / org_id / str(uuid.uuid4())
    (fresh / "input").mkdir(parents=True)
    srv.start()
    deadline = time.monotonic() + 20
    while orphan.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not orphan.exists()
    assert fresh.exists(), "a folder being staged right now must be left alone"


class Receiver:
    """A webhook receiver on 127.0.0.2 that fails the first `failures` calls."""

    def __init__(self, failures: int = 0, port: int = 0) -> None:
        self.calls: list[dict] = []
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append({"headers": dict(self.headers), "body": body.decode()})
                ok = len(receiver.calls) > receiver.failures
                self.send_response(200 if ok else 500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.2", port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.2:{self.port}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


WEBHOOK_ENV = {"DOCMILL_SSRF_ALLOW_HOSTS": '["127.0.0.2"]', "DOCMILL_WEBHOOK_BACKOFF_BASE_S": "0.3"}


def test_webhook_retried_until_delivered_once_and_signed(make_server, data):
    receiver = Receiver(failures=2)
    srv = make_server("sqlite", **WEBHOOK_ENV).start()
    try:
        with srv.client() as client:
            secret = client.get("/v1/organization").json()["webhook_secret"]
            job = submit(client, data / "pdf" / "minimal-document.pdf", "pdf.to-text",
                         wait=30, webhook_url=receiver.url)
            deadline = time.monotonic() + 30
            while len(receiver.calls) < 3 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(1.5)  # a fourth call would come within this
        assert len(receiver.calls) == 3
        last = receiver.calls[-1]
        payload = Webhook(secret).verify(last["body"],
                                         {k.lower(): v for k, v in last["headers"].items()})
        assert payload["type"] == "job.success" and payload["data"]["id"] == job["id"]
        assert payload["data"]["status"] == "SUCCESS"
        rows = query(srv, "SELECT state, attempts FROM webhook_deliveries")
        assert rows == [("delivered", 3)]
    finally:
        receiver.close()


def test_webhook_to_down_receiver_delivered_after_restart(make_server, data):
    srv = make_server("sqlite", **WEBHOOK_ENV).start()
    probe = Receiver()
    port = probe.port
    probe.close()  # the port is now closed: deliveries fail
    with srv.client() as client:
        job = submit(client, data / "pdf" / "minimal-document.pdf", "pdf.to-text", wait=30,
                     webhook_url=f"http://127.0.0.2:{port}/hook")
        assert job["status"] == "SUCCESS"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if query(srv, "SELECT attempts FROM webhook_deliveries")[0][0] >= 1:
            break
        time.sleep(0.1)
    srv.stop(signal.SIGKILL)
    receiver = Receiver(port=port)
    try:
        srv.start()
        deadline = time.monotonic() + 40
        while not receiver.calls and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(receiver.calls) == 1
        assert json.loads(receiver.calls[0]["body"])["data"]["id"] == job["id"]
    finally:
        receiver.close()


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://169.254.169.254/hook",
                                 "http://[::1]/hook", "http://localhost/hook", "http://10.0.0.1/"])
def test_webhook_to_private_address_is_refused_at_submit(acme, data, url):
    with open(data / "pdf" / "minimal-document.pdf", "rb") as handle:
        response = acme.post("/v1/jobs", data={"operation": "pdf.to-text", "webhook_url": url},
                             files={"file": ("a.pdf", handle)})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "unsafe_url"
