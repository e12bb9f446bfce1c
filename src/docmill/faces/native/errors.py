"""Core errors as the native face answers them: `{"error": {code, message, details}}` with
the status below; a job of another organization is a 404, never a 403."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from docmill import errors
from docmill.faces.common import FaceErrors, register_face_errors, status_for
from docmill.faces.contract import Responses, error_responses

STATUS_BY_ERROR: list[tuple[type[errors.DocmillError], int]] = [
    (errors.NotFound, 404),
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.MethodNotAllowed, 405),
    (errors.Conflict, 409),
    (errors.TooLarge, 413),
    (errors.UnsupportedFormat, 415),
    (errors.DownloadFailed, 422),
    (errors.InvalidPipeline, 422),
    (errors.InvalidInput, 400),
    (errors.Timeout, 504),
]


def error_status(exc: errors.DocmillError) -> int:
    return status_for(exc, STATUS_BY_ERROR)


def render_error(request: Request, exc: errors.DocmillError) -> Response:
    body: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if exc.details:
        body["details"] = exc.details
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, errors.Unauthorized) else None
    return JSONResponse({"error": body}, status_code=error_status(exc), headers=headers)


register_face_errors(FaceErrors(("/v1/",), render_error))


class NativeErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class NativeError(BaseModel):
    """Every native error: `{"error": {code, message, details}}`."""

    error: NativeErrorDetail


def fails(*statuses: int) -> Responses:
    """The native error answers a route declares (`responses=`)."""
    return error_responses(statuses, model=NativeError)
