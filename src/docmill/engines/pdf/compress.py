"""pdf.compress: images shown above the target resolution downsampled and JPEG-recompressed
(kept only when smaller), streams recompressed losslessly."""

from __future__ import annotations

import io
import math
import shutil
import zlib
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmill.engines.base import EngineInput, EngineResult, Progress, output_stem
from docmill.engines.pdf.editing import IDENTITY, Matrix, _result, _save, open_document
from docmill.engines.pdf.params import CompressParams

if TYPE_CHECKING:
    import pikepdf


def _concat(m: Matrix, n: Matrix) -> Matrix:
    """m then n (PDF's row-vector convention: the result is m x n)."""
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + b * c2, a * b2 + b * d2, c * a2 + d * c2, c * b2 + d * d2,
            e * a2 + f * c2 + e2, e * b2 + f * d2 + f2)


def _as_matrix(value: Any) -> Matrix | None:
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return numbers if len(numbers) == 6 else None


def _image_placements(pdf: pikepdf.Pdf, progress: Progress, band: float
                      ) -> dict[tuple[int, int], tuple[float, float]]:
    """The largest size, in points, each image XObject is drawn at on any page (forms
    followed), keyed by object id. Images never drawn from a page are not listed."""
    import pikepdf
    from pikepdf import Name

    sizes: dict[tuple[int, int], tuple[float, float]] = {}

    def walk(holder: Any, resources: Any, ctm: Matrix, stack: tuple[tuple[int, int], ...]
             ) -> None:
        if len(stack) > 12:
            return
        try:
            instructions = pikepdf.parse_content_stream(holder, "q Q cm Do")
        except Exception:
            return  # an unparseable content stream: its images stay as they are
        xobjects = resources.get("/XObject") if isinstance(resources, pikepdf.Dictionary) \
            else None
        saved: list[Matrix] = []
        for instruction in instructions:
            operands, op = instruction.operands, str(instruction.operator)
            if op == "q":
                saved.append(ctm)
            elif op == "Q":
                ctm = saved.pop() if saved else IDENTITY
            elif op == "cm":
                m = _as_matrix(operands)
                if m is not None:
                    ctm = _concat(m, ctm)
            elif op == "Do" and xobjects is not None and operands:
                xobj = xobjects.get(str(operands[0]))
                if not isinstance(xobj, pikepdf.Stream) or not xobj.is_indirect:
                    continue
                key = xobj.objgen
                subtype = xobj.get("/Subtype")
                if subtype == Name.Image:
                    width = math.hypot(ctm[0], ctm[1])
                    height = math.hypot(ctm[2], ctm[3])
                    old = sizes.get(key, (0.0, 0.0))
                    sizes[key] = (max(old[0], width), max(old[1], height))
                elif subtype == Name.Form and key not in stack:
                    inner = _as_matrix(xobj.get("/Matrix", IDENTITY)) or IDENTITY
                    walk(xobj, xobj.get("/Resources", resources), _concat(inner, ctm),
                         stack + (key,))

    count = len(pdf.pages)
    for index, page in enumerate(pdf.pages):
        walk(page, page.obj.get("/Resources"), IDENTITY, ())
        progress(band * (index + 1) / count, f"found the images of page {index + 1}")
    return sizes


JPEG_COLORSPACES = {"/DeviceRGB": "RGB", "/DeviceGray": "L", "/CalRGB": "RGB", "/CalGray": "L"}


def _jpeg_mode(image: pikepdf.Stream) -> str | None:
    """The Pillow mode an image can be re-encoded as JPEG in, keeping its colour space, or
    None for images this must not touch (masks, palettes, CMYK, 16-bit, colour keys...)."""
    import pikepdf
    from pikepdf import Name

    if image.get("/ImageMask") or "/Decode" in image \
            or ("/Mask" in image and not isinstance(image.get("/Mask"), pikepdf.Stream)):
        return None
    if int(image.get("/BitsPerComponent", 0)) != 8:
        return None
    filters = image.get("/Filter")
    names = [str(f) for f in (filters if isinstance(filters, pikepdf.Array) else [filters])
             if f is not None]
    if any(n not in ("/FlateDecode", "/DCTDecode", "/LZWDecode", "/RunLengthDecode")
           for n in names):
        return None  # JPX, JBIG2, CCITT: already compact, or not ours to decode
    space = image.get("/ColorSpace")
    if isinstance(space, pikepdf.Name):
        return JPEG_COLORSPACES.get(str(space))
    if isinstance(space, pikepdf.Array) and len(space) == 2 and space[0] == Name.ICCBased:
        return {1: "L", 3: "RGB"}.get(int(space[1].get("/N", 0)))
    if isinstance(space, pikepdf.Array) and len(space) == 2 \
            and str(space[0]) in ("/CalRGB", "/CalGray"):
        return JPEG_COLORSPACES[str(space[0])]
    return None


@dataclass
class CompressStats:
    images: int = 0
    downsampled: int = 0
    recompressed: int = 0
    skipped: int = 0


