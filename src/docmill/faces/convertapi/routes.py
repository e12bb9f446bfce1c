"""ConvertAPI's HTTP endpoints over the Docmill core (see ../shared/specs/convertapi.md).

- `POST|GET /convert/{from}/to/{to}`: sync (submit, wait, answer), async (`Async=true`:
  answer `{"JobId"}` at once), semi-async (client-chosen `JobId`: a repeat request attaches
  to the job instead of converting again);
- `GET|DELETE /job/{id}`: poll (200 result / 202 running / 404 / 503 when another poll of
  the job is in flight / 5xx failed; a repeated poll is held up to `convertapi_poll_hold_s`
  after the previous answer unless the job finishes first) and delete;
- `POST /upload`, `GET|HEAD|DELETE /d/{FileId}[/{FileName}]`: the file server;
- `GET /user`, `GET /info/converters`, `GET /info/canconvert/{from}/to/{to}`.

Nothing here converts: requests become `service.submit` calls and jobs become the vendor's
JSON. The poll gate lives in this process's memory (one API process per deployment).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
import weakref
from collections.abc import Callable, Coroutine
from pathlib import PurePosixPath
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.responses import Response

from docmill import errors
from docmill.core import public_files, service, sync
from docmill.core.auth import Principal, org_by_slug
from docmill.core.files import get_blob_store
from docmill.core.inputs import safe_name
from docmill.core.models import Job, JobStatus
from docmill.faces.common import FaceErrors, read_form, register_face_errors
from docmill.faces.contract import bearer, link, merge, method_not_allowed, query_key, request_body
from docmill.faces.convertapi import converters, render
from docmill.faces.convertapi import errors as vendor
from docmill.faces.convertapi.errors import fails
from docmill.faces.convertapi.request import (
    PAGE_RANGE,
    BodyReader,
    FileRef,
    StageContext,
    VendorRequest,
    answer_form,
    caller,
    check_page_range,
    client_job_id,
    credentials,
    face_prefix,
    filename_from_disposition,
    find_converter,
    own_hosts,
    parse_timeout,
    public_base,
    read_request,
    stage,
    translate,
    uploader,
    url_name,
)
from docmill.faces.convertapi.webhook import FACE
from docmill.faces.download import content_disposition, iter_blob, stream_blob
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings

log = logging.getLogger(__name__)

POLL_BUSY = 5030  # Docmill's code for the 503 of a concurrent poll (the vendor gives none)
# A sync conversion waits this much past the client's `Timeout`, which bounds queueing too
CLIENT_TIMEOUT_GRACE_S = 5.0
FACE_PATHS = ("/convert", "/upload", "/d/", "/user", "/job/", "/info/", "/async/")


class VendorJSON(JSONResponse):
    media_type = "application/json; charset=utf-8"


class _Route(APIRoute):
    """Turns an unexpected exception into the vendor's JSON 500 (the official client breaks
    on a non-JSON error body)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                return await handler(request)
            except (errors.DocmillError, HTTPException, RequestValidationError):
                raise
            except Exception:
                log.exception("ConvertAPI face: unexpected error on %s", request.url.path)
                return VendorJSON(vendor.body(50050, "Unexpected server error."),
                                  status_code=500)

        return guarded


# --- job rendering -----------------------------------------------------------------------------

def publish(job: Job) -> dict[str, public_files.PublicFileInfo]:
    """A `StoreFile` conversion's public links (created by the first request that answers
    the finished job, race-free), by blob key; none for one that returns its bytes."""
    if job.job_status is not JobStatus.SUCCESS or not (job.face_state or {}).get("store_file"):
        return {}
    return {p.blob_key: p for p in public_files.publish_outputs(job.id, job.org_id,
                                                                job.expires_at)}


_client_ids: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()


async def render_job(request: Request, job: Job) -> Response:
    """The vendor's answer for a job: the result (200), its error (5xx) or 202."""
    status = job.job_status
    if status is JobStatus.SUCCESS:
        published = await run_in_threadpool(publish, job)
        files = await run_in_threadpool(render.files_json, job, public_base(request), published)
        cost = max(1, int((job.result or {}).get("pages_processed") or 0))
        return VendorJSON({"ConversionCost": cost, "Files": files})
    if status is JobStatus.ERROR:
        code, payload = vendor.for_job(job.error_code, job.error_message,
                                       bool((job.params or {}).get("password")))
        return VendorJSON(payload, status_code=code)
    if status.is_gone:
        raise errors.NotFound(f"Job {job.id} not found.")
    return VendorJSON({}, status_code=202)


