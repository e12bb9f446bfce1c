"""Console pages for document types: list, view, create and edit (the schema's problems
shown under the field that has them), examples and trying extraction on a file."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from docmill.console.api import Api
from docmill.console.pages import (
    Refused,
    checked_form,
    expect,
    post_files,
    render,
    see_other,
    signed_in,
    uploads,
)

router = APIRouter(prefix="/console/document-types", include_in_schema=False)
EXAMPLE_SCHEMA = {"type": "object", "properties": {
    "invoice_number": {"type": "string", "description": "Invoice number"},
    "total": {"type": "number", "description": "Total amount"}}}
# Where an API problem ("jsonSchema/properties/x: ...") belongs on the form.
FIELD_OF = {"jsonSchema": "schema", "schema": "schema", "json_schema": "schema",
            "codeType": "code", "code": "code", "name": "name", "description": "description",
            "keywords": "keywords"}


def _path(code: str) -> str:
    return f"/v1/document-types/{quote(code, safe='')}"


@router.get("")
async def list_page(request: Request, search: str = "", page: int = 1) -> HTMLResponse:
    session, api = signed_in(request)
    listing = expect(await api.get("/v1/document-types", search=search, page=max(page, 1),
                                   limit=50))
    return render(request, "doctypes.html", session, listing=listing, search=search)


def _form_values(row: dict[str, Any] | None) -> dict[str, str]:
    if row is None:
        return {"code": "", "name": "", "description": "", "keywords": "",
                "schema": json.dumps(EXAMPLE_SCHEMA, indent=2), "is_draft": "on"}
    return {"code": row["code"], "name": row["name"], "description": row["description"] or "",
            "keywords": ", ".join(row["keywords"]), "schema": json.dumps(row["schema"], indent=2),
            "is_draft": "on" if row["is_draft"] else ""}


@router.get("/new")
async def new_page(request: Request) -> HTMLResponse:
    session, _ = signed_in(request)
    return render(request, "doctype_edit.html", session, row=None, values=_form_values(None),
                  problems={})


def _body(form: Any, problems: dict[str, str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": str(form.get("name") or "").strip(),
        "description": str(form.get("description") or "").strip(),
        "keywords": [w.strip() for w in str(form.get("keywords") or "").split(",") if w.strip()],
        "is_draft": form.get("is_draft") == "on",
    }
    raw = str(form.get("schema") or "")
    try:
        body["schema"] = json.loads(raw)
    except json.JSONDecodeError as exc:
        problems["schema"] = f"Not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
    return body


def _assign(problems: dict[str, str], errors: list[str], message: str) -> None:
    for error in errors or [message]:
        field = error.split(":", 1)[0].split("/", 1)[0].split(".", 1)[0]
        key = FIELD_OF.get(field, "form")
        problems[key] = f"{problems[key]}; {error}" if key in problems else error


async def _save(request: Request, code: str | None) -> Response:
    session, api = signed_in(request)
    form = await checked_form(request, session)
    problems: dict[str, str] = {}
    body = _body(form, problems)
    row = None
    if code is None:
        body["code"] = str(form.get("code") or "").strip()
    else:
        row = expect(await api.get(_path(code)))
    if not problems:
        answer = (await api.call("POST", "/v1/document-types", json_body=body) if code is None
                  else await api.call("PATCH", _path(code), json_body=body))
        if answer.ok:
            return see_other(f"/console/document-types/{quote(answer.json()['code'])}?saved=1")
        if answer.status in (401, 404):
            expect(answer)
        error = answer.error()
        _assign(problems, (error.get("details") or {}).get("errors", []), error["message"])
    values = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    return render(request, "doctype_edit.html", session, status=400, row=row, values=values,
                  problems=problems)


@router.post("")
async def create(request: Request) -> Response:
    return await _save(request, None)


@router.get("/{code}")
async def view_page(request: Request, code: str, saved: str = "", example: str = "",
                    labelled: str = "") -> HTMLResponse:
    session, api = signed_in(request)
    return await _type_page(request, session, api, code, saved=bool(saved), example=example,
                            labelled=bool(labelled))


async def _type_page(request: Request, session: Any, api: Api, code: str, status: int = 200,
                     problems: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    """A type's page: facts, teaching status (`model` of the API's answer), the forms."""
    row = expect(await api.get(_path(code)))
    return render(request, "doctype.html", session, status=status, row=row,
                  problems=problems or {}, schema_json=json.dumps(row["schema"], indent=2),
                  example_hint=json.dumps(_expected_hint(row["schema"]), indent=2),
                  **{"example": "", "saved": False, "labelled": False, "expected": "",
                     **context})


def _expected_hint(schema: Any) -> dict[str, Any]:
    """A placeholder for the expected-values field: the schema's top-level fields, null."""
    properties = schema.get("properties") if isinstance(schema, dict) else None
    return {name: None for name in (properties or {})}


@router.get("/{code}/edit")
async def edit_page(request: Request, code: str) -> HTMLResponse:
    session, api = signed_in(request)
    row = expect(await api.get(_path(code)))
    if not row["owned"]:
        raise Refused(403, "Only the organization that owns a document type can edit it.")
    return render(request, "doctype_edit.html", session, row=row, values=_form_values(row),
                  problems={})


@router.post("/{code}")
async def update(request: Request, code: str) -> Response:
    return await _save(request, code)


async def _one_file(request: Request, missing: str) -> tuple[Api, UploadFile]:
    session, api = signed_in(request)
    files = uploads(await checked_form(request, session))
    if not files:
        raise Refused(400, missing)
    return api, files[0]


@router.post("/{code}/examples")
async def add_example(request: Request, code: str) -> Response:
    """A sample document, labelled when the optional expected values (JSON of the type's
    schema) are given; the API checks them against the schema and its refusal is shown
    under the field, as the schema editor does."""
    session, api = signed_in(request)
    form = await checked_form(request, session)
    files = uploads(form)
    expected = str(form.get("expected") or "").strip()
    problems: dict[str, str] = {}
    if not files:
        problems["example"] = "Choose a sample document to add as an example."
    if expected:
        try:
            json.loads(expected)
        except json.JSONDecodeError as exc:
            problems["expected"] = (f"Not valid JSON: {exc.msg} at line {exc.lineno}, "
                                    f"column {exc.colno}")
    if not problems:
        answer = await post_files(api, _path(code) + "/examples",
                                  [("expected", expected)] if expected else [], files[:1])
        if answer.ok:
            body = answer.json()
            return see_other(f"/console/document-types/{quote(code)}?example={body['examples']}"
                             + ("&labelled=1" if body["labelled"] else ""))
        if answer.status in (401, 403, 404):
            expect(answer)
        message = answer.error()["message"]
        problems["expected" if expected and "expected" in message else "example"] = message
    return await _type_page(request, session, api, code, status=400, problems=problems,
                            expected=expected)


@router.post("/{code}/extract")
async def try_extraction(request: Request, code: str) -> Response:
    """An `extract.fields` job naming the type by code; the job page shows how it goes."""
    api, upload = await _one_file(request, "Choose a document to extract from.")
    answer = await post_files(api, "/v1/jobs", [
        ("operation", "extract.fields"),
        ("params", json.dumps({"document_type_code": code}))], [upload])
    return see_other(f"/console/jobs/{expect(answer)['id']}")
