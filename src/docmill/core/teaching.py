"""Teaching a document type its own extractor from labelled examples.

A labelled example is a sample document with the values it holds (JSON of the type's
schema). Once an organization has `extract_min_labelled` of them for a type, each new one
starts an `extract.train` job: its input is the training set (the examples' read documents
and values), its output the model file, its result the k-fold quality per field. The job is
the model's home: it is kept (no expiry) while it is the type's newest usable model or the
one being trained, and `extract.fields` jobs naming the type get its blob key
(`doctypes.fill_type_params`). A newer training supersedes a queued one (deleted) and, when
it succeeds, the older models (deleted). Everything is per organization: another
organization's examples, trainings and models are never seen, even on a public type.
"""

from __future__ import annotations

import io
import json
from typing import Any

from sqlalchemy import func, select

from docmill.core import doctypes, service
from docmill.core.auth import Principal
from docmill.core.db import session_scope
from docmill.core.models import DocTypeExample, DocTypeModel, DocumentType, Job, JobStatus
from docmill.core.views import _iso
from docmill.errors import Conflict, NotFound
from docmill.settings import get_settings

TRAIN_OPERATION = "extract.train"
KEEP_S = 100 * 365 * 86400.0  # a model's job lives as long as the model: until superseded


def labelled_count(principal: Principal, type_id: str) -> int:
    with session_scope(readonly=True) as session:
        return int(session.scalar(select(func.count()).select_from(DocTypeExample).where(
            DocTypeExample.doc_type_id == type_id, DocTypeExample.org_id == principal.org_id,
            DocTypeExample.expected.is_not(None))) or 0)


def training_set(principal: Principal, row: DocumentType) -> bytes:
    with session_scope(readonly=True) as session:
        examples = session.execute(
            select(DocTypeExample.name, DocTypeExample.expected, DocTypeExample.document)
            .where(DocTypeExample.doc_type_id == row.id,
                   DocTypeExample.org_id == principal.org_id,
                   DocTypeExample.expected.is_not(None), DocTypeExample.document.is_not(None))
            .order_by(DocTypeExample.id)).all()
    return json.dumps({"schema": row.json_schema or {}, "examples": [
        {"name": name, "expected": expected, "document": document}
        for name, expected, document in examples]}, ensure_ascii=False).encode()


def schedule(principal: Principal, ref: str, *, required: bool = False) -> Job | None:
    """Starts training the type for the caller's organization if it has enough labelled
    examples (else None, or Conflict when `required`: an explicit request)."""
    row = doctypes.get_type(principal, ref)
    count = labelled_count(principal, row.id)
    minimum = get_settings().extract_min_labelled
    if count < minimum:
        if required:
            raise Conflict(f"training needs at least {minimum} labelled examples; the type has "
                           f"{count}")
        return None
    prune(principal, row)
    with session_scope(readonly=True) as session:
        queued = [m.job_id for m, job in doctypes.models_of(session, principal, row.id)
                  if job is not None and job.status == JobStatus.ENQUEUED.value]
    for job_id in queued:  # superseded before it started: this one has every example
        _drop(principal, job_id)
    stager = service.new_stager(principal)
    stager.add_stream("training-set.json", io.BytesIO(training_set(principal, row)))
    job = service.submit(principal, service.Submission(
        operation=TRAIN_OPERATION, params={"document_type_code": row.code},
        retention_s=KEEP_S), stager)
    with session_scope() as session:
        session.add(DocTypeModel(doc_type_id=row.id, org_id=principal.org_id, job_id=job.id,
                                 examples=count))
    return job


def _drop(principal: Principal, job_id: str) -> None:
    try:
        service.delete_job(principal, job_id)
    except NotFound:
        pass
    with session_scope() as session:
        for model in session.scalars(select(DocTypeModel).where(
                DocTypeModel.job_id == job_id, DocTypeModel.org_id == principal.org_id)):
            session.delete(model)


def _state(job: Job | None) -> str:
    if job is None or job.job_status.is_gone:
        return "gone"
    if job.job_status is JobStatus.SUCCESS:
        return "ready"
    if job.job_status is JobStatus.ERROR:
        return "failed"
    return "training"


def _describe(model: DocTypeModel, job: Job | None) -> dict[str, Any]:
    result = (job.result or {}) if job is not None else {}
    out: dict[str, Any] = {"state": _state(job), "job_id": model.job_id,
                           "examples": model.examples, "created_at": _iso(model.created_at)}
    if job is not None:
        out["progress"] = job.progress
        if job.job_status is JobStatus.SUCCESS:
            out.update(trained_at=_iso(job.finished_at), quality=result.get("quality"),
                       accuracy=result.get("accuracy"),
                       rules_accuracy=result.get("rules_accuracy"))
        elif job.job_status is JobStatus.ERROR:
            out["error"] = {"code": job.error_code, "message": job.error_message}
    return out


def status(principal: Principal, row: DocumentType) -> dict[str, Any]:
    """What the caller's organization taught the type: labelled examples, the model in use
    (`active`) with its cross-validated quality per field, and the newest training."""
    with session_scope(readonly=True) as session:
        models = doctypes.models_of(session, principal, row.id)
        described = [(_describe(m, job), m) for m, job in models]
    active = next((d for d, _ in described if d["state"] == "ready"), None)
    latest = described[0][0] if described else None
    return {"labelled_examples": labelled_count(principal, row.id),
            "min_labelled": get_settings().extract_min_labelled,
            "active": active, "latest": latest}


def prune(principal: Principal, row: DocumentType) -> None:
    """Deletes models older than the newest usable one, and trainings that are gone."""
    with session_scope(readonly=True) as session:
        models = doctypes.models_of(session, principal, row.id)
    ready_seen = False
    for model, job in models:
        state = _state(job)
        if state == "gone" or (ready_seen and state in ("ready", "failed")):
            _drop(principal, model.job_id)
        ready_seen = ready_seen or state == "ready"


def forget(principal: Principal, ref: str) -> DocumentType:
    """Deletes an own type and every training and model of it."""
    row = doctypes.get_type(principal, ref)
    if row.org_id == principal.org_id:
        with session_scope(readonly=True) as session:
            job_ids = [m.job_id for m, _ in doctypes.models_of(session, principal, row.id)]
        for job_id in job_ids:
            _drop(principal, job_id)
    return doctypes.delete_type(principal, ref)


def add_example(principal: Principal, ref: str, job: Job, name: str,
                expected: dict[str, Any] | None) -> tuple[DocTypeExample, int, Job | None]:
    """Stores the sample a finished `ocr.read` job read (its text; with `expected`, also
    the read document, to train on) and, for a labelled one, starts a training when the
    type has enough. Returns the example, the organization's example count and the
    training job started, if any."""
    pages = (job.result or {}).get("text") or []
    text = "\n\n".join(p for p in pages if isinstance(p, str))
    document = _read_document_json(principal, job) if expected is not None else None
    example, count = doctypes.add_example(principal, ref, text, name, job.id, expected,
                                          document)
    training = schedule(principal, ref) if expected is not None else None
    return example, count, training


def _read_document_json(principal: Principal, job: Job) -> dict[str, Any]:
    from docmill.core.files import get_blob_store

    item = next((f for f in job.files_of("output") if f.name.endswith(".json")), None)
    if item is None:
        raise NotFound(f"job {job.id} kept no read document")
    with get_blob_store().open(item.blob_key) as stream:
        return json.loads(stream.read().decode("utf-8"))
