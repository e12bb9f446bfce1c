"""Docutray's HTTP endpoints over the Docmill core (see ../shared/specs/docutray.md):

- `POST /api/convert` (sync) and `/api/convert-async` + `GET /api/convert-async/status/{id}`:
  an `extract.fields` job filling the named document type's schema;
- `POST /api/identify` (sync) and `/api/identify-async` + `GET .../status/{id}`: an
  `identify.type` job choosing among the options (every usable type when none are given);
- `/api/document-types`: list, get, create, update, validate (and delete, an extension);
- `/api/knowledge-bases`: knowledge bases, their documents, search and sync
  (`routes_knowledge.py` over `core/knowledge.py`);
- `POST /api/steps-async/{step_id}` + `GET /api/steps-async/status/{id}`: a step is a
  pipeline of the caller's organization (by id or name), an execution a run of it
  (core/runs.py) whose final extraction data is the status `data`.

The official client re-sends a POST after a 5xx, a 429 or its 60 s read timeout, so a sync
call answers within `docutray_sync_wait_s` (408 with the job's id when the work takes
longer, which the client does not retry) and nothing after a job exists answers 5xx.
Every response carries `X-Request-ID` (the client copies it into its errors).
"""

from __future__ import annotations

import logging
import math
import re
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import Response

from docmill import errors
from docmill.core import doctypes, pipelines, runs, service, sync
from docmill.core.auth import Principal
from docmill.core.models import DocumentType, Job
from docmill.core.ratelimit import FixedWindow
from docmill.faces.common import FaceErrors, register_face_errors
from docmill.faces.contract import (
    MAX_PAGE,
    bearer,
    inline_schema,
    link,
    merge,
    method_not_allowed,
    query_parameters,
    request_body,
)
from docmill.faces.docutray import errors as vendor
from docmill.faces.docutray import render, routes_knowledge
from docmill.faces.docutray.errors import fails
from docmill.faces.docutray.render import FACE
from docmill.faces.docutray.request import (
    DocRequest,
    caller,
    face_prefix,
    json_body,
    paging,
    public_base,
    read_request,
    stage,
)
from docmill.settings import get_settings

log = logging.getLogger(__name__)

CONVERT_OP = "extract.fields"
IDENTIFY_OP = "identify.type"
FAILED_500: dict[str, dict[str, str]] = {
    "/api/convert-async": {"message": "Internal server error: Failed to start processing"},
    "/api/identify-async": {"message": "Internal server error: Failed to start processing"},
    "/api/convert-async/status/{job_id}": {
        "message": "Internal server error: Failed to retrieve conversion status"},
    "/api/identify-async/status/{job_id}": {
        "message": "Internal server error: Error checking identification"},
    "/api/steps-async/{step_id}": {"message": "Internal server error: Failed to start processing"},
    "/api/steps-async/status/{job_id}": {
        "message": "Internal server error: Failed to retrieve execution status"},
}
EXECUTION_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


