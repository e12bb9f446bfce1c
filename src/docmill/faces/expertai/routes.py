"""expert.ai Extract's HTTP endpoints over the core's service functions.

    POST /oauth2/token                 {"username": org slug, "password": API key} -> bare JWT
    POST /beta/layout-document-async   {"document": {"name", "data": base64}} -> 202 {"taskId"}
    GET  /beta/status/{taskId}         PENDING | PROGRESS | SUCCESS (+ result) | FAILURE

A task is a `layout.analyze` job created by this face (`face == "expertai"`); the result is
rendered at SUCCESS from the job's native document JSON (`result.py`). Every error, 4xx or
5xx, has the Micronaut `vnd.error` body the official client reads (`message` plus
`_embedded.errors[*].message`). Doubled slashes in these paths are folded (`FoldSlashes`: a
base URL configured with a trailing slash), wrong verbs answer 405 and unknown paths under
/beta 404, in that same shape. The spec's decisions are listed in docs/expertai.md.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from docmill import errors
from docmill.core import service
from docmill.core.auth import Principal, authenticate
from docmill.faces.common import FaceErrors, register_face_errors
from docmill.faces.contract import bearer, link, merge, method_not_allowed, request_body
from docmill.faces.expertai import render, tokens
from docmill.faces.expertai import request as parse
from docmill.faces.expertai.errors import fails, render_error
from docmill.faces.expertai.errors import json_response as _json
from docmill.settings import get_settings

FACE = "expertai"
OPERATION = "layout.analyze"
JSON_TYPE = "application/json"
TEXT_TYPE = "text/plain; charset=utf-8"
_TASK_ID = re.compile(r"^[A-Za-z0-9._~-]{1,2000}$")
_ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


# --- routing -------------------------------------------------------------------------------

router = APIRouter(tags=["expert.ai"])
_PREFIX = get_settings().expertai_prefix.rstrip("/")
_OWN_PATHS = (_PREFIX + "/oauth2/token", _PREFIX + "/beta/", _PREFIX + "/beta")
register_face_errors(FaceErrors(_OWN_PATHS, render_error))


def _route(methods: list[str], path: str, summary: str | None = None,
           **declared: Any) -> Callable[..., Any]:
    """Register at `prefix + path`; the other verbs on the same path answer 405. `declared`
    is the route's contract (`responses`, `openapi_extra`)."""

    def register(endpoint: Callable[..., Any]) -> Any:
        router.add_api_route(_PREFIX + path, endpoint, methods=methods, summary=summary,
                             **declared)
        router.add_api_route(_PREFIX + path, _wrong_method, include_in_schema=False,
                             methods=[m for m in _ALL_METHODS if m not in methods])
        return endpoint

    return register


class FoldSlashes:
    """ASGI middleware: `//beta//status/x` is served as `/beta/status/x`. The official client
    builds URLs as `host + "/layout-document-async"`, so a base URL written with a trailing
    slash doubles one; only this face's paths are touched."""

    _DOUBLED = re.compile(r"/{2,}")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            folded = self._DOUBLED.sub("/", scope["path"])
            if folded.startswith(_OWN_PATHS):
                scope = {**scope, "path": folded,
                         "raw_path": self._DOUBLED.sub("/", scope.get("raw_path", b"").decode(
                             "latin-1")).encode("latin-1")}
        await self.app(scope, receive, send)


async def _wrong_method(request: Request) -> Response:
    raise method_not_allowed(request) or errors.MethodNotAllowed(
        f"Method {request.method} not allowed for {request.url.path}")


# --- token ---------------------------------------------------------------------------------


def _issue(username: str, password: str) -> str:
    try:
        principal = authenticate(password)
    except errors.Unauthorized:
        principal = None
    if principal is None or principal.org_slug != username.strip().lower():
        raise errors.Unauthorized("Unauthorized: wrong username or password")
    return tokens.issue_token(principal.key_id)


TOKEN_BODY = request_body({JSON_TYPE: {
    "type": "object", "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string",
                                                                "minLength": 1}}}},
    description="username: the organization's slug, password: one of its API keys")
