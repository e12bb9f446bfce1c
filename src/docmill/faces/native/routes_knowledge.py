"""The native `/v1/knowledge-bases` API over `core/knowledge.py` (the same bases Docutray's
`/api/knowledge-bases` serves): snake_case views, `{"items", "total", "page", "limit"}`
lists, the native error shape. A document's content is `content`, or `job_id` of a finished
extraction job whose `data` becomes the content."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from docmill.core import knowledge
from docmill.core.views import _iso
from docmill.faces.common import read_json
from docmill.faces.contract import MAX_PAGE, inline_schema, request_body
from docmill.faces.native.errors import fails
from docmill.faces.native.render import base_view, document_view
from docmill.faces.native.request import Caller

router = APIRouter(prefix="/v1/knowledge-bases", tags=["knowledge bases"])
BASE_BODY = request_body({"application/json": inline_schema(knowledge.BaseFields)})
NEW_BASE_BODY = request_body({"application/json": {**inline_schema(knowledge.BaseFields),
                                                   "required": ["name"]}})
DOCUMENT_BODY = request_body({"application/json": inline_schema(knowledge.DocumentFields)})
SEARCH_BODY = request_body({"application/json": inline_schema(knowledge.SearchFields)})
A_BASE = fails(401, 404)
Page = Annotated[int, Query(ge=1, le=MAX_PAGE)]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.get("", summary="List the organization's knowledge bases", responses=fails(400, 401))
async def list_bases(caller: Caller, search: str | None = None, is_active: bool | None = None,
                     page: Page = 1, limit: Limit = 20) -> dict[str, Any]:
    rows, total = await run_in_threadpool(lambda: knowledge.list_bases(
        caller, offset=(page - 1) * limit, limit=limit, search=search, is_active=is_active))
    return {"items": [base_view(r, n) for r, n in rows], "total": total, "page": page,
            "limit": limit}


@router.post("", status_code=201, summary="Create a knowledge base (name, schema, ...)",
             openapi_extra=NEW_BASE_BODY, responses=fails(400, 401, 409, 413))
async def create_base(request: Request, caller: Caller) -> JSONResponse:
    row = await run_in_threadpool(knowledge.create_base, caller, await read_json(request))
    return JSONResponse(base_view(row, 0), status_code=201,
                        headers={"Location": f"/v1/knowledge-bases/{row.id}"})


@router.get("/{kb_id}", summary="A knowledge base", responses=A_BASE)
async def get_base(kb_id: str, caller: Caller) -> dict[str, Any]:
    return base_view(*await run_in_threadpool(knowledge.get_base, caller, kb_id))


@router.patch("/{kb_id}", summary="Change name, description, is_active, schema",
               openapi_extra=BASE_BODY, responses=fails(400, 401, 404, 409, 413))
async def update_base(kb_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await read_json(request)
    return base_view(*await run_in_threadpool(knowledge.update_base, caller, kb_id, body))


@router.delete("/{kb_id}", status_code=204, summary="Delete a knowledge base and its documents",
               responses=A_BASE)
async def delete_base(kb_id: str, caller: Caller) -> Response:
    await run_in_threadpool(knowledge.delete_base, caller, kb_id)
    return Response(status_code=204)


@router.get("/{kb_id}/documents", summary="List a knowledge base's documents",
            responses=fails(400, 401, 404))
async def list_documents(kb_id: str, caller: Caller, search: str | None = None,
                         page: Page = 1, limit: Limit = 20) -> dict[str, Any]:
    rows, total = await run_in_threadpool(lambda: knowledge.list_documents(
        caller, kb_id, offset=(page - 1) * limit, limit=limit, search=search))
    return {"items": [document_view(d) for d in rows], "total": total, "page": page,
            "limit": limit}


@router.post("/{kb_id}/documents", status_code=201,
             summary="Add a document: content, or job_id of a finished extraction",
             openapi_extra=DOCUMENT_BODY, responses=fails(400, 401, 404, 409, 413))
async def add_document(kb_id: str, request: Request, caller: Caller) -> JSONResponse:
    body = await read_json(request)
    doc = await run_in_threadpool(knowledge.add_document, caller, kb_id, body)
    return JSONResponse(document_view(doc), status_code=201)


@router.get("/{kb_id}/documents/{doc_id}", summary="A document", responses=A_BASE)
async def get_document(kb_id: str, doc_id: str, caller: Caller) -> dict[str, Any]:
    return document_view(await run_in_threadpool(knowledge.get_document, caller, kb_id, doc_id))


@router.patch("/{kb_id}/documents/{doc_id}", summary="Change a document",
               openapi_extra=DOCUMENT_BODY, responses=fails(400, 401, 404, 409, 413))
async def update_document(kb_id: str, doc_id: str, request: Request,
                          caller: Caller) -> dict[str, Any]:
    body = await read_json(request)
    return document_view(await run_in_threadpool(knowledge.update_document, caller, kb_id,
                                                  doc_id, body))


@router.delete("/{kb_id}/documents/{doc_id}", status_code=204, summary="Delete a document",
               responses=A_BASE)
async def delete_document(kb_id: str, doc_id: str, caller: Caller) -> Response:
    await run_in_threadpool(knowledge.delete_document, caller, kb_id, doc_id)
    return Response(status_code=204)


@router.post("/{kb_id}/search", summary="Full-text and fuzzy search: query, limit, "
             "similarity_threshold, include_metadata", openapi_extra=SEARCH_BODY,
             responses=fails(400, 401, 404, 413))
async def search(kb_id: str, request: Request, caller: Caller) -> dict[str, Any]:
    body = await read_json(request)
    fields, ranked = await run_in_threadpool(knowledge.search, caller, kb_id, body)
    return {"query": fields.query, "results": [
        {"document": document_view(d, fields.include_metadata), "similarity": s}
        for d, s in ranked]}


@router.post("/{kb_id}/sync", summary="Rebuild the knowledge base's index", responses=A_BASE)
async def sync(kb_id: str, caller: Caller) -> dict[str, Any]:
    done = await run_in_threadpool(knowledge.sync, caller, kb_id)
    return {**done, "started_at": _iso(done["started_at"]),
            "completed_at": _iso(done["completed_at"])}
