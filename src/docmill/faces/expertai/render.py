"""The expert.ai Extract result built from Docmill's native document JSON; no HTTP here.

The engine's `docmill.document/1` JSON (pages -> blocks -> lines -> words, boxes in points of
the page as displayed) becomes the vendor's `{header, layout, words}`:

- `layout`: one flat list, per page the `page` element first, then its blocks in reading
  order, each table followed by its cells; ids 1, 2, ... in list order; boxes in pixels of a
  100 dpi rendering (`round(pt * 100 / 72)`), clamped to the page.
- `words`: one string per page, `base64(gzip(records))`; a record is
  `utf8(text) 0x00 uint32le(parent id) 4 x uint32le(bbox)`, records joined by 4 zero bytes
  (the official decoder skips 4 bytes after each one; the vendor's one-word sample has no
  trailing pad). A word's parent is its text block or table cell.
"""

from __future__ import annotations

import base64
import gzip
import json
import struct
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from docmill import __version__, errors
from docmill.core.files import get_blob_store
from docmill.core.models import Job, JobStatus
from docmill.settings import get_settings

PX_PER_PT = 100 / 72
SEPARATOR = b"\x00" * 4
_RECORD_TAIL = struct.Struct("<5I")


def pack_words(records: Iterable[tuple[str, int, Sequence[int]]], *, mtime: int,
               separator: bool = True) -> str:
    """One page's words, packed and encoded as the vendor does."""
    parts = []
    for text, parent, (x0, y0, x1, y1) in records:
        parts.append(text.encode("utf-8") + b"\x00" + _RECORD_TAIL.pack(parent, x0, y0, x1, y1))
    raw = (SEPARATOR if separator else b"").join(parts)
    # Level 9 writes the same header flags (XFL 2, OS 255) as the vendor's sample.
    return base64.b64encode(gzip.compress(raw, compresslevel=9, mtime=mtime)).decode("ascii")


def unpack_words(encoded: str) -> list[tuple[str, int, tuple[int, int, int, int]]]:
    """The official client's decoding loop (text to NUL, id, bbox, skip 4 bytes)."""
    raw = gzip.decompress(base64.standard_b64decode(encoded))
    out, i = [], 0
    while i < len(raw):
        end = raw.index(b"\x00", i)
        parent, x0, y0, x1, y1 = _RECORD_TAIL.unpack_from(raw, end + 1)
        out.append((raw[i:end].decode("utf-8"), parent, (x0, y0, x1, y1)))
        i = end + 1 + _RECORD_TAIL.size + 4
    return out


class _Page:
    """Pixel conversion clamped to one page."""

    def __init__(self, width_pt: float, height_pt: float) -> None:
        self.w = max(0, round(width_pt * PX_PER_PT))
        self.h = max(0, round(height_pt * PX_PER_PT))

    def box(self, bbox: Sequence[float]) -> list[int]:
        """Pixels, clamped to the page (the encoding is unsigned); runs once per word."""
        w, h = self.w, self.h
        x0, y0, x1, y1 = bbox
        x0 = round(x0 * PX_PER_PT)
        y0 = round(y0 * PX_PER_PT)
        x1 = round(x1 * PX_PER_PT)
        y1 = round(y1 * PX_PER_PT)
        x0 = 0 if x0 < 0 else w if x0 > w else x0
        x1 = 0 if x1 < 0 else w if x1 > w else x1
        y0 = 0 if y0 < 0 else h if y0 > h else y0
        y1 = 0 if y1 < 0 else h if y1 > h else y1
        return [x0, y0, x1, y1] if x0 <= x1 and y0 <= y1 else \
            [min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)]


def _content(text: str) -> str:
    return text + "\n" if text else ""


def _line_words(lines: list[dict[str, Any]], parent: int, page: _Page,
                out: list[tuple[str, int, list[int]]]) -> None:
    for line in lines:
        for word in line.get("words", []):
            text = str(word.get("text", "")).replace("\x00", "")
            if text:
                out.append((text, parent, page.box(word["bbox"])))


