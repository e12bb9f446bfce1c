"""What a route declares in the OpenAPI document, so the published contract is the one the
server keeps (docs/api-contract.md): every status it answers with its face's error body,
the request body it really reads (faces parse many bodies from the raw `Request`, so FastAPI
cannot see them) and the methods a path allows, for the 405 answers and their `Allow`.

A face builds its `responses=` from `error_responses(model, ...)`; a route reading its body
itself passes `openapi_extra=request_body(...)`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Security
from fastapi.openapi.models import APIKey, APIKeyIn, HTTPBase, HTTPBearer
from fastapi.security.base import SecurityBase
from pydantic import BaseModel
from starlette.requests import Request

from docmill import errors

Responses = dict[int | str, dict[str, Any]]

DESCRIPTIONS = {
    400: "The request is not valid",
    401: "Missing or invalid credentials",
    403: "The credentials may not do this",
    404: "Not found (or another organization's)",
    405: "The path does not allow this method; `Allow` lists those it does",
    408: "The work did not finish in time; it goes on",
    409: "Conflicts with the resource's current state",
    413: "The request body is larger than the server's limit",
    415: "The content type or the document's real type is not accepted",
    422: "The document could not be processed",
    429: "Rate limited; retry after `Retry-After` seconds",
    500: "The conversion or the server failed",
    503: "Busy; retry later",
    504: "The wait ran out",
}
# The largest page number a listing takes: past it the row offset would overflow the
# database's 64-bit integer (a 500 instead of an empty page).
MAX_PAGE = 1_000_000_000
ALLOW_HEADER = {"Allow": {"description": "The methods this path allows",
                          "schema": {"type": "string"}}}


def error_responses(statuses: Iterable[int], *, model: type[BaseModel] | None = None,
                    schema: dict[str, Any] | None = None,
                    media_type: str = "application/json") -> Responses:
    """One declared answer per status, each with the face's error body (a pydantic `model`,
    or a raw `schema` for bodies that are not JSON)."""
    declared: Responses = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": DESCRIPTIONS.get(status,
                                                                 HTTPStatus(status).phrase)}
        if model is not None and media_type == "application/json":
            entry["model"] = model
        else:
            body = schema if schema is not None else inline_schema(model) if model else {}
            entry["content"] = {media_type: {"schema": body}}
        if status == 405:
            entry["headers"] = ALLOW_HEADER
        declared[status] = entry
    return declared


def merge(*parts: Mapping[Any, Any]) -> Responses:
    merged: Responses = {}
    for part in parts:
        merged.update(part)
    return merged


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema with its `$defs` substituted in place: `openapi_extra` is
    copied into the document as is, where a `#/$defs/...` reference would not resolve."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(copy.deepcopy(defs[ref.rsplit("/", 1)[1]]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def request_body(content: dict[str, dict[str, Any]], *, required: bool = True,
                 description: str | None = None) -> dict[str, Any]:
    """`openapi_extra` declaring a body the route reads from the raw request: `content` maps
    each accepted media type to its JSON Schema."""
    body: dict[str, Any] = {"required": required, "content": {
        t: {"schema": _repeatable(s) if t == "multipart/form-data" else s}
        for t, s in content.items()}}
    if description:
        body["description"] = description
    return {"requestBody": body}


def query_parameters(**schemas: dict[str, Any]) -> dict[str, Any]:
    """`openapi_extra` declaring optional query parameters a route reads from the raw request
    (FastAPI adds them to those it declares itself)."""
    return {"parameters": [{"name": name, "in": "query", "required": False, "schema": schema}
                           for name, schema in schemas.items()]}


class DeclaredCredentials(SecurityBase):
    """A security scheme in the OpenAPI document for routes that read their credentials
    themselves (each face parses them and answers its own 401): it checks nothing."""

    def __init__(self, name: str, model: APIKey | HTTPBase, description: str) -> None:
        self.scheme_name, self.model = name, model
        self.model.description = description

    async def __call__(self) -> None:
        return None


def bearer(name: str, description: str, token_format: str | None = None) -> Any:
    return Security(DeclaredCredentials(name, HTTPBearer(bearerFormat=token_format),
                                        description))


def basic(name: str, description: str) -> Any:
    return Security(DeclaredCredentials(name, HTTPBase(scheme="basic"), description))


def query_key(name: str, parameter: str, description: str) -> Any:
    return Security(DeclaredCredentials(
        name, APIKey(**{"in": APIKeyIn.query}, name=parameter), description))


def _repeatable(schema: dict[str, Any]) -> dict[str, Any]:
    """A form field sent more than once is read as its last value (a file field: as the
    files it names), so each field may also come as an array of what it takes."""
    properties = schema.get("properties")
    if not properties:
        return schema
    return {**schema, "properties": {
        name: field if field.get("type") == "array" else
        {"anyOf": [field, {"type": "array", "items": field}]}
        for name, field in properties.items()}}


def link(operation_ref: str, **parameters: str) -> dict[str, Any]:
    """An OpenAPI link (for clients and the fuzzer's stateful runs): `operation_ref` is
    'METHOD /path/{param}', `parameters` its values, e.g. '$response.body#/id'."""
    method, path = operation_ref.split(" ", 1)
    pointer = path.replace("~", "~0").replace("/", "~1")
    return {"operationRef": f"#/paths/{pointer}/{method.lower()}", "parameters": parameters}


def published_schema(app: Any) -> dict[str, Any]:
    """The app's OpenAPI document without the 422 FastAPI adds to every route with
    parameters: Docmill never answers it, each face renders a request that fails FastAPI's
    validation as its own error (declared by the route), e.g. the native 400."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi

        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        auto = "#/components/schemas/HTTPValidationError"
        for item in schema.get("paths", {}).values():
            for operation in item.values():
                answer = operation.get("responses", {}).get("422", {})
                body = answer.get("content", {}).get("application/json", {})
                if body.get("schema", {}).get("$ref") == auto:
                    del operation["responses"]["422"]
        schemas = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema


def allowed_methods(request: Request) -> list[str]:
    """The methods the published OpenAPI document lists for this request's path (the `Allow`
    of a 405): hidden catch-alls and aliases do not count, exactly as clients see it."""
    methods: set[str] = set()
    for pattern, declared in _documented_paths(request.app):
        if pattern.fullmatch(request.scope.get("path", "")):
            methods |= declared
    return sorted(methods)


HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})


def _documented_paths(app: Any) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Each documented path as a regular expression, with its methods (once per app)."""
    found = getattr(app.state, "documented_paths", None)
    if found is None:
        found = []
        for path, item in app.openapi().get("paths", {}).items():
            parts = re.split(r"(\{[^}]+\})", path)
            pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                              for part in parts)
            found.append((re.compile(pattern),
                          frozenset(m.upper() for m in item if m in HTTP_METHODS)))
        app.state.documented_paths = found
    return found


def method_not_allowed(request: Request) -> errors.MethodNotAllowed | None:
    """The 405 for this request when its path exists with other methods only, else None."""
    allowed = allowed_methods(request)
    if not allowed or request.method in allowed:
        return None
    return errors.MethodNotAllowed(
        f"Method {request.method} is not allowed for {request.url.path}; use "
        f"{', '.join(allowed)}.", allow=allowed)
