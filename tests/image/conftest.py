"""Container tests: they run only with DOCMILL_TEST_IMAGE=1 (the image step of .ci/run,
scripts/image-test.sh, after scripts/image.sh built the images) and drive podman directly.

Collecting them has no side effect and needs neither root nor podman: without
DOCMILL_TEST_IMAGE=1 every test here is skipped with the reason, so `scripts/test.sh` (all of
tests/) never builds or runs an image. Asked for but unable to run (no podman, no image), they
fail: the CI step must not pass without having run them."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pypdfium2 as pdfium
import pytest
from PIL import Image, ImageDraw, ImageFont
from server import free_port

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("DOCMILL_TEST_IMAGE_NAME", "localhost/docmill:latest")
SLIM_IMAGE = os.environ.get("DOCMILL_TEST_SLIM_IMAGE_NAME", "localhost/docmill-slim:latest")
REQUESTED = os.environ.get("DOCMILL_TEST_IMAGE") == "1"
NOT_REQUESTED = ("container tests run only with DOCMILL_TEST_IMAGE=1: scripts/image-test.sh "
                 "builds the images (as root, with podman) and runs them")


@pytest.fixture(scope="session", autouse=True)
def images_requested() -> None:
    """Session-scoped so that it runs before any fixture that would start a container."""
    if not REQUESTED:
        pytest.skip(NOT_REQUESTED)
    if shutil.which("podman") is None:
        pytest.fail("DOCMILL_TEST_IMAGE=1 but podman is not installed: run scripts/image.sh "
                    "(as root) first, or scripts/image-test.sh", pytrace=False)


@functools.cache
def podman_env() -> dict[str, str]:
    """The environment podman needs on this machine (`scripts/image.sh env`, which only reads
    its cache folder), asked for on first use."""
    env = dict(os.environ)
    out = subprocess.run([str(ROOT / "scripts" / "image.sh"), "env"], capture_output=True,
                         text=True, check=True).stdout
    for name, value in re.findall(r"^export (\w+)=(.*)$", out, re.M):
        env[name] = value
    return env


def podman(*args: str, check: bool = True, timeout: float = 300,
           **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["podman", *args], capture_output=True, text=True, env=podman_env(),
                            timeout=timeout, **kwargs)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({result.returncode}):\n"
                             f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_healthy(url: str, timeout: float = 180, container: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=3, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if container and podman("inspect", "--format", "{{.State.Running}}", container,
                                check=False).stdout.strip() == "false":
            break
        time.sleep(1)
    logs = podman("logs", container, check=False).stdout[-4000:] if container else ""
    raise AssertionError(f"{url}/healthz did not answer 200 within {timeout} s\n{logs}")


def admin_key(logs: str) -> str:
    found = re.findall(r"\bdm_[A-Za-z0-9_-]+", logs)
    assert found, f"no admin key in the logs:\n{logs[-3000:]}"
    return found[0]


def built(name: str) -> str:
    if podman("image", "exists", name, check=False).returncode != 0:
        pytest.fail(f"DOCMILL_TEST_IMAGE=1 but there is no image {name}: build it with "
                    "scripts/image.sh", pytrace=False)
    return name


@pytest.fixture(scope="session")
def image() -> str:
    return built(IMAGE)


@pytest.fixture(scope="session")
def slim_image() -> str:
    return built(SLIM_IMAGE)


@contextlib.contextmanager
def served(image: str, *env: str) -> Iterator[dict]:
    """The image started as a user would (a named volume for /data, a port on loopback), until
    healthy; yields its name, URL and the admin key it printed. `env`: NAME=VALUE settings."""
    name, volume, port = unique("docmill-test"), unique("docmill-test-data"), free_port()
    podman("volume", "create", volume)
    settings = ["DOCMILL_WORKERS=2", f"DOCMILL_PUBLIC_URL=http://127.0.0.1:{port}", *env]
    podman("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8000", "-v", f"{volume}:/data",
           *[flag for setting in settings for flag in ("-e", setting)], image)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, container=name)
        yield {"name": name, "url": url, "key": admin_key(podman("logs", name).stdout)}
    finally:
        podman("rm", "-f", "-v", "-t", "0", name, check=False)
        podman("volume", "rm", "-f", volume, check=False)


def run_job(started: dict, operation: str, *paths: Path, params: dict | None = None) -> dict:
    """A job through the native API of a container from `served`, waited for; a successful
    one gets its first file's bytes as "content"."""
    with httpx.Client(base_url=started["url"], timeout=120, trust_env=False,
                      headers={"Authorization": f"Bearer {started['key']}"}) as http:
        response = http.post("/v1/jobs", data={"operation": operation,
                                               "params": json.dumps(params or {})},
                             files=[("file", (path.name, path.read_bytes())) for path in paths])
        assert response.status_code == 202, response.text
        job = http.get(f"/v1/jobs/{response.json()['id']}?wait=90").json()
        assert job["status"] in ("SUCCESS", "ERROR"), job
        if job["status"] == "SUCCESS":
            job["content"] = http.get(job["files"][0]["url"]).content
        return job


def pdf_text(content: bytes) -> str:
    doc = pdfium.PdfDocument(io.BytesIO(content))
    try:
        return " ".join(" ".join(page.get_textpage().get_text_range().split()) for page in doc)
    finally:
        doc.close()


def write_scan(path: Path, text: str) -> Path:
    """A PDF of one scanned page (an image, no text layer) that shows `text`."""
    scan = Image.new("RGB", (1700, 500), "white")
    font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 64)
    ImageDraw.Draw(scan).text((80, 180), text, fill="black", font=font)
    scan.save(path, resolution=200)
    assert pdf_text(path.read_bytes()) == ""
    return path