class _Route(APIRoute):
    """Renders errors in the route's vendor shape, turns unexpected exceptions into the
    vendor's JSON 500, and stamps `X-Request-ID` on every answer."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        template = self.path[len(face_prefix()):]
        doc_types = template.startswith(("/api/document-types", "/api/knowledge-bases"))
        answer = vendor.for_path(template)
        failed = (FAILED_500.get(template) or
                  ({"error": "Error processing request"} if doc_types else
                   {"message": "Internal server error: Failed to process image"}))

        async def guarded(request: Request) -> Response:
            request_id = "req_" + uuid.uuid4().hex
            try:
                response = await handler(request)
            except errors.DocmillError as exc:
                status, body = answer(exc)
                if status >= 500:
                    log.error("Docutray face: %s on %s: %s", exc.code, request.url.path,
                              exc.message)
                    body = failed
                response = JSONResponse(body, status_code=status,
                                        headers=getattr(exc, "headers", None))
            except (HTTPException, RequestValidationError):
                raise  # the app's handlers answer these (routed here by the registry)
            except Exception:
                log.exception("Docutray face: unexpected error on %s", request.url.path)
                response = JSONResponse(failed, status_code=500)
            response.headers["X-Request-ID"] = request_id
            return response

        return guarded


class RateLimiter:
    """Fixed windows per API key, limits per organization (`docutray_rate_limits`)."""

    def __init__(self) -> None:
        self.counter = FixedWindow()

    def check(self, principal: Principal, short_body: bool = False) -> None:
        settings = get_settings()
        limits = settings.docutray_rate_limits
        limit = limits.get(principal.org_slug, limits.get("*", 0)) if limits else 0
        if not limit:
            return
        window = settings.docutray_rate_window_s
        allowed, remaining = self.counter.take(principal.key_id, limit, window)
        if allowed:
            return
        reset = round(time.time() + remaining)
        retry = max(1, math.ceil(remaining))
        # The client sleeps at least Retry-After before each retry, inside the caller's
        # call: the header is capped, the body and X-RateLimit-Reset keep the truth.
        retry_header = min(retry, settings.docutray_retry_after_max_s)
        kind = "minute" if window <= 60 else "hour" if window <= 3600 else "day"
        headers = {"Retry-After": str(retry_header), "X-RateLimit-Limit": str(limit),
                   "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset),
                   "X-RateLimit-Limit-Type": kind}
        body: dict[str, Any] = {"error": "Rate limit exceeded"}
        if not short_body:
            body.update({"limitType": kind, "limit": limit, "remaining": 0, "resetTime": reset,
                         "retryAfter": retry})
        raise vendor.VendorError(429, body, headers)


limiter = RateLimiter()


async def _caller(request: Request, short_body: bool = False) -> Principal:
    principal = await caller(request)
    limiter.check(principal, short_body)
    return principal


# --- jobs ----------------------------------------------------------------------------------

def _job_id(principal: Principal) -> str:
    """`cm` + the organization's id + randomness: a status poll with another organization's
    key can then be told apart from an unknown id (the vendor answers 403, not 404)."""
    return "cm" + principal.org_id.replace("-", "") + secrets.token_hex(8)


def _owner_of(job_id: str) -> str | None:
    raw = job_id[2:34]
    if not job_id.startswith("cm") or len(raw) != 32:
        return None
    try:
        return str(uuid.UUID(raw))
    except ValueError:
        return None


def _find(principal: Principal, job_id: str, kind: str) -> tuple[Job | None, bool]:
    """(the caller's job, whether it belongs to another organization instead)."""

    def usable(job: Job | None) -> bool:
        return (job is not None and job.face == FACE and not job.job_status.is_gone
                and (job.face_state or {}).get("kind") == kind)

    job = service.find_job(principal.org_id, job_id)
    if usable(job):
        return job, False
    owner = _owner_of(job_id)
    if owner and owner != principal.org_id and usable(service.find_job(owner, job_id)):
        return None, True
    return None, False


async def _submit(request: Request, principal: Principal, doc: DocRequest, operation: str,
                  params: dict[str, Any], state: dict[str, Any]) -> Job:
    settings = get_settings()
    job_id = _job_id(principal)
    stager = service.new_stager(principal, job_id)
    staged = await stage(doc, stager)
    state = {**state, "original_filename": doc.filename or staged.name}
    submission = service.Submission(
        operation=operation, params=params, face=FACE, face_state=state,
        timeout_s=settings.docutray_job_timeout_s, retention_s=settings.docutray_retention_s,
        deadline_s=settings.docutray_job_timeout_s,  # the vendor's auto-timeout
        webhook_url=settings.docutray_webhooks.get(principal.org_slug) or None, job_id=job_id)
    return await run_in_threadpool(service.submit, principal, submission, stager)


async def _conversion(request: Request, principal: Principal) -> Job:
    doc = await read_request(request)
    try:
        code = doc.text("document_type_code")
        if not code:
            raise vendor.validation("document_type_code: Required")
        metadata = doc.metadata()
        try:
            doc_type = await run_in_threadpool(doctypes.resolve_code, principal, code)
        except errors.NotFound:
            raise vendor.VendorError(404, {"message": "Document type not found"}) from None
    except BaseException:
        await doc.close()
        raise
    params = {"schema": doc_type.json_schema, "document_type_code": doc_type.code}
    state = {"kind": "convert", "document_type_code": doc_type.code,
             "document_metadata": metadata}
    return await _submit(request, principal, doc, CONVERT_OP, params, state)


async def _identification(request: Request, principal: Principal, sync: bool) -> Job:
    doc = await read_request(request)
    try:
        options = doc.options()
        metadata = doc.metadata()
        try:
            rows = await run_in_threadpool(doctypes.candidates, principal, options)
        except errors.Forbidden as exc:
            codes = ", ".join(exc.details.get("codes") or [])
            message = (f"You do not have permission to use the following document types: "
                       f"{codes}" if sync else f"Document types not accessible: {codes}")
            raise vendor.VendorError(403, {"message": message}) from None
        if not rows:
            raise vendor.validation("document_type_code_options: no document types to "
                                    "choose from")
        candidates = await run_in_threadpool(doctypes.candidate_params, principal, rows)
    except BaseException:
        await doc.close()
        raise
    state = {"kind": "identify", "options": options or [r.code for r in rows],
             "names": {r.code: r.name for r in rows}, "document_metadata": metadata}
    return await _submit(request, principal, doc, IDENTIFY_OP, {"candidates": candidates},
                         state)


async def _wait(principal: Principal, job: Job, started: float) -> Job:
    """The job once finished, or as it is when the sync budget runs out (counted from the
    request's arrival: a slow URL download eats into it)."""
    budget = get_settings().docutray_sync_wait_s - (time.monotonic() - started)
    outcome = await sync.await_sync(principal, job, reachable=True, budget_s=max(1.0, budget))
    return outcome.job


def _unfinished(job: Job, status: str, base: str, path: str) -> JSONResponse:
    wait = get_settings().docutray_sync_wait_s
    return JSONResponse({
        "message": f"Processing did not finish within {wait:g} seconds; it goes on: poll "
                   f"{path}/{job.id}", "status": status, "status_url": f"{base}{path}/{job.id}",
        "conversion_id" if "convert" in path else "id": job.id}, status_code=408)


# --- conversion ----------------------------------------------------------------------------

async def convert(request: Request) -> Response:
    started = time.monotonic()
    principal = await _caller(request)
    job = await _conversion(request, principal)
    job = await _wait(principal, job, started)
    base = public_base(request)
    status, error, _ = render.lifecycle(job)
    if status == "SUCCESS":
        body = render.conversion_status(job, base)
        return JSONResponse({"data": body.pop("data"), **body})
    if status == "ERROR":
        return JSONResponse({"message": f"Conversion failed: {error}", "status": "ERROR",
                             "error": error, "conversion_id": job.id}, status_code=422)
    return _unfinished(job, status, base, "/api/convert-async/status")


async def convert_async(request: Request) -> Response:
    principal = await _caller(request)
    job = await _conversion(request, principal)
    url = f"{public_base(request)}/api/convert-async/status/{job.id}"
    return JSONResponse({"conversion_id": job.id, "status": "ENQUEUED", "status_url": url},
                        status_code=202)


async def conversion_status(request: Request, job_id: str) -> Response:
    principal = await _caller(request)
    job, foreign = await run_in_threadpool(_find, principal, job_id, "convert")
    if job is None:
        if foreign:
            raise vendor.VendorError(403, {"error": "Access denied to this conversion"})
        raise vendor.VendorError(404, {"error": "Conversion not found"})
    return JSONResponse(render.conversion_status(job, public_base(request)))


# --- identification ------------------------------------------------------------------------

async def identify(request: Request) -> Response:
    started = time.monotonic()
    principal = await _caller(request)
    job = await _identification(request, principal, sync=True)
    job = await _wait(principal, job, started)
    status, error, _ = render.lifecycle(job)
    if status == "SUCCESS":
        return JSONResponse({**render.identification_result(job), "identification_id": job.id,
                             "status": "SUCCESS"})
    if status == "ERROR":
        return JSONResponse({"message": f"Identification failed: {error}", "status": "ERROR",
                             "error": error, "id": job.id}, status_code=422)
    return _unfinished(job, status, public_base(request), "/api/identify-async/status")


async def identify_async(request: Request) -> Response:
    principal = await _caller(request)
    job = await _identification(request, principal, sync=False)
    url = f"{public_base(request)}/api/identify-async/status/{job.id}"
    return JSONResponse({"id": job.id, "status": "ENQUEUED", "status_url": url}, status_code=202)


async def identification_status(request: Request, job_id: str) -> Response:
    principal = await _caller(request)
    job, foreign = await run_in_threadpool(_find, principal, job_id, "identify")
    if job is None:
        if foreign:
            raise vendor.VendorError(403, {"message": "You do not have access to this "
                                                      "identification"})
        raise vendor.VendorError(404, {"message": "Identification not found"})
    return JSONResponse(render.identification_status(job, public_base(request)))


# --- steps (pipelines) ----------------------------------------------------------------------

async def step_async(request: Request, step_id: str) -> Response:
    principal = await _caller(request)
    try:
        row = await run_in_threadpool(pipelines.get_pipeline, principal, step_id)
    except errors.NotFound:
        raise vendor.VendorError(404, {"message": "Step not found or access denied"}) from None
    doc = await read_request(request)
    try:
        metadata = doc.metadata()
    except BaseException:
        await doc.close()
        raise
    settings = get_settings()
    stager = service.new_stager(principal, _job_id(principal))
    staged = await stage(doc, stager)
    options = runs.RunOptions(
        face=FACE, face_state={"kind": "step", "step_id": row.id, "step_name": row.name,
                               "original_filename": doc.filename or staged.name,
                               "document_metadata": metadata},
        webhook_url=settings.docutray_webhooks.get(principal.org_slug) or None,
        timeout_s=settings.docutray_job_timeout_s, retention_s=settings.docutray_retention_s,
        deadline_s=settings.docutray_job_timeout_s)
    run = await run_in_threadpool(runs.start_run, principal, row.id, stager, options)
    url = f"{public_base(request)}/api/steps-async/status/{run.id}"
    return JSONResponse({"id": run.id, "status": "ENQUEUED", "step_id": row.id,
                         "step_name": row.name, "status_url": url}, status_code=202)


async def step_status(request: Request) -> Response:
    # the id is read here, not as a typed parameter, so that its format (STEP_ID_PARAMETER
    # in the document) stays the vendor's own 400 instead of a generic validation error
    job_id = request.path_params["job_id"]
    principal = await _caller(request)
    if not EXECUTION_ID.fullmatch(job_id):
        raise vendor.VendorError(400, {"message": "Invalid execution ID format"})
    job, foreign = await run_in_threadpool(_find, principal, job_id, "step")
    if job is None:
        if foreign:
            raise vendor.VendorError(403, {"message": "Access denied to this execution"})
        raise vendor.VendorError(404, {"message": "Execution not found"})
    return JSONResponse(render.step_status(job, public_base(request)))


# --- document types ------------------------------------------------------------------------

def _data(row: DocumentType, status: int = 200) -> JSONResponse:
    """`{"data": type}` (what 0.2.x unwraps) with the same fields at the top level too, for
    0.1.0, which reads the body as the type (and its schema as `schema_`)."""
    body = render.document_type(row)
    return JSONResponse({**body, "schema_": body["jsonSchema"], "data": body},
                        status_code=status)


async def _light_caller(request: Request) -> Principal:
    return await _caller(request, short_body=True)


async def list_document_types(request: Request) -> Response:
    principal = await _caller(request, short_body=True)
    page, limit = paging(request)
    search = (request.query_params.get("search") or "").strip() or None
    rows, total = await run_in_threadpool(
        lambda: doctypes.list_types(principal, search=search, offset=(page - 1) * limit,
                                    limit=limit))
    return JSONResponse({"data": [render.document_type(r, full=False) for r in rows],
                         "pagination": {"total": total, "page": page, "limit": limit}})


async def get_document_type(request: Request, type_id: str) -> Response:
    principal = await _caller(request, short_body=True)
    return _data(await run_in_threadpool(doctypes.get_type, principal, type_id))


async def create_document_type(request: Request) -> Response:
    principal = await _caller(request, short_body=True)
    body = await json_body(request)
    return _data(await run_in_threadpool(doctypes.create_type, principal, body), 201)


async def update_document_type(request: Request, type_id: str) -> Response:
    principal = await _caller(request, short_body=True)
    body = await json_body(request)
    return _data(await run_in_threadpool(doctypes.update_type, principal, type_id, body))


async def delete_document_type(request: Request, type_id: str) -> Response:
    """Docmill's extension: not in the vendor's API."""
    principal = await _caller(request, short_body=True)
    return _data(await run_in_threadpool(doctypes.delete_type, principal, type_id))


async def validate_document_type(request: Request, type_id: str) -> Response:
    principal = await _caller(request, short_body=True)
    if not (await request.body()).strip():
        raise vendor.VendorError(400, {"error": "Invalid body"})
    data = await json_body(request)
    row = await run_in_threadpool(doctypes.get_type, principal, type_id)
    findings = await run_in_threadpool(doctypes.validate_data, row, data)
    return JSONResponse({"errors": {"count": len(findings.errors), "messages": findings.errors},
                         "warnings": {"count": len(findings.warnings),
                                      "messages": findings.warnings}})


# --- what Docmill does not offer -----------------------------------------------------------

async def not_offered(request: Request, rest: str) -> Response:
    refused = method_not_allowed(request)
    if refused is not None:
        raise vendor.not_allowed(refused)
    return JSONResponse({"error": "Not found",
                         "message": f"No endpoint {request.method} /api/{rest}"},
                        status_code=404)


# --- the contract --------------------------------------------------------------------------

_CODE = {"document_type_code": {"type": "string", "minLength": 1}}  # conversions
_OPTIONS = {"document_type_code_options": {  # identifications
    "description": "codes to choose from: a JSON array, one code or comma-separated codes "
                   "(none: every usable type)"}}
_JSON_DOCUMENT = {"image_base64": {"type": "string",
                                   "description": "Base64, with or without a data: prefix"},
                  "image_url": {"type": "string", "format": "uri"},
                  "document_metadata": {"type": "object"}}


def _processing_body(converting: bool) -> dict[str, Any]:
    fields = _CODE if converting else _OPTIONS
    required = list(_CODE) if converting else []
    json_fields = fields if converting else {"document_type_code_options": {
        "anyOf": [{"type": "array", "items": {"type": "string", "minLength": 1}},
                  {"type": "string"}]}}
    return request_body({
        "multipart/form-data": {"type": "object", "required": ["image", *required],
                                "properties": {**fields,
                                               "image": {"type": "string", "format": "binary"},
                                               "document_metadata": {
                                                   "type": "string",
                                                   "contentMediaType": "application/json"}}},
        "application/json": {"type": "object", "required": required,
                             "properties": {**json_fields, **_JSON_DOCUMENT},
                             "oneOf": [{"required": ["image_base64"]},
                                       {"required": ["image_url"]}]}},
        description="The document (a part `image`, `image_base64` or `image_url`: PDF or "
                    "an image) and its fields")


# Input problems are 4xx (the client re-sends 429 and 5xx); a sync call that outlasts
# `docutray_sync_wait_s` is a 408 naming the job, a failed one a 422.
PROCESSING = fails(400, 401, 403, 404, 408, 413, 415, 429)
SYNC = merge(PROCESSING, fails(422))
STATUS = fails(401, 403, 404, 429)
_CONVERSION_LINKS = {"Status": link("GET /api/convert-async/status/{job_id}",
                                    job_id="$response.body#/conversion_id")}
_STEP_LINKS = {"Status": link("GET /api/steps-async/status/{job_id}",
                              job_id="$response.body#/id")}
_IDENTIFICATION_LINKS = {"Status": link("GET /api/identify-async/status/{job_id}",
                                        job_id="$response.body#/id")}
TYPE_BODY = request_body({"application/json": inline_schema(doctypes.DocTypeFields)})
NEW_TYPE_BODY = request_body({"application/json": {
    **inline_schema(doctypes.DocTypeFields),
    "required": ["codeType", "name", "description", "jsonSchema"]}})
ANY_JSON = request_body({"application/json": {}}, description="The data to check")
# Pages: a non-integer or a page < 1 is the vendor's 400, an empty value the default; a
# larger limit is clamped to 100.
_DEFAULT = {"type": "string", "pattern": r"^\s*$", "description": "empty: the default"}
PAGING: dict[str, dict[str, Any]] = {
    "page": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": MAX_PAGE}, _DEFAULT]},
    "limit": {"anyOf": [{"type": "integer", "minimum": 1}, _DEFAULT]},
    "search": {"type": "string"}}
TYPES = fails(400, 401, 429)
A_TYPE = fails(401, 404, 429)
WRITE_TYPE = fails(400, 401, 403, 404, 409, 413, 429)


# --- the router ----------------------------------------------------------------------------

def build_router() -> APIRouter:
    """The face's routes under `docutray_prefix`; registers its error renderer."""
    prefix = face_prefix()
    register_face_errors(FaceErrors((f"{prefix}/api/",), vendor.render))
    router = APIRouter(prefix=prefix, tags=["docutray"], route_class=_Route,
                       dependencies=[bearer("DocutrayKey", "An API key: Bearer dm_...")])
    add = router.add_api_route
    converting, identifying = _processing_body(True), _processing_body(False)
    add("/api/convert", convert, methods=["POST"], summary="Convert (sync)",
        openapi_extra=converting, responses=SYNC)
    add("/api/convert-async", convert_async, methods=["POST"], summary="Start a conversion",
        openapi_extra=converting, status_code=202,
        responses=merge({202: {"description": "Started", "links": _CONVERSION_LINKS}},
                        PROCESSING))
    add("/api/convert-async/status/{job_id}", conversion_status, methods=["GET"],
        summary="A conversion's status", responses=STATUS)
    add("/api/identify", identify, methods=["POST"], summary="Identify (sync)",
        openapi_extra=identifying, responses=SYNC)
    add("/api/identify-async", identify_async, methods=["POST"],
        summary="Start an identification", openapi_extra=identifying, status_code=202,
        responses=merge({202: {"description": "Started", "links": _IDENTIFICATION_LINKS}},
                        PROCESSING))
    add("/api/identify-async/status/{job_id}", identification_status, methods=["GET"],
        summary="An identification's status", responses=STATUS)
    add("/api/document-types", list_document_types, methods=["GET"],
        summary="List document types", responses=TYPES,
        openapi_extra=query_parameters(**PAGING))
    add("/api/document-types", create_document_type, methods=["POST"], status_code=201,
        summary="Create a document type", openapi_extra=NEW_TYPE_BODY, responses=WRITE_TYPE)
    add("/api/document-types/{type_id}", get_document_type, methods=["GET"],
        summary="A document type", responses=A_TYPE)
    add("/api/document-types/{type_id}", update_document_type, methods=["PUT"],
        summary="Update a document type", openapi_extra=TYPE_BODY, responses=WRITE_TYPE)
    add("/api/document-types/{type_id}", delete_document_type, methods=["DELETE"],
        summary="Delete a document type (Docmill extension)",
        responses=fails(401, 403, 404, 429))
    add("/api/document-types/{type_id}/validate", validate_document_type, methods=["POST"],
        summary="Validate extracted data against a type", openapi_extra=ANY_JSON,
        responses=fails(400, 401, 404, 413, 429))
    add("/api/steps-async/status/{job_id}", step_status, methods=["GET"],
        summary="A step execution's status", responses=merge(STATUS, fails(400)),
        openapi_extra={"parameters": [{
            "name": "job_id", "in": "path", "required": True,
            "schema": {"type": "string", "pattern": f"^{EXECUTION_ID.pattern}$"}}]})
    add("/api/steps-async/{step_id}", step_async, methods=["POST"],
        summary="Run a step (a pipeline of the caller's organization)",
        openapi_extra=identifying, status_code=202,
        responses=merge({202: {"description": "Started", "links": _STEP_LINKS}}, PROCESSING))
    routes_knowledge.add_routes(router, _light_caller, json_body, paging, PAGING)
    add("/api/{rest:path}", not_offered,
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    return router

