"""The jobs pages: the list with filters and live rows, a job with its timings, transitions,
webhook deliveries, outputs and previews, the SSE and file pass-throughs, page-1 images and
delete."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from docmill.console.api import Api
from docmill.console.pages import (
    Refused,
    checked_form,
    delete_then,
    expect,
    operations,
    render,
    see_other,
    signed_in,
)

router = APIRouter(prefix="/console", include_in_schema=False)
SINCE = {"1h": timedelta(hours=1), "24h": timedelta(days=1), "7d": timedelta(days=7),
         "30d": timedelta(days=30)}
STATUSES = ("ENQUEUED", "PROCESSING", "SUCCESS", "ERROR")
INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf",
                "text/plain", "application/json")
TEXT_PREVIEW_MAX = 256 * 1024
PAGE_IMAGE_MAX = 25 << 20
PAGE_IMAGE_DPI = 100
WORD_OPERATIONS = ("ocr.read", "layout.analyze")  # results: the native document JSON
DOCUMENT_JSON_MAX = 16 << 20


@router.get("/jobs")
async def jobs_page(request: Request, status: str = "", operation: str = "", since: str = "",
                    cursor: str = "", fragment: str = "") -> HTMLResponse:
    session, api = signed_in(request)
    after = (datetime.now(UTC) - SINCE[since]).isoformat() if since in SINCE else None
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
    transitions = expect(await api.get(f"/v1/jobs/{quote(job_id, safe='')}/transitions"))
    deliveries = []
    if session.is_admin and job.get("webhook_url"):
        deliveries = expect(await api.get("/v1/webhook-deliveries", job_id=job_id))["deliveries"]
    previews: dict[str, str] = {}
    words: list[dict[str, Any]] = []
    for item in job["files"]:
        kind = _preview_kind(item["content_type"])
        document = job["operation"] in WORD_OPERATIONS and kind == "text" \
            and item["size"] <= DOCUMENT_JSON_MAX and "json" in item["content_type"]
        if (kind == "text" and item["size"] <= TEXT_PREVIEW_MAX) or document:
            answer = await api.get(f"/v1/jobs/{quote(job_id, safe='')}/files/"
                                   f"{quote(item['name'], safe='')}")
            if item["size"] <= TEXT_PREVIEW_MAX:
                previews[item["name"]] = _pretty(answer.body, item["content_type"])
            if document and not words:
                words = page_words(_json_or_none(answer.body), 1)
        elif kind in ("image", "pdf"):
            previews[item["name"]] = kind
    fields = _page_boxes(job, 1)
    image = await _page_image(api, page_image, fields, words) if page_image else None
    pdf_inputs = [f["name"] for f in job["inputs"]
                  if f["content_type"].startswith("application/pdf")]
    # Something to draw on page 1: its picture is made at once (the page submits the form).
    auto_image = pdf_inputs[0] if (pdf_inputs and not page_image and job["status"] == "SUCCESS"
                                   and (fields or words)) else ""
    timings = {"queued": _duration(job["created_at"], job["started_at"]),
               "ran": _duration(job["started_at"], job["finished_at"]),
               "total": _duration(job["created_at"], job["finished_at"])}
    return render(request, "job.html", session, job=job, transitions=transitions["transitions"],
                  deliveries=deliveries, previews=previews, timings=timings, image=image,
                  auto_image=auto_image, params_json=json.dumps(job["params"], indent=2),
                  result_json=json.dumps(job["result"], indent=2) if job["result"] else None)


async def _page_image(api: Api, image_job_id: str, fields: list[dict[str, Any]],
                      words: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The PNG of a page-image job (see `page_image`) with the `fields` (boxes in points)
    and `words` (placed by `page_words`) on it, or None if that job is not (yet) such a
    picture."""
    answer = await api.get(f"/v1/jobs/{quote(image_job_id, safe='')}")
    made = answer.json() if answer.ok else None
    if not made or made["operation"] != "pdf.to-image" or made["status"] != "SUCCESS":
        return None
    path = f"/v1/jobs/{quote(made['id'])}/files/{quote(made['files'][0]['name'], safe='')}"
    png = (await api.get(path)).body
    if png[:8] != b"\x89PNG\r\n\x1a\n" or len(png) < 24:
        return None
    scale = made["params"].get("dpi", PAGE_IMAGE_DPI) / 72
    width, height = (int.from_bytes(png[16:20], "big") / scale,  # the page in points
                     int.from_bytes(png[20:24], "big") / scale)
    placed = [{**b, "style": _placed(b["box"], width, height)} for b in fields]
    return {"job": made["id"], "url": "/console" + path.removeprefix("/v1") + "?inline=1",
            "boxes": placed, "words": words}


def _placed(box: list[float], width: float, height: float) -> str:
    """CSS placing a box given in points on a picture of a `width` x `height` points page."""
    left, top = 100 * box[0] / width, 100 * box[1] / height
    wide, high = 100 * (box[2] - box[0]) / width, 100 * (box[3] - box[1]) / height
    return f"left:{left:.2f}%;top:{top:.2f}%;width:{wide:.2f}%;height:{high:.2f}%"


def _is_box(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 4 \
        and all(isinstance(v, (int, float)) for v in value)


def _page_boxes(job: dict[str, Any], page: int) -> list[dict[str, Any]]:
    """Extracted fields found on `page`, with their boxes in points."""
    fields = (job.get("result") or {}).get("fields")
    if not isinstance(fields, dict):
        return []
    return [{"name": name, "box": f["box"], "value": f.get("value")}
            for name, f in fields.items()
            if isinstance(f, dict) and f.get("page") == page and _is_box(f.get("box"))]


def page_words(document: Any, page: int) -> list[dict[str, Any]]:
    """The words of `page` in a native document JSON (`ocr.read`, `layout.analyze`: pages,
    blocks, lines or a table's cells' lines, words with boxes in points), each placed in
    percent of the page, which fits any picture of it."""
    pages = document.get("pages") if isinstance(document, dict) else None
    for data in pages or []:
        if not isinstance(data, dict) or data.get("page") != page:
            continue
        width, height = data.get("width"), data.get("height")
        if not (isinstance(width, (int, float)) and isinstance(height, (int, float))
                and width > 0 and height > 0):
            return []
        lines: list[dict[str, Any]] = []
        for block in data.get("blocks") or []:
            lines += block.get("lines") or []
            for cell in (block.get("table") or {}).get("cells") or []:
                lines += cell.get("lines") or []
        return [{"text": str(w.get("text", "")), "style": _placed(w["bbox"], width, height)}
                for line in lines for w in line.get("words") or []
                if isinstance(w, dict) and _is_box(w.get("bbox"))]
    return []


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


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


@router.post("/jobs/{job_id}/delete")
async def delete_job(request: Request, job_id: str) -> Response:
    return await delete_then(request, f"/v1/jobs/{quote(job_id, safe='')}",
                             "/console/jobs?notice=deleted")
