"""The native `/v1` job endpoints: submit, read, wait for, list, download, delete and watch
jobs; the caller's organization and the operation catalogue. Requests are read by
`request.py`, errors answered by `errors.py`."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from docmill import errors
from docmill.core import catalogue, service, sync
from docmill.core.auth import Principal, org_by_slug
from docmill.core.models import JobStatus
from docmill.core.views import _iso, job_view
from docmill.faces.common import read_form, read_json
from docmill.faces.contract import link, merge, request_body
from docmill.faces.download import stream_blob
from docmill.faces.native.errors import fails
from docmill.faces.native.render import JobList, JobView, OperationList
from docmill.faces.native.request import (
    Caller,
    JobRequest,
    is_multipart,
    job_form,
    stage_refs,
    stage_uploads,
    validated,
    wait_seconds,
)

router = APIRouter(prefix="/v1", tags=["native"])


async def _prepare(caller: Principal, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters checked (and document types named by code filled in): on a thread
    only when the database must be read, since each thread trip costs GIL hand-offs."""
    if service.params_need_lookup(operation, params):
        return await run_in_threadpool(service.prepare_params, caller, operation, params)
    service.validate_params(operation, params)
    return params


async def _submit_multipart(request: Request, caller: Principal, job_id: str) -> Any:
    operation, params, uploads, timeout_s, webhook_url = job_form(await read_form(request))
    params = await _prepare(caller, operation, params)  # fail fast, before storing anything
    stager = service.new_stager(caller, job_id)

    def stage_and_submit() -> Any:
        stage_uploads(stager, uploads)
        submission = service.Submission(operation=operation, params=params,
                                        webhook_url=webhook_url, timeout_s=timeout_s)
        return service.submit(caller, submission, stager)

    try:  # one trip to a thread for staging and submitting: each trip costs GIL hand-offs
        return await run_in_threadpool(stage_and_submit)
    finally:
        for upload in uploads:
            await upload.close()


async def _submit_json(request: Request, caller: Principal, job_id: str) -> Any:
    body = validated(JobRequest, await read_json(request), "job request")
    params = await _prepare(caller, body.operation, body.params)
    stager = await stage_refs(service.new_stager(caller, job_id), body.inputs)
    submission = service.Submission(operation=body.operation, params=params,
                                    webhook_url=body.webhook_url, timeout_s=body.timeout_s)
    return await run_in_threadpool(service.submit, caller, submission, stager)


def _job_request_body() -> dict[str, Any]:
    """POST /v1/jobs reads JSON or multipart itself (one route, two encodings)."""
    names = catalogue.operation_names()
    source = {"type": "object", "additionalProperties": False,
              "properties": {"url": {"type": "string", "format": "uri"},
                             "base64": {"type": "string", "contentEncoding": "base64"},
                             "filename": {"type": ["string", "null"]}},
              "oneOf": [{"required": ["url"]}, {"required": ["base64"]}]}
    timeout = {"type": "number", "exclusiveMinimum": 0, "maximum": 24 * 3600}
    as_json = {"type": "object", "additionalProperties": False,
               "required": ["operation", "inputs"],
               "properties": {"operation": {"type": "string", "enum": names},
                              "params": {"type": "object"},
                              "inputs": {"type": "array", "minItems": 1, "items": source},
                              "webhook_url": {"type": ["string", "null"]},
                              "timeout_s": {"anyOf": [timeout, {"type": "null"}]}}}
    as_form = {"type": "object", "required": ["operation", "file"],
               "properties": {"operation": {"type": "string", "enum": names},
                              "file": {"type": "array", "minItems": 1,
                                       "items": {"type": "string", "format": "binary"}},
                              "params": {"type": "string", "contentMediaType": "application/json",
                                         "description": "a JSON object"},
                              "timeout_s": timeout, "webhook_url": {"type": "string"}}}
    return request_body({"application/json": as_json, "multipart/form-data": as_form},
                        description="The operation (GET /v1/operations), its params and the "
                                    "documents: base64 or URLs in JSON, or uploaded files")


