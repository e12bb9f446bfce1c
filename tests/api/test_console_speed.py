"""Console pages over 10,000 jobs in the database answer with the right rows (their speed is
measured in bench/console.py, not here: timing belongs in benchmarks). Also, over plain HTTP: the
console can be turned off, its forms refuse a session cookie without the CSRF token, and
the sign-in page warns when browsers would drop its Secure cookie."""

from __future__ import annotations

import re
import sys
from contextlib import closing
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from console_seed import processing_count, seed_jobs
from console_seed import signed_in as console_session
from server import DocmillServer

JOBS = 10_000


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = DocmillServer(tmp_path_factory.mktemp("console-speed"),
                           extra_env={"DOCMILL_WORKERS": "1"})
    server.cli("migrate")
    server.create_key("acme", admin=True)
    seed_jobs(server.database_url, "acme", JOBS)
    server.start()
    yield server
    server.destroy()


def signed_in(srv: DocmillServer) -> httpx.Client:
    return console_session(srv.url, srv.keys["acme"])


def test_main_pages_with_10000_jobs(srv):
    """Every main page answers, with the right rows, over 10,000 jobs (how fast: bench/console.py,
    the console's pages side by side with the native calls they are built on)."""
    with closing(signed_in(srv)) as client:
        some_job = re.search(r'href="/console/jobs/([0-9a-f-]{36})"',
                             client.get("/console/jobs").text).group(1)
        for path in ["/console/jobs", "/console/jobs?operation=ocr.read&since=24h",
                     "/console/jobs?status=PROCESSING&since=7d", f"/console/jobs/{some_job}",
                     "/console/submit", "/console/document-types", "/console/admin/keys",
                     "/console/admin/webhooks"]:
            answer = client.get(path)
            assert answer.status_code == 200, (path, answer.status_code)
            assert float(answer.headers["server-timing"].split("dur=")[1]) > 0
        rows = client.get("/console/jobs?status=ERROR").text.count("status-error")
        assert rows == 50  # one full page of the filtered list
        queue = client.get("/console/admin/queue").text
        running = re.search(r'data-role="processing">(\d+)<', queue).group(1)
        assert int(running) == processing_count(JOBS)


def test_session_cookie_without_csrf_token_is_refused(srv):
    with closing(signed_in(srv)) as client:
        for path in ("/console/admin/keys", "/console/sign-out", "/console/submit"):
            answer = client.post(path, data={"name": "forged"})
            assert answer.status_code == 403, path
            assert "CSRF" in answer.text
        assert client.get("/console/jobs").status_code == 200  # still signed in


def test_console_can_be_turned_off(tmp_path):
    server = DocmillServer(tmp_path / "off", extra_env={"DOCMILL_CONSOLE_ENABLED": "false",
                                                         "DOCMILL_WORKERS": "1"})
    server.cli("migrate")
    server.start()
    try:
        with httpx.Client(base_url=server.url, trust_env=False) as client:
            assert client.get("/console/sign-in").status_code == 404
            assert client.get("/console/static/console.css").status_code == 404
            assert client.get("/healthz").status_code == 200
    finally:
        server.destroy()


def test_sign_in_warns_when_the_secure_cookie_cannot_work(srv):
    with httpx.Client(base_url=srv.url, trust_env=False) as client:
        warning = "browsers will not keep its Secure session cookie"
        assert warning not in client.get("/console/sign-in").text  # 127.0.0.1: kept
        remote = {"Host": "docmill.example"}
        assert warning in client.get("/console/sign-in", headers=remote).text
        behind_tls = {**remote, "X-Forwarded-Proto": "https"}
        assert warning not in client.get("/console/sign-in", headers=behind_tls).text
