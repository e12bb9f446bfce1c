"""Native webhooks: a POST of `{type, data: job}` signed with Standard Webhooks. Free of
HTTP-framework imports (a worker imports it, see `docmill.bootstrap`); also the body a job
of a face without a builder of its own gets."""

from __future__ import annotations

import json

from docmill.core.models import Job
from docmill.core.views import job_view
from docmill.core.webhooks import WebhookRequest, register_builder

FACE = "native"


def build(job: Job) -> WebhookRequest | None:
    if not job.webhook_url:
        return None
    payload = {"type": f"job.{job.status.lower()}", "data": job_view(job)}
    return WebhookRequest(url=job.webhook_url, body=json.dumps(payload, default=str),
                          headers={"Content-Type": "application/json"}, sign=True)


register_builder(FACE, build)
