"""The console's pages. Every piece of data comes from the native API through `api.Api`
with the signed-in key; these handlers only turn forms into API calls and API answers into
HTML. POSTs carry the session's CSRF token; anything without it is refused (403).
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import FormData, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from docmill.console import session as sessions
from docmill.console.api import Api, ApiResponse
from docmill.console.forms import fields_of, params_from_form
from docmill.errors import DocmillError
from docmill.faces.common import FaceErrors, read_form, register_face_errors
from docmill.faces.native import error_status

HERE = Path(__file__).parent
router = APIRouter(prefix="/console", include_in_schema=False)
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
         "30d": timedelta(days=30)}
STATUSES = ("ENQUEUED", "PROCESSING", "SUCCESS", "ERROR")
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
                "text/plain", "application/json")
TEXT_PREVIEW_MAX = 256 * 1024
PAGE_IMAGE_MAX = 25 << 20
PAGE_IMAGE_DPI = 100


class Redirect(Exception):
    def __init__(self, url: str) -> None:
        self.url = url


class Refused(Exception):
    """Rendered as the error page with `status`."""

    def __init__(self, status: int, message: str) -> None:
        self.status, self.message = status, message


# --- plumbing -------------------------------------------------------------------------------

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


# --- sign-in --------------------------------------------------------------------------------

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


async def session_form(request: Request) -> tuple[sessions.Session, FormData]:
    """The form of a POST from any session, signed in or not, with its CSRF token checked."""
    session = sessions.load(request)
    if session is None:
        raise Refused(403, "This form needs a console session (no CSRF token); reload the "
                           "page and try again.")
    return session, await checked_form(request, session)


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


# --- jobs -----------------------------------------------------------------------------------

@router.get("/jobs")
async def jobs_page(request: Request, status: str = "", operation: str = "", since: str = "",
                    cursor: str = "", fragment: str = "") -> HTMLResponse:
    session, api = signed_in(request)
    after = (datetime.now(timezone.utc) - SINCE[since]).isoformat() if since in SINCE else None
    listing = expect(await api.get("/v1/jobs", status=status, operation=operation,
                                   created_after=after, cursor=cursor, limit=50))
    context = {"jobs": listing["jobs"], "next_cursor": listing["next_cursor"],
               "filters": {"status": status, "operation": operation, "since": since}}
    if fragment:
        return render(request, "_job_rows.html", session, **context)
    return render(request, "jobs.html", session, statuses=STATUSES, since_choices=SINCE,
                  operations=[o["name"] for o in await operations(api)], **context)


def _duration(start: str | None, end: str | None) -> str | None:
    if not start or not end:
        return None
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


@router.get("/jobs/{job_id}")
async def job_page(request: Request, job_id: str, page_image: str = "") -> HTMLResponse:
    session, api = signed_in(request)
    job = expect(await api.get(f"/v1/jobs/{quote(job_id, safe='')}"))
    image = await _page_image(api, page_image, _page_boxes(job, 1)) if page_image else None
    transitions = expect(await api.get(f"/v1/jobs/{quote(job_id, safe='')}/transitions"))
    deliveries = []
    if session.is_admin and job.get("webhook_url"):
        deliveries = expect(await api.get("/v1/webhook-deliveries", job_id=job_id))["deliveries"]
    previews = {}
    for item in job["files"]:
        kind = _preview_kind(item["content_type"])
        if kind == "text" and item["size"] <= TEXT_PREVIEW_MAX:
            answer = await api.get(f"/v1/jobs/{quote(job_id, safe='')}/files/"
                                   f"{quote(item['name'], safe='')}")
            previews[item["name"]] = _pretty(answer.body, item["content_type"])
        elif kind in ("image", "pdf"):
            previews[item["name"]] = kind
    timings = {"queued": _duration(job["created_at"], job["started_at"]),
               "ran": _duration(job["started_at"], job["finished_at"]),
               "total": _duration(job["created_at"], job["finished_at"])}
    return render(request, "job.html", session, job=job, transitions=transitions["transitions"],
                  deliveries=deliveries, previews=previews, timings=timings, image=image,
                  params_json=json.dumps(job["params"], indent=2),
                  result_json=json.dumps(job["result"], indent=2) if job["result"] else None)


async def _page_image(api: Api, image_job_id: str,
                      boxes: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The PNG of a page-image job (see `page_image`) with `boxes` (points) placed on it in
    percent of the picture, or None if that job is not (yet) such a picture."""
    answer = await api.get(f"/v1/jobs/{quote(image_job_id, safe='')}")
    made = answer.json() if answer.ok else None
    if not made or made["operation"] != "pdf.to-image" or made["status"] != "SUCCESS":
        return None
    path = f"/v1/jobs/{quote(made['id'])}/files/{quote(made['files'][0]['name'], safe='')}"
    png = (await api.get(path)).body
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return None
    width, height = (int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big"))
    scale = made["params"].get("dpi", PAGE_IMAGE_DPI) / 72
    placed = [{**b, "style": "left:{:.2f}%;top:{:.2f}%;width:{:.2f}%;height:{:.2f}%".format(
        100 * b["box"][0] * scale / width, 100 * b["box"][1] * scale / height,
        100 * (b["box"][2] - b["box"][0]) * scale / width,
        100 * (b["box"][3] - b["box"][1]) * scale / height)} for b in boxes]
    return {"job": made["id"], "url": "/console" + path.removeprefix("/v1") + "?inline=1",
            "boxes": placed}


def _page_boxes(job: dict[str, Any], page: int) -> list[dict[str, Any]]:
    """Extracted fields found on `page`, with their boxes in points."""
    fields = (job.get("result") or {}).get("fields")
    if not isinstance(fields, dict):
        return []
    return [{"name": name, "box": f["box"], "value": f.get("value")}
            for name, f in fields.items()
            if isinstance(f, dict) and f.get("page") == page
            and isinstance(f.get("box"), list) and len(f["box"]) == 4
            and all(isinstance(v, (int, float)) for v in f["box"])]


def _preview_kind(content_type: str) -> str | None:
    base = content_type.split(";")[0]
    if base.startswith("image/") and base in INLINE_TYPES:
        return "image"
    if base == "application/pdf":
        return "pdf"
    if base in ("application/json", "text/plain") or base.endswith("+json"):
        return "text"
    return None


def _pretty(body: bytes, content_type: str) -> str:
    text = body.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
    return text


@router.get("/jobs/{job_id}/events")
async def job_events(request: Request, job_id: str) -> Response:
    """The native SSE stream of the job, passed through as it flows."""
    _, api = signed_in(request)
    upstream = await api.stream("GET", f"/v1/jobs/{quote(job_id, safe='')}/events",
                                headers={"accept": "text/event-stream"})
    if upstream.status != 200:
        return Response(await upstream.read(), status_code=upstream.status,
                        media_type="application/json")
    return StreamingResponse(upstream.body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/files/{name}")
async def job_file(request: Request, job_id: str, name: str, inline: str = "") -> Response:
    return await _pass_file(request, job_id, name, "files", bool(inline))


@router.get("/jobs/{job_id}/inputs/{name}")
async def job_input(request: Request, job_id: str, name: str, inline: str = "") -> Response:
    return await _pass_file(request, job_id, name, "inputs", bool(inline))


async def _pass_file(request: Request, job_id: str, name: str, kind: str,
                     inline: bool) -> Response:
    """An input or output file streamed through from the API; `inline` only for types a
    browser shows without running anything of the file's (raster images, PDF, text), and
    then sandboxed."""
    _, api = signed_in(request)
    upstream = await api.stream("GET", f"/v1/jobs/{quote(job_id, safe='')}/{kind}/"
                                       f"{quote(name, safe='')}")
    if upstream.status != 200:
        await upstream.read()
        raise Refused(upstream.status, f"No file {name!r} on this job.")
    content_type = upstream.headers.get("content-type", "application/octet-stream")
    headers = {"Content-Disposition": upstream.headers.get("content-disposition", "attachment"),
               "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}
    if inline and content_type.split(";")[0] in INLINE_TYPES:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(name)}"
        headers["Content-Security-Policy"] = "sandbox; default-src 'none'; img-src 'self'"
    if "content-length" in upstream.headers:
        headers["Content-Length"] = upstream.headers["content-length"]
    return StreamingResponse(upstream.body(), media_type=content_type, headers=headers)


@router.post("/jobs/{job_id}/page-image")
async def page_image(request: Request, job_id: str) -> Response:
    """The first page of one of the job's PDFs as a PNG, made the way any client would: a
    `pdf.to-image` job (it shows in the list) on the file fetched from the API. The job page
    then shows it, with extracted fields' boxes drawn over it."""
    session, api = signed_in(request)
    form = await checked_form(request, session)
    kind = "inputs" if form.get("role") == "input" else "files"
    name = str(form.get("name") or "")
    source = await api.get(f"/v1/jobs/{quote(job_id, safe='')}/{kind}/{quote(name, safe='')}")
    if not source.ok:
        expect(source)
    if len(source.body) > PAGE_IMAGE_MAX:
        raise Refused(413, f"{name} is over {PAGE_IMAGE_MAX >> 20} MB; download it instead.")
    answer = await api.call("POST", "/v1/jobs", query={"wait": 60}, json_body={
        "operation": "pdf.to-image", "params": {"pages": "1", "dpi": PAGE_IMAGE_DPI},
        "inputs": [{"base64": base64.b64encode(source.body).decode(), "filename": name}]})
    made = expect(answer)
    return see_other(f"/console/jobs/{quote(job_id)}?page_image={quote(made['id'])}")


async def delete_then(request: Request, api_path: str, then: str) -> Response:
    """A CSRF-checked form that DELETEs `api_path`, then sends the browser to `then`."""
    session, api = signed_in(request)
    await checked_form(request, session)
    answer = await api.call("DELETE", api_path)
    if answer.status != 204:
        expect(answer)
    return see_other(then)


@router.post("/jobs/{job_id}/delete")
async def delete_job(request: Request, job_id: str) -> Response:
    return await delete_then(request, f"/v1/jobs/{quote(job_id, safe='')}",
                             "/console/jobs?notice=deleted")


# --- submit ---------------------------------------------------------------------------------

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


def render_error(request: Request, exc: DocmillError) -> Response:
    """Core errors met on console paths (a malformed or oversized form, a bad query
    parameter) as the console's error page, with the native API's status code."""
    return render(request, "error.html", sessions.load(request), status=error_status(exc),
                  message=exc.message)


def mount(app: FastAPI) -> None:
    """Serve the console on `app` (pages, static files, its error pages and timing)."""
    from docmill.console import doctypes, admin

    register_face_errors(FaceErrors(("/console/",), render_error))
    app.include_router(router)
    app.include_router(doctypes.router)
    app.include_router(admin.router)
    app.mount("/console/static", StaticFiles(directory=HERE / "static"), name="console-static")

    @app.exception_handler(Redirect)
    async def redirect(request: Request, exc: Redirect) -> Response:
        return see_other(exc.url)

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> Response:
        return render(request, "error.html", sessions.load(request), status=exc.status,
                      message=exc.message)

    app.add_middleware(ServerTiming)


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
