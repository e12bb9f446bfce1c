"""DocRaptor's HTTP endpoints over the core's service functions.

    POST  /docs                synchronous: the document's bytes (async: true -> status_id)
    POST  /async_docs          {"status_id"}; validation errors surface as status "failed"
    POST  /hosted_docs         synchronous, hosted: the completed status JSON
    POST  /hosted_async_docs   {"status_id"} of a hosted document
    GET   /status/{id}         queued -> working -> completed | failed
    GET   /download/{id}       the bytes, without credentials; budget and expiry enforced
    PATCH /expire/{id}         the document goes away; later downloads fail

Every success is exactly 200 (the client types a response by its exact status code), every
body is UTF-8, errors are `<errors><error>…</error></errors>` XML. Credentials come as HTTP
Basic with the key as user name (the password is ignored) or `?user_credentials=KEY`. Each
route is also served with a doubled leading slash: a client host configured with a trailing
slash sends `//docs`.
"""

from __future__ import annotations

import io
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from docmill import errors
from docmill.core import public_files, service, sync
from docmill.core.auth import Principal
from docmill.core.models import Job, JobStatus
from docmill.faces.common import FaceErrors, register_face_errors
from docmill.faces.contract import basic, link, merge, query_key, request_body
from docmill.faces.docraptor import render, webhook
from docmill.faces.docraptor.errors import (
    DOWNLOAD_KEY_ERROR,
    EXPIRE_FORBIDDEN,
    STATUS_FORBIDDEN,
    DocumentFailed,
    DownloadKeyError,
    NoPermission,
    fails,
    render_error,
)
from docmill.faces.docraptor.request import (
    DOCUMENT_TYPES,
    DocRequest,
    caller,
    read_request,
    retention_terms,
    strip_format,
)
from docmill.faces.download import stream_blob
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings

FACE = webhook.FACE
JSON_TYPE = "application/json; charset=utf-8"


def _json(body: dict[str, Any]) -> Response:
    return Response(json.dumps(body).encode(), status_code=200, media_type=JSON_TYPE)


_TEXT = {"type": "string"}
_DOC_FIELDS = {
    "document_type": {"enum": list(DOCUMENT_TYPES)}, "type": {"enum": list(DOCUMENT_TYPES)},
    "document_content": _TEXT, "document_url": {"type": "string", "format": "uri"},
    "name": _TEXT, "tag": _TEXT, "test": {"type": "boolean"}, "async": {"type": "boolean"},
    "javascript": {"type": "boolean"}, "referrer": _TEXT, "callback_url": _TEXT,
    "strict": _TEXT, "ignore_resource_errors": {"type": "boolean"},
    "hosted_download_limit": {"type": "integer", "minimum": 1},
    "hosted_expires_at": _TEXT, "prince_options": {
        "description": "an object of PDF options (any other value is ignored)"}}
_DOC = {"type": "object", "properties": _DOC_FIELDS}
DOC_BODY = request_body({
    "application/json": {"type": "object", "properties": {"doc": _DOC, **_DOC_FIELDS}},
    "application/x-www-form-urlencoded": {"type": "object",
                                          "description": "doc[document_content]=... fields"},
    "multipart/form-data": {"type": "object",
                            "description": "doc[document_content]=... fields"},
}, required=False, description="The document's fields, bare or under `doc` (also in the "
   "query string as doc[...])")
KEYED = [basic("DocRaptorBasic", "The API key as the Basic user name (no password)"),
         query_key("DocRaptorCredentials", "user_credentials", "The API key")]
_STATUS_LINK = {"Status": link("GET /status/{status_id}", status_id="$response.body#/status_id")}
_JSON = {"application/json": {"schema": {"type": "object"}}}
CREATE_ERRORS = fails(400, 401, 403, 422)
MADE = {200: {"description": "The document's bytes ({status_id} with async: true)",
              "content": {"application/pdf": {}, "application/vnd.ms-excel": {},
                          "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
                              {}, **_JSON},
              "links": _STATUS_LINK}}
STARTED = {200: {"description": "{status_id}", "content": _JSON, "links": _STATUS_LINK}}
HOSTED = {200: {"description": "The completed status with its download_url",
                "content": _JSON}}
STATUS = {200: {"description": "queued, working, completed or failed", "content": _JSON}}
DOWNLOADED = {200: {"description": "The document's bytes", "content": {"*/*": {}}}}


# --- routing -------------------------------------------------------------------------------

router = APIRouter(tags=["docraptor"])
_PREFIX = get_settings().docraptor_prefix.rstrip("/")
_ROOTS = ("/docs", "/async_docs", "/hosted_docs", "/hosted_async_docs", "/status/",
          "/download/", "/expire/")