def _recompress_image(image: pikepdf.Stream, size_pt: tuple[float, float],
                      params: CompressParams, stats: CompressStats) -> None:
    """Downsample an image shown above the target resolution, re-encode it as JPEG, and
    keep the result only if it is smaller."""
    import pikepdf
    from pikepdf import Name
    from PIL import Image

    mode = _jpeg_mode(image)
    if mode is None:
        stats.skipped += 1
        return
    width, height = int(image.get("/Width", 0)), int(image.get("/Height", 0))
    if width < 16 or height < 16:
        stats.skipped += 1
        return
    old_length = len(image.read_raw_bytes())
    scale = 1.0
    if size_pt[0] > 0 and size_pt[1] > 0:
        dpi = min(width / (size_pt[0] / 72), height / (size_pt[1] / 72))
        if dpi > params.dpi * 1.1:  # a few percent over is not worth a resampling
            scale = params.dpi / dpi
    filters = image.get("/Filter")
    is_jpeg = filters == Name.DCTDecode or (
        isinstance(filters, pikepdf.Array) and Name.DCTDecode in list(filters))
    if scale == 1.0 and is_jpeg and old_length < 20_000:
        stats.skipped += 1  # a small JPEG: re-encoding it again gains little and loses some
        return
    try:
        picture = pikepdf.PdfImage(image).as_pil_image(apply_decode_array=False,
                                                       apply_mask=False)
    except Exception:
        stats.skipped += 1
        return
    if picture.mode != mode:
        stats.skipped += 1
        return
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    if scale != 1.0:
        picture = picture.resize(new_size, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, "JPEG", quality=params.quality, optimize=True)
    data = buffer.getvalue()
    # Keep the new encoding only when it pays: a downsampled image may well be larger as
    # JPEG than as the flate-compressed drawing it was.
    if len(data) >= old_length * (1.0 if scale != 1.0 else 0.9):
        stats.skipped += 1
        return
    image.write(data, filter=Name.DCTDecode)
    for key in ("/DecodeParms", "/Interpolate"):
        if key in image:
            del image[key]
    image.Width, image.Height, image.BitsPerComponent = new_size[0], new_size[1], 8
    smask = image.get("/SMask")
    if scale != 1.0 and isinstance(smask, pikepdf.Stream):
        _downsample_mask(smask, new_size)
    if scale != 1.0:
        stats.downsampled += 1
    else:
        stats.recompressed += 1


def _downsample_mask(smask: pikepdf.Stream, size: tuple[int, int]) -> None:
    """A soft mask follows its image (losslessly: JPEG ringing shows at soft edges)."""
    import pikepdf
    from pikepdf import Name
    from PIL import Image

    if int(smask.get("/BitsPerComponent", 0)) != 8 or "/Decode" in smask \
            or "/Matte" in smask or smask.get("/Width") is None:
        return
    try:
        mask = pikepdf.PdfImage(smask).as_pil_image(apply_decode_array=False,
                                                    apply_mask=False)
    except Exception:
        return
    if mask.mode != "L" or mask.size[0] <= size[0]:
        return
    mask = mask.resize(size, Image.Resampling.LANCZOS)
    smask.write(zlib.compress(mask.tobytes(), 9), filter=Name.FlateDecode)
    if "/DecodeParms" in smask:
        del smask["/DecodeParms"]
    smask.Width, smask.Height = size


def compress(item: EngineInput, params: CompressParams, workdir: Path,
             progress: Progress) -> EngineResult:
    import pikepdf

    before = item.path.stat().st_size
    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        stats = CompressStats()
        if not params.lossless:
            placements = _image_placements(pdf, progress, 20)
            stats.images = len(placements)
            for done, (objgen, size) in enumerate(placements.items()):
                image = pdf.get_object(objgen)
                try:
                    if not isinstance(image, pikepdf.Stream):
                        raise TypeError("not an image stream")
                    _recompress_image(image, size, params, stats)
                except Exception as exc:  # one odd image must not sink the document
                    stats.skipped += 1
                    opened.warnings.append(f"image {objgen[0]} left as it was ({exc})")
                progress(20 + 60 * (done + 1) / len(placements),
                         f"image {done + 1} of {len(placements)}")
        with suppress(Exception):  # a damaged resource tree: then everything stays
            pdf.remove_unreferenced_resources()
        progress(80, "recompressing streams")
        out = workdir / f"{output_stem(item.name)}-compressed.pdf"
        _save(opened, out, progress, 80, compress_streams=True, recompress_flate=True,
              object_stream_mode=pikepdf.ObjectStreamMode.generate)
        after = out.stat().st_size
        unchanged = after >= before
        if unchanged:  # already tighter than qpdf writes it: hand back the original
            shutil.copyfile(item.path, out)
            after = before
            opened.warnings.append("the PDF could not be made smaller; it is returned as it was")
        return _result(out, opened, opened.pages, pages=opened.pages, size_before=before,
                       size_after=after, saved_bytes=before - after,
                       ratio=round(after / before, 4) if before else 1.0, unchanged=unchanged,
                       images={"found": stats.images, "downsampled": stats.downsampled,
                               "recompressed": stats.recompressed, "kept": stats.skipped})
