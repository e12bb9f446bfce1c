"""Older official vendor clients, each in a virtualenv of its own (they cannot share the test
virtualenv with the current versions): created once with pip from PyPI under a cache folder
and reused by later runs. A test runs a short script with that virtualenv's Python and reads
the JSON the script prints as its last line.

The cache is `$DOCMILL_TEST_CACHE` (default `~/.cache/docmill-tests`); a virtualenv is
rebuilt if its stamp file (written last) is missing.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

CACHE = Path(os.environ.get("DOCMILL_TEST_CACHE", Path.home() / ".cache" / "docmill-tests"))


def client_python(requirement: str) -> Path:
    """The Python of a virtualenv holding exactly `requirement` (e.g. "convertapi==1.8.0")."""
    folder = CACHE / "clients" / requirement.replace("==", "-")
    python = folder / "bin" / "python"
    stamp = folder / ".installed"
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one creator at a time, others wait and reuse
        if not stamp.exists():
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(folder)], check=True,
                           timeout=300)
            subprocess.run([str(python), "-m", "pip", "install", "-q",
                            "--disable-pip-version-check", requirement], check=True, timeout=600)
            stamp.write_text(requirement + "\n")
    return python


def run_client(requirement: str, script: str, env: dict[str, str] | None = None,
               timeout: float = 240) -> object:
    """Run `script` (dedented) with the client's Python; the JSON of its last stdout line."""
    python = client_python(requirement)
    full_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("PYTHON", "DOCMILL_", "VIRTUAL_ENV"))}
    full_env.update(env or {})
    full_env["NO_PROXY"] = full_env["no_proxy"] = "127.0.0.1,localhost"
    done = subprocess.run([str(python), "-c", textwrap.dedent(script)], env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"client script failed:\n{done.stdout}\n{done.stderr}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"client script printed nothing:\n{done.stderr}"
    return json.loads(lines[-1])
