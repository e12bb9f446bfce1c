"""Image tools: images to PDF (img2pdf, lossless where the format allows) and image format
conversion (Pillow), multi-frame TIFF and GIF handled frame by frame."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from docmill.engines.base import (
    Engine,
    EngineInput,
    EngineOutput,
    EngineResult,
    Operation,
    Params,
    Progress,
    output_stem,
)
from docmill.errors import InvalidInput

if TYPE_CHECKING:
    from PIL import Image

IMAGES = frozenset({"image/png", "image/jpeg", "image/tiff", "image/webp", "image/gif",
                    "image/bmp", "image/x-ms-bmp", "image/jp2"})
FORMATS = {"png": ("PNG", "image/png", "png"), "jpeg": ("JPEG", "image/jpeg", "jpg"),
           "jpg": ("JPEG", "image/jpeg", "jpg"), "webp": ("WEBP", "image/webp", "webp"),
           "tiff": ("TIFF", "image/tiff", "tiff"), "gif": ("GIF", "image/gif", "gif"),
           "bmp": ("BMP", "image/bmp", "bmp")}


class ToPdfParams(Params):
    page_size: Literal["image", "a4", "letter"] = Field(
        "image", description="'image' keeps each image's own size; otherwise fit to the page.")


class ConvertParams(Params):
    format: Literal["png", "jpeg", "jpg", "webp", "tiff", "gif", "bmp"]
    quality: int = Field(90, ge=1, le=100)
    all_frames: bool = Field(True, description="Write every frame of a multi-frame image.")


# Modes each writer takes as they are; anything else is converted first (a CMYK JPEG to PNG
# would otherwise fail with "cannot write mode CMYK as PNG").
SAVE_MODES = {"PNG": {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"},
              "JPEG": {"L", "RGB"}, "GIF": {"1", "L", "P", "RGB", "RGBA"},
              "BMP": {"1", "L", "P", "RGB"}}


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info


def _to_8bit(image: Image.Image) -> Image.Image:
    """16-bit grey scaled down to 8 bits; a plain convert clips it, so most of the range
    comes out white."""
    if image.mode.startswith("I;16"):
        return image.convert("I").point(lambda v: v / 256).convert("L")
    return image


def _flatten(image: Image.Image) -> Image.Image:
    """RGB on a white background: dropping an alpha channel with a bare convert("RGB") turns
    transparent pixels into whatever colour they hide, usually black."""
    from PIL import Image

    image = _to_8bit(image)
    if not _has_alpha(image):
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _for_writer(image: Image.Image, pil_format: str) -> Image.Image:
    if pil_format not in ("PNG", "TIFF"):  # the writers that keep 16 bits
        image = _to_8bit(image)
    allowed = SAVE_MODES.get(pil_format)
    if allowed is None or image.mode in allowed:
        return image
    if pil_format in ("PNG", "GIF") and _has_alpha(image):
        return image.convert("RGBA")
    return _flatten(image)


@contextmanager
def _decoding(item: EngineInput) -> Iterator[None]:
    """Pillow's decode errors as the client's fault, named after the file (every frame of a
    multi-frame image is decoded, and checked against the decompression-bomb limit, only
    when it is reached). A truncated file is an error here even in a worker where WeasyPrint
    has set Pillow's process-wide LOAD_TRUNCATED_IMAGES (it tolerates cut web images)."""
    from PIL import Image, ImageFile, UnidentifiedImageError

    tolerant = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        yield
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"{item.name} is too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInput(f"{item.name} is not a readable image ({exc})") from exc
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = tolerant


def _open_image(item: EngineInput) -> Image.Image:
    from PIL import Image

    with _decoding(item):
        image = Image.open(item.path)
        image.load()
        return image


def _frames(item: EngineInput, image: Image.Image) -> Iterator[Image.Image]:
    """Each frame as its own decoded copy (ImageSequence yields one object, re-seeked)."""
    from PIL import ImageSequence

    with _decoding(item):
        for frame in ImageSequence.Iterator(image):
            yield frame.copy()