JOB_LINKS = {"GetJob": link("GET /v1/jobs/{job_id}", job_id="$response.body#/id"),
             "GetResult": link("GET /v1/jobs/{job_id}/result", job_id="$response.body#/id"),
             "GetTransitions": link("GET /v1/jobs/{job_id}/transitions",
                                    job_id="$response.body#/id"),
             "DeleteJob": link("DELETE /v1/jobs/{job_id}", job_id="$response.body#/id")}
A_JOB = fails(400, 401, 404)  # a job of the caller's organization, by id


@router.post("/jobs", status_code=202, summary="Submit a job (multipart or JSON)",
             openapi_extra=_job_request_body(),
             responses=merge({200: {"description": "The job, finished within ?wait",
                                    "model": JobView, "links": JOB_LINKS},
                              202: {"description": "The job, accepted", "model": JobView,
                                    "links": JOB_LINKS}},
                             fails(400, 401, 403, 404, 413, 415, 422)))
async def create_job(request: Request, caller: Caller,
                     wait: Annotated[float | None, Query(ge=0)] = None) -> JSONResponse:
    multipart = is_multipart(request.headers.get("content-type", ""), "file, operation, params")
    submit = _submit_multipart if multipart else _submit_json
    job_id = service.new_job_id()
    if wait:  # watch before submitting: a job that finishes at once is not missed
        with service.watch(job_id) as watch:
            job = await submit(request, caller, job_id)
            outcome = await sync.await_sync(caller, job, reachable=True,
                                            budget_s=wait_seconds(wait), watch=watch)
            job = outcome.job
    else:
        job = await submit(request, caller, job_id)
    status = 200 if job.job_status.is_terminal else 202
    return JSONResponse(job_view(job), status_code=status,
                        headers={"Location": f"/v1/jobs/{job.id}"})


JOB_STATUSES = [s.value for s in (JobStatus.ENQUEUED, JobStatus.PROCESSING, JobStatus.SUCCESS,
                                   JobStatus.ERROR)]
Status = Annotated[str | None, Query(json_schema_extra={
    "enum": [*JOB_STATUSES, *(s.lower() for s in JOB_STATUSES)]})]
TimeBound = Annotated[datetime | None, Query(
    description="ISO 8601 (UTC without a zone) or Unix seconds",
    json_schema_extra={"anyOf": [{"type": "string", "format": "date-time"},
                                 {"type": "number"}, {"type": "null"}]})]


# Declared, not enforced at run time (response_model=None): the views are built by
# `job_view` and the fuzz step's response checks hold them to these models.
@router.get("/jobs", summary="List jobs, newest first", response_model=None,
            responses=merge({200: {"description": "One page", "model": JobList}},
                            fails(400, 401)))
async def list_jobs(caller: Caller, status: Status = None, operation: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=500)] = 50,
                    cursor: Annotated[str | None, Query(
                        description="`next_cursor` of the previous page")] = None,
                    created_after: TimeBound = None,
                    created_before: TimeBound = None) -> dict[str, Any]:
    rows, next_cursor = await run_in_threadpool(
        service.list_jobs, caller, status=status, operation=operation, limit=limit,
        cursor=cursor, created_after=_aware(created_after),
        created_before=_aware(created_before))
    return {"jobs": [job_view(j) for j in rows], "next_cursor": next_cursor}


def _aware(value: datetime | None) -> datetime | None:
    """A time bound without a zone is UTC."""
    return value.replace(tzinfo=UTC) if value and value.tzinfo is None else value


@router.get("/jobs/{job_id}/transitions", summary="The job's transition log, oldest first",
            responses=A_JOB)
async def get_transitions(job_id: str, caller: Caller) -> dict[str, Any]:
    rows = await run_in_threadpool(service.job_transitions, caller, job_id)
    return {"transitions": [{"at": _iso(r.at), "status": r.status, "attempt": r.attempt,
                             "owner": r.owner, "detail": r.detail} for r in rows]}


@router.get("/jobs/{job_id}", summary="Read a job; ?wait=S holds until it finishes",
            response_model=None,
            responses=merge({200: {"description": "The job", "model": JobView}}, A_JOB))
