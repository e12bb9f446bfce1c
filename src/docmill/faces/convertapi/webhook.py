"""ConvertAPI's webhook: `GET <WebHook>?JobId=<id>` once the job ends, body ignored.

Kept free of HTTP-framework imports: the process that finishes a job (a worker) writes the
outbox row and imports this module to build it (see `core.webhooks`).
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from docmill.core.models import Job
from docmill.core.webhooks import WebhookRequest, register_builder

FACE = "convertapi"


def with_job_id(url: str, job_id: str) -> str:
    """The URL with `JobId=<id>` appended to its query (after any existing parameters)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    query.append(("JobId", job_id))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def build(job: Job) -> WebhookRequest | None:
    if not job.webhook_url:
        return None
    return WebhookRequest(url=with_job_id(job.webhook_url, job.id), method="GET")


register_builder(FACE, build)
