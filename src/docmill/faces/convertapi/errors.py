"""ConvertAPI's error answers, and the one place core errors become them.

Every error is a JSON object `{"Code", "Message", "InvalidParameters"}` (the official client
reads those three keys; an array or a non-JSON body breaks it). The status and `Code` come
from the core error's `code`, or from a failed job's `error_code`, through `CODES`.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from docmill import errors
from docmill.faces.contract import Responses, error_responses

# core error code -> (HTTP status, vendor Code). The vendor's own codes: 4000 parameter
# validation, 4001 no content disposition, 4002 bad JSON, 4010 bad secret, 4011 bad token,
# 4013 credentials missing, 5000 timeout, 5001 conversion failed, 5002 damaged file,
# 5003 password protected, 5005 bad URL, 5006 invalid password, 5007 download failed,
# 5009 file id invalid, 50050 unexpected. 4040 (not found) and 4050 (method not allowed)
# are Docmill's: the vendor documents the status, not a code.
CODES: dict[str, tuple[int, int]] = {
    "unauthorized": (401, 4011),
    "forbidden": (403, 4000),
    "not_found": (404, 4040),
    "method_not_allowed": (405, 4050),
    "conflict": (409, 4000),
    "invalid_input": (400, 4000),
    "too_large": (413, 4000),
    "unsupported_format": (415, 4000),
    "unsafe_url": (500, 5005),
    "download_failed": (500, 5007),
    "timeout": (500, 5000),
    "password_required": (500, 5003),
    "engine_failed": (500, 5001),
    "worker_lost": (500, 5001),
    "internal_error": (500, 50050),
}
# A job that failed on its document: the same core code means something else once the
# request was accepted (its parameters were valid, so the document is at fault).
JOB_CODES: dict[str, tuple[int, int]] = {
    "invalid_input": (500, 5002),
}
WRONG_PASSWORD = (500, 5006)

NO_CREDENTIALS = 4013
BAD_SECRET = 4010
BAD_TOKEN = 4011
NO_FILENAME = 4001
BAD_JSON = 4002
FILE_ID_INVALID = 5009


class ConvertApiError(BaseModel):
    """The vendor's error object (what the OpenAPI document declares for every error)."""

    Code: int
    Message: str
    InvalidParameters: dict[str, list[str]] | None = None


def fails(*statuses: int) -> Responses:
    """The vendor's error answers a route declares (`responses=`)."""
    return error_responses(statuses, model=ConvertApiError)


class VendorError(errors.DocmillError):
    """An error the face answers with an explicit vendor status and Code."""

    def __init__(self, status: int, vendor_code: int, message: str,
                 invalid: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.vendor_code, self.invalid = status, vendor_code, invalid
        self.headers = headers or {}


def body(code: int, message: str, invalid: dict[str, list[str]] | None = None) -> dict[str, Any]:
    payload: dict[str, Any] = {"Code": code, "Message": message}
    if invalid:  # the client prints the value: no "None" when there is nothing to say
        payload["InvalidParameters"] = invalid
    return payload


def for_request(exc: errors.DocmillError) -> tuple[int, dict[str, Any]]:
    """Status and body of an error raised while handling a request."""
    if isinstance(exc, VendorError):
        return exc.status, body(exc.vendor_code, exc.message, exc.invalid)
    status, code = CODES.get(exc.code, CODES["internal_error"])
    invalid = exc.details.get("invalid_parameters") if exc.details else None
    if invalid is None and exc.details.get("problems"):
        invalid = {}
        for problem in exc.details["problems"]:
            invalid.setdefault(str(problem.get("param", "params")), []).append(
                str(problem.get("message", "")))
    return status, body(code, exc.message, invalid)


def for_job(error_code: str | None, message: str | None,
            password_given: bool = False) -> tuple[int, dict[str, Any]]:
    """Status and body of a failed job (a sync answer, or a poll of an async one)."""
    code = error_code or "engine_failed"
    if code == "password_required" and password_given:
        status, vendor = WRONG_PASSWORD
    else:
        status, vendor = JOB_CODES.get(code) or CODES.get(code, CODES["engine_failed"])
    return status, body(vendor, message or "The conversion failed.")


def render(request: Request, exc: errors.DocmillError) -> Response:
    status, payload = for_request(exc)
    return JSONResponse(payload, status_code=status,
                        headers=exc.headers if isinstance(exc, VendorError) else None)
