"""The submit page: files dropped or chosen, an operation, and its parameter form generated
from `GET /v1/operations` (see `forms.py`); one job per file unless the operation takes
several."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from docmill.console.forms import fields_of, params_from_form
from docmill.console.pages import (
    Refused,
    checked_form,
    operations,
    post_files,
    render,
    see_other,
    signed_in,
    uploads,
)

router = APIRouter(prefix="/console", include_in_schema=False)


def _operation(ops: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    return next((o for o in ops if o["name"] == name), None)


@router.get("/submit")
async def submit_page(request: Request, operation: str = "") -> HTMLResponse:
    session, api = signed_in(request)
    ops = await operations(api)
    chosen = _operation(ops, operation) or _operation(ops, "pdf.to-text") or ops[0]
    return render(request, "submit.html", session, operations=ops, chosen=chosen,
                  fields=fields_of(chosen["params_schema"]), problems={}, values={})


@router.get("/submit/params")
async def submit_params(request: Request, operation: str) -> HTMLResponse:
    """The parameter fieldset of one operation (swapped in when the operation changes)."""
    session, api = signed_in(request)
    chosen = _operation(await operations(api), operation)
    if chosen is None:
        raise Refused(404, f"No operation {operation!r}.")
    return render(request, "_params.html", session, chosen=chosen,
                  fields=fields_of(chosen["params_schema"]), problems={}, values={})


@router.post("/submit")
async def submit(request: Request) -> Response:
    session, api = signed_in(request)
    form = await checked_form(request, session)
    ops = await operations(api)
    chosen = _operation(ops, str(form.get("operation") or ""))
    if chosen is None:
        raise Refused(400, "Pick an operation.")
    params, problems = params_from_form(chosen["params_schema"], form)
    files = uploads(form)
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if not files:
        problems["file"] = "Choose or drop at least one file."

    def again(status: int, error: str | None = None) -> HTMLResponse:
        return render(request, "submit.html", session, status=status, operations=ops,
                      chosen=chosen, fields=fields_of(chosen["params_schema"]),
                      problems=problems, values=values, error=error)

    if problems:
        return again(400)
    extra = [("webhook_url", str(form.get("webhook_url") or "").strip())]
    # One job for an operation that takes several inputs, else one job per file.
    batches = [files] if chosen["inputs"]["max"] > 1 else [[f] for f in files]
    created = []
    for batch in batches:
        answer = await post_files(api, "/v1/jobs", [
            ("operation", chosen["name"]), ("params", json.dumps(params)),
            *[(k, v) for k, v in extra if v]], batch)
        if not answer.ok:
            error = answer.error()
            for problem in (error.get("details") or {}).get("problems", []):
                problems[str(problem.get("param", "")).split(".")[0]] = problem["message"]
            return again(answer.status, f"{batch[0].filename}: {error['message']}")
        created.append(answer.json()["id"])
    return see_other(f"/console/jobs/{created[0]}" if len(created) == 1 else "/console/jobs")