register_face_errors(FaceErrors(
    tuple(p for root in _ROOTS for p in (_PREFIX + root, _PREFIX + "/" + root)), render_error))


def _route(method: str, path: str, summary: str,
           **declared: Any) -> Callable[[Callable[..., Any]], Any]:
    """Register at `prefix + path` and, hidden, at `prefix + '/' + path` (trailing-slash host);
    `declared` is the route's contract (`responses`, `openapi_extra`)."""

    def register(endpoint: Callable[..., Any]) -> Any:
        router.add_api_route(_PREFIX + path, endpoint, methods=[method], summary=summary,
                             **declared)
        router.add_api_route(_PREFIX + "/" + path, endpoint, methods=[method],
                             include_in_schema=False)
        return endpoint

    return register


def _create(principal: Principal, doc: DocRequest) -> Job:
    """Stage and submit (in a worker thread). Problems found here become validation errors
    of the document: for an async one, a job that fails at once with them."""
    settings = get_settings()
    timeout = (settings.docraptor_async_timeout_s if doc.asynchronous
               else settings.docraptor_sync_timeout_s)
    retention, state = retention_terms(doc)
    state.update({"kind": "hosted" if doc.hosted else ("async" if doc.asynchronous else "sync"),
                  "document_type": doc.document_type, "name": doc.name, "tag": doc.tag,
                  "test": doc.test})
    problems = list(dict.fromkeys(doc.errors))
    if not problems and doc.callback_url and doc.asynchronous:
        try:
            policy_from_settings().check_url(doc.callback_url)
        except errors.DocmillError as exc:
            problems.append(f"Callback url is not allowed: {exc.message}")
    if not problems:
        try:
            service.validate_params(doc.operation, doc.params)
        except errors.InvalidInput as exc:
            problems.append(exc.message)
    if problems and not doc.asynchronous:
        raise DocumentFailed("\n".join(problems), errors=problems)

    def submission(params: dict[str, Any], webhook_url: str | None) -> service.Submission:
        return service.Submission(operation=doc.operation, params=params, face=FACE,
                                  face_state=state, timeout_s=timeout, retention_s=retention,
                                  webhook_url=webhook_url)

    if not problems:
        stager = service.new_stager(principal, webhook.new_status_id())
        try:
            if doc.content is not None:
                stager.add_stream(doc.filename.rsplit(".", 1)[0] + ".html",
                                  io.BytesIO(doc.content.encode("utf-8", "replace")))
            return service.submit(principal, submission(
                doc.params, doc.callback_url if doc.asynchronous else None), stager)
        except errors.TooLarge:
            raise
        except errors.InvalidInput as exc:
            if not doc.asynchronous:
                raise DocumentFailed(exc.message) from exc
            stager.discard()
            problems.append(exc.message)
    # Async with validation errors: a job that fails with them, no input, no callback.
    stager = service.new_stager(principal, webhook.new_status_id())
    return service.submit(principal, submission({"fail_with": "\n".join(problems)}, None),
                          stager)


async def _finish_sync(principal: Principal, job: Job) -> Job:
    limit = get_settings().docraptor_sync_timeout_s
    # a sync document's id is never handed out: the core stops it when the wait runs out
    outcome = await sync.await_sync(principal, job, reachable=False)
    job = outcome.job
    if job.status == JobStatus.SUCCESS.value:
        return job
    if not outcome.finished:
        raise DocumentFailed(f"Document creation timed out: a synchronous document must be "
                             f"done within {limit:g} seconds (use async for longer ones)")
    raise DocumentFailed(render.failure_text(job))


def _drop(principal: Principal, job_id: str) -> None:
    try:
        service.delete_job(principal, job_id)
    except errors.NotFound:
        pass


def _output(job: Job) -> Any:
    outputs = job.files_of("output")
    if not outputs:
        raise DocumentFailed("Document creation failed due to unknown reasons.")
    return outputs[0]


def _file_response(blob_key: str, content_type: str, filename: str) -> Awaitable[Response]:
    return stream_blob(blob_key, content_type, filename, disposition="inline")


# --- endpoints -----------------------------------------------------------------------------


async def _create_async(principal: Principal, doc: DocRequest) -> Response:
    job = await run_in_threadpool(_create, principal, doc)
    return _json({"status_id": job.id})


async def _create_hosted(principal: Principal, doc: DocRequest) -> Response:
    job = await run_in_threadpool(_create, principal, doc)
    job = await _finish_sync(principal, job)
    return _json(webhook.completed_fields(job))


@_route("POST", "/docs", "Create a document synchronously (raw bytes)",
        openapi_extra=DOC_BODY, dependencies=KEYED, responses=merge(MADE, CREATE_ERRORS))
