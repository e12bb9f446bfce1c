"""The shapes of native answers, declared for the OpenAPI document (a job's view is built by
`core/views.job_view`, which webhooks share), and the views of document types, knowledge
bases and their documents, API keys and webhook deliveries; no HTTP imports."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from docmill.core.auth import KeyInfo, Principal
from docmill.core.models import DocumentType, KnowledgeBase, KnowledgeDocument, WebhookDelivery
from docmill.core.views import _iso


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


# --- the views the routes answer with -----------------------------------------------------

def doctype_view(row: DocumentType, caller: Principal,
                 examples: int | None = None) -> dict[str, Any]:
    body = {
        "id": row.id, "code": row.code, "name": row.name, "description": row.description,
        "schema": row.json_schema, "keywords": list(row.keywords or []),
        "is_public": bool(row.is_public), "is_draft": bool(row.is_draft),
        "status": "DRAFT" if row.is_draft else "PUBLISHED", "source": row.source,
        "builtin": row.org_id is None, "owned": row.org_id == caller.org_id,
        "prompt_hints": row.prompt_hints, "identify_prompt_hints": row.identify_prompt_hints,
        "conversion_mode": row.conversion_mode,
        "keep_property_ordering": bool(row.keep_property_ordering), "version": row.version,
        "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
    }
    if examples is not None:
        body["examples"] = examples
    return body


def base_view(row: KnowledgeBase, count: int) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description,
            "schema": row.json_schema, "indexing_preferences": row.indexing_preferences,
            "is_active": bool(row.is_active), "document_count": count,
            "created_at": _iso(row.created_at), "updated_at": _iso(row.updated_at),
            "synced_at": _iso(row.synced_at) if row.synced_at else None}


def document_view(doc: KnowledgeDocument, metadata: bool = True) -> dict[str, Any]:
    return {"id": doc.id, "knowledge_base_id": doc.kb_id, "document_id": doc.document_id,
            "content": doc.content, "metadata": doc.doc_metadata if metadata else None,
            "created_at": _iso(doc.created_at), "updated_at": _iso(doc.updated_at)}


def key_view(info: KeyInfo) -> dict[str, Any]:
    return {"id": info.id, "prefix": info.prefix, "name": info.name, "role": info.role,
            "created_at": info.created_at, "last_used_at": info.last_used_at,
            "revoked": info.revoked}


def delivery_view(row: WebhookDelivery) -> dict[str, Any]:
    return {"id": row.id, "job_id": row.job_id, "url": row.url, "method": row.method,
            "state": row.state, "attempts": row.attempts, "last_status": row.last_status,
            "last_error": row.last_error, "created_at": _iso(row.created_at),
            "next_attempt_at": _iso(row.next_attempt_at) if row.state == "pending" else None,
            "delivered_at": _iso(row.delivered_at)}
