"""Reading native requests: the caller's key, the bodies of `/v1/jobs` and pipeline runs
(JSON references or multipart uploads) and the fields they share, a document type's fields
and an example's `expected`, a new key's name and role. Staging runs on a thread; nothing
here answers HTTP."""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from docmill import errors
from docmill.core.auth import Principal, authenticate, cached_principal
from docmill.core.inputs import InputStager
from docmill.core.models import Role
from docmill.faces.common import is_upload
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings

# Declared for the OpenAPI document (and clients); `principal` reads the headers itself, so
# a malformed Authorization gets the native 401 rather than FastAPI's.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key: `Bearer dm_...`")
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False,
                              description="An API key, instead of Authorization")


async def principal(
    request: Request,
    _bearer: Annotated[Any, Security(bearer_scheme)] = None,
    x_api_key: Annotated[str | None, Security(api_key_scheme)] = None,
) -> Principal:
    key = x_api_key
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise errors.Unauthorized("use 'Authorization: Bearer <key>'")
        key = value
    # A key seen in the last few seconds is answered from memory, on the loop; otherwise the
    # database lookup runs in a thread.
    cached = cached_principal(key)
    return cached if cached is not None else await run_in_threadpool(authenticate, key)


Caller = Annotated[Principal, Depends(principal)]
NAME_MAX = 200  # an API key's name


class InputRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    base64: str | None = None
    filename: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> InputRef:
        if (self.url is None) == (self.base64 is None):
            raise ValueError("each input needs exactly one of 'url' or 'base64'")
        return self


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    operation: str
    params: dict[str, Any] = Field(default_factory=dict)
    inputs: list[InputRef] = Field(min_length=1)
    webhook_url: str | None = None
    timeout_s: float | None = Field(None, gt=0, le=24 * 3600)


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[InputRef] = Field(min_length=1)
    webhook_url: str | None = None
    timeout_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)


Body = TypeVar("Body", bound=BaseModel)


def parse_params(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise errors.InvalidInput(f"'params' must be a JSON object: {exc}") from exc
    if not isinstance(value, dict):
        raise errors.InvalidInput("'params' must be a JSON object")
    return value


def parse_timeout(raw: str | None) -> float | None:
    """The multipart `timeout_s` field, held to the same bounds as the JSON body's."""
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise errors.InvalidInput(f"'timeout_s' must be a number of seconds, not {raw!r}") from None
    if not 0 < value <= 24 * 3600:
        raise errors.InvalidInput("'timeout_s' must be more than 0 and at most 86400 seconds")
    return value


def upload_fields(form: Any) -> tuple[list[Any], float | None, str | None]:
    """The `file` parts (at least one), `timeout_s` and `webhook_url` of a multipart body:
    /v1/jobs and pipeline runs take the same."""
    uploads = [v for k, v in form.multi_items() if k == "file" and is_upload(v)]
    if not uploads:
        raise errors.InvalidInput("attach at least one 'file'")
    timeout_raw, webhook = form.get("timeout_s"), form.get("webhook_url")
    return (uploads, parse_timeout(timeout_raw if isinstance(timeout_raw, str) else None),
            webhook if isinstance(webhook, str) and webhook else None)


def invalid_request(what: str, exc: ValidationError) -> errors.InvalidInput:
    """A JSON body its model refused, as the native 400 naming each field."""
    problems = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                for e in exc.errors()]
    return errors.InvalidInput(f"invalid {what}: " + "; ".join(
        f"{p['field']}: {p['message']}" for p in problems), problems=problems)


def is_multipart(content_type: str, form_fields: str) -> bool:
    """True for a multipart body, False for JSON (or none); any other encoding is refused,
    naming the form's `form_fields`."""
    if content_type.startswith("multipart/form-data"):
        return True
    if content_type.startswith("application/json") or not content_type:
        return False
    raise errors.UnsupportedFormat(f"send multipart/form-data ({form_fields}) or "
                                   "application/json")


def job_form(form: Any) -> tuple[str, dict[str, Any], list[Any], float | None, str | None]:
    """A multipart `/v1/jobs` body: `(operation, params, file parts, timeout_s,
    webhook_url)`."""
    operation = form.get("operation")
    if not isinstance(operation, str) or not operation:
        raise errors.InvalidInput("the 'operation' field is required")
    raw_params = form.get("params")
    params = parse_params(raw_params if isinstance(raw_params, str) else None)
    uploads, timeout_s, webhook_url = upload_fields(form)
    return operation, params, uploads, timeout_s, webhook_url


def validated(model: type[Body], body: Any, what: str) -> Body:
    """A JSON body read into its model, or the native 400 naming each refused field."""
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise invalid_request(what, exc) from None


def doctype_fields(body: Any) -> Any:
    """Native names onto the core's field names (`schema` is a pydantic-reserved word)."""
    if isinstance(body, dict) and "schema" in body and "json_schema" not in body:
        body = {**body, "json_schema": body["schema"]}
        body.pop("schema")
    return body


def expected_field(value: Any) -> Any:
    """The multipart `expected` field: JSON as text (`doctypes.check_expected` checks it)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidInput("'expected' must be a JSON object, as a text field")
    try:
        return json.loads(value)
    except ValueError as exc:
        raise errors.InvalidInput(f"'expected' is not JSON: {exc}") from exc


def key_request(body: Any) -> tuple[str, Role]:
    """A new key's `{name, role}`: the name stripped, a user key unless `admin` is asked."""
    if not isinstance(body, dict):
        raise errors.InvalidInput("send a JSON object {name, role}")
    name, role = body.get("name", ""), body.get("role", Role.USER.value)
    if not isinstance(name, str) or len(name) > NAME_MAX:
        raise errors.InvalidInput(f"'name' must be a string of at most {NAME_MAX} characters")
    if role not in (Role.USER.value, Role.ADMIN.value):
        raise errors.InvalidInput("'role' must be 'user' or 'admin'")
    return name.strip(), Role(role)


def stage_uploads(stager: InputStager, uploads: list[Any]) -> InputStager:
    """Streams multipart uploads into the stager (on a thread); on any failure what was
    staged goes away."""
    try:
        for upload in uploads:
            stager.add_stream(upload.filename, upload.file)
    except BaseException:
        stager.discard()
        raise
    return stager


async def stage_refs(stager: InputStager, refs: list[InputRef]) -> InputStager:
    """Downloads (through the SSRF guard) or decodes each input into the stager; on any
    failure what was staged goes away."""
    settings = get_settings()

    def stage_all() -> None:
        policy = policy_from_settings()
        for ref in refs:
            if ref.url is not None:
                stager.add_url(ref.url, ref.filename, policy, settings.url_download_timeout_s)
            else:
                stager.add_base64(ref.filename, ref.base64 or "")

    try:
        await run_in_threadpool(stage_all)
    except BaseException:
        await run_in_threadpool(stager.discard)
        raise
    return stager


def wait_seconds(wait: float | None) -> float:
    return min(max(wait or 0.0, 0.0), get_settings().wait_max_s)
