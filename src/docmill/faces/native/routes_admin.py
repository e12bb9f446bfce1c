"""The native API's admin calls: an organization's API keys, its webhook deliveries (with a
redeliver) and the queue. Admin keys only (403 otherwise), always the caller's own
organization: another organization's key or delivery is a 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from docmill import errors
from docmill.core import queue, webhooks
from docmill.core.auth import Principal, create_key, list_keys, revoke_key
from docmill.core.models import Role
from docmill.faces.common import read_json
from docmill.faces.contract import request_body
from docmill.faces.native.errors import fails
from docmill.faces.native.render import delivery_view, key_view
from docmill.faces.native.request import NAME_MAX, key_request, principal

router = APIRouter(prefix="/v1", tags=["admin"])


async def admin(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    if not caller.is_admin:
        raise errors.Forbidden("this needs an admin key")
    return caller


Admin = Annotated[Principal, Depends(admin)]
# A database integer: a larger id is a 400, not an overflow in the driver (a 500).
DeliveryId = Annotated[int, Path(ge=1, le=2**63 - 1)]


@router.get("/keys", summary="The organization's API keys (never the keys themselves)",
            responses=fails(401, 403))
async def get_keys(caller: Admin) -> dict[str, Any]:
    rows = await run_in_threadpool(list_keys, caller.org_slug)
    return {"keys": [key_view(k) for k in rows]}


KEY_BODY = request_body({"application/json": {
    "type": "object", "properties": {"name": {"type": "string", "maxLength": NAME_MAX},
                                     "role": {"enum": [Role.USER.value, Role.ADMIN.value]}}}})


@router.post("/keys", status_code=201, summary="Create a key; the answer shows it once",
             openapi_extra=KEY_BODY, responses=fails(400, 401, 403, 413))
async def post_key(request: Request, caller: Admin) -> JSONResponse:
    name, role = key_request(await read_json(request))
    key, info = await run_in_threadpool(create_key, caller.org_slug, role, name)
    return JSONResponse({**key_view(info), "key": key}, status_code=201)


@router.delete("/keys/{key_id}", status_code=204, summary="Revoke a key (by id or prefix)",
               responses=fails(401, 403, 404))
async def delete_key(key_id: str, caller: Admin) -> Response:
    await run_in_threadpool(revoke_key, key_id, caller.org_id)
    return Response(status_code=204)


DeliveryState = Annotated[str | None, Query(json_schema_extra={
    "enum": ["pending", "delivered", "failed"]})]


@router.get("/webhook-deliveries", summary="The organization's webhook deliveries, newest first",
            responses=fails(400, 401, 403))
async def get_deliveries(caller: Admin, job_id: str | None = None, state: DeliveryState = None,
                         limit: Annotated[int, Query(ge=1, le=500)] = 50) -> dict[str, Any]:
    if state not in (None, "pending", "delivered", "failed"):
        raise errors.InvalidInput("'state' is one of pending, delivered, failed")
    rows = await run_in_threadpool(lambda: webhooks.list_deliveries(
        caller.org_id, job_id=job_id, state=state, limit=limit))
    return {"deliveries": [delivery_view(r) for r in rows]}


@router.get("/webhook-deliveries/{delivery_id}", summary="One webhook delivery",
            responses=fails(400, 401, 403, 404))
async def get_delivery(delivery_id: DeliveryId, caller: Admin) -> dict[str, Any]:
    return delivery_view(await run_in_threadpool(webhooks.get_delivery, caller.org_id,
                                                 delivery_id))


@router.post("/webhook-deliveries/{delivery_id}/redeliver",
             summary="Send a delivery again now; answers it after that attempt",
             responses=fails(400, 401, 403, 404))
async def post_redeliver(delivery_id: DeliveryId, caller: Admin) -> dict[str, Any]:
    return delivery_view(await run_in_threadpool(webhooks.redeliver, caller.org_id,
                                                 delivery_id))


@router.get("/queue", summary="Queue depth, workers and retention", responses=fails(401, 403))
async def get_queue(caller: Admin) -> dict[str, Any]:
    return await run_in_threadpool(queue.queue_status, caller)
