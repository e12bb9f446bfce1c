"""S3-compatible blob store (AWS S3, SeaweedFS, MinIO, Ceph...), through boto3.

Writes spool to a temporary file (memory up to a few MB, then disk) and go up with boto3's
managed transfer, which uses multipart uploads for large files; reads stream the object body.
Engines need paths, so `local_path` downloads to a temporary file for the block's duration.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from docmill.core.blobstore import BlobStore
from docmill.errors import NotFound

SPOOL_BYTES = 8 * 1024 * 1024
TRANSFER = TransferConfig(multipart_threshold=16 * 1024 * 1024,
                          multipart_chunksize=16 * 1024 * 1024)


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3BlobStore(BlobStore):
    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, access_key_id: str | None = None,
                 secret_access_key: str | None = None, create_bucket: bool = False) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None,
            aws_access_key_id=access_key_id or None,
            aws_secret_access_key=secret_access_key or None,
            config=Config(retries={"max_attempts": 5, "mode": "standard"},
                          s3={"addressing_style": "path"}),
        )
        if create_bucket:
            try:
                self.client.head_bucket(Bucket=bucket)
            except ClientError:
                try:
                    self.client.create_bucket(Bucket=bucket)
                except ClientError as error:  # another process created it in between
                    if error.response.get("Error", {}).get("Code") not in (
                            "BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                        raise

    def _key(self, key: str) -> str:
        if ".." in key.split("/"):
            raise ValueError(f"blob key escapes the store: {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _strip(self, full: str) -> str:
        return full[len(self.prefix) + 1:] if self.prefix else full

    @contextmanager
    def writer(self, key: str) -> Iterator[BinaryIO]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            yield spool  # type: ignore[misc]
            spool.seek(0)
            self.client.upload_fileobj(spool, self.bucket, self._key(key), Config=TRANSFER)

    def put_file(self, key: str, path: Path) -> None:
        self.client.upload_file(str(path), self.bucket, self._key(key), Config=TRANSFER)

    def open(self, key: str) -> BinaryIO:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        except ClientError as exc:
            if _missing(exc):
                raise NotFound(f"file {key} is gone") from exc
            raise

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        suffix = Path(key).suffix
        with tempfile.TemporaryDirectory(prefix="docmill-s3-") as tmp:
            path = Path(tmp) / f"blob{suffix}"
            try:
                self.client.download_file(self.bucket, self._key(key), str(path))
            except ClientError as exc:
                if _missing(exc):
                    raise NotFound(f"file {key} is gone") from exc
                raise
            yield path

    def _objects(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
            yield from page.get("Contents", [])

    def delete_prefix(self, prefix: str) -> None:
        prefix = prefix.rstrip("/") + "/"
        batch: list[dict[str, str]] = []
        for obj in self._objects(prefix):
            batch.append({"Key": obj["Key"]})
            if len(batch) == 1000:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})
                batch = []
        if batch:
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch})

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(key))
            return True
        except ClientError as exc:
            if _missing(exc):
                return False
            raise

    def last_modified(self, prefix: str) -> float | None:
        times = [obj["LastModified"].timestamp()
                 for obj in self._objects(prefix.rstrip("/") + "/")]
        return max(times, default=None)

    def list_prefixes(self, depth: int) -> Iterator[str]:
        level = [""]
        for _ in range(depth):
            nxt: list[str] = []
            for parent in level:
                paginator = self.client.get_paginator("list_objects_v2")
                base = self._key(parent) if parent else (f"{self.prefix}/" if self.prefix else "")
                for page in paginator.paginate(Bucket=self.bucket, Prefix=base, Delimiter="/"):
                    for common in page.get("CommonPrefixes", []):
                        nxt.append(self._strip(common["Prefix"]))
            level = nxt
        for prefix in level:
            yield prefix.rstrip("/")

    def presigned_url(self, key: str, filename: str, expires_s: int = 300) -> str:
        return self.client.generate_presigned_url(
            "get_object", ExpiresIn=expires_s,
            Params={"Bucket": self.bucket, "Key": self._key(key),
                    "ResponseContentDisposition": f'attachment; filename="{filename}"'})
