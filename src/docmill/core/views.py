"""The canonical JSON picture of a job (the native API's body and native webhooks' data)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import quote

from docmill.core.models import Job
from docmill.settings import get_settings


def base_url() -> str:
    settings = get_settings()
    return (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def job_view(job: Job, base: str | None = None) -> dict[str, Any]:
    base = (base or base_url()).rstrip("/")
    outputs = job.files_of("output")
    error = ({"code": job.error_code, "message": job.error_message}
             if job.error_code else None)
    return {
        "id": job.id,
        "status": job.status,
        "operation": job.operation,
        "params": job.params,
        "progress": job.progress,
        "message": job.message,
        "attempts": job.attempts,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "expires_at": _iso(job.expires_at),
        "inputs": [{"name": f.name, "size": f.size, "content_type": f.content_type}
                   for f in job.files_of("input")],
        "files": [{"name": f.name, "size": f.size, "content_type": f.content_type,
                   "url": f"{base}/v1/jobs/{job.id}/files/{quote(f.name)}"} for f in outputs],
        "result": job.result,
        "error": error,
        "webhook_url": job.webhook_url,
        **({"run": {"id": job.parent_id, "step": job.step, "item": job.step_item}}
           if job.parent_id else {}),
    }
