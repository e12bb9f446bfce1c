"""Docutray's webhooks: `CONVERSION_|IDENTIFICATION_|STEP_` + `COMPLETED|FAILED`,
POSTed as the status object (with `document_metadata`) plus `event`, to the organization's
URL from `docutray_webhooks`. STARTED events are not sent: the outbox is written on terminal
transitions only. The vendor's signing scheme is undocumented, so the body is signed the
native way (Standard Webhooks headers, the organization's secret).

Kept free of HTTP-framework imports: the worker that finishes a job builds its outbox row.
"""

from __future__ import annotations

import json

from docmill.core.models import Job
from docmill.core.views import base_url
from docmill.core.webhooks import WebhookRequest, register_builder
from docmill.faces.docutray import render
from docmill.faces.docutray.render import FACE
from docmill.settings import get_settings


def build(job: Job) -> WebhookRequest | None:
    if not job.webhook_url:
        return None
    kind = (job.face_state or {}).get("kind", "convert")
    prefix = get_settings().docutray_prefix.strip("/")
    base = base_url() + (f"/{prefix}" if prefix else "")
    if kind == "identify":
        body = render.identification_status(job, base)
        prefix = "IDENTIFICATION"
    elif kind == "step":
        body = render.step_status(job, base)
        prefix = "STEP"
    else:
        body = render.conversion_status(job, base)
        prefix = "CONVERSION"
    body["event"] = f"{prefix}_{'COMPLETED' if body['status'] == 'SUCCESS' else 'FAILED'}"
    return WebhookRequest(url=job.webhook_url, body=json.dumps(body, default=str),
                          headers={"Content-Type": "application/json"}, sign=True)


register_builder(FACE, build)
