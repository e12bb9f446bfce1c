"""DocRaptor's status JSON for a document's job, free of HTTP imports."""

from __future__ import annotations

from typing import Any

from docmill.core.models import Job, JobStatus
from docmill.faces.docraptor import webhook


def failure_text(job: Job) -> str:
    message = (job.error_message or "").strip()
    if not message or job.error_code in ("internal_error", "worker_lost"):
        return "Document creation failed due to unknown reasons." + (
            f"\n{message}" if message else "")
    if job.error_code == "timeout":
        return f"Document creation timed out: {message}"
    return message


def status_body(job: Job) -> dict[str, Any]:
    if job.status == JobStatus.SUCCESS.value:
        return webhook.completed_fields(job)
    if job.status == JobStatus.ERROR.value:
        return {"status": "failed", "validation_errors": failure_text(job),
                "message": "Failed"}
    if job.status == JobStatus.PROCESSING.value:
        return {"status": "working", "message": job.message or "working"}
    return {"status": "queued", "message": "queued"}
