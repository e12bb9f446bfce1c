"""Run a real `docmill serve` process for tests: temp data folder, free port, SQLite or a fresh
PostgreSQL database, API keys for two organizations."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PG_ADMIN_URL = os.environ.get("DOCMILL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if not DATA.is_dir():  # CI clones main with shared/ beside it
    DATA = Path(os.environ.get("DOCMILL_TEST_DATA", "../shared/data")).resolve()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def create_pg_database() -> str:
    import psycopg

    name = f"docmill_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class DocmillServer:
    """`backend`: "sqlite" or "postgres" (embedded: one `docmill serve` with its local pool),
    or "distributed" (PostgreSQL + Celery on Redis + S3: one `serve --no-workers` and
    `distributed_workers` `docmill worker` processes; needs `s3_env`)."""

    root: Path
    backend: str = "sqlite"
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    database_url: str = ""
    process: subprocess.Popen | None = None
    keys: dict[str, str] = field(default_factory=dict)
    s3_env: dict[str, str] = field(default_factory=dict)
    distributed_workers: int = 2
    workers: list[subprocess.Popen] = field(default_factory=list)
    broker_url: str = ""

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.database_url = (create_pg_database() if self.backend in ("postgres", "distributed")
                                 else f"sqlite:///{self.root / 'docmill.db'}")
        if self.distributed and not self.broker_url:
            from services import fresh_redis_url

            self.broker_url = fresh_redis_url()

    @property
    def distributed(self) -> bool:
        return self.backend == "distributed"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCMILL_")}
        env.update({
            "DOCMILL_DATA_DIR": str(self.root),
            "DOCMILL_DATABASE_URL": self.database_url,
            "DOCMILL_PORT": str(self.port),
            "DOCMILL_HOST": "127.0.0.1",
            "DOCMILL_WORKERS": "2",
            "DOCMILL_SWEEP_INTERVAL_S": "1",
            "DOCMILL_POLL_INTERVAL_S": "0.2",
            # only these have an expert.ai subscription; others get 403 (test_expertai.py)
            "DOCMILL_EXPERTAI_SUBSCRIBED_ORGS": '["acme", "globex"]',
        })
        if self.distributed:
            env.update({"DOCMILL_DISPATCHER": "celery", "DOCMILL_BROKER_URL": self.broker_url,
                        "DOCMILL_REDISPATCH_AFTER_S": "5"})
            env.update(self.s3_env)
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "docmill.cli", *args], env=self.env,
                              capture_output=True, text=True, check=check, timeout=120)

    def create_key(self, org: str, admin: bool = False) -> str:
        result = self.cli("keys", "create", "--org", org, *(["--admin"] if admin else []))
        key = result.stdout.strip().splitlines()[-1]
        self.keys[org] = key
        return key

    def provision(self, orgs: dict[str, bool]) -> None:
        """What `docmill migrate` and a `docmill keys create --org ORG [--admin]` per org do
        (orgs: slug -> admin), in one process: each CLI call pays an interpreter start and a
        schema check, a few seconds per private server. The session's `server` keeps the CLI."""
        result = subprocess.run([sys.executable, "-c", _PROVISION, json.dumps(orgs)],
                                env=self.env, capture_output=True, text=True, timeout=120)
        if result.returncode:
            raise RuntimeError(f"provisioning failed:\n{result.stderr[-3000:]}")
        self.keys.update(json.loads(result.stdout.strip().splitlines()[-1]))

    def start_worker(self, index: int) -> subprocess.Popen:
        log_path = self.root / f"worker{index}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        worker = subprocess.Popen(
            [sys.executable, "-m", "docmill.cli", "worker", "--hostname", f"w{index}@%h"],
            env=self.env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT,  # noqa: SIM115
            start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{log_path.read_text()[-3000:]}")
            with open(log_path, "rb") as handle:
                handle.seek(offset)
                if b" ready." in handle.read():
                    return worker
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready:\n{log_path.read_text()[-3000:]}")

    def start(self, timeout: float = 60) -> DocmillServer:
        if self.distributed:
            self.workers = [self.start_worker(i) for i in range(self.distributed_workers)]
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - the server writes it
        command = [sys.executable, "-m", "docmill.cli", "serve"]
        if self.distributed:
            command.append("--no-workers")
        self.process = subprocess.Popen(command,
                                        env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not become ready:\n{self.log_tail()}")

    def log_tail(self, lines: int = 60) -> str:
        path = self.root / "server.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def worker_pids(self) -> list[int]:
        """Pids of the pool's worker processes: the children of the pool host, which is
        itself a child of the server."""
        import psutil

        assert self.process is not None
        pids = []
        for proc in psutil.Process(self.process.pid).children():
            try:
                pids.extend(child.pid for child in proc.children())
            except psutil.NoSuchProcess:
                continue
        return pids

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        for worker in self.workers:
            _stop_process(worker, sig, timeout)
        self.workers = []
        if self.process is None or self.process.poll() is not None:
            return
        try:
            if sig == signal.SIGKILL:
                os.killpg(self.process.pid, sig)
            else:
                self.process.send_signal(sig)
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        finally:
            if sig != signal.SIGKILL:  # leave no stray pool host/children behind
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def client(self, org: str = "acme", **kwargs: object) -> httpx.Client:
        return self.anonymous(headers={"Authorization": f"Bearer {self.keys[org]}"}, **kwargs)

    def anonymous(self, **kwargs: object) -> httpx.Client:
        """A client without a key."""
        return httpx.Client(base_url=self.url, timeout=60, trust_env=False,
                            **kwargs)  # type: ignore[arg-type]

    def destroy(self) -> None:
        self.stop()
        if self.backend in ("postgres", "distributed"):
            drop_pg_database(self.database_url)


_PROVISION = """
import json, sys
from docmill.core.auth import create_key
from docmill.core.doctypes import seed_builtin_types
from docmill.core.migrate import upgrade
from docmill.core.models import Role
upgrade()
seed_builtin_types()
print(json.dumps({org: create_key(org, Role.ADMIN if admin else Role.USER)[0]
                  for org, admin in json.loads(sys.argv[1]).items()}))
"""


def _stop_process(process: subprocess.Popen, sig: int, timeout: float) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