def build_result(document: dict[str, Any], *, name: str, finished: datetime | None,
                 version: str, separator: bool = True) -> dict[str, Any]:
    """`result` of a SUCCESS status from the engine's native document JSON."""
    when = (finished or datetime.now(UTC)).astimezone(UTC)
    mtime = int(when.timestamp())
    layout: list[dict[str, Any]] = []
    words: list[str] = []
    error_pages = 0
    for page_json in document.get("pages", []):
        number = int(page_json["page"])
        page = _Page(float(page_json["width"]), float(page_json["height"]))
        if page_json.get("error"):
            error_pages += 1
        page_el: dict[str, Any] = {"id": len(layout) + 1, "page": number, "type": "page",
                                   "bbox": [0, 0, page.w, page.h], "children": []}
        layout.append(page_el)
        records: list[tuple[str, int, list[int]]] = []
        for block in page_json.get("blocks", []):
            element: dict[str, Any] = {"id": len(layout) + 1, "page": number,
                                       "type": block["type"], "bbox": page.box(block["bbox"]),
                                       "parent": page_el["id"]}
            layout.append(element)
            page_el["children"].append(element["id"])
            table = block.get("table")
            if table is None:
                element["content"] = _content(block.get("text", ""))
                _line_words(block.get("lines", []), element["id"], page, records)
                continue
            element["type"] = "table"
            element["children"] = []
            for cell in table.get("cells", []):
                cell_el: dict[str, Any] = {
                    "id": len(layout) + 1, "page": number, "type": "cell",
                    "bbox": page.box(cell["bbox"]), "parent": element["id"],
                    "content": _content(cell.get("text", "")), "row": int(cell["row"]),
                    "column": int(cell["column"]), "isHead": bool(cell.get("is_header"))}
                spans = [int(cell.get("row_span", 1)), int(cell.get("col_span", 1))]
                if spans != [1, 1]:
                    cell_el["span"] = spans
                layout.append(cell_el)
                element["children"].append(cell_el["id"])
                _line_words(cell.get("lines", []), cell_el["id"], page, records)
        words.append(pack_words(records, mtime=mtime, separator=separator))
    metadata = document.get("metadata") or {}
    header = {
        "conversionDateTime": when.strftime("%Y-%m-%d %H:%M"),
        "customInfo": {str(k).lstrip("/"): v for k, v in metadata.items()
                       if isinstance(v, str) and v},
        "documentName": name,
        "errorPages": error_pages,
        "metadata": [],
        "totPages": len(words),
        "version": version,
    }
    return {"header": header, "layout": layout, "words": words}


# --- a task's status ---------------------------------------------------------------------

def phase(progress: int) -> str:
    return "page conversion" if progress < 90 else "classification"


def _result(job: Job) -> dict[str, Any]:
    outputs = [f for f in job.files_of("output") if f.name.endswith(".json")]
    if not outputs:
        raise errors.EngineFailed("the task finished without a document")
    with get_blob_store().open(outputs[0].blob_key) as handle:
        document = json.load(handle)
    return build_result(document, name=str((job.face_state or {}).get("name", "")),
                        finished=job.finished_at, version=__version__,
                        separator=get_settings().expertai_word_separator)


def status_body(job: Job) -> dict[str, Any]:
    status = job.job_status
    if status is JobStatus.SUCCESS:
        return {"current": 100, "message": "completed", "result": _result(job),
                "state": "SUCCESS"}
    if status is JobStatus.ERROR:
        message = (job.error_message or job.error_code or "the analysis failed").strip()
        return {"current": 0, "message": message, "state": "FAILURE"}
    if status is JobStatus.PROCESSING or job.attempts > 0:
        current = max(0, min(99, int(job.progress or 0)))
        return {"current": current, "message": phase(current), "state": "PROGRESS"}
    return {"current": 0, "message": "queued", "state": "PENDING"}
