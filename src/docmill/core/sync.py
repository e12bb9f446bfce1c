"""Synchronous calls: wait for a job within a budget, and one policy when it runs out.

A face answering in the same request (ConvertAPI without `Async`, DocRaptor's `/docs`,
Docutray's sync endpoints, `/v1/jobs?wait=`) waits by default for the job's own timeout plus
`SYNC_GRACE_S` of queueing, so that the job's timeout, with its better message, fires first.
When the budget runs out, a job the caller can still reach (its id was or will be handed out)
goes on; one nobody can ever ask for again is deleted, so that it costs nothing more. The face
only phrases the outcome.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from docmill.core import service
from docmill.core.auth import Principal
from docmill.core.events import Subscription
from docmill.core.inputs import InputStager
from docmill.core.models import Job
from docmill.errors import NotFound

SYNC_GRACE_S = 2.0  # past the job's own timeout: that timeout fires first, with its message


@dataclass(frozen=True)
class SyncOutcome:
    job: Job
    abandoned: bool = False  # unfinished, unreachable, and therefore deleted

    @property
    def finished(self) -> bool:
        return self.job.job_status.is_terminal


def default_budget(job: Job) -> float:
    return job.timeout_s + SYNC_GRACE_S


async def await_sync(principal: Principal, job: Job, *, reachable: bool,
                     budget_s: float | None = None,
                     watch: Subscription | None = None) -> SyncOutcome:
    """Wait for `job` (just submitted, or found again) for `budget_s` (default: its timeout
    plus the grace); `watch`, subscribed before `job` was read, misses no change."""
    budget = default_budget(job) if budget_s is None else budget_s
    job = await service.wait_for(principal, job.id, budget, poll_s=0.2, watch=watch,
                                 known=job if watch is not None else None)
    if job.job_status.is_terminal or reachable:
        return SyncOutcome(job)
    try:
        await asyncio.to_thread(service.delete_job, principal, job.id)
    except NotFound:
        pass
    return SyncOutcome(job, abandoned=True)


async def run_sync(principal: Principal, submission: service.Submission, stager: InputStager,
                   *, reachable: bool, budget_s: float | None = None) -> SyncOutcome:
    """Submit and `await_sync` (watching before the job exists: a job that finishes at once
    is not missed)."""
    with service.watch(stager.job_id) as watch:
        job = await asyncio.to_thread(service.submit, principal, submission, stager)
        return await await_sync(principal, job, reachable=reachable, budget_s=budget_s,
                                watch=watch)
