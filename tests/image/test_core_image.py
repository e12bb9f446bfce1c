"""The core image, started as a user would: podman run with a named volume for /data and a
published port on loopback. Converts a docx and OCRs a scan through the official ConvertAPI
client, prints a page whose script writes its text with headless Chromium, checks that nothing
runs as root, and that SIGTERM lets a short running job finish
and gives a long one back to the queue (it then runs once more after the restart, no
attempt spent)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import convertapi
import docx
import httpx
import pytest

from .conftest import pdf_text, podman, run_job, served, wait_healthy, write_scan

GRACE_S = 6


@pytest.fixture(scope="module")
def core(image: str):
    with served(image, "DOCMILL_ENABLE_DIAGNOSTICS=true", f"DOCMILL_SHUTDOWN_GRACE_S={GRACE_S}",
                "DOCMILL_POLL_INTERVAL_S=0.2") as started:
        yield started


def client(core: dict) -> httpx.Client:
    return httpx.Client(base_url=core["url"], timeout=120, trust_env=False,
                        headers={"Authorization": f"Bearer {core['key']}"})


def test_image_configuration(image: str):
    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspected["Config"]
    assert config["User"] == "docmill"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--", "docmill"]
    assert config["Cmd"] == ["serve"]
    assert config["StopSignal"] in ("SIGTERM", "15")
    assert "/data" in config["Volumes"]
    assert "/healthz" in " ".join(inspected["Healthcheck"]["Test"])
    assert "DOCMILL_DATA_DIR=/data" in config["Env"]


def test_runs_as_non_root(core: dict):
    assert podman("exec", core["name"], "id", "-u").stdout.strip() == "10001"
    # every process of the container: tini, the server, the pool host and its workers
    uids = podman("exec", core["name"], "sh", "-c",
                  "grep -h '^Uid:' /proc/[0-9]*/status").stdout.split("\n")
    uids = {line.split()[1] for line in uids if line.strip()}
    assert uids == {"10001"}
    owner = podman("exec", core["name"], "stat", "-c", "%u", "/data/docmill.db").stdout.strip()
    assert owner == "10001"


def test_healthcheck_passes(core: dict):
    assert podman("healthcheck", "run", core["name"], check=False).returncode == 0


def test_docx_to_pdf_and_ocr_with_the_convertapi_client(core: dict, tmp_path: Path):
    saved = (convertapi.base_uri, convertapi.api_credentials)
    convertapi.base_uri, convertapi.api_credentials = core["url"] + "/", core["key"]
    try:
        document = docx.Document()
        document.add_paragraph("Docmill converts this container report")
        document.save(tmp_path / "report.docx")
        result = convertapi.convert("pdf", {"File": str(tmp_path / "report.docx")})
        assert result.file.filename == "report.pdf"
        content = result.file.io.getvalue()
        assert content.startswith(b"%PDF-")
        assert "Docmill converts this container report" in pdf_text(content)

        scan = write_scan(tmp_path / "scan.pdf", "Invoice number 4711 paid")
        result = convertapi.convert("ocr", {"File": str(scan)}, from_format="pdf")
        assert "Invoice number 4711 paid" in pdf_text(result.file.io.getvalue())
    finally:
        convertapi.base_uri, convertapi.api_credentials = saved


def test_html_with_javascript_through_headless_chromium(core: dict, tmp_path: Path):
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body><p id='out'>static</p><script>"
                    "document.getElementById('out').textContent = "
                    "'Written by JavaScript ' + (6 * 7);"
                    "</script></body></html>")
    job = run_job(core, "html.to-pdf", page, params={"javascript": True})
    assert job["status"] == "SUCCESS", job
    assert "Written by JavaScript 42" in pdf_text(job["content"])


def submit_sleep(http: httpx.Client, seconds: float) -> str:
    response = http.post("/v1/jobs", data={"operation": "diag.sleep",
                                           "params": json.dumps({"seconds": seconds, "steps": 20})},
                         files={"file": ("x.bin", b"payload")})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_sigterm_drains_a_short_job_and_releases_a_long_one(core: dict):
    with client(core) as http:
        short, long = submit_sleep(http, GRACE_S / 2), submit_sleep(http, 3 * GRACE_S)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            jobs = [http.get(f"/v1/jobs/{job}").json() for job in (short, long)]
            if all(job["status"] == "PROCESSING" for job in jobs):
                break
            time.sleep(0.2)
        assert [job["status"] for job in jobs] == ["PROCESSING", "PROCESSING"], jobs

    stop_began = datetime.now(UTC)
    started = time.monotonic()
    # podman stop sends the image's STOPSIGNAL (SIGTERM) and waits; SIGKILL only after 120 s
    podman("stop", "-t", "120", core["name"], timeout=180)
    took = time.monotonic() - started
    stopped_at = datetime.now(UTC)
    state = json.loads(podman("inspect", core["name"]).stdout)[0]["State"]
    logs = podman("logs", core["name"]).stdout + podman("logs", core["name"]).stderr
    # uvicorn re-raises the SIGTERM it handled once shut down: 143, not SIGKILL's 137
    assert state["ExitCode"] in (0, 143), logs[-3000:]
    assert took < 2 * GRACE_S + 30, took

    podman("start", core["name"])
    wait_healthy(core["url"], container=core["name"])
    with client(core) as http:
        drained = http.get(f"/v1/jobs/{short}").json()
        assert drained["status"] == "SUCCESS" and drained["attempts"] == 1, drained
        released = http.get(f"/v1/jobs/{long}?wait=60").json()
        # given back on shutdown without spending an attempt, then run to the end after the
        # restart (a killed worker would have cost an attempt: attempts == 2)
        assert released["status"] == "SUCCESS", released
        logs = podman("logs", core["name"])
        assert released["attempts"] == 1, (released, (logs.stdout + logs.stderr)[-4000:])
        finished = datetime.fromisoformat(released["finished_at"].replace("Z", "+00:00"))
        assert finished > stopped_at, (released, stopped_at)
        # drained: still running when SIGTERM came (it finished after the stop began, within
        # the grace), not merely done before it
        drained_finished = datetime.fromisoformat(drained["finished_at"].replace("Z", "+00:00"))
        assert stop_began < drained_finished < stopped_at, (drained, stop_began, stopped_at)
