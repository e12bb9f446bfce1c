"""Console pages for admin keys: the organization, API keys (a new key shown once), webhook
deliveries with a redeliver button, the queue, workers and retention. A user key gets the
API's own 403."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from docmill.console.pages import (
    checked_form,
    delete_then,
    expect,
    render,
    see_other,
    signed_in,
)

router = APIRouter(prefix="/console/admin", include_in_schema=False)


@router.get("")
async def admin_home() -> Response:
    return see_other("/console/admin/keys")


@router.get("/organization")
async def organization(request: Request) -> HTMLResponse:
    session, api = signed_in(request)
    org = expect(await api.get("/v1/organization"))
    if not session.is_admin:
        expect(await api.get("/v1/keys"))  # the API's 403
    return render(request, "admin_org.html", session, org=org)


async def _keys_page(request: Request, created: dict | None = None,
                     status: int = 200) -> HTMLResponse:
    session, api = signed_in(request)
    keys = expect(await api.get("/v1/keys"))["keys"]
    return render(request, "admin_keys.html", session, keys=keys, created=created,
                  status=status)


@router.get("/keys")
async def keys(request: Request) -> HTMLResponse:
    return await _keys_page(request)


@router.post("/keys")
async def create_key(request: Request) -> HTMLResponse:
    session, api = signed_in(request)
    form = await checked_form(request, session)
    created = expect(await api.call("POST", "/v1/keys", json_body={
        "name": str(form.get("name") or ""), "role": str(form.get("role") or "user")}))
    # Shown in this answer only: never stored, never in a URL.
    return await _keys_page(request, created=created, status=201)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    return await delete_then(request, f"/v1/keys/{quote(key_id, safe='')}",
                             "/console/admin/keys")


@router.get("/webhooks")
async def webhooks(request: Request, state: str = "", job_id: str = "") -> HTMLResponse:
    session, api = signed_in(request)
    deliveries = expect(await api.get("/v1/webhook-deliveries", state=state, job_id=job_id,
                                      limit=100))["deliveries"]
    return render(request, "admin_webhooks.html", session, deliveries=deliveries,
                  state=state, job_id=job_id)


@router.post("/webhooks/{delivery_id}/redeliver")
async def redeliver(request: Request, delivery_id: int) -> Response:
    session, api = signed_in(request)
    await checked_form(request, session)
    expect(await api.call("POST", f"/v1/webhook-deliveries/{delivery_id}/redeliver"))
    return see_other(f"/console/admin/webhooks?redelivered={delivery_id}")


@router.get("/queue")
async def queue(request: Request) -> HTMLResponse:
    session, api = signed_in(request)
    return render(request, "admin_queue.html", session,
                  queue=expect(await api.get("/v1/queue")))
