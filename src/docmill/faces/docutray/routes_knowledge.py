"""Docutray's `/api/knowledge-bases` over `core/knowledge.py`: the vendor's camelCase views
(`render.py`), `{"data": ...}` around single objects (both client versions unwrap it), `{"data",
"pagination"}` lists and `{"data": [{"document", "similarity"}], "query", "resultsCount"}`
searches. `generateEmbedding`/`regenerateEmbedding(s)` are accepted and change nothing:
Docmill's index is full text, kept up to date on every write."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from docmill.core import knowledge
from docmill.faces.contract import inline_schema, query_parameters, request_body
from docmill.faces.docutray.errors import fails
from docmill.faces.docutray.render import base_view, document_view, sync_view

PATH = "/api/knowledge-bases"


def _data(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse({"data": body}, status_code=status)


def add_routes(router: APIRouter, caller: Any, json_body: Any, paging: Any,
               paging_schema: dict[str, Any]) -> None:
    """Adds the routes; `caller(request)` authenticates (and rate-limits), `json_body` reads
    a JSON body in the vendor's error shape, `paging(request)` gives (page, limit), whose
    query parameters `paging_schema` declares."""

    async def list_bases(request: Request) -> Response:
        principal = await caller(request)
        page, limit = paging(request)
        active = request.query_params.get("isActive")
        rows, total = await run_in_threadpool(lambda: knowledge.list_bases(
            principal, offset=(page - 1) * limit, limit=limit,
            search=(request.query_params.get("search") or "").strip() or None,
            is_active=None if active is None else active.strip().lower() in ("true", "1")))
        return JSONResponse({"data": [base_view(r, n) for r, n in rows],
                             "pagination": {"total": total, "page": page, "limit": limit}})

    async def create_base(request: Request) -> Response:
        principal = await caller(request)
        row = await run_in_threadpool(knowledge.create_base, principal,
                                      await json_body(request))
        return _data(base_view(row, 0), 201)

    async def get_base(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        return _data(base_view(*await run_in_threadpool(knowledge.get_base, principal, kb_id)))

    async def update_base(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        body = await json_body(request)
        return _data(base_view(*await run_in_threadpool(knowledge.update_base, principal,
                                                        kb_id, body)))

    async def delete_base(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        await run_in_threadpool(knowledge.delete_base, principal, kb_id)
        return JSONResponse({"success": True, "id": kb_id})

    async def list_documents(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        page, limit = paging(request)
        rows, total = await run_in_threadpool(lambda: knowledge.list_documents(
            principal, kb_id, offset=(page - 1) * limit, limit=limit,
            search=(request.query_params.get("search") or "").strip() or None))
        return JSONResponse({"data": [document_view(d) for d in rows],
                             "pagination": {"total": total, "page": page, "limit": limit}})

    async def add_document(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        body = await json_body(request)
        return _data(document_view(await run_in_threadpool(knowledge.add_document, principal,
                                                           kb_id, body)), 201)

    async def get_document(request: Request, kb_id: str, doc_id: str) -> Response:
        principal = await caller(request)
        return _data(document_view(await run_in_threadpool(knowledge.get_document, principal,
                                                           kb_id, doc_id)))

    async def update_document(request: Request, kb_id: str, doc_id: str) -> Response:
        principal = await caller(request)
        body = await json_body(request)
        return _data(document_view(await run_in_threadpool(
            knowledge.update_document, principal, kb_id, doc_id, body)))

    async def delete_document(request: Request, kb_id: str, doc_id: str) -> Response:
        principal = await caller(request)
        await run_in_threadpool(knowledge.delete_document, principal, kb_id, doc_id)
        return JSONResponse({"success": True, "id": doc_id})

    async def search(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        body = await json_body(request)
        fields, ranked = await run_in_threadpool(knowledge.search, principal, kb_id, body)
        return JSONResponse({"data": [{"document": document_view(d, fields.include_metadata),
                                       "similarity": s} for d, s in ranked],
                             "query": fields.query, "resultsCount": len(ranked)})

    async def sync(request: Request, kb_id: str) -> Response:
        principal = await caller(request)
        done = await run_in_threadpool(knowledge.sync, principal, kb_id)
        return _data(sync_view(done))

    base_body = inline_schema(knowledge.BaseFields)
    new_base = request_body({"application/json": {**base_body, "required": ["name"]}})
    document = request_body({"application/json": inline_schema(knowledge.DocumentFields)})
    found, listed = fails(401, 404, 429), fails(400, 401, 404, 429)
    written = fails(400, 401, 404, 409, 413, 429)
    add = router.add_api_route
    add(PATH, list_bases, methods=["GET"], summary="List knowledge bases",
        responses=fails(400, 401, 429), openapi_extra=query_parameters(
            **paging_schema, isActive={"type": "string",
                                       "description": "true or 1: active ones; else inactive"}))
    add(PATH, create_base, methods=["POST"], summary="Create a knowledge base",
        status_code=201, openapi_extra=new_base, responses=written)
    add(PATH + "/{kb_id}", get_base, methods=["GET"], summary="A knowledge base",
        responses=found)
    for method in ("PUT", "PATCH"):  # one operation id each
        add(PATH + "/{kb_id}", update_base, methods=[method], summary="Update a knowledge base",
            openapi_extra=request_body({"application/json": base_body}), responses=written)
        add(PATH + "/{kb_id}/documents/{doc_id}", update_document, methods=[method],
            summary="Update a document", openapi_extra=document, responses=written)
    add(PATH + "/{kb_id}", delete_base, methods=["DELETE"], summary="Delete a knowledge base",
        responses=found)
    add(PATH + "/{kb_id}/documents", list_documents, methods=["GET"],
        summary="List a knowledge base's documents", responses=listed,
        openapi_extra=query_parameters(**paging_schema))
    add(PATH + "/{kb_id}/documents", add_document, methods=["POST"], status_code=201,
        summary="Add a document (content, or jobId of a finished extraction)",
        openapi_extra=document, responses=written)
    add(PATH + "/{kb_id}/documents/{doc_id}", get_document, methods=["GET"],
        summary="A document", responses=found)
    add(PATH + "/{kb_id}/documents/{doc_id}", delete_document, methods=["DELETE"],
        summary="Delete a document", responses=found)
    add(PATH + "/{kb_id}/search", search, methods=["POST"],
        summary="Full-text and fuzzy search", responses=fails(400, 401, 404, 413, 429),
        openapi_extra=request_body({"application/json": inline_schema(knowledge.SearchFields)}))
    add(PATH + "/{kb_id}/sync", sync, methods=["POST"], summary="Rebuild the index",
        responses=found)
