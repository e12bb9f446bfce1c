"""Docutray's JSON for jobs, document types and knowledge bases; free of HTTP imports, so a
worker building a webhook (`webhook.py`) can import it.

A conversion is an `extract.fields` job, an identification an `identify.type` job, a step
execution a pipeline run (core/runs.py), all created by this face (`face == "docutray"`,
`face_state["kind"]`). Their statuses are the vendor's four: a job re-queued after a worker
died stays PROCESSING (the client must never see a state move backwards). The vendor's
60-minute auto-timeout is the job's deadline (`deadline_at`, set at submission): the core
fails it with `timeout` then, and refuses a worker's later success.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from docmill.core.models import DocumentType, Job, JobStatus, KnowledgeBase, KnowledgeDocument

FACE = "docutray"
OTHER = {"code": "other", "name": "Other/Unidentified"}


def iso_ms(value: datetime | None) -> str | None:
    """`2024-01-15T10:30:00.000Z`, the vendor's timestamp form."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def _timeout_text(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        minutes = int(seconds // 60)
        return f"Processing timeout ({minutes} minute{'s' if minutes != 1 else ''})"
    return f"Processing timeout ({seconds:g} seconds)"


def lifecycle(job: Job) -> tuple[str, str | None, datetime | None]:
    """(vendor status, error string or None, response time or None)."""
    status = job.job_status
    finished = job.finished_at if status.is_terminal else None
    if status is JobStatus.SUCCESS:
        return "SUCCESS", None, finished
    if status is JobStatus.ERROR:
        if job.error_code == "timeout":
            return "ERROR", _timeout_text(job.timeout_s), finished
        return "ERROR", job.error_message or job.error_code or "Processing failed", finished
    if status is JobStatus.PROCESSING or (status is JobStatus.ENQUEUED and job.attempts > 0):
        return "PROCESSING", None, None
    return "ENQUEUED", None, None


def conversion_status(job: Job, base: str, path: str = "/api/convert-async/status",
                      keys: tuple[str, ...] = ("document_type_code", "original_filename"),
                      ) -> dict[str, Any]:
    state = job.face_state or {}
    status, error, answered = lifecycle(job)
    body: dict[str, Any] = {"conversion_id": job.id, "status": status,
                            "request_timestamp": iso_ms(job.created_at),
                            "status_url": f"{base}{path}/{job.id}"}
    for key in keys:
        if state.get(key):
            body[key] = state[key]
    if answered is not None:
        body["response_timestamp"] = iso_ms(answered)
    if status == "SUCCESS":
        body["data"] = conversion_data(job)
    if error is not None:
        body["error"] = error
    if state.get("document_metadata") is not None:
        body["document_metadata"] = state["document_metadata"]
    return body


def conversion_data(job: Job) -> dict[str, Any]:
    data = (job.result or {}).get("data")
    return data if isinstance(data, dict) else {}


def _confidence(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return round(min(1.0, max(0.0, number)), 4)


def identification_result(job: Job) -> dict[str, Any]:
    """`document_type` (the chosen type, or "other" when no option scored above the
    engine's threshold) and `alternatives`: every option by confidence."""
    state = job.face_state or {}
    names: dict[str, str] = state.get("names") or {}
    result = job.result or {}
    chosen = result.get("document_type_code")
    ranking = [r for r in result.get("ranking") or [] if isinstance(r, dict) and r.get("code")]
    alternatives = [{"code": r["code"], "name": names.get(r["code"], r["code"]),
                     "confidence": _confidence(r.get("score"))} for r in ranking]
    alternatives.sort(key=lambda a: -a["confidence"])
    if chosen:
        top = {"code": chosen, "name": names.get(chosen, chosen),
               "confidence": _confidence(result.get("confidence"))}
        for alternative in alternatives:  # one number for the chosen type in both places
            if alternative["code"] == chosen:
                alternative["confidence"] = top["confidence"]
        alternatives.sort(key=lambda a: -a["confidence"])
    else:
        best = alternatives[0]["confidence"] if alternatives else 0.0
        top = {**OTHER, "confidence": _confidence(1.0 - best)}
        alternatives.append(dict(top))
        alternatives.sort(key=lambda a: -a["confidence"])
    return {"document_type": top, "alternatives": alternatives}


def identification_status(job: Job, base: str) -> dict[str, Any]:
    state = job.face_state or {}
    status, error, answered = lifecycle(job)
    body: dict[str, Any] = {"id": job.id, "status": status,
                            "status_url": f"{base}/api/identify-async/status/{job.id}",
                            "document_type_code_options": state.get("options") or [],
                            "request_timestamp": iso_ms(job.created_at)}
    if state.get("original_filename"):
        body["original_filename"] = state["original_filename"]
    if answered is not None:
        body["response_timestamp"] = iso_ms(answered)
    if status == "SUCCESS":
        body.update(identification_result(job))
    if error is not None:
        body["error"] = error
    if state.get("document_metadata") is not None:
        body["document_metadata"] = state["document_metadata"]
    return body


def step_status(job: Job, base: str) -> dict[str, Any]:
    """A step execution (a pipeline run started by this face): its final extraction data
    (the run's `data`) once it succeeded."""
    return conversion_status(job, base, "/api/steps-async/status",
                             ("step_id", "step_name", "original_filename"))


def document_type(row: DocumentType, *, full: bool = True) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id, "name": row.name, "codeType": row.code, "description": row.description,
        "isPublic": bool(row.is_public), "isDraft": bool(row.is_draft),
        "status": "DRAFT" if row.is_draft else "PUBLISHED",
        "createdAt": iso_ms(row.created_at), "updatedAt": iso_ms(row.updated_at),
        "jsonSchema": row.json_schema, "source": row.source,
    }
    if full:
        body.update({"promptHints": row.prompt_hints,
                     "identifyPromptHints": row.identify_prompt_hints,
                     "conversionMode": row.conversion_mode,
                     "keepPropertyOrdering": bool(row.keep_property_ordering),
                     "keywords": list(row.keywords or [])})
    return body


# --- knowledge bases: the vendor's camelCase views ------------------------------------------

def base_view(row: KnowledgeBase, count: int) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "description": row.description,
            "schema": row.json_schema, "indexingPreferences": row.indexing_preferences,
            "isActive": bool(row.is_active), "documentCount": count,
            "createdAt": iso_ms(row.created_at), "updatedAt": iso_ms(row.updated_at),
            "lastSyncedAt": iso_ms(row.synced_at)}


def document_view(doc: KnowledgeDocument, metadata: bool = True) -> dict[str, Any]:
    return {"id": doc.id, "knowledgeBaseId": doc.kb_id, "documentId": doc.document_id,
            "content": doc.content, "metadata": doc.doc_metadata if metadata else None,
            "createdAt": iso_ms(doc.created_at), "updatedAt": iso_ms(doc.updated_at)}


def sync_view(done: dict[str, Any]) -> dict[str, Any]:
    """A knowledge base's sync, as `core/knowledge.py` reports it."""
    return {"syncId": done["sync_id"], "status": done["status"],
            "documentsProcessed": done["documents_processed"],
            "errors": done["errors"], "startedAt": iso_ms(done["started_at"]),
            "completedAt": iso_ms(done["completed_at"])}
