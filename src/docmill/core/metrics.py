"""Prometheus metrics read from the database at scrape time (so every API process reports
the same truth, whoever ran the jobs)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import REGISTRY, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from docmill.core.db import session_scope
from docmill.core.models import Job, WebhookDelivery


class JobsCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        jobs = GaugeMetricFamily("docmill_jobs", "Jobs by status and operation",
                                 labels=["status", "operation"])
        deliveries = GaugeMetricFamily("docmill_webhook_deliveries", "Webhook deliveries by state",
                                       labels=["state"])
        with session_scope(readonly=True) as session:
            for status, operation, count in session.execute(
                    select(Job.status, Job.operation, func.count()).group_by(Job.status,
                                                                             Job.operation)):
                jobs.add_metric([status, operation], count)
            for state, count in session.execute(
                    select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)):
                deliveries.add_metric([state], count)
        yield jobs
        yield deliveries


REGISTRY.register(JobsCollector())