async def get_job(job_id: str, caller: Caller,
                  wait: Annotated[float | None, Query(ge=0)] = None) -> dict[str, Any]:
    if wait:
        job = await service.wait_for(caller, job_id, wait_seconds(wait))
    else:
        job = await run_in_threadpool(service.get_job, caller, job_id)
    return job_view(job)


@router.get("/jobs/{job_id}/result", summary="The job's result JSON once finished",
            responses=merge({202: {"description": "Not finished yet: status and progress"}},
                            A_JOB))
async def get_result(job_id: str, caller: Caller,
                     wait: Annotated[float | None, Query(ge=0)] = None) -> JSONResponse:
    job = await service.wait_for(caller, job_id, wait_seconds(wait))
    if not job.job_status.is_terminal:
        return JSONResponse({"status": job.status, "progress": job.progress,
                             "message": job.message}, status_code=202)
    view = job_view(job)
    return JSONResponse({"status": job.status, "result": job.result, "files": view["files"],
                         "error": view["error"]})


FILE = {200: {"description": "The file's bytes, with its content type",
              "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}


@router.get("/jobs/{job_id}/files/{name}", summary="Download an output file",
            responses=merge(FILE, fails(401, 404)))
async def get_file(job_id: str, name: str, caller: Caller) -> Response:
    return await _download(caller, job_id, name, "output")


@router.get("/jobs/{job_id}/inputs/{name}", summary="Download an input file as it was received",
            responses=merge(FILE, fails(401, 404)))
async def get_input(job_id: str, name: str, caller: Caller) -> Response:
    return await _download(caller, job_id, name, "input")


async def _download(caller: Principal, job_id: str, name: str, role: str) -> Response:
    item = await run_in_threadpool(service.job_file, caller, job_id, name, role)
    return await stream_blob(item.blob_key, item.content_type, item.name, size=item.size)


@router.delete("/jobs/{job_id}", status_code=204, summary="Delete a job and its files",
               responses=fails(401, 404))
async def delete_job(job_id: str, caller: Caller) -> Response:
    await run_in_threadpool(service.delete_job, caller, job_id)
    return Response(status_code=204)


@router.get("/jobs/{job_id}/events", summary="Server-Sent Events of progress until finished",
            response_class=EventSourceResponse,
            responses=merge({200: {"description": "`job` events, then `gone` if deleted",
                                   "content": {"text/event-stream": {"schema": {
                                       "type": "object",
                                       "properties": {"event": {"enum": ["job", "gone"]},
                                                      "data": {"type": "string"},
                                                      "id": {"type": "string"}}}}}}},
                            fails(401, 404)))
async def job_events_stream(job_id: str, caller: Caller, request: Request) -> EventSourceResponse:
    job = await run_in_threadpool(service.get_job, caller, job_id)  # 404 before streaming

    async def stream() -> Any:
        nonlocal job
        last: tuple[str, int, str] | None = None
        while True:
            state = (job.status, job.progress, job.message)
            if state != last:
                last = state
                yield {"event": "job", "id": f"{job.progress}",
                       "data": json.dumps(job_view(job))}
            if job.job_status.is_terminal or await request.is_disconnected():
                return
            await asyncio.sleep(0)
            try:
                job = await service.wait_for(caller, job_id, 0.25, poll_s=0.25)
            except errors.NotFound:
                yield {"event": "gone", "data": json.dumps({"id": job_id})}
                return

    return EventSourceResponse(stream(), ping=15)


@router.get("/organization", summary="The caller's organization (webhook secret: admins only)",
            responses=fails(401))
async def get_organization(caller: Caller) -> dict[str, Any]:
    org = await run_in_threadpool(org_by_slug, caller.org_slug)
    body: dict[str, Any] = {"id": org.id, "slug": org.slug, "name": org.name,
                            "role": caller.role.value}
    if caller.is_admin:
        body["webhook_secret"] = org.webhook_secret
    return body


@router.get("/operations", summary="What this server can do, with parameter schemas",
            response_model=OperationList)
async def list_operations() -> dict[str, Any]:
    """Each operation with a one-line description, the types it accepts and makes, and the
    JSON Schema of its parameters; no key needed."""
    return {"operations": catalogue.describe_operations()}
