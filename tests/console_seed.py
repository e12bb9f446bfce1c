"""Shared by tests/api/test_console_speed.py and bench/console.py: many jobs written straight
into a server's database, and a console session over plain httpx."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
from sqlalchemy import create_engine, insert, select

from docmill.core.models import Job, Organization, utcnow

STATUSES = ("SUCCESS", "SUCCESS", "SUCCESS", "ERROR", "PROCESSING")
OPERATIONS = ("pdf.to-text", "pdf.to-image", "ocr.read", "extract.fields")
ALL_SUCCESS_FIRST = 50  # the newest jobs are all SUCCESS


def seed_jobs(database_url: str, org_slug: str, count: int) -> None:
    """Jobs written straight into the database (no worker could run them all quickly); the
    PROCESSING ones hold a day-long lease of a worker on another host, so that nothing
    here picks them up while pages are read."""
    engine = create_engine(database_url)
    now = utcnow()
    with engine.begin() as conn:
        org_id = conn.scalar(select(Organization.id).where(Organization.slug == org_slug))
        conn.execute(insert(Job.__table__), [{
            "id": str(uuid.uuid4()), "org_id": org_id, "face": "native",
            "operation": OPERATIONS[i % len(OPERATIONS)], "params": {},
            "status": STATUSES[i % len(STATUSES)] if i >= ALL_SUCCESS_FIRST else "SUCCESS",
            "progress": 100, "message": "done", "attempts": 1, "max_attempts": 3,
            "timeout_s": 600.0, "created_at": now - timedelta(seconds=30 * i),
            "finished_at": now - timedelta(seconds=30 * i - 2),
            "expires_at": now + timedelta(days=2), "face_state": {},
            "error_code": "engine_failed" if STATUSES[i % len(STATUSES)] == "ERROR" else None,
            "lease_owner": "seeded-host:1", "lease_until": now + timedelta(days=1),
        } for i in range(count)])
    engine.dispose()


def processing_count(count: int) -> int:
    """How many of `count` seeded jobs are PROCESSING."""
    return sum(1 for i in range(ALL_SUCCESS_FIRST, count)
               if STATUSES[i % len(STATUSES)] == "PROCESSING")


def signed_in(url: str, key: str) -> httpx.Client:
    """A console session over plain httpx (which holds back Secure cookies on http://, so
    the cookie header is carried by hand)."""
    client = httpx.Client(base_url=url, trust_env=False, timeout=30)
    page = client.get("/console/sign-in")
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match, page.text[:300]
    cookie = page.headers["set-cookie"].split(";")[0]
    answer = client.post("/console/sign-in", headers={"Cookie": cookie},
                         data={"csrf": match.group(1), "key": key, "next": "/console/jobs"})
    assert answer.status_code == 303, answer.text
    client.headers["Cookie"] = answer.headers["set-cookie"].split(";")[0]
    return client
