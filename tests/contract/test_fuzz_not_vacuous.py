"""The fuzz step's schemathesis run (scripts/fuzz.py, the same options) fails on an
undeclared status and passes once the status is declared: its green is worth something."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parents[1] / "scripts"))
sys.path.insert(0, str(HERE.parent))

from fuzz import schemathesis_command  # noqa: E402
from server import free_port  # noqa: E402


def run_against_liar(tmp_path: Path, declares_404: bool) -> subprocess.CompletedProcess[str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE), "DOCMILL_FUZZ_KEY": "x",
           "DOCMILL_FUZZ_BASIC": "x", "DOCMILL_FUZZ_TOKEN": "x"}
    if declares_404:
        env["LIAR_DECLARES_404"] = "1"
    app = subprocess.Popen([sys.executable, "-m", "uvicorn", "liar_app:app", "--port", str(port),
                            "--log-level", "warning"], env=env, cwd=HERE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/openapi.json", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or app.poll() is not None:
                    pytest.fail("the liar app did not start")
                time.sleep(0.2)
        command = schemathesis_command(f"{url}/openapi.json", tmp_path / "report",
                                       "--max-time", "20")
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=180,
                              cwd=tmp_path)
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_an_undeclared_status_fails_the_fuzz_step(tmp_path: Path) -> None:
    done = run_against_liar(tmp_path, declares_404=False)
    assert done.returncode != 0, done.stdout[-3000:]
    assert "ST103" in done.stdout and "Received: 404" in done.stdout, done.stdout[-3000:]


def test_the_same_app_with_the_status_declared_passes(tmp_path: Path) -> None:
    done = run_against_liar(tmp_path, declares_404=True)
    assert done.returncode == 0, done.stdout[-3000:]
