"""Pieces every face shares: the request body cap, form reading into a stager, and the
registry that routes a core error to the face that must render it."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.core.inputs import InputStager, StagedInput
from docmill.errors import DocmillError, InvalidInput, TooLarge

MULTIPART_MAX_FILES = 1000
MULTIPART_MAX_FIELDS = 1000


class BodyLimitMiddleware:
    """Refuses request bodies over `limit` bytes while they stream in (a declared
    Content-Length over the limit is refused before reading anything). The error is raised
    inside the route that reads the body, so each face renders it in its own shape."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_big = bool(declared and declared.isdigit() and int(declared) > limit)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if too_big:
                raise TooLarge(f"the request body is larger than the {limit} byte limit")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise TooLarge(f"the request body is larger than the {limit} byte limit")
            return message

        await self.app(scope, limited_receive, send)


async def read_form(request: Request) -> FormData:
    try:
        return await request.form(max_files=MULTIPART_MAX_FILES, max_fields=MULTIPART_MAX_FIELDS)
    except DocmillError:
        raise
    except Exception as exc:  # starlette's MultiPartException and parser errors
        raise InvalidInput(f"malformed multipart body: {exc}") from exc


async def read_json(request: Request) -> Any:
    body = await request.body()
    if not body.strip():
        raise InvalidInput("the request body is empty; send a JSON object")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"malformed JSON: {exc}") from exc


async def stage_upload(stager: InputStager, upload: UploadFile,
                       name: str | None = None) -> StagedInput:
    try:
        return await run_in_threadpool(stager.add_stream, name or upload.filename, upload.file)
    finally:
        await upload.close()


def is_upload(value: object) -> TypeGuard[UploadFile]:
    return isinstance(value, UploadFile)


@dataclass(frozen=True)
class FaceErrors:
    """How one face renders core errors, for the paths it owns."""

    prefixes: tuple[str, ...]
    render: Callable[[Request, DocmillError], Response]
    exact: frozenset[str] = frozenset()  # bare paths (`/d`, not `/docs`)


_faces: list[FaceErrors] = []


def register_face_errors(face: FaceErrors) -> None:
    _faces.append(face)


def status_for(exc: DocmillError, table: Sequence[tuple[Any, int]], default: int = 500) -> int:
    """A face's error table read top down: the status of the first row whose class (or
    tuple of classes) `exc` is an instance of, so a subclass row must come first."""
    for classes, status in table:
        if isinstance(exc, classes):
            return status
    return default


def renderer_for(path: str) -> Callable[[Request, DocmillError], Response] | None:
    for face in _faces:
        if path in face.exact or path.startswith(face.prefixes):
            return face.render
    return None


def public_base(request: Request, prefix: str = "") -> str:
    """Absolute base of the URLs a face hands to clients: the configured public URL, else the
    address the client used (Host, or X-Forwarded-Host/-Proto behind a proxy), plus the
    face's mount `prefix` ("" or "/something")."""
    from docmill.settings import get_settings

    settings = get_settings()
    if settings.public_url:
        return settings.public_url.rstrip("/") + prefix
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = (request.headers.get("x-forwarded-host") or request.headers.get("host")
            or f"{settings.host}:{settings.port}").split(",")[0].strip()
    return f"{proto}://{host}{request.scope.get('root_path', '')}{prefix}"
