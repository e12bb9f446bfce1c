"""compose.yaml started with podman-compose (PostgreSQL, Redis, SeaweedFS, the API with
`serve --no-workers`, two workers): a docx goes through the API to a worker container's
LibreOffice and back through S3."""

from __future__ import annotations

import io
import secrets
import shutil
import sys
import time
from pathlib import Path

import docx
import httpx
import pypdfium2 as pdfium
import pytest
from server import free_port

from .conftest import ROOT, admin_key, podman, podman_env, unique


def podman_compose() -> str:
    found = Path(sys.executable).parent / "podman-compose"
    return str(found) if found.exists() else (shutil.which("podman-compose") or "podman-compose")


@pytest.fixture(scope="module")
def stack(image: str):
    import subprocess

    project, port = unique("docmill-compose"), free_port()
    env = dict(podman_env(), DOCMILL_LISTEN=f"127.0.0.1:{port}", DOCMILL_PUBLIC_URL=f"http://127.0.0.1:{port}",
               POSTGRES_PASSWORD=secrets.token_hex(8), S3_ACCESS_KEY="docmill-test",
               S3_SECRET_KEY=secrets.token_hex(12), DOCMILL_WORKER_CONCURRENCY="1")
    compose = [podman_compose(), "-f", str(ROOT / "compose.yaml"), "-p", project]

    def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*compose, *args], env=env, capture_output=True, text=True,
                              timeout=timeout)

    up = run("up", "-d")
    try:
        assert up.returncode == 0, up.stdout[-2000:] + up.stderr[-3000:]
        url = f"http://127.0.0.1:{port}"
        deadline, ready = time.monotonic() + 240, None
        while time.monotonic() < deadline:
            try:
                ready = httpx.get(f"{url}/readyz", timeout=3, trust_env=False)
                if ready.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        api = f"{project}_api_1"
        assert ready is not None and ready.status_code == 200, \
            podman("logs", api, check=False).stderr
        yield {"url": url, "project": project, "key": admin_key(podman("logs", api).stdout),
               "ready": ready.json()}
    finally:
        # `down -v` removes the named volumes; the anonymous ones (the workers' /data) too
        ids = podman("ps", "-a", "-q", "--filter", f"label=io.podman.compose.project={project}",
                     check=False).stdout.split()
        volumes = podman("inspect", "--format", "{{range .Mounts}}{{.Name}} {{end}}", *ids,
                         check=False).stdout.split() if ids else []
        run("down", "-v", "-t", "80", timeout=400)
        for volume in volumes:
            podman("volume", "rm", "-f", volume, check=False)


def test_a_job_runs_through_the_api_and_a_worker_container(stack: dict, tmp_path: Path):
    assert stack["ready"]["checks"] == {"database": "ok", "dispatcher": "CeleryDispatcher"}
    document = docx.Document()
    document.add_paragraph("Docmill distributed across containers")
    document.save(tmp_path / "memo.docx")
    with httpx.Client(base_url=stack["url"], timeout=180, trust_env=False,
                      headers={"Authorization": f"Bearer {stack['key']}"}) as http:
        response = http.post("/v1/jobs?wait=150", data={"operation": "office.to-pdf"},
                             files={"file": ("memo.docx", (tmp_path / "memo.docx").read_bytes())})
        assert response.status_code in (200, 202), response.text
        job = response.json()
        assert job["status"] == "SUCCESS", job
        pdf = http.get(f"/v1/jobs/{job['id']}/files/memo.pdf")
        assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    document = pdfium.PdfDocument(io.BytesIO(pdf.content))
    assert "Docmill distributed across containers" in document[0].get_textpage().get_text_range()
    document.close()
    # the job ran in exactly one worker container (the API has no local workers); a second
    # delivery of the same message (the sweeper re-sends what looks lost) is harmless by
    # design and logs `succeeded ...: 'not-claimed'`, so only a run that returned 'success'
    # counts
    ran = [name for name in ("worker-1", "worker-2")
           if "succeeded" in (log := podman("logs", f"{stack['project']}_{name}_1").stderr)
           and ": 'success'" in log]
    assert len(ran) == 1, ran
