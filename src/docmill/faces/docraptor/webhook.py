"""DocRaptor ids, URLs and the `callback_url` POST, shared by the API and the worker.

Kept free of HTTP-framework imports: the process that finishes a job (a worker) writes the
outbox row and imports this module to build it (see `core.webhooks`).

Ids. A `status_id` is the job id: 32 lowercase hex characters, URL-safe as the vendor's are.
A `download_id` is the job id followed by its organization's id (without dashes): 64 hex
characters that name the document without an API key, as `download_url` must, and that a
worker can compute inside the transaction that finishes the job (the callback carries it
before anything else has been written). The public-file row that counts downloads and
enforces expiry is created on the first download (`core.public_files`, idempotent).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from docmill.core.models import Job, JobStatus
from docmill.core.views import base_url
from docmill.core.webhooks import WebhookRequest, register_builder
from docmill.settings import get_settings

FACE = "docraptor"
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


def new_status_id() -> str:
    return uuid.uuid4().hex


def download_id(job_id: str, org_id: str) -> str:
    return job_id + uuid.UUID(org_id).hex


def parse_download_id(value: str) -> tuple[str, str] | None:
    """(job id, organization id) of a download id, or None if it cannot be one."""
    value = value.strip().lower()
    if len(value) != 64 or not (_HEX32.match(value[:32]) and _HEX32.match(value[32:])):
        return None
    return value[:32], str(uuid.UUID(value[32:]))


def public_base() -> str:
    return base_url() + get_settings().docraptor_prefix.rstrip("/")


def download_url(job_id: str, org_id: str) -> str:
    return f"{public_base()}/download/{download_id(job_id, org_id)}"


def completed_message(finished: datetime | None) -> str:
    when = (finished or datetime.now(UTC)).astimezone(UTC)
    return "Completed at " + when.strftime("%a %b %d %H:%M:%S %z %Y")


def page_count(job: Job) -> int | None:
    if (job.face_state or {}).get("document_type", "pdf") != "pdf":
        return None
    pages = (job.result or {}).get("pages")
    return int(pages) if isinstance(pages, int | float) else None


def completed_fields(job: Job) -> dict[str, Any]:
    """The fields of a completed document, as /status and the callback report them."""
    fields: dict[str, Any] = {
        "status": "completed",
        "download_url": download_url(job.id, job.org_id),
        "download_id": download_id(job.id, job.org_id),
        "message": completed_message(job.finished_at),
    }
    pages = page_count(job)
    if pages is not None:
        fields["number_of_pages"] = pages
    return fields


def build(job: Job) -> WebhookRequest | None:
    """One POST to callback_url after success; never after a failure."""
    if not job.webhook_url or job.status != JobStatus.SUCCESS.value:
        return None
    fields = {"status_id": job.id, **completed_fields(job)}
    if get_settings().docraptor_callback_format == "json":
        return WebhookRequest(url=job.webhook_url, body=json.dumps(fields),
                              headers={"Content-Type": "application/json"})
    return WebhookRequest(url=job.webhook_url,
                          body=urlencode({k: str(v) for k, v in fields.items()}),
                          headers={"Content-Type": "application/x-www-form-urlencoded"})


register_builder(FACE, build)