async def _raw_download(request: Request, job: Job, disposition: str) -> Response:
    """`download=inline|attachment` (or `Accept: application/octet-stream`): the bytes."""
    if job.job_status is not JobStatus.SUCCESS:
        return await render_job(request, job)
    outputs = job.files_of("output")
    if len(outputs) != 1:
        raise vendor.VendorError(400, 4000, f"The conversion made {len(outputs)} files; "
                                 "download= needs exactly one. Use the JSON answer.")
    out = outputs[0]
    inputs = job.files_of("input")
    base = PurePosixPath(inputs[0].name).stem if inputs else "result"
    name = render.result_names(base, outputs, (job.face_state or {}).get("file_name"))[0]
    return await stream_blob(out.blob_key, out.content_type, name, disposition=disposition,
                             size=out.size)


def _multipart(job: Job) -> Response:
    """Every output as one part of a `multipart/mixed` body, streamed from the blob store."""
    outputs = job.files_of("output")
    inputs = job.files_of("input")
    base = PurePosixPath(inputs[0].name).stem if inputs else "result"
    names = render.result_names(base or "result", outputs, (job.face_state or {}).get("file_name"))
    boundary = "docmill-" + uuid.uuid4().hex

    def parts() -> Any:
        for out, name in zip(outputs, names, strict=True):
            yield (f"--{boundary}\r\nContent-Type: {out.content_type}\r\n"
                   f"Content-Disposition: {content_disposition('attachment', name)}\r\n"
                   f"Content-Length: {out.size}\r\n\r\n").encode()
            yield from iter_blob(out.blob_key)
            yield b"\r\n"
        yield f"--{boundary}--\r\n".encode()

    return StreamingResponse(parts(), media_type=f"multipart/mixed; boundary={boundary}")


# --- the poll gate -----------------------------------------------------------------------------

class PollGate:
    """One poll per job at a time, and each repeated poll held until `hold_s` after the
    previous answer (in this process: Docmill runs one API process per deployment)."""

    def __init__(self) -> None:
        self.busy: set[str] = set()
        self.answered: dict[str, float] = {}

    def enter(self, job_id: str) -> float:
        """Seconds this poll must be held; VendorError 503 if another poll is in flight."""
        if job_id in self.busy:
            raise vendor.VendorError(503, POLL_BUSY, "Another poll of this job is in progress; "
                                     "only one poll request is accepted at a time.")
        self.busy.add(job_id)
        last = self.answered.get(job_id)
        hold = get_settings().convertapi_poll_hold_s
        return 0.0 if last is None else max(0.0, last + hold - time.monotonic())

    def leave(self, job_id: str, answered: bool) -> None:
        self.busy.discard(job_id)
        if answered:
            self.answered[job_id] = time.monotonic()
            if len(self.answered) > 10_000:
                horizon = time.monotonic() - 3600
                for key in [k for k, t in self.answered.items() if t < horizon]:
                    del self.answered[key]

    def forget(self, job_id: str) -> None:
        self.answered.pop(job_id, None)


polls = PollGate()



# --- the contract -------------------------------------------------------------------------------

_VALUE = {"type": "string"}
_FILE_FIELDS = {"File": {"type": "string", "format": "binary",
                         "description": "the document (or a URL, or a FileId of /upload)"},
                "Files": {"type": "array", "items": {"type": "string", "format": "binary"}}}


