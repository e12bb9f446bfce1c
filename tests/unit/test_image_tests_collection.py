"""tests/image inside the default test run (scripts/test.sh runs all of tests/): collecting it
must touch nothing (no podman, no cache folder, no root) and skip every container test with
the reason, unless DOCMILL_TEST_IMAGE=1 asks for them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def as_unprivileged_user() -> list[str]:
    """Run as nobody when the tests run as root (the audit's failure was a non-root user's)."""
    if os.geteuid() == 0 and shutil.which("setpriv"):
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    return []


def test_container_tests_are_skipped_with_the_reason_and_touch_nothing(tmp_path):
    cache = tmp_path / "no-such-cache"  # nobody could not even create it (in root's tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "DOCMILL_TEST_IMAGE"}
    env.update(DOCMILL_IMAGE_CACHE=str(cache), HOME="/tmp")
    run = subprocess.run([*as_unprivileged_user(), sys.executable, "-m", "pytest", "-q", "-rs",
                          "-p", "no:cacheprovider",
                          str(ROOT / "tests" / "image")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "passed" not in run.stdout and "error" not in run.stdout.lower(), run.stdout[-3000:]
    assert " skipped" in run.stdout and "DOCMILL_TEST_IMAGE=1" in run.stdout, run.stdout[-3000:]
    assert not cache.exists()


def test_image_sh_env_creates_nothing(tmp_path):
    cache = tmp_path / "no-such-cache"
    run = subprocess.run([*as_unprivileged_user(), str(ROOT / "scripts" / "image.sh"), "env"],
                         capture_output=True, text=True,
                         env=dict(os.environ, DOCMILL_IMAGE_CACHE=str(cache)), timeout=30,
                         check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "" and not cache.exists()
