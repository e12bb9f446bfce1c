"""Container tests: they run only with DOCMILL_TEST_IMAGE=1 (the image step of .ci/run,
scripts/image-test.sh, after scripts/image.sh built the images) and drive podman directly.

Collecting them has no side effect and needs neither root nor podman: without
DOCMILL_TEST_IMAGE=1 every test here is skipped with the reason, so `scripts/test.sh` (all of
tests/) never builds or runs an image. Asked for but unable to run (no podman, no image), they
fail: the CI step must not pass without having run them."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
IMAGE = os.environ.get("DOCMILL_TEST_IMAGE_NAME", "localhost/docmill:latest")
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


@pytest.fixture(scope="session")
def image() -> str:
    if podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.fail(f"DOCMILL_TEST_IMAGE=1 but there is no image {IMAGE}: build it with "
                    "scripts/image.sh", pytrace=False)
    return IMAGE
