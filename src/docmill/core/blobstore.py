"""The blob store interface: where input and output files live, whatever the home.

`files.py` holds the local-directory store and picks a store from the settings; `s3.py` the
S3-compatible one. Both implement this interface, so neither imports the other.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


class BlobStore(ABC):
    @abstractmethod
    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        """A file to write the blob into; it appears under `key` only if the block succeeds."""

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None:
        """Store a local file under `key`."""

    @abstractmethod
    def open(self, key: str) -> BinaryIO:
        """Read a blob; raises NotFound."""

    @abstractmethod
    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        """A local path holding the blob for the duration of the block (engines need paths)."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under `prefix` (a job's folder)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list_prefixes(self, depth: int) -> Iterator[str]:
        """Folder prefixes `depth` levels deep (`org/job` at depth 2), for orphan collection."""

    @abstractmethod
    def last_modified(self, prefix: str) -> float | None:
        """Newest modification time (epoch seconds) under `prefix`, None if nothing is there."""

    def filesystem_path(self, key: str) -> Path | None:
        """The blob's real path when it lives on this machine's disk, else None."""
        return None
