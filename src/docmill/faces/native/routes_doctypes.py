"""The native `/v1/document-types` API: document types and the examples that teach
identification. Errors are the native face's `{"error": {code, message, details}}`.

Fields are the Python names (`code`, `schema` or `json_schema`, `keywords`, `is_public`,
`is_draft`, ...); the Docutray names (`codeType`, `jsonSchema`, ...) are accepted too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from docmill import errors
from docmill.core import doctypes, service, sync, teaching
from docmill.core.auth import Principal
from docmill.core.models import DocumentType, JobStatus
from docmill.faces.common import is_upload, read_form, read_json
from docmill.faces.contract import MAX_PAGE, inline_schema, request_body
from docmill.faces.native.errors import fails
from docmill.faces.native.render import doctype_view
from docmill.faces.native.request import Caller, doctype_fields, expected_field
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings

router = APIRouter(prefix="/v1/document-types", tags=["document types"])
EXAMPLE_OPERATION = "ocr.read"


def _type_body(required: bool) -> dict[str, Any]:
    """The writable fields (`doctypes.DocTypeFields`; `schema` is the native name of
    `jsonSchema`, the snake_case names are accepted too)."""
    schema = inline_schema(doctypes.DocTypeFields)
    schema["properties"]["schema"] = schema["properties"].pop("jsonSchema")
    if required:
        schema["required"] = ["codeType", "name", "description", "schema"]
    return request_body({"application/json": schema})


ANY_JSON = request_body({"application/json": {}}, description="The data to check")
EXAMPLE_BODY = request_body({
    "multipart/form-data": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary"},
        "expected": {"type": "string", "contentMediaType": "application/json",
                     "description": "the values the document holds, a JSON object"}}},
    "application/json": {"type": "object", "properties": {
        "url": {"type": "string", "format": "uri"},
        "base64": {"type": "string", "contentEncoding": "base64"},
        "filename": {"type": "string"}, "expected": {"type": "object"}},
        "oneOf": [{"required": ["url"]}, {"required": ["base64"]}]}})


async def _view(row: DocumentType, caller: Principal) -> dict[str, Any]:
    counts = await run_in_threadpool(doctypes.example_counts, caller, [row.id])
    body = doctype_view(row, caller, counts.get(row.id, 0))
    body["model"] = await run_in_threadpool(teaching.status, caller, row)
    return body


@router.get("", summary="List the document types the caller can use",
            responses=fails(400, 401))
async def list_types(caller: Caller, search: str | None = None,
                     page: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
    rows, total = await run_in_threadpool(
        lambda: doctypes.list_types(caller, search=search, offset=(page - 1) * limit,
                                    limit=limit))
    counts = await run_in_threadpool(doctypes.example_counts, caller, [r.id for r in rows])
    return {"document_types": [doctype_view(r, caller, counts.get(r.id, 0)) for r in rows],
            "total": total, "page": page, "limit": limit}


@router.post("", status_code=201, summary="Create a document type",
             openapi_extra=_type_body(True), responses=fails(400, 401, 403, 409, 413))
async def create_type(request: Request, caller: Caller) -> JSONResponse:
    body = doctype_fields(await read_json(request))
    row = await run_in_threadpool(doctypes.create_type, caller, body)
    return JSONResponse(doctype_view(row, caller, 0), status_code=201,
                        headers={"Location": f"/v1/document-types/{row.code}"})


@router.get("/{ref}", summary="A document type, by code or id", responses=fails(401, 404))
async def get_type(ref: str, caller: Caller) -> dict[str, Any]:
    return await _view(await run_in_threadpool(doctypes.get_type, caller, ref), caller)


@router.patch("/{ref}", summary="Change some fields of an own document type",
              openapi_extra=_type_body(False), responses=fails(400, 401, 403, 404, 409, 413))
@router.put("/{ref}", summary="Change some fields of an own document type (as PATCH)",
            openapi_extra=_type_body(False), responses=fails(400, 401, 403, 404, 409, 413))
async def update_type(ref: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = doctype_fields(await read_json(request))
    row = await run_in_threadpool(doctypes.update_type, caller, ref, body)
    return await _view(row, caller)


@router.delete("/{ref}", status_code=204, summary="Delete an own document type",
               responses=fails(401, 403, 404))
async def delete_type(ref: str, caller: Caller) -> Response:
    await run_in_threadpool(teaching.forget, caller, ref)
    return Response(status_code=204)


@router.post("/{ref}/train", status_code=202,
             summary="Train the type's own extractor from the organization's labelled examples",
             responses=fails(400, 401, 403, 404, 409))
async def train(ref: str, caller: Caller) -> JSONResponse:
    job = await run_in_threadpool(lambda: teaching.schedule(caller, ref, required=True))
    assert job is not None
    return JSONResponse({"job_id": job.id, "status": job.status}, status_code=202,
                        headers={"Location": f"/v1/jobs/{job.id}"})


@router.post("/{ref}/validate", summary="Check extracted data against the type's schema",
             openapi_extra=ANY_JSON, responses=fails(400, 401, 404, 413))
async def validate(ref: str, request: Request, caller: Caller) -> dict[str, Any]:
    data = await read_json(request)
    row = await run_in_threadpool(doctypes.get_type, caller, ref)
    findings = await run_in_threadpool(doctypes.validate_data, row, data)
    return {"valid": not findings.errors, "errors": findings.errors,
            "warnings": findings.warnings}


@router.post("/{ref}/examples", status_code=201,
             summary="Teach a type from a sample document (multipart 'file' and optional "
                     "'expected', or JSON {url | base64, filename, expected})",
             openapi_extra=EXAMPLE_BODY,
             responses=fails(400, 401, 403, 404, 409, 413, 415, 422, 504))
async def add_example(ref: str, request: Request, caller: Caller) -> JSONResponse:
    """Reads the sample with `ocr.read` (a job, waited for up to `doctype_example_wait_s`)
    and stores its plain text on the type, private to the caller's organization; with
    `expected` (the values the document holds, JSON of the type's schema) it is a labelled
    example, and enough of them train the type's own extractor (`teaching`)."""
    row = await run_in_threadpool(doctypes.get_type, caller, ref)  # 404 before reading
    settings = get_settings()
    stager = service.new_stager(caller)
    name = ""
    expected: Any = None
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await read_form(request)
            expected = expected_field(form.get("expected"))
            upload = next((v for k, v in form.multi_items() if k == "file" and is_upload(v)),
                          None)
            if upload is None:
                raise errors.InvalidInput("attach the sample document as 'file'")
            name = upload.filename or ""
            try:
                await run_in_threadpool(stager.add_stream, name, upload.file)
            finally:
                await upload.close()
        else:
            body = await read_json(request)
            if not isinstance(body, dict) or (body.get("url") is None) == (
                    body.get("base64") is None):
                raise errors.InvalidInput("send exactly one of 'url' or 'base64'")
            name = str(body.get("filename") or "")
            expected = body.get("expected")
            if body.get("url") is not None:
                await run_in_threadpool(stager.add_url, str(body["url"]), name or None,
                                        policy_from_settings(), settings.url_download_timeout_s)
            else:
                await run_in_threadpool(stager.add_base64, name or None, str(body["base64"]))
        if expected is not None:
            doctypes.check_expected(row, expected)
    except BaseException:
        await run_in_threadpool(stager.discard)
        raise
    name = name or stager.staged[0].name
    outcome = await sync.run_sync(caller, service.Submission(operation=EXAMPLE_OPERATION),
                                  stager, reachable=True,
                                  budget_s=settings.doctype_example_wait_s)
    job = outcome.job
    if job.job_status is not JobStatus.SUCCESS:
        if not job.job_status.is_terminal:
            raise errors.Timeout(f"reading the example took longer than "
                                 f"{settings.doctype_example_wait_s:g} s (job {job.id})",
                                 job_id=job.id)
        raise errors.InvalidInput(f"the example could not be read: {job.error_message}",
                                  job_id=job.id)
    example, count, training = await run_in_threadpool(teaching.add_example, caller, ref, job,
                                                       name, expected)
    return JSONResponse({"id": example.id, "name": example.name,
                         "characters": len(example.text), "job_id": job.id, "examples": count,
                         "labelled": example.expected is not None,
                         "training_job_id": training.id if training else None},
                        status_code=201)
