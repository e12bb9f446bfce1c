"""What an operator asks of the queue: how deep it is, what runs where, how long things live.

Counts across the whole server are shown to every organization's admins (numbers only: no
other organization's job is named); the per-operation breakdown is the caller's own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from docmill import dispatch
from docmill.core.auth import Principal
from docmill.core.db import session_scope
from docmill.core.jobs import LIVE
from docmill.core.models import Job, JobStatus, WebhookDelivery, utcnow
from docmill.core.views import _iso
from docmill.settings import get_settings


def queue_status(principal: Principal) -> dict[str, Any]:
    settings = get_settings()
    with session_scope(readonly=True) as session:
        server = dict(session.execute(select(Job.status, func.count()).where(
            Job.status.in_(LIVE)).group_by(Job.status)).all())
        oldest = session.scalar(select(func.min(Job.created_at)).where(
            Job.status == JobStatus.ENQUEUED.value))
        owners = session.execute(select(Job.lease_owner, func.count()).where(
            Job.status == JobStatus.PROCESSING.value).group_by(Job.lease_owner)).all()
        own = session.execute(select(Job.operation, Job.status, func.count()).where(
            Job.org_id == principal.org_id, Job.status.in_(LIVE))
            .group_by(Job.operation, Job.status)).all()
        webhooks = dict(session.execute(select(WebhookDelivery.state, func.count()).where(
            WebhookDelivery.org_id == principal.org_id).group_by(WebhookDelivery.state)).all())
    operations: dict[str, dict[str, int]] = {}
    for operation, status, count in own:
        operations.setdefault(operation, {s: 0 for s in LIVE})[status] = count
    oldest_s = (utcnow() - oldest).total_seconds() if oldest else None
    return {
        "server": {"enqueued": server.get(JobStatus.ENQUEUED.value, 0),
                   "processing": server.get(JobStatus.PROCESSING.value, 0),
                   "oldest_enqueued_at": _iso(oldest),
                   "oldest_enqueued_age_s": round(oldest_s, 1) if oldest_s else None},
        "organization": {"operations": operations, "webhook_deliveries": webhooks},
        "workers": {**dispatch.current().describe(),
                    "busy": [{"owner": owner, "jobs": count} for owner, count in owners]},
        "retention": {"retention_s": settings.retention_s,
                      "max_attempts": settings.max_attempts,
                      "default_timeout_s": settings.default_timeout_s,
                      "webhook_give_up_s": settings.webhook_give_up_s,
                      "sweep_interval_s": settings.sweep_interval_s},
    }
