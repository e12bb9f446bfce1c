"""Webhook outbox and deliverer.

A job's terminal transition writes its delivery row in the same transaction (so a crash can
neither lose nor invent a notification). The deliverer sends due rows through the SSRF guard,
retries with exponential backoff that survives restarts (the schedule is in the database),
records every attempt and gives up after a horizon. Which method and body a job's webhook
uses belongs to the face that created it: each face's HTTP-free `webhook.py` registers a
builder here, and the process bootstrap (`docmill.bootstrap`) imports them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from docmill.core.db import changed_rows, session_scope
from docmill.core.models import Job, Organization, WebhookDelivery, utcnow
from docmill.errors import DocmillError, NotFound
from docmill.security.ssrf import open_url, policy_from_settings
from docmill.settings import get_settings

log = logging.getLogger(__name__)
CLAIM_S = 120  # a deliverer owns a row this long while sending it


@dataclass
class WebhookRequest:
    url: str
    method: str = "POST"
    body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    sign: bool = False


WebhookBuilder = Callable[[Job], "WebhookRequest | None"]
_builders: dict[str, WebhookBuilder] = {}


def register_builder(face: str, builder: WebhookBuilder) -> None:
    _builders[face] = builder


DEFAULT_FACE = "native"  # the builder of a face that registered none


def builder_for(face: str) -> WebhookBuilder | None:
    """The face's registered builder (the process bootstrap loads them all, see
    `docmill.bootstrap`), else the native one; None if this process loaded none."""
    builder = _builders.get(face) or _builders.get(DEFAULT_FACE)
    if builder is None:
        log.error("no webhook builders are loaded in this process (docmill.bootstrap."
                  "load_webhook_builders was not called); the webhook of a %r job is lost",
                  face)
    elif face not in _builders:
        log.warning("no webhook builder for face %r; using the native one", face)
    return builder


def enqueue_for_job(session: Session, job_id: str) -> None:
    job = session.get(Job, job_id)
    if job is None or not job.webhook_url:
        return
    session.refresh(job)
    builder = builder_for(job.face)
    request = builder(job) if builder is not None else None
    if request is None:
        return
    session.add(WebhookDelivery(job_id=job.id, org_id=job.org_id, url=request.url,
                                method=request.method, body=request.body,
                                headers=request.headers, sign=request.sign))


def _claim_due(limit: int) -> list[int]:
    now = utcnow()
    with session_scope() as session:
        ids = session.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= now)
            .order_by(WebhookDelivery.next_attempt_at).limit(limit)
        ).all()
        claimed = []
        for delivery_id in ids:
            res = session.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == "pending",
                       WebhookDelivery.next_attempt_at <= now)
                .values(next_attempt_at=now + timedelta(seconds=CLAIM_S))
            )
            if changed_rows(res) == 1:
                claimed.append(delivery_id)
        return claimed


def _send(delivery: WebhookDelivery, secret: str | None) -> int:
    settings = get_settings()
    headers = dict(delivery.headers or {})
    if delivery.sign and secret:
        msg_id = f"msg_{delivery.id}_{delivery.job_id}"
        timestamp = utcnow()
        signature = Webhook(secret).sign(msg_id, timestamp, delivery.body or "")
        headers.update({"webhook-id": msg_id, "webhook-timestamp": str(int(timestamp.timestamp())),
                        "webhook-signature": signature})
    with open_url(policy_from_settings(), delivery.url, timeout=settings.webhook_timeout_s,
                  max_redirects=settings.outbound_max_redirects, method=delivery.method,
                  content=(delivery.body or "").encode() if delivery.body else None,
                  headers=headers) as response:
        response.read()
        return response.status_code


def deliver_one(delivery_id: int) -> bool:
    settings = get_settings()
    with session_scope(readonly=True) as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return False
        org = session.get(Organization, delivery.org_id)
        secret = org.webhook_secret if org else None
        session.expunge(delivery)
    status: int | None = None
    try:
        status = _send(delivery, secret)
        error = None if 200 <= status < 300 else f"HTTP {status}"
    except DocmillError as exc:
        error = exc.message
    except Exception as exc:  # noqa: BLE001 - any failure of the receiver is a retry
        error = f"{type(exc).__name__}: {exc}"
    now = utcnow()
    attempts = delivery.attempts + 1
    values: dict[str, object] = {"attempts": attempts, "last_status": status, "last_error": error}
    if error is None:
        values.update(state="delivered", delivered_at=now)
    else:
        delay = min(settings.webhook_backoff_max_s,
                    settings.webhook_backoff_base_s * 2 ** (attempts - 1))
        next_at = now + timedelta(seconds=delay)
        if (next_at - delivery.created_at).total_seconds() > settings.webhook_give_up_s:
            values.update(state="failed")
        else:
            values.update(next_attempt_at=next_at)
        log.warning("webhook %s for job %s failed (attempt %d): %s",
                    delivery.id, delivery.job_id, attempts, error)
    with session_scope() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                        .values(**values))
    return error is None


def deliver_due(limit: int = 20) -> int:
    """Send every due delivery once; returns how many were attempted."""
    ids = _claim_due(limit)
    for delivery_id in ids:
        deliver_one(delivery_id)
    return len(ids)


# --- what admins see and do (the native /v1/webhook-deliveries API) ----------------------

def list_deliveries(org_id: str, *, job_id: str | None = None, state: str | None = None,
                    limit: int = 50) -> list[WebhookDelivery]:
    """An organization's deliveries, newest first."""
    query = select(WebhookDelivery).where(WebhookDelivery.org_id == org_id)
    if job_id:
        query = query.where(WebhookDelivery.job_id == job_id)
    if state:
        query = query.where(WebhookDelivery.state == state)
    with session_scope(readonly=True) as session:
        return list(session.scalars(query.order_by(WebhookDelivery.id.desc())
                                    .limit(max(1, min(limit, 500)))).all())


def get_delivery(org_id: str, delivery_id: int) -> WebhookDelivery:
    with session_scope(readonly=True) as session:
        row = session.get(WebhookDelivery, delivery_id)
        if row is None or row.org_id != org_id:
            raise NotFound(f"webhook delivery {delivery_id} not found")
        return row


def redeliver(org_id: str, delivery_id: int) -> WebhookDelivery:
    """Send a delivery again now, whatever its state, and return it as it ends up. It is
    claimed first (pending, due after `CLAIM_S`) so the sweeper leaves it alone; should the
    sweeper be sending it at this very moment the receiver gets it twice, with the same
    `webhook-id` to tell. A failure goes on with the usual backoff and horizon."""
    get_delivery(org_id, delivery_id)
    with session_scope() as session:
        session.execute(update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
                        .values(state="pending", delivered_at=None,
                                next_attempt_at=utcnow() + timedelta(seconds=CLAIM_S)))
    deliver_one(delivery_id)
    return get_delivery(org_id, delivery_id)
