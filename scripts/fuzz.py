"""The contract fuzz step: a real `docmill serve` (embedded dispatcher, SQLite) with API keys,
and schemathesis run against its /openapi.json with every check, bounded in examples and
time (tests/contract/schemathesis.toml). Exits non-zero on any failure.

    .venv/bin/python scripts/fuzz.py [extra schemathesis arguments]
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from server import DocmillServer  # noqa: E402

CONFIG = ROOT / "tests" / "contract" / "schemathesis.toml"
MAX_EXAMPLES = os.environ.get("DOCMILL_FUZZ_MAX_EXAMPLES", "25")
MAX_TIME_S = os.environ.get("DOCMILL_FUZZ_MAX_TIME_S", "150")
SEED = os.environ.get("DOCMILL_FUZZ_SEED", "20")  # the same start every run; change it to explore


# Synchronous calls wait for their job, and the fuzzer queues hundreds of jobs on the one
# worker: the waits are kept short so that they end in the faces' own timeout answers (part
# of the contract) within schemathesis's request timeout.
FUZZ_SETTINGS = {
    "DOCMILL_WORKERS": "1",
    "DOCMILL_WAIT_MAX_S": "5",
    "DOCMILL_URL_DOWNLOAD_TIMEOUT_S": "5",
    "DOCMILL_DOCRAPTOR_SYNC_TIMEOUT_S": "5",
    "DOCMILL_DOCUTRAY_SYNC_WAIT_S": "5",
    "DOCMILL_DOCTYPE_EXAMPLE_WAIT_S": "5",
    "DOCMILL_CONVERTAPI_DEFAULT_TIMEOUT_S": "5",
    "DOCMILL_CONVERTAPI_WEB_TIMEOUT_S": "5",
    "DOCMILL_CONVERTAPI_MAX_TIMEOUT_S": "10",
}
REQUEST_TIMEOUT_S = "30"


def schemathesis_command(schema_url: str, report_dir: Path, *extra: str) -> list[str]:
    """The fuzz step's schemathesis run (tests/contract/test_fuzz_not_vacuous.py runs the
    same against an app built to break its contract)."""
    return [str(Path(sys.executable).with_name("schemathesis")),
            "--config-file", str(CONFIG), "run", schema_url,
            "--checks", "all", "--max-examples", MAX_EXAMPLES, "--max-time", MAX_TIME_S,
            # one worker: Python 3.11's ast.parse is not thread-safe, and hypothesis calls it
            "--workers", "1", "--seed", SEED, "--request-timeout", REQUEST_TIMEOUT_S,
            "--report", "ndjson", "--report-dir", str(report_dir), *extra]


def main(argv: list[str]) -> int:
    root = Path(tempfile.mkdtemp(prefix="docmill-fuzz-"))
    server = DocmillServer(root / "server", extra_env=FUZZ_SETTINGS)
    server.cli("migrate")
    key = server.create_key("acme", admin=True)
    server.start()
    try:
        token = httpx.post(f"{server.url}/oauth2/token", timeout=30,
                           json={"username": "acme", "password": key}).text
        env = {**os.environ,
               "DOCMILL_FUZZ_KEY": key,
               "DOCMILL_FUZZ_BASIC": base64.b64encode(f"{key}:".encode()).decode(),
               "DOCMILL_FUZZ_TOKEN": token}
        command = schemathesis_command(f"{server.url}/openapi.json", root / "report", *argv)
        started = time.monotonic()
        status = subprocess.run(command, env=env, cwd=root).returncode
        print(f"fuzz: schemathesis exited {status} after {time.monotonic() - started:.0f} s; "
              f"report in {root / 'report'}")
        if server.process is not None and server.process.poll() is not None:
            print("fuzz: the server died\n" + server.log_tail())
            return 1
        return status
    finally:
        server.destroy()
        shutil.rmtree(root / "server", ignore_errors=True)  # the report stays


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