def convert_body(max_timeout: int) -> dict[str, Any]:
    """The parameters (`convertapi_max_timeout_s` bounds `Timeout`)."""
    options = {"Url": {"type": "string", "description": "the document's URL (web: the page)"},
               "StoreFile": {"type": "boolean"},
               "Timeout": {"type": "integer", "minimum": 1, "maximum": max_timeout},
               "Async": {"type": "boolean"},
               "JobId": {"type": "string", "format": "uuid"},
               "WebHook": {"type": "string", "format": "uri"},
               "FileName": {"type": "string"},
               "PageRange": {"type": "string", "pattern": PAGE_RANGE.pattern},
               "download": {"enum": ["inline", "attachment"]}}
    return request_body({
        "multipart/form-data": {"type": "object", "properties": {**_FILE_FIELDS, **options},
                                "additionalProperties": _VALUE},
        "application/x-www-form-urlencoded": {"type": "object", "properties": options,
                                              "additionalProperties": _VALUE},
        "application/json": {"type": "object", "required": ["Parameters"], "properties": {
            "Parameters": {"type": "array", "items": {
                "type": "object", "required": ["Name"],
                "properties": {"Name": {"type": "string", "minLength": 1}, "Value": {},
                               "FileValue": {}, "FileValues": {"type": "array"}}}}}},
        "application/octet-stream": {"type": "string", "format": "binary"},
    }, required=False, description="The parameters (in the query, a form, or JSON "
       "`Parameters`) and the document: a file, a URL, a FileId, or the raw body with "
       "Content-Disposition; other parameters are the converter's (GET /info/converters)")
_JOB_LINKS = {"PollJob": link("GET /job/{job_id}", job_id="$response.body#/JobId"),
              "DeleteJob": link("DELETE /job/{job_id}", job_id="$response.body#/JobId")}
CONVERTED = {200: {"description": "The result files (JSON), `{JobId}` with Async=true, the "
                                  "bytes with download=, or multipart/mixed when accepted",
                   "content": {"application/json": {}, "multipart/mixed": {},
                               "*/*": {"schema": {"type": "string", "format": "binary"}}},
                   "links": _JOB_LINKS}}
# A conversion that fails on its document is the vendor's 5xx (5001 failed, 5002 damaged,
# 5003 password, 5005/5007 URL, 5000 timeout): the official clients read those codes.
CONVERT_ERRORS = fails(400, 401, 403, 404, 409, 413, 415, 500)
POLLED = {200: {"description": "The result files"},
          202: {"description": "Still converting"}}
