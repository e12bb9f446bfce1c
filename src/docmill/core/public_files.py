"""Files reachable by an unguessable id, without an API key.

Two kinds: uploads (stored under `{org}/_uploads/{id}/`, living their own retention) and
published job outputs (pointing at the job's own blobs, so they die with the job). The id is
the capability: 160 random bits, lowercase letters and digits, as the vendors' file ids look.
A download budget (DocRaptor's "100 downloads") is spent atomically.

Anonymous uploads (ConvertAPI 1.x clients upload with no credentials) belong to a reserved
organization: they are never served by id (`get_served` refuses them) and only a conversion
by a caller with a valid key can read them (`get_usable`), so storing one buys nothing
without a key. Their size, rate and lifetime are the face's settings.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from docmill.core.auth import get_or_create_org
from docmill.core.db import changed_rows, session_scope
from docmill.core.files import get_blob_store
from docmill.core.inputs import InputStager
from docmill.core.models import JobFile, PublicFile, utcnow
from docmill.errors import Forbidden, NotFound

UPLOADS = "_uploads"
ANONYMOUS_ORG = "docmill-anonymous-uploads"
_anonymous_id: str | None = None
ALPHABET = string.ascii_lowercase + string.digits


def new_file_id() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(32))


def upload_prefix(org_id: str, file_id: str) -> str:
    return f"{org_id}/{UPLOADS}/{file_id}"


@dataclass(frozen=True)
class PublicFileInfo:
    id: str
    org_id: str
    job_id: str | None
    name: str
    blob_key: str
    size: int
    content_type: str
    expires_at: datetime
    downloads_left: int | None


def _info(row: PublicFile) -> PublicFileInfo:
    return PublicFileInfo(row.id, row.org_id, row.job_id, row.name, row.blob_key, row.size,
                          row.content_type, row.expires_at, row.downloads_left)


def upload_stager(org_id: str, max_bytes: int) -> tuple[str, InputStager]:
    """A stager whose single input becomes the upload `file_id` (see `save_upload`)."""
    file_id = new_file_id()
    stager = InputStager(org_id, f"{UPLOADS}/{file_id}", max_bytes)
    return file_id, stager


def save_upload(org_id: str, file_id: str, stager: InputStager,
                retention_s: float) -> PublicFileInfo:
    (staged,) = stager.staged
    row = PublicFile(id=file_id, org_id=org_id, name=staged.name, blob_key=staged.blob_key,
                     size=staged.size, content_type=staged.content_type,
                     expires_at=utcnow() + timedelta(seconds=retention_s))
    with session_scope() as session:
        session.add(row)
    return _info(row)


def publish_outputs(job_id: str, org_id: str, expires_at: datetime,
                    downloads: int | None = None) -> list[PublicFileInfo]:
    """Give each output of a finished job a public id, in output order. Race-free: one row
    per (job, output) by a unique index, inserted with ON CONFLICT DO NOTHING, so concurrent
    publishers (two polls, two API processes) all read back the same ids."""
    with session_scope() as session:
        outputs = session.scalars(select(JobFile).where(
            JobFile.job_id == job_id, JobFile.role == "output").order_by(JobFile.position)).all()
        if outputs:
            rows = [{"id": new_file_id(), "org_id": org_id, "job_id": job_id, "name": out.name,
                     "blob_key": out.blob_key, "size": out.size,
                     "content_type": out.content_type, "created_at": utcnow(),
                     "expires_at": expires_at, "downloads_left": downloads}
                    for out in outputs]
            session.execute(_insert_for(session).values(rows).on_conflict_do_nothing(
                index_elements=["job_id", "blob_key"]))
        existing = {r.blob_key: r for r in session.scalars(
            select(PublicFile).where(PublicFile.job_id == job_id))}
        return [_info(existing[out.blob_key]) for out in outputs if out.blob_key in existing]


def _insert_for(session: Session) -> Any:
    """INSERT with the dialect's ON CONFLICT (SQLite and PostgreSQL spell it alike)."""
    name = session.get_bind().dialect.name
    module = postgresql if name == "postgresql" else sqlite
    return module.insert(PublicFile)


def anonymous_org_id() -> str:
    """The reserved organization anonymous uploads belong to (created on first use)."""
    global _anonymous_id
    if _anonymous_id is None:
        try:
            _anonymous_id = get_or_create_org(ANONYMOUS_ORG, "Anonymous uploads").id
        except IntegrityError:  # another process created it at the same moment
            _anonymous_id = get_or_create_org(ANONYMOUS_ORG).id
    return _anonymous_id


def get_served(file_id: str) -> PublicFileInfo:
    """A file `/d/{id}` may hand out without a key: anything but an anonymous upload."""
    info = get_public(file_id)
    if info.org_id == anonymous_org_id():
        raise NotFound(f"file {file_id} not found")
    return info


def get_usable(file_id: str, org_id: str) -> PublicFileInfo:
    """A file an authenticated caller of `org_id` may convert: its own, or anonymous."""
    info = get_public(file_id)
    if info.org_id not in (org_id, anonymous_org_id()):
        raise NotFound(f"file {file_id} not found")
    return info


def get_public(file_id: str, org_id: str | None = None) -> PublicFileInfo:
    """A live public file; NotFound if unknown, expired, deleted (or of another org)."""
    with session_scope(readonly=True) as session:
        row = session.get(PublicFile, file_id)
        if row is None or row.expires_at <= utcnow() or (org_id and row.org_id != org_id):
            raise NotFound(f"file {file_id} not found")
        return _info(row)


def spend_download(file_id: str) -> PublicFileInfo:
    """Take one download from the budget (if the file has one) and return the file."""
    info = get_public(file_id)
    if info.downloads_left is None:
        return info
    with session_scope() as session:
        res = session.execute(update(PublicFile)
                              .where(PublicFile.id == file_id, PublicFile.downloads_left > 0)
                              .values(downloads_left=PublicFile.downloads_left - 1))
    if changed_rows(res) != 1:
        raise Forbidden("the download limit of this document has been reached")
    return get_public(file_id)


def delete_public(file_id: str, org_id: str | None = None) -> None:
    """Delete a public file; an upload's bytes go too, a job output's stay with its job."""
    info = get_public(file_id, org_id)
    with session_scope() as session:
        session.execute(delete(PublicFile).where(PublicFile.id == file_id))
    if info.job_id is None:
        get_blob_store().delete_prefix(upload_prefix(info.org_id, info.id))


def expire_due(limit: int = 500) -> int:
    """Delete expired uploads (and their bytes) and expired output links."""
    now = utcnow()
    with session_scope(readonly=True) as session:
        rows = session.execute(select(PublicFile.id, PublicFile.org_id, PublicFile.job_id)
                               .where(PublicFile.expires_at <= now).limit(limit)).all()
    store = get_blob_store()
    for file_id, org_id, job_id in rows:
        with session_scope() as session:
            session.execute(delete(PublicFile).where(PublicFile.id == file_id))
        if job_id is None:
            store.delete_prefix(upload_prefix(org_id, file_id))
    return len(rows)
