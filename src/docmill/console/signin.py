"""Signing in with an API key (checked against `GET /v1/organization`) and out."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from docmill.console import session as sessions
from docmill.console.api import Api
from docmill.console.pages import render, see_other, session_form

router = APIRouter(prefix="/console", include_in_schema=False)


@router.get("")
async def home() -> RedirectResponse:
    return see_other("/console/jobs")


def _safe_next(target: str | None) -> str:
    return target if target and target.startswith("/console/") and "//" not in target \
        else "/console/jobs"


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None,
                       expired: str | None = None) -> HTMLResponse:
    session = sessions.load(request)
    if session is None or session.signed_in:
        session = sessions.new_session()
    return _sign_in_form(request, session, _safe_next(next),
                         "Your session ended; sign in again." if expired else None)


def _sign_in_form(request: Request, session: sessions.Session, target: str,
                  error: str | None, status: int = 200) -> HTMLResponse:
    response = render(request, "sign_in.html", session, status=status, next=target,
                      error=error, cookie_dropped=sessions.cookie_dropped(request))
    sessions.store(response, session)
    return response


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    session, form = await session_form(request)
    key = str(form.get("key") or "").strip()
    target = _safe_next(str(form.get("next") or ""))
    answer = await Api(request.app, key).get("/v1/organization") if key else None
    if answer is None or not answer.ok:
        message = "Enter an API key." if answer is None else answer.error()["message"]
        return _sign_in_form(request, session, target, f"Sign-in refused: {message}",
                             401 if answer else 400)
    org = answer.json()
    fresh = sessions.new_session(key=key, org=org["slug"], role=org["role"])
    response = see_other(target)
    sessions.store(response, fresh)
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    if sessions.load(request) is None:  # already ended
        return see_other("/console/sign-in")
    await session_form(request)
    response = see_other("/console/sign-in")
    sessions.clear(response)
    return response
