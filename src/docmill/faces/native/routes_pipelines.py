"""The native pipelines API over `core/pipelines.py` (definitions) and `core/runs.py` (runs):

- `/v1/pipelines`: list, create; `/v1/pipelines/{id or name}`: get, replace (PUT), delete;
  a refused definition is 422 `invalid_pipeline` naming the step in `details.step`;
- `POST /v1/pipelines/{ref}/runs`: start a run with the inputs `/v1/jobs` takes (multipart
  `file` parts, or JSON `inputs`), `webhook_url`, `timeout_s` (the whole run's) and `?wait`;
- `/v1/runs/{id}`: the run with its step jobs (`?wait`), `POST .../cancel`, `DELETE`.

A run is a job too: `/v1/jobs/{id}` shows it, its files and result; each step job is an
ordinary job at `/v1/jobs/{job_id}` (its `run` names the run and step).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from docmill.core import pipelines, runs, service
from docmill.core.auth import Principal
from docmill.faces.common import read_form, read_json
from docmill.faces.contract import inline_schema, request_body
from docmill.faces.native.errors import fails
from docmill.faces.native.request import (
    Caller,
    RunRequest,
    is_multipart,
    stage_refs,
    stage_uploads,
    upload_fields,
    validated,
    wait_seconds,
)

router = APIRouter(prefix="/v1", tags=["pipelines"])


DEFINITION = request_body({"application/json": inline_schema(pipelines.Definition)},
                          description="The pipeline: its name and steps (see docs/pipelines.md)")
RUN_BODY = request_body({
    "application/json": inline_schema(RunRequest),
    "multipart/form-data": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "array", "minItems": 1,
                 "items": {"type": "string", "format": "binary"}},
        "timeout_s": {"type": "number", "exclusiveMinimum": 0, "maximum": 7 * 24 * 3600},
        "webhook_url": {"type": "string"}}}},
    description="The documents, as for POST /v1/jobs: uploaded files or JSON inputs")
A_PIPELINE = fails(401, 404)
A_RUN = fails(400, 401, 404)


@router.get("/pipelines", summary="The organization's pipelines", responses=fails(401))
async def list_pipelines(caller: Caller) -> dict[str, Any]:
    rows = await run_in_threadpool(pipelines.list_pipelines, caller)
    return {"pipelines": [pipelines.pipeline_view(r) for r in rows]}


@router.post("/pipelines", status_code=201, summary="Create a pipeline (checked on save)",
             openapi_extra=DEFINITION, responses=fails(400, 401, 409, 413, 422))
async def create_pipeline(request: Request, caller: Caller) -> JSONResponse:
    body = await read_json(request)
    row = await run_in_threadpool(pipelines.create_pipeline, caller, body)
    return JSONResponse(pipelines.pipeline_view(row), status_code=201,
                        headers={"Location": f"/v1/pipelines/{row.id}"})


@router.get("/pipelines/{ref}", summary="A pipeline, by id or name", responses=A_PIPELINE)
async def get_pipeline(ref: str, caller: Caller) -> dict[str, Any]:
    return pipelines.pipeline_view(await run_in_threadpool(pipelines.get_pipeline, caller, ref))


@router.put("/pipelines/{ref}", summary="Replace a pipeline's name, description or steps",
            openapi_extra=DEFINITION, responses=fails(400, 401, 404, 409, 413, 422))
async def update_pipeline(ref: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await read_json(request)
    row = await run_in_threadpool(pipelines.update_pipeline, caller, ref, body)
    return pipelines.pipeline_view(row)


@router.delete("/pipelines/{ref}", status_code=204, summary="Delete a pipeline (runs stay)",
               responses=A_PIPELINE)
async def delete_pipeline(ref: str, caller: Caller) -> Response:
    await run_in_threadpool(pipelines.delete_pipeline, caller, ref)
    return Response(status_code=204)


async def _stage(request: Request, caller: Principal,
                 run_id: str) -> tuple[Any, runs.RunOptions]:
    if is_multipart(request.headers.get("content-type", ""), "file"):
        uploads, timeout_s, webhook_url = upload_fields(await read_form(request))
        options = runs.RunOptions(webhook_url=webhook_url, timeout_s=timeout_s)
        try:
            stager = await run_in_threadpool(stage_uploads, service.new_stager(caller, run_id),
                                             uploads)
        finally:
            for upload in uploads:
                await upload.close()
        return stager, options
    body = validated(RunRequest, await read_json(request), "run request")
    stager = await stage_refs(service.new_stager(caller, run_id), body.inputs)
    return stager, runs.RunOptions(webhook_url=body.webhook_url, timeout_s=body.timeout_s)


@router.post("/pipelines/{ref}/runs", status_code=202, summary="Run a pipeline on documents",
             openapi_extra=RUN_BODY,
             responses={200: {"description": "The run, finished within ?wait"},
                        **fails(400, 401, 404, 413, 415, 422)})
async def start_run(ref: str, request: Request, caller: Caller,
                    wait: Annotated[float | None, Query(ge=0)] = None) -> JSONResponse:
    await run_in_threadpool(pipelines.get_pipeline, caller, ref)  # 404 before any upload
    run_id = service.new_job_id()
    stager, options = await _stage(request, caller, run_id)
    run = await run_in_threadpool(runs.start_run, caller, ref, stager, options)
    if wait:
        run = await service.wait_for(caller, run.id, wait_seconds(wait))
    view = await run_in_threadpool(runs.run_view, run)
    return JSONResponse(view, status_code=200 if run.job_status.is_terminal else 202,
                        headers={"Location": f"/v1/runs/{run.id}"})


@router.get("/runs/{run_id}", summary="A pipeline run with its step jobs; ?wait=S holds",
            responses=A_RUN)
async def get_run(run_id: str, caller: Caller,
                  wait: Annotated[float | None, Query(ge=0)] = None) -> dict[str, Any]:
    run = await run_in_threadpool(runs.get_run, caller, run_id)
    if wait:
        run = await service.wait_for(caller, run_id, wait_seconds(wait), known=None)
    return await run_in_threadpool(runs.run_view, run)


@router.post("/runs/{run_id}/cancel", summary="Cancel a run: its steps stop and go",
             responses=fails(401, 404, 409))
async def cancel_run(run_id: str, caller: Caller) -> dict[str, Any]:
    run = await run_in_threadpool(runs.cancel_run, caller, run_id)
    return await run_in_threadpool(runs.run_view, run)


@router.delete("/runs/{run_id}", status_code=204, summary="Delete a run and its steps",
               responses=fails(401, 404))
async def delete_run(run_id: str, caller: Caller) -> Response:
    await run_in_threadpool(runs.get_run, caller, run_id)
    await run_in_threadpool(service.delete_job, caller, run_id)
    return Response(status_code=204)
