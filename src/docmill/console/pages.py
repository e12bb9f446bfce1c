"""What every console page shares: rendering, the signed-in session and its API, CSRF-checked
forms, turning API refusals into the console's answers, and sending files on to the API.
POSTs carry the session's CSRF token; anything without it is refused (403).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.console import session as sessions
from docmill.console.api import Api, ApiResponse
from docmill.errors import DocmillError
from docmill.faces.common import read_form
from docmill.faces.native.errors import error_status

HERE = Path(__file__).parent


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


class Refused(Exception):
    """Rendered as the error page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


@lru_cache
def templates() -> Any:
    """Jinja2, loaded on the first page rather than at start-up: a server whose console is
    not opened does not carry it (nor, forked from it, its worker pool)."""
    from fastapi.templating import Jinja2Templates

    return Jinja2Templates(directory=HERE / "templates")


def render(request: Request, name: str, session: sessions.Session | None, status: int = 200,
           **context: Any) -> HTMLResponse:
    response = templates().TemplateResponse(request, name, {
        "session": session, "csrf": session.csrf if session else "", "path": request.url.path,
        **context}, status_code=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def signed_in(request: Request) -> tuple[sessions.Session, Api]:
    session = sessions.load(request)
    if session is None or not session.signed_in:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise Redirect("/console/sign-in?next=" + quote(target, safe=""))
    assert session.key is not None
    return session, Api(request.app, session.key)


async def checked_form(request: Request, session: sessions.Session) -> FormData:
    form = await read_form(request)
    if not session.csrf_ok(form.get("csrf")):
        raise Refused(403, "This form is out of date or was not sent by the console "
                           "(missing or wrong CSRF token). Reload the page and try again.")
    return form


def expect(response: ApiResponse) -> Any:
    """The JSON of a successful API answer; an API refusal becomes the console's answer."""
    if response.ok:
        return response.json()
    error = response.error()
    if response.status == 401:
        raise Redirect("/console/sign-in?expired=1")
    raise Refused(response.status, error.get("message", "refused"))


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


_operations: list[dict[str, Any]] | None = None


async def operations(api: Api) -> list[dict[str, Any]]:
    """`GET /v1/operations`, fetched once per process: the catalogue is fixed at start."""
    global _operations
    if _operations is None:
        _operations = expect(await api.get("/v1/operations"))["operations"]
    return _operations


async def session_form(request: Request) -> tuple[sessions.Session, FormData]:
    """The form of a POST from any session, signed in or not, with its CSRF token checked."""
    session = sessions.load(request)
    if session is None:
        raise Refused(403, "This form needs a console session (no CSRF token); reload the "
                           "page and try again.")
    return session, await checked_form(request, session)


async def delete_then(request: Request, api_path: str, then: str) -> Response:
    """A CSRF-checked form that DELETEs `api_path`, then sends the browser to `then`."""
    session, api = signed_in(request)
    await checked_form(request, session)
    answer = await api.call("DELETE", api_path)
    if answer.status != 204:
        expect(answer)
    return see_other(then)


async def _multipart(fields: list[tuple[str, str]], files: list[UploadFile],
                     boundary: str) -> AsyncIterator[bytes]:
    """A multipart/form-data body streamed from the console's own parsed upload."""
    for name, value in fields:
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
               f"{value}\r\n").encode()
    for upload in files:
        filename = (upload.filename or "upload").replace('"', "'").replace("\r", "") \
            .replace("\n", "")
        yield (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
               f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'
               ).encode()
        await upload.seek(0)
        while chunk := await upload.read(1 << 20):
            yield chunk
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


async def post_files(api: Api, path: str, fields: list[tuple[str, str]],
                     files: list[UploadFile]) -> ApiResponse:
    boundary = "docmill" + secrets.token_hex(12)
    return await api.call("POST", path, body=_multipart(fields, files, boundary),
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})


def uploads(form: FormData) -> list[UploadFile]:
    return [v for k, v in form.multi_items() if k == "file" and isinstance(v, UploadFile)
            and (v.filename or v.size)]


def render_error(request: Request, exc: DocmillError) -> Response:
    """Core errors met on console paths (a malformed or oversized form, a bad query
    parameter) as the console's error page, with the native API's status code."""
    return render(request, "error.html", sessions.load(request), status=error_status(exc),
                  message=exc.message)


async def on_redirect(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Redirect)
    return see_other(exc.url)


async def on_refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Refused)
    return render(request, "error.html", sessions.load(request), status=exc.status,
                  message=exc.message)


class ServerTiming:
    """`Server-Timing: app;dur=<ms>` on console pages: how long the server took (the console
    promises under 100 ms), visible in the browser's developer tools and to the tests."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/console"):
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()

        async def timed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                took = (time.perf_counter() - started) * 1000
                message["headers"] = [*message.get("headers", []),
                                      (b"server-timing", f"app;dur={took:.1f}".encode())]
            await send(message)

        await self.app(scope, receive, timed_send)
