"""PDF tools: render pages to images and read text (pypdfium2), merge and split (pypdf)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

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
from docmill.errors import EngineFailed, InvalidInput, PasswordRequired

if TYPE_CHECKING:
    import pypdf
    import pypdfium2 as pdfium

PDF = frozenset({"application/pdf"})
MAX_RENDER_PIXELS = 200_000_000  # one rendered page; past this the request is refused

IMAGE_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"),
                 "jpg": ("JPEG", "image/jpeg"), "tiff": ("TIFF", "image/tiff"),
                 "webp": ("WEBP", "image/webp")}


class ToImageParams(Params):
    format: Literal["png", "jpeg", "jpg", "tiff", "webp"] = "png"
    dpi: int = Field(150, ge=10, le=1200, description="Resolution of the rendered pages.")
    pages: str | None = Field(None, description="Page ranges, e.g. '1-3,5'; all when empty.")
    scale: float | None = Field(None, gt=0, le=20, description="Overrides dpi: 1.0 = 72 dpi.")
    width: int | None = Field(None, ge=1, le=20000, description=(
        "Target width in pixels; with `height`, the box each page is scaled into. Overrides "
        "dpi and scale."))
    height: int | None = Field(None, ge=1, le=20000, description="Target height in pixels.")
    keep_proportions: bool = Field(True, description=(
        "Keep the page's aspect ratio inside the width x height box; false stretches it to "
        "exactly that size."))
    quality: int = Field(90, ge=1, le=100, description="JPEG/WEBP quality.")
    password: str | None = None


class ToTextParams(Params):
    pages: str | None = None
    password: str | None = None


class MergeParams(Params):
    pass


class SplitParams(Params):
    ranges: str | None = Field(None, description="One output per range: '1-2,3-5'.")
    every: int | None = Field(None, ge=1, description="One output per N pages.")
    password: str | None = None

    @model_validator(mode="after")
    def _one_mode(self) -> SplitParams:
        if self.ranges and self.every:
            raise ValueError("give either ranges or every, not both")
        return self


@contextmanager
def open_pdfium(path: Path, password: str | None) -> Iterator[pdfium.PdfDocument]:
    """Open with PDFium, turning its load errors into classified ones."""
    import pypdfium2 as pdfium

    try:
        doc = pdfium.PdfDocument(path, password=password)
    except pdfium.PdfiumError as exc:
        text = str(exc)
        if "password" in text.lower():
            raise PasswordRequired(
                "the PDF is encrypted: " + ("the password is wrong" if password
                                            else "give its password in the 'password' parameter")
            ) from exc
        raise InvalidInput(f"the PDF is damaged and cannot be read ({text})") from exc
    try:
        yield doc
    finally:
        doc.close()


def open_pypdf(path: Path, password: str | None) -> pypdf.PdfReader:
    import pypdf

    try:
        reader = pypdf.PdfReader(path, strict=False)
        if reader.is_encrypted and (not password or not reader.decrypt(password)):
            raise PasswordRequired(
                "the PDF is encrypted: " + ("the password is wrong" if password
                                            else "give its password in 'password'"))
        len(reader.pages)  # forces the page tree to parse
        return reader
    except PasswordRequired:
        raise
    except Exception as exc:  # pypdf raises many types for damaged files
        raise InvalidInput(f"the PDF is damaged and cannot be read ({exc})") from exc


def page_text(textpage: pdfium.PdfTextPage) -> str:
    """The page's text in reading order, as PDFium's own text extraction gives it.

    `get_text_range` keeps the line breaks PDFium infers; `get_text_bounded` drops some of
    them (gluing a table's "556" and the next row's "2" into "5562") and emits control
    characters. PDFium marks a hyphen it joined across a line end with U+FFFE, which is
    not a character: it is put back as the hyphen and line break printed on the page."""
    return textpage.get_text_range().replace("\r\n", "\n").replace("\ufffe", "-\n")


class PdfEngine(Engine):
    name = "pdf"
    operations = (
        Operation("pdf.to-image", "Render PDF pages to PNG, JPEG, TIFF or WEBP images.",
                  ToImageParams, PDF, ("png", "jpeg", "tiff", "webp"), engine="pdf"),
        Operation("pdf.to-text", "Extract the text layer of a PDF, page by page.",
                  ToTextParams, PDF, ("txt",), engine="pdf"),
        Operation("pdf.merge", "Concatenate PDFs in the order given.",
                  MergeParams, PDF, ("pdf",), min_inputs=2, max_inputs=200, engine="pdf"),
        Operation("pdf.split", "Split a PDF by page ranges or every N pages.",
                  SplitParams, PDF, ("pdf",), engine="pdf"),
    )

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        handlers: dict[str, Callable[..., EngineResult]] = {
            "pdf.to-image": self._to_image, "pdf.to-text": self._to_text,
            "pdf.merge": self._merge, "pdf.split": self._split,
        }
        return handlers[operation](inputs, params, workdir, progress)

    def _to_image(self, inputs: Sequence[EngineInput], params: ToImageParams, workdir: Path,
                  progress: Progress) -> EngineResult:
        import pypdfium2 as pdfium
        from PIL import Image

        source = inputs[0]
        pil_format, content_type = IMAGE_FORMATS[params.format]
        ext = "jpg" if pil_format == "JPEG" else params.format
        scale = params.scale or params.dpi / 72
        result = EngineResult()
        with open_pdfium(source.path, params.password) as doc:
            indexes = parse_page_ranges(params.pages, len(doc))
            for done, index in enumerate(indexes):
                page = doc[index]
                width, height = page.get_size()
                exact = None
                if params.width or params.height:
                    scale, exact = _fit_scale(width, height, params)
                if width * scale * height * scale > MAX_RENDER_PIXELS:
                    raise InvalidInput(f"page {index + 1} at this resolution would exceed "
                                       f"{MAX_RENDER_PIXELS} pixels; lower dpi")
                try:
                    image = page.render(scale=scale).to_pil()
                except pdfium.PdfiumError as exc:
                    raise EngineFailed(f"cannot render page {index + 1}: {exc}") from exc
                # PDFium sizes the bitmap with ceil(): a 595.28 pt page at 150 dpi would be
                # 1241 px wide, one partly covered column more than the 1240 the dpi asks for.
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                if image.size != size:
                    image = image.crop((0, 0, *size))
                if exact and image.size != exact:
                    image = image.resize(exact, Image.Resampling.LANCZOS)
                if pil_format == "JPEG" and image.mode not in ("RGB", "L"):
                    image = image.convert("RGB")
                out = workdir / f"{output_stem(source.name)}-{index + 1}.{ext}"
                save_args = {"quality": params.quality} if pil_format in ("JPEG", "WEBP") else {}
                image.save(out, pil_format, **save_args)
                result.outputs.append(EngineOutput(out, content_type))
                result.data.setdefault("pages", []).append(
                    {"page": index + 1, "file": out.name, "width": image.width,
                     "height": image.height})
                page.close()
                progress(100 * (done + 1) / len(indexes), f"rendered page {index + 1}")
            result.pages = len(indexes)
        return result

    def _to_text(self, inputs: Sequence[EngineInput], params: ToTextParams, workdir: Path,
                 progress: Progress) -> EngineResult:
        source = inputs[0]
        texts: list[dict[str, object]] = []
        with open_pdfium(source.path, params.password) as doc:
            indexes = parse_page_ranges(params.pages, len(doc))
            for done, index in enumerate(indexes):
                page = doc[index]
                textpage = page.get_textpage()
                text = page_text(textpage)
                textpage.close()
                page.close()
                texts.append({"page": index + 1, "text": text})
                progress(100 * (done + 1) / len(indexes), f"read page {index + 1}")
        out = workdir / f"{output_stem(source.name)}.txt"
        out.write_text("\f".join(str(t["text"]) for t in texts), encoding="utf-8")
        return EngineResult(outputs=[EngineOutput(out, "text/plain; charset=utf-8")],
                            data={"pages": texts}, pages=len(indexes))

    def _merge(self, inputs: Sequence[EngineInput], params: MergeParams, workdir: Path,
               progress: Progress) -> EngineResult:
        import pypdf

        writer = pypdf.PdfWriter()
        for done, item in enumerate(inputs):
            reader = open_pypdf(item.path, None)
            try:
                writer.append(reader)
            except Exception as exc:
                raise InvalidInput(f"cannot merge {item.name}: {exc}") from exc
            progress(90 * (done + 1) / len(inputs), f"added {item.name}")
        out = workdir / f"{output_stem(inputs[0].name)}-merged.pdf"
        with open(out, "wb") as handle:
            writer.write(handle)
        pages = len(writer.pages)
        return EngineResult(outputs=[EngineOutput(out, "application/pdf")],
                            data={"pages": pages}, pages=pages)

    def _split(self, inputs: Sequence[EngineInput], params: SplitParams, workdir: Path,
               progress: Progress) -> EngineResult:
        import pypdf

        source = inputs[0]
        reader = open_pypdf(source.path, params.password)
        count = len(reader.pages)
        if params.ranges:
            groups = [parse_page_ranges(part, count) for part in params.ranges.split(",")]
        else:
            step = params.every or 1
            groups = [list(range(i, min(i + step, count))) for i in range(0, count, step)]
        result = EngineResult(pages=count)
        stem = output_stem(source.name)
        for done, group in enumerate(groups):
            writer = pypdf.PdfWriter()
            for index in group:
                writer.add_page(reader.pages[index])
            first, last = group[0] + 1, group[-1] + 1
            span = f"{first}" if first == last else f"{first}-{last}"
            out = workdir / f"{stem}-{span}.pdf"
            with open(out, "wb") as handle:
                writer.write(handle)
            result.outputs.append(EngineOutput(out, "application/pdf"))
            result.data.setdefault("parts", []).append(
                {"file": out.name, "pages": [i + 1 for i in group]})
            progress(100 * (done + 1) / len(groups), f"wrote part {done + 1} of {len(groups)}")
        return result


def _fit_scale(width: float, height: float,
               params: ToImageParams) -> tuple[float, tuple[int, int] | None]:
    """The render scale for a page of `width` x `height` points into the requested pixel box,
    and the exact size to stretch to when proportions are not kept (else None)."""
    sx = params.width / width if params.width else None
    sy = params.height / height if params.height else None
    if params.keep_proportions or not params.width or not params.height:
        return min(s for s in (sx, sy) if s is not None), None
    return max(params.width / width, params.height / height), (params.width, params.height)
