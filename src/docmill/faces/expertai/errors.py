"""Core errors as expert.ai's API answers them: Micronaut's `vnd.error` JSON."""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from docmill import errors
from docmill.faces.common import status_for
from docmill.faces.contract import Responses, error_responses

JSON_TYPE = "application/json"


STATUS_BY_ERROR: list[tuple[Any, int]] = [
    (errors.Unauthorized, 401),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.MethodNotAllowed, 405),
    (errors.TooLarge, 413),
    ((errors.InvalidInput, errors.UnsupportedFormat, errors.Conflict), 400),
]


def error_status(exc: errors.DocmillError) -> int:
    return status_for(exc, STATUS_BY_ERROR)


def error_body(status: int, path: str, messages: list[str]) -> dict[str, Any]:
    return {"message": HTTPStatus(status).phrase,
            "_links": {"self": {"href": path, "templated": False}},
            "_embedded": {"errors": [{"message": m} for m in messages]}}


# Micronaut's `vnd.error`, what the official client reads.
ERROR_SCHEMA = {"type": "object", "required": ["message", "_embedded"], "properties": {
    "message": {"type": "string"},
    "_links": {"type": "object"},
    "_embedded": {"type": "object", "required": ["errors"], "properties": {"errors": {
        "type": "array", "items": {"type": "object", "required": ["message"],
                                   "properties": {"message": {"type": "string"}}}}}}}}


def fails(*statuses: int) -> Responses:
    """The vnd.error answers a route declares (`responses=`)."""
    return error_responses(statuses, schema=ERROR_SCHEMA)


def render_error(request: Request, exc: errors.DocmillError) -> Response:
    status = error_status(exc)
    message = exc.message if status != 500 else "Internal Server Error: " + exc.message
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return json_response(error_body(status, request.url.path, [message]), status, headers)


def json_response(body: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, ensure_ascii=False).encode("utf-8"), status_code=status,
                    media_type=JSON_TYPE, headers=headers)
