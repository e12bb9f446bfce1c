"""Docutray's error answers, and the one place core errors become them.

Three shapes, kept per endpoint as the vendor does: `{"error": "..."}` (auth, document
types, conversion status), `{"message": "..."}` (input, identification, 500s) and
`{"message": "Validation error", "errors": [...]}`. Input problems are never 429 or 5xx:
the official client re-sends those, POSTs included.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import Response

from docmill import errors
from docmill.faces.contract import Responses, error_responses
from docmill.settings import get_settings

INVALID_KEY = {"error": "Invalid API key"}
CONTENT_TYPE = "Unsupported Content-Type. Use multipart/form-data or application/json."


class DocutrayError(BaseModel):
    """Docutray's error shapes, as declared in the OpenAPI document: `{"error"}` or
    `{"message"}`, with `errors` (validation), `details` (pagination) or the rate limit's
    fields."""

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "anyOf": [{"required": ["error"]}, {"required": ["message"]}]})
    error: str | None = None
    message: str | None = None
    errors: list[str] | None = None
    details: list[dict[str, Any]] | None = None


def fails(*statuses: int) -> Responses:
    """The vendor's error answers a route declares (`responses=`)."""
    return error_responses(statuses, model=DocutrayError)


class VendorError(errors.DocmillError):
    """An answer with an explicit status and body (and headers)."""

    def __init__(self, status: int, body: dict[str, Any],
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(str(body.get("message") or body.get("error") or status))
        self.status, self.body, self.headers = status, body, headers or {}


def validation(*messages: str) -> VendorError:
    return VendorError(400, {"message": "Validation error", "errors": list(messages)})


def not_allowed(exc: errors.MethodNotAllowed) -> VendorError:
    """A 405 in the `{"error", "message"}` shape, `Allow` naming the path's methods."""
    allow: list[str] = list(exc.details.get("allow") or ())
    return VendorError(405, {"error": "Method not allowed", "message": exc.message},
                       {"Allow": ", ".join(allow)})


def _size_text() -> str:
    limit = get_settings().max_upload_bytes
    return f"{limit // (1024 * 1024)}MB" if limit >= 1024 * 1024 else f"{limit} bytes"


def _messages(exc: errors.DocmillError) -> list[str]:
    found = exc.details.get("errors") if exc.details else None
    if isinstance(found, list) and found:
        return [str(m) for m in found]
    problems = exc.details.get("problems") if exc.details else None
    if isinstance(problems, list) and problems:
        return [f"{p.get('param', 'params')}: {p.get('message', '')}" for p in problems
                if isinstance(p, dict)]
    return [exc.message]


def for_input(exc: errors.DocmillError) -> tuple[int, dict[str, Any]]:
    """Errors of the processing endpoints (convert, identify)."""
    if isinstance(exc, errors.MethodNotAllowed):
        exc = not_allowed(exc)
    if isinstance(exc, VendorError):
        return exc.status, exc.body
    if isinstance(exc, errors.Unauthorized):
        return 401, dict(INVALID_KEY)
    if isinstance(exc, errors.TooLarge):
        return 413, {"message": f"File exceeds maximum allowed size ({_size_text()})"}
    if isinstance(exc, errors.DownloadFailed):
        if "timed out" in exc.message:
            timeout_ms = int(get_settings().url_download_timeout_s * 1000)
            return 408, {"message": f"URL download timeout ({timeout_ms}ms)"}
        answered = re.search(r"answered HTTP (\d{3})", exc.message)
        if answered:
            code = int(answered.group(1))
            try:
                reason = HTTPStatus(code).phrase
            except ValueError:
                reason = ""
            return 400, {"message": f"Error accessing URL: {code} {reason}".strip()}
        return 400, {"message": f"Error accessing URL: {exc.message}"}
    if isinstance(exc, errors.UnsafeUrl):
        return 400, {"message": f"Error accessing URL: {exc.message}"}
    if isinstance(exc, errors.NotFound):
        return 404, {"message": exc.message}
    if isinstance(exc, errors.Forbidden):
        return 403, {"message": exc.message}
    if isinstance(exc, errors.Conflict):
        return 409, {"message": exc.message}
    if isinstance(exc, (errors.InvalidInput, errors.UnsupportedFormat)):
        return 400, {"message": "Validation error", "errors": _messages(exc)}
    return 500, {"message": "Internal server error: Failed to process image"}


def for_doctypes(exc: errors.DocmillError) -> tuple[int, dict[str, Any]]:
    """Errors of /api/document-types: `{"error"}`, except validation of a body."""
    if isinstance(exc, errors.MethodNotAllowed):
        exc = not_allowed(exc)
    if isinstance(exc, VendorError):
        return exc.status, exc.body
    if isinstance(exc, errors.Unauthorized):
        return 401, dict(INVALID_KEY)
    if isinstance(exc, errors.NotFound):
        return 404, {"error": "Document type not found"}
    if isinstance(exc, errors.Forbidden):
        return 403, {"error": "Insufficient permissions"}
    if isinstance(exc, errors.Conflict):
        return 409, {"error": exc.message, "message": exc.message}
    if isinstance(exc, errors.TooLarge):
        return 413, {"error": "Request body too large"}
    if isinstance(exc, errors.InvalidInput):
        return 400, {"message": "Validation error", "errors": _messages(exc)}
    return 500, {"error": "Error processing request"}


def for_knowledge(exc: errors.DocmillError) -> tuple[int, dict[str, Any]]:
    """Errors of /api/knowledge-bases: as document types', naming what was not found."""
    if isinstance(exc, errors.NotFound):
        return 404, {"error": exc.message}
    return for_doctypes(exc)


def for_path(path: str) -> Any:
    if "/api/knowledge-bases" in path:
        return for_knowledge
    return for_doctypes if "/api/document-types" in path else for_input


def render(request: Request, exc: errors.DocmillError) -> Response:
    """For errors that escape a route (the app's handler routes `/api/` paths here)."""
    status, body = for_path(request.url.path)(exc)
    headers = exc.headers if isinstance(exc, VendorError) else None
    return JSONResponse(body, status_code=status, headers=headers)