async def create_doc(request: Request) -> Response:
    principal, doc = await read_request(request, asynchronous=False, hosted=False)
    if doc.asynchronous:
        return await _create_async(principal, doc)
    if doc.hosted:
        return await _create_hosted(principal, doc)
    job = await run_in_threadpool(_create, principal, doc)
    job = await _finish_sync(principal, job)
    return await _file_response(_output(job).blob_key, doc.content_type, doc.filename)


@_route("POST", "/async_docs", "Create a document asynchronously (status_id)",
        openapi_extra=DOC_BODY, dependencies=KEYED, responses=merge(STARTED, CREATE_ERRORS))
async def create_async_doc(request: Request) -> Response:
    principal, doc = await read_request(request, asynchronous=True, hosted=False)
    if doc.hosted:
        doc.asynchronous = True
    return await _create_async(principal, doc)


@_route("POST", "/hosted_docs", "Create a hosted document synchronously",
        openapi_extra=DOC_BODY, dependencies=KEYED, responses=merge(HOSTED, CREATE_ERRORS))
async def create_hosted_doc(request: Request) -> Response:
    principal, doc = await read_request(request, asynchronous=False, hosted=True)
    if doc.asynchronous:
        return await _create_async(principal, doc)
    return await _create_hosted(principal, doc)


@_route("POST", "/hosted_async_docs", "Create a hosted document asynchronously",
        openapi_extra=DOC_BODY, dependencies=KEYED, responses=merge(STARTED, CREATE_ERRORS))
async def create_hosted_async_doc(request: Request) -> Response:
    principal, doc = await read_request(request, asynchronous=True, hosted=True)
    return await _create_async(principal, doc)


def _own_job(principal: Principal, job_id: str) -> Job | None:
    job = service.find_job(principal.org_id, job_id)
    return job if job is not None and job.face == FACE else None


def _live_job(principal: Principal, job_id: str) -> Job | None:
    """The caller's live DocRaptor job (the polling path: `get_job`, the core's fast read)."""
    try:
        job = service.get_job(principal, job_id)
    except errors.NotFound:
        return None
    return job if job.face == FACE else None


@_route("GET", "/status/{status_id:path}", "The status of an async document",
        dependencies=KEYED, responses=merge(STATUS, fails(401, 403)))
async def get_status(status_id: str, request: Request) -> Response:
    principal = await caller(request)
    job = await run_in_threadpool(_live_job, principal, strip_format(status_id))
    if job is None:
        raise NoPermission(STATUS_FORBIDDEN)
    return _json(render.status_body(job))


def _spend(download: str) -> tuple[public_files.PublicFileInfo, Job]:
    ids = webhook.parse_download_id(strip_format(download))
    if ids is None:
        raise DownloadKeyError(DOWNLOAD_KEY_ERROR)
    job_id, org_id = ids
    job = service.find_job(org_id, job_id)
    if job is None or job.face != FACE or job.status != JobStatus.SUCCESS.value:
        raise DownloadKeyError(DOWNLOAD_KEY_ERROR)
    state = job.face_state or {}
    expires = job.expires_at
    if state.get("link_expires_at"):
        expires = min(expires, datetime.fromisoformat(state["link_expires_at"]))
    published = public_files.publish_outputs(job.id, org_id, expires, state.get("downloads"))
    if not published:
        raise DownloadKeyError(DOWNLOAD_KEY_ERROR)
    try:
        return public_files.spend_download(published[0].id), job
    except (errors.NotFound, errors.Forbidden):
        raise DownloadKeyError(DOWNLOAD_KEY_ERROR) from None


@_route("GET", "/download/{download_id:path}", "Download a finished document (no credentials)",
        responses=merge(DOWNLOADED, fails(400, 403)))
async def download(download_id: str) -> Response:
    info, job = await run_in_threadpool(_spend, download_id)
    state = job.face_state or {}
    ext = state.get("document_type") or "pdf"
    name = (state.get("name") or "").strip() or f"document.{ext}"
    return await _file_response(info.blob_key, info.content_type, name)


def _expire(principal: Principal, download: str) -> None:
    ids = webhook.parse_download_id(strip_format(download))
    if ids is None or ids[1] != principal.org_id:
        raise NoPermission(EXPIRE_FORBIDDEN)
    job = _own_job(principal, ids[0])
    if job is None:
        raise NoPermission(EXPIRE_FORBIDDEN)
    if not job.job_status.is_gone:
        _drop(principal, job.id)


@_route("PATCH", "/expire/{download_id:path}", "Expire a document: its downloads stop working",
        dependencies=KEYED,
        responses=merge({200: {"description": "Expired", "content": _JSON}}, fails(401, 403)))
async def expire(download_id: str, request: Request) -> Response:
    principal = await caller(request)
    await run_in_threadpool(_expire, principal, download_id)
    return _json({})