A_FILE = {200: {"description": "The file's bytes (HEAD: its headers)",
                "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}}
UPLOAD_BODY = request_body({
    "multipart/form-data": {"type": "object", "properties": {
        "file": {"type": "string", "format": "binary"}}},
    "application/octet-stream": {"type": "string", "format": "binary"},
}, required=False, description="The file: a multipart part, or the raw body named by "
   "Content-Disposition or ?filename=; or ?url= to fetch it")
UPLOADED = {200: {"description": "The stored file's id (text/plain when Accept asks)",
                  "content": {"application/json": {}, "text/plain": {"schema": _VALUE}}}}


# --- the router ---------------------------------------------------------------------------------

def build_router() -> APIRouter:
    """The face's routes, under `convertapi_prefix`; registers its error renderer."""
    prefix = face_prefix()
    paths = (prefix + "/",) if prefix else FACE_PATHS
    bare = frozenset({prefix} if prefix else {p.rstrip("/") for p in FACE_PATHS})
    register_face_errors(FaceErrors(paths, vendor.render, bare))
    router = APIRouter(prefix=prefix, tags=["convertapi"], route_class=_Route)
    add = router.add_api_route
    keyed = [bearer("ConvertApiToken", "An API key (2.x clients)"),
             query_key("ConvertApiSecret", "Secret", "An API key (1.x clients; also Token)")]
    converting: dict[str, Any] = {"responses": merge(CONVERTED, CONVERT_ERRORS),
                                  "dependencies": keyed,
                                  "openapi_extra": convert_body(
                                      get_settings().convertapi_max_timeout_s)}
    for method in ("GET", "POST"):  # one operation id each
        add("/convert/{source}/to/{target}", convert, methods=[method], **converting,
            summary="Convert (sync, Async=true, or semi-async with JobId)")
        add("/convert//to/{target}", convert_unnamed, methods=[method], **converting,
            summary="Convert, the input's format taken from the file")
        # 1.x clients put a `Converter` parameter in the path; Docmill has one per pair
        add("/convert/{source}/to/{target}/converter/{converter}", convert, methods=[method],
            **converting, summary="Convert, naming the vendor's converter")
        add("/convert//to/{target}/converter/{converter}", convert_unnamed, methods=[method],
            **converting, summary="Convert, naming the vendor's converter")
    add("/job/{job_id}", poll_job, methods=["GET"], summary="Poll a job", dependencies=keyed,
        responses=merge(POLLED, fails(401, 404, 500, 503)))
    add("/job/{job_id}", delete_job, methods=["DELETE"], summary="Delete a job and its files",
        dependencies=keyed, responses=fails(401, 404))
    add("/upload", upload, methods=["POST"], summary="Store a file", openapi_extra=UPLOAD_BODY,
        responses=merge(UPLOADED, fails(400, 401, 413, 415, 422, 500, 503)))
    for path in ("/d/{file_id}", "/d/{file_id}/{file_name}"):
        add(path, get_file, methods=["GET"], summary="Download a file",
            responses=merge(A_FILE, fails(404)))
        add(path, head_file, methods=["HEAD"], summary="File info",
            responses=merge(A_FILE, fails(404)))
        add(path, delete_file, methods=["DELETE"], summary="Delete a file",
            responses=fails(404))
    add("/user", user, methods=["GET"], summary="Account information", dependencies=keyed,
        responses=fails(401))
    add("/info/converters", list_converters, methods=["GET"],
        summary="Every {from}/to/{to} pair, generated from the engines")
    add("/info/canconvert/{source}/to/{target}", can_convert, methods=["GET"],
        summary="200 if this server converts the pair, else 404", responses=fails(404))
    every = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    # The bare paths too (`/convert`, `/d`): else Starlette answers them with a redirect to the
    # slashed path, and the vendor never redirects.
    for path in ([p.rstrip("/") + "/{rest:path}" for p in FACE_PATHS] + sorted(bare)
                 if not prefix else ["/{rest:path}", "/", ""]):
        router.add_api_route(path, unknown_route, methods=every, include_in_schema=False)
    return router


async def unknown_route(request: Request) -> Response:
    """Anything else under the face's paths: the vendor's error shape, never FastAPI's."""
    refused = method_not_allowed(request)
    if refused is not None:
        raise refused
    raise vendor.VendorError(404, 4040, f"No endpoint {request.method} {request.url.path}.")


async def convert_unnamed(request: Request, target: str, converter: str = "") -> Response:
    return await convert(request, "", target)


async def convert(request: Request, source: str, target: str, converter: str = "") -> Response:
    principal = await caller(request)
    req = await read_request(request)
    try:
        return await _convert(request, principal, req, source.strip().lower(),
                              target.strip().lower())
    finally:
        await req.close()


async def _convert(request: Request, principal: Principal, req: VendorRequest, source: str,
                   target: str) -> Response:
    if source in ("none", "null"):
        raise vendor.VendorError(400, 4000, "No input: give File, Files or Url.",
                                 {"File": ["required"]})
    converter = find_converter(source, target) if source else None
    if not source and not any(t == converters.vendor_ext(target)
                              for _, t in converters.table()):
        find_converter("any", target)  # the vendor's error for a target nothing produces
    url = req.get("Url")
    refs = list(req.files)
    if not refs and url:
        kind = "url" if re.match(r"^https?://", str(url), re.IGNORECASE) else "html"
        refs = [FileRef(req.sent_name("Url"), kind, str(url),
                        None if kind == "url" else "document.html")]
    if not refs:
        raise vendor.VendorError(400, 4000, "No input: give File, Files or Url.",
                                 {"File": ["required"]})
    check_page_range(req)
    timeout = parse_timeout(req, source)
    store_file = req.flag("StoreFile")
    run_async = req.flag("Async")
    job_id = client_job_id(req)
    webhook = req.get("WebHook")
    disposition, multipart = answer_form(req, request.headers.get("accept", ""))
    params = translate(converter, req, url) if converter else None
    options = {"store_file": store_file, "file_name": req.get("FileName"),
               "source": source, "target": target}

    async def answer(job: Job) -> Response:
        if run_async:
            return VendorJSON({"JobId": job.id})
        # without a client JobId nobody can ask for the job later: the core stops it
        outcome = await sync.await_sync(principal, job, reachable=job_id is not None,
                                        budget_s=timeout + CLIENT_TIMEOUT_GRACE_S)
        if not outcome.finished:
            raise errors.Timeout(f"The conversion did not finish within {timeout} s.")
        job = outcome.job
        if disposition:
            return await _raw_download(request, job, disposition)
        if multipart and job.job_status is JobStatus.SUCCESS:
            return _multipart(job)
        return await render_job(request, job)

    if job_id is None:
        job = await _submit(request, principal, req, refs, converter, params, options,
                            timeout, webhook, str(uuid.uuid4()))
        return await answer(job)

    async with _client_ids.setdefault(job_id, asyncio.Lock()):
        # one request per client JobId at a time in this process: a repeat finds the job
        existing = await run_in_threadpool(service.find_job, principal.org_id, job_id)
        if existing is None:
            job = await _submit(request, principal, req, refs, converter, params, options,
                                timeout, webhook, job_id)
    if existing is None:
        return await answer(job)
    if existing.face != FACE or existing.job_status.is_gone:
        raise vendor.VendorError(409, 4000, f"JobId {job_id} was already used.",
                                 {req.sent_name("JobId"): ["already used"]})
    return await answer(existing)  # a repeated request: attach, never convert twice


async def _submit(request: Request, principal: Principal, req: VendorRequest,
                  refs: list[FileRef], converter: converters.Converter | None,
                  params: dict[str, Any] | None, options: dict[str, Any], timeout: int,
                  webhook: str | None, job_id: str) -> Job:
    """Stage the inputs under `job_id` and submit; the staged files go away on any refusal
    (but never those of an existing job with the same id)."""
    settings = get_settings()
    source = options["source"]
    stager = service.new_stager(principal, job_id)
    default_ext = "html" if source == "web" else (
        "" if source in converters.SPECIAL_SOURCES or not source else
        converters.vendor_ext(source))
    started = time.monotonic()
    ctx = StageContext(org_id=principal.org_id, own_hosts=own_hosts(request), prefix=face_prefix(),
                       policy=policy_from_settings(),
                       download_timeout=min(settings.url_download_timeout_s, timeout),
                       default_ext=default_ext)
    try:
        try:
            await run_in_threadpool(stage, stager, refs, ctx)
        except errors.DownloadFailed:
            if time.monotonic() - started >= timeout - 0.5:
                raise errors.Timeout(f"The conversion did not finish within {timeout} s "
                                     "(downloading the input).") from None
            raise
        if converter is None:  # `/convert//to/x`: the first file says what it is
            first = stager.staged[0]
            found = converters.vendor_ext(PurePosixPath(first.name).suffix)
            if not found or not converters.known_source(found):
                found = converters.extension_of_type(first.content_type)
            converter = (converters.find(found, options["target"])
                         or converters.find("any", options["target"])
                         or find_converter(found or "unknown", options["target"]))
            options = {**options, "source": found}
            params = translate(converter, req, req.get("Url"))
        submission = service.Submission(
            operation=converter.operation, params=params or {}, webhook_url=webhook,
            face=FACE, face_state=options, timeout_s=float(timeout),
            retention_s=settings.convertapi_job_retention_s, job_id=job_id)
        return await run_in_threadpool(service.submit, principal, submission, stager)
    except errors.Conflict:
        # Another request (another API process) created this id first. Its files are under
        # the same prefix, so nothing is discarded; a job of this organization is attached.
        existing = await run_in_threadpool(service.find_job, principal.org_id, job_id)
        if existing is not None and existing.face == FACE and not existing.job_status.is_gone:
            return existing
        if existing is None:  # another organization's id: our prefix is our own
            await run_in_threadpool(stager.discard)
        raise vendor.VendorError(409, 4000, f"JobId {job_id} was already used.") from None
    except BaseException:
        await run_in_threadpool(stager.discard)
        raise


# --- jobs --------------------------------------------------------------------------------------

async def _own_job(principal: Principal, job_id: str) -> Job:
    job = await run_in_threadpool(service.get_job, principal, job_id)
    if job.face != FACE:
        raise errors.NotFound(f"Job {job_id} not found.")
    return job


async def poll_job(request: Request, job_id: str) -> Response:
    principal = await caller(request)
    hold = polls.enter(job_id)
    answered = False
    try:
        job = await _own_job(principal, job_id)
        if hold > 0 and not job.job_status.is_terminal:
            job = await service.wait_for(principal, job_id, hold)
        response = await render_job(request, job)
        answered = True
        return response
    finally:
        polls.leave(job_id, answered)


async def delete_job(request: Request, job_id: str) -> Response:
    principal = await caller(request)
    await _own_job(principal, job_id)
    await run_in_threadpool(service.delete_job, principal, job_id)
    polls.forget(job_id)
    return VendorJSON({"JobId": job_id, "Deleted": True})


# --- the file server ---------------------------------------------------------------------------

async def upload(request: Request) -> Response:
    org_id, max_bytes, retention = await uploader(request)
    anonymous = not credentials(request)[0]
    settings = get_settings()
    query = {k.lower(): v for k, v in request.query_params.multi_items()}
    name = query.get("filename") or None
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    file_id, stager = public_files.upload_stager(org_id, max_bytes)
    form_files: list[UploadFile] = []
    try:
        if content_type == "multipart/form-data":
            form = await read_form(request)
            form_files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
            part = next((v for k, v in form.multi_items() if isinstance(v, UploadFile)
                         and k.lower() in ("file", "filedata")), None) or \
                (form_files[0] if form_files else None)
            if part is None:
                raise vendor.VendorError(400, 4000, "The multipart body has no file part.")
            name = name or part.filename
            if not name:
                raise vendor.VendorError(400, vendor.NO_FILENAME, "The file has no name.")
            await run_in_threadpool(stager.add_stream, name, part.file)
        elif query.get("url"):
            url = query["url"]
            await run_in_threadpool(stager.add_url, url, name or url_name(url),
                                    policy_from_settings(), settings.url_download_timeout_s)
        else:
            name = name or filename_from_disposition(request.headers.get("content-disposition"))
            if not name:
                raise vendor.VendorError(
                    400, vendor.NO_FILENAME, "Content-Disposition with a file name (or the "
                    "filename query parameter) is required.")
            await run_in_threadpool(stager.add_stream, name, BodyReader(request))
        info = await run_in_threadpool(public_files.save_upload, org_id, file_id, stager,
                                       retention)
    except BaseException:
        await run_in_threadpool(stager.discard)
        raise
    finally:
        for part_file in form_files:
            await part_file.close()
    if "text/plain" in request.headers.get("accept", "") and \
            "json" not in request.headers.get("accept", ""):
        return PlainTextResponse(info.id)
    answer = {"FileId": info.id, "FileName": info.name,
              "FileExt": PurePosixPath(info.name).suffix[1:].lower(), "FileSize": info.size}
    if not anonymous:  # an anonymous upload is never served from /d/
        answer["Url"] = f"{public_base(request)}/d/{info.id}"
    return VendorJSON(answer)


def _file_headers(info: public_files.PublicFileInfo, name: str,
                  disposition: str | None) -> dict[str, str]:
    return {"Content-Type": info.content_type, "Content-Length": str(info.size),
            "Content-Disposition": content_disposition(disposition or "attachment", name)}


async def get_file(request: Request, file_id: str, file_name: str | None = None) -> Response:
    info = await run_in_threadpool(public_files.get_served, file_id.lower())
    disposition = (request.query_params.get("download") or "").lower() or None
    return await stream_blob(info.blob_key, info.content_type, safe_name(file_name or info.name),
                             disposition=disposition or "attachment", size=info.size)


async def head_file(request: Request, file_id: str, file_name: str | None = None) -> Response:
    info = await run_in_threadpool(public_files.get_served, file_id.lower())
    if not await run_in_threadpool(get_blob_store().exists, info.blob_key):
        raise errors.NotFound("File not found.")
    disposition = (request.query_params.get("download") or "").lower() or None
    return Response(status_code=200,
                    headers=_file_headers(info, safe_name(file_name or info.name), disposition))


async def delete_file(file_id: str, file_name: str | None = None) -> Response:
    await run_in_threadpool(public_files.delete_public, file_id.lower())
    return VendorJSON({"FileId": file_id, "Deleted": True})


# --- account and converter list ---------------------------------------------------------------

async def user(request: Request) -> Response:
    principal = await caller(request)
    org = await run_in_threadpool(org_by_slug, principal.org_slug)
    settings = get_settings()
    return VendorJSON({"Active": True, "FullName": org.name, "Email": "",
                       "Organization": org.slug, "ApiKey": principal.key_id,
                       "ConversionsTotal": settings.convertapi_conversions_total,
                       "ConversionsConsumed": 0})


async def list_converters() -> Response:
    rows = [c.describe() for _, c in sorted(converters.table().items())]
    return VendorJSON({"Converters": rows})


async def can_convert(source: str, target: str) -> Response:
    converter = find_converter(source.strip().lower(), target.strip().lower())
    return VendorJSON(converter.describe())
