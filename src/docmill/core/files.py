"""Blob store: where input and output files live.

One interface (`blobstore.py`), two homes: a local directory (here, the default) and an
S3-compatible bucket (`s3.py`); `get_blob_store()` picks the one the settings name. Writes
are streamed and atomic (a reader never sees half a file); keys look like
`{org_id}/{job_id}/{role}/{position}-{name}` so deleting a job is deleting a prefix.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from docmill.core.blobstore import BlobStore
from docmill.errors import NotFound


class LocalBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._tmp = self.root / ".tmp"
        self._tmp.mkdir(exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            raise ValueError(f"blob key escapes the store: {key!r}")
        return path

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        target = self._path(key)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        try:
            with os.fdopen(fd, "wb") as handle:
                yield handle
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, path: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp)
        os.close(fd)
        try:
            shutil.copyfile(path, tmp_name)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self._path(key), "rb")
        except FileNotFoundError as exc:
            raise NotFound(f"file {key} is gone") from exc

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        if not path.is_file():
            raise NotFound(f"file {key} is gone")
        yield path

    def filesystem_path(self, key: str) -> Path | None:
        path = self._path(key)
        return path if path.is_file() else None

    def delete_prefix(self, prefix: str) -> None:
        shutil.rmtree(self._path(prefix.rstrip("/")), ignore_errors=True)

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def last_modified(self, prefix: str) -> float | None:
        root = self._path(prefix.rstrip("/"))
        if not root.exists():
            return None
        return max((p.stat().st_mtime for p in [root, *root.rglob("*")]), default=None)

    def list_prefixes(self, depth: int) -> Iterator[str]:
        pattern = "/".join(["*"] * depth)
        for path in self.root.glob(pattern):
            rel = path.relative_to(self.root).as_posix()
            if path.is_dir() and not rel.startswith(".tmp"):
                yield rel


def job_prefix(org_id: str, job_id: str) -> str:
    return f"{org_id}/{job_id}"


def blob_key(org_id: str, job_id: str, role: str, position: int, name: str) -> str:
    return f"{job_prefix(org_id, job_id)}/{role}/{position}-{name}"


def make_blob_store(url: str) -> BlobStore:
    """`file:///path` (or a bare path) or `s3://bucket/prefix` (S3 settings from Settings)."""
    parts = urlsplit(url)
    if parts.scheme in ("", "file"):
        return LocalBlobStore(Path(parts.path if parts.scheme else url))
    if parts.scheme == "s3":
        from docmill.core.s3 import S3BlobStore
        from docmill.settings import get_settings

        settings = get_settings()
        return S3BlobStore(parts.netloc, parts.path, endpoint_url=settings.s3_endpoint_url,
                           region=settings.s3_region,
                           access_key_id=settings.s3_access_key_id,
                           secret_access_key=settings.s3_secret_access_key,
                           create_bucket=settings.s3_create_bucket)
    raise ValueError(f"unsupported storage URL scheme {parts.scheme!r}")


@lru_cache
def _store_for(url: str, pid: int) -> BlobStore:
    # Keyed by pid: S3 clients hold connection pools a forked child must not share.
    return make_blob_store(url)


def get_blob_store() -> BlobStore:
    from docmill.settings import get_settings

    return _store_for(get_settings().storage_url, os.getpid())
