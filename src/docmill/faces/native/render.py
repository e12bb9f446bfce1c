"""The shapes of native answers, declared for the OpenAPI document (the views themselves
are built by `core/views.job_view`, which webhooks share, and the operation catalogue)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class JobFileView(BaseModel):
    name: str
    size: int
    content_type: str


class JobOutputView(JobFileView):
    url: str


class JobErrorView(BaseModel):
    code: str
    message: str | None


class JobView(BaseModel):
    """A job as every native answer and webhook shows it (`core/views.job_view`)."""

    id: str
    status: Literal["ENQUEUED", "PROCESSING", "SUCCESS", "ERROR", "EXPIRED", "DELETED"]
    operation: str
    params: dict[str, Any]
    progress: int = Field(ge=0, le=100)
    message: str
    attempts: int = Field(ge=0)
    created_at: str
    started_at: str | None
    finished_at: str | None
    expires_at: str
    inputs: list[JobFileView]
    files: list[JobOutputView]
    result: dict[str, Any] | None
    error: JobErrorView | None
    webhook_url: str | None


class JobList(BaseModel):
    jobs: list[JobView]
    next_cursor: str | None


class OperationView(BaseModel):
    name: str
    description: str = Field(description="one line")
    summary: str
    engine: str
    accepts: list[str]
    produces: list[str]
    inputs: dict[str, int]
    params_schema: dict[str, Any]


class OperationList(BaseModel):
    operations: list[OperationView]