class ImageEngine(Engine):
    name = "image"
    operations = (
        Operation("image.to-pdf", "Put images into a PDF, one page per image (lossless).",
                  ToPdfParams, IMAGES, ("pdf",), min_inputs=1, max_inputs=500, engine="image"),
        Operation("image.convert", "Convert an image to another format.",
                  ConvertParams, IMAGES, ("png", "jpeg", "webp", "tiff", "gif", "bmp"),
                  engine="image"),
    )

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        if operation == "image.to-pdf":
            return self._to_pdf(inputs, params, workdir, progress)  # type: ignore[arg-type]
        return self._convert(inputs[0], params, workdir, progress)  # type: ignore[arg-type]

    def _to_pdf(self, inputs: Sequence[EngineInput], params: ToPdfParams, workdir: Path,
                progress: Progress) -> EngineResult:
        import img2pdf

        layout = img2pdf.default_layout_fun  # img2pdf calls it: None is not "the default"
        if params.page_size != "image":
            page = {"a4": (img2pdf.mm_to_pt(210), img2pdf.mm_to_pt(297)),
                    "letter": (img2pdf.in_to_pt(8.5), img2pdf.in_to_pt(11))}[params.page_size]
            layout = img2pdf.get_layout_fun(page)
        sources: list[bytes | str] = []
        pages = 0
        for done, item in enumerate(inputs):
            image = _open_image(item)  # validates before img2pdf sees it
            frames = getattr(image, "n_frames", 1)
            if image.format in ("JPEG", "PNG", "TIFF", "JPEG2000") \
                    and (image.mode in ("1", "L", "RGB", "CMYK")
                         or (image.format == "PNG" and image.mode == "I;16")) \
                    and not _has_alpha(image):
                sources.append(str(item.path))  # lossless pass-through
            else:  # alpha, palette, 16-bit, WEBP/GIF/BMP: re-encode each frame as PNG first
                for index, frame in enumerate(_frames(item, image)):
                    png = workdir / f".frame-{done}-{index}.png"
                    _flatten(frame).save(png, "PNG")
                    sources.append(str(png))
            pages += frames
            progress(80 * (done + 1) / len(inputs), f"read {item.name}")
        out = workdir / f"{output_stem(inputs[0].name)}.pdf"
        try:
            out.write_bytes(img2pdf.convert(sources, layout_fun=layout,
                                            rotation=img2pdf.Rotation.ifvalid))
        except Exception as exc:  # img2pdf raises its own error types for odd images
            raise InvalidInput(f"cannot put these images into a PDF: {exc}") from exc
        return EngineResult(outputs=[EngineOutput(out, "application/pdf")],
                            data={"pages": pages}, pages=pages)

    def _convert(self, item: EngineInput, params: ConvertParams, workdir: Path,
                 progress: Progress) -> EngineResult:
        pil_format, content_type, ext = FORMATS[params.format]
        image = _open_image(item)
        count = getattr(image, "n_frames", 1) if params.all_frames else 1
        frames = _frames(item, image) if params.all_frames else iter([image])
        stem = output_stem(item.name)
        result = EngineResult(pages=count)
        for index, frame in enumerate(frames):
            frame = _for_writer(frame, pil_format)
            name = f"{stem}.{ext}" if count == 1 else f"{stem}-{index + 1}.{ext}"
            out = workdir / name
            save_args = {"quality": params.quality} if pil_format in ("JPEG", "WEBP") else {}
            frame.save(out, pil_format, **save_args)
            result.outputs.append(EngineOutput(out, content_type))
            result.data.setdefault("images", []).append(
                {"file": name, "width": frame.width, "height": frame.height})
            progress(100 * (index + 1) / count, f"wrote frame {index + 1}")
        return result
