"""Taking documents in: uploads, base64 and URLs, streamed into the blob store.

Whatever the way in, the bytes go straight to the blob store in chunks with the size limit
enforced while they flow, and the real type is sniffed from the bytes (libmagic), not trusted
from the name. The name's extension only refines a generic answer of the same family (a
`.docx` that libmagic calls a zip, a `.csv` it calls plain text).
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath
from typing import Protocol
from urllib.parse import unquote, urlsplit

import magic

from docmill.core.files import BlobStore, blob_key, get_blob_store, job_prefix
from docmill.errors import InvalidInput, TooLarge
from docmill.security.ssrf import SsrfPolicy, iter_download

SNIFF_BYTES = 256 * 1024
CHUNK = 1024 * 1024

EXTRA_TYPES = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    ".odt": "application/vnd.oasis.opendocument.text",
    ".ods": "application/vnd.oasis.opendocument.spreadsheet",
    ".odp": "application/vnd.oasis.opendocument.presentation",
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".csv": "text/csv",
    ".html": "text/html",
    ".htm": "text/html",
    ".txt": "text/plain",
    ".webp": "image/webp",
}
# A sniffed type this generic may be refined by the extension, within the same family.
GENERIC_REFINABLE = {
    "application/zip": ("application/vnd.openxmlformats", "application/vnd.oasis"),
    "application/octet-stream": ("application/vnd.openxmlformats", "application/vnd.oasis",
                                 "application/msword", "application/vnd.ms-"),
    "application/x-ole-storage": ("application/msword", "application/vnd.ms-"),
    "application/cdfv2": ("application/msword", "application/vnd.ms-"),
    "text/plain": ("text/",),
    "text/html": ("text/html",),
    "text/xml": ("text/html", "application/xhtml"),
}
CANONICAL = {"image/x-ms-bmp": "image/bmp", "image/jpg": "image/jpeg", "text/x-c": "text/plain"}


class ByteStream(Protocol):
    """What `add_stream` reads: a blocking file of bytes (an upload, a request body reader)."""

    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class StagedInput:
    name: str
    blob_key: str
    size: int
    content_type: str


def type_from_name(name: str) -> str | None:
    suffix = PurePosixPath(name).suffix.lower()
    return EXTRA_TYPES.get(suffix) or mimetypes.guess_type(name)[0]


def sniff(head: bytes, name: str) -> str:
    sniffed = magic.from_buffer(head, mime=True).lower() if head else "application/x-empty"
    sniffed = CANONICAL.get(sniffed, sniffed)
    by_name = type_from_name(name)
    families = GENERIC_REFINABLE.get(sniffed)
    if by_name and families and by_name.startswith(families):
        return by_name
    return sniffed


_UNSAFE = re.compile(r"[^\w.\- ()+,@]+")


def safe_name(name: str | None, content_type: str | None = None, index: int = 0) -> str:
    """The last path component, stripped of anything odd; a made-up name if nothing is left."""
    base = PureWindowsPath(PurePosixPath(unquote(name or "")).name).name
    base = _UNSAFE.sub("_", base).strip(" .")[:150]
    if base:
        return base
    ext = (mimetypes.guess_extension(content_type or "") or "") if content_type else ""
    return f"file{index + 1 if index else ''}{ext}"


class InputStager:
    """Collects a job's inputs in the blob store before the job row exists.

    If submission fails, `discard()` removes what was written; a crash in between leaves an
    orphan prefix that the sweeper collects.
    """

    def __init__(self, org_id: str, job_id: str, max_bytes: int,
                 store: BlobStore | None = None) -> None:
        self.org_id, self.job_id, self.max_bytes = org_id, job_id, max_bytes
        self.store = store or get_blob_store()
        self.staged: list[StagedInput] = []

    def _write(self, name: str, chunks: Iterable[bytes]) -> StagedInput:
        position = len(self.staged)
        name = safe_name(name, index=position)
        key = blob_key(self.org_id, self.job_id, "input", position, name)
        head = bytearray()
        size = 0
        with self.store.writer(key) as sink:
            for chunk in chunks:
                size += len(chunk)
                if size > self.max_bytes:
                    raise TooLarge(f"{name} is larger than the {self.max_bytes} byte limit")
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                sink.write(chunk)
        if size == 0:
            self.store.delete_prefix(key)
            raise InvalidInput(f"{name} is empty")
        staged = StagedInput(name, key, size, sniff(bytes(head), name))
        self.staged.append(staged)
        return staged

    def add_stream(self, name: str | None, stream: ByteStream) -> StagedInput:
        return self._write(name or "", iter(lambda: stream.read(CHUNK), b""))

    def add_base64(self, name: str | None, text: str) -> StagedInput:
        data = text.strip()
        if data.startswith("data:"):
            header, sep, data = data.partition(",")
            if not sep or ";base64" not in header:
                raise InvalidInput("a data URI input must be base64 encoded (data:...;base64,...)")
        data = re.sub(r"\s+", "", data)
        if len(data) * 3 // 4 > self.max_bytes:
            raise TooLarge(f"the decoded file is larger than the {self.max_bytes} byte limit")
        if "-" in data or "_" in data:  # the URL-safe alphabet is common too
            data = data.translate(str.maketrans("-_", "+/"))
        try:
            raw = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidInput("the input is not valid base64") from exc
        return self._write(name or "", [raw[i:i + CHUNK] for i in range(0, len(raw), CHUNK)])

    def add_url(self, url: str, name: str | None, policy: SsrfPolicy,
                timeout: float) -> StagedInput:
        """Download through the SSRF guard, streaming, capped in size and total time."""
        guessed = name or PurePosixPath(urlsplit(url).path).name
        return self._write(guessed, iter_download(policy, url, timeout=timeout,
                                                  max_bytes=self.max_bytes))

    def discard(self) -> None:
        self.store.delete_prefix(job_prefix(self.org_id, self.job_id))
        self.staged.clear()