TOKEN_AUTH = bearer("ExpertAiToken", "A token from POST /oauth2/token", "JWT")
TOKEN = {200: {"description": "The bearer token (a JWT), as plain text",
               "content": {"text/plain": {"schema": {"type": "string"}}}}}


@_route(["POST"], "/oauth2/token", "Get a bearer token (username = organization slug, "
        "password = an API key)", openapi_extra=TOKEN_BODY,
        responses=merge(TOKEN, fails(400, 401, 413)))
async def token(request: Request) -> Response:
    username, password = parse.credentials(await parse.read_body(request,
                                                                 parse.TOKEN_BODY_MAX))
    value = await run_in_threadpool(_issue, username, password)
    return Response(value.encode("ascii"), status_code=200, media_type=TEXT_TYPE)


# --- start a task --------------------------------------------------------------------------


def _start(principal: Principal, body: bytes) -> str:
    """Parse (off the event loop: up to 14 MB of JSON and Base64), stage and submit."""
    name, raw = parse.document(body)
    settings = get_settings()
    stager = service.new_stager(principal)
    filename = name if name.strip() else "document.pdf"
    submission = service.Submission(
        operation=OPERATION, params={"max_pages": settings.expertai_max_pages}, face=FACE,
        face_state={"name": name}, timeout_s=settings.expertai_timeout_s,
        retention_s=settings.expertai_retention_s)
    try:
        staged = stager.add_stream(filename, io.BytesIO(raw))
    except BaseException:
        stager.discard()
        raise
    try:
        return service.submit(principal, submission, stager).id
    except errors.UnsupportedFormat:
        # The vendor accepts the request and fails the task; no job is made for it.
        return tokens.refused_task_id(principal.org_id, staged.content_type.split(";")[0])


LAYOUT_BODY = request_body({JSON_TYPE: {
    "type": "object", "required": ["document"], "properties": {"document": {
        "type": "object", "required": ["name", "data"],
        "properties": {"name": {"type": "string"},
                       "data": {"type": "string", "minLength": 1, "contentEncoding": "base64",
                                "description": "the PDF or image, Base64"}}}}}})
STARTED = {202: {"description": "The task's id", "links": {
    "Status": link("GET /beta/status/{task_id}", task_id="$response.body#/taskId")}}}


@_route(["POST"], "/beta/layout-document-async", "Start the layout analysis of a document",
        openapi_extra=LAYOUT_BODY, status_code=202, dependencies=[TOKEN_AUTH],
        responses=merge(STARTED, fails(400, 401, 403, 413)))
async def layout_document_async(request: Request) -> Response:
    principal = await run_in_threadpool(parse.token_principal, request)
    body = await parse.read_body(request, get_settings().expertai_max_request_bytes)
    task_id = await run_in_threadpool(_start, principal, body)
    return _json({"taskId": task_id}, 202,
                 {"Location": f"{_PREFIX}/beta/status/{task_id}"})


# --- status --------------------------------------------------------------------------------


def _status(principal: Principal, task_id: str) -> dict[str, Any]:
    not_found = errors.NotFound(f"Not Found: no task {task_id}")
    if not _TASK_ID.match(task_id):
        raise not_found
    refused = tokens.refusal_of(task_id, principal.org_id)
    if refused is not None:
        return {"current": 0, "state": "FAILURE", "message": f"the document is not a PDF "
                f"({refused or 'unknown type'}): only PDF documents and images can be analysed"}
    try:
        job = service.get_job(principal, task_id)
    except errors.NotFound:
        raise not_found from None
    if job.face != FACE:
        raise not_found
    return render.status_body(job)


@_route(["GET"], "/beta/status/{task_id}", "The state of a task, and its result once done",
        responses=fails(401, 403, 404), dependencies=[TOKEN_AUTH])
async def status(task_id: str, request: Request) -> Response:
    def answer() -> dict[str, Any]:
        return _status(parse.token_principal(request), task_id)

    return _json(await run_in_threadpool(answer))


async def _unknown(request: Request) -> Response:
    raise errors.NotFound(f"Not Found: {request.url.path}")


for _path in (_PREFIX + "/beta", _PREFIX + "/beta/{rest:path}"):
    router.add_api_route(_path, _unknown, methods=list(_ALL_METHODS), include_in_schema=False)
