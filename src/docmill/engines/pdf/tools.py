"""PDF tools that edit a document's structure: rotate, compress, protect and unprotect,
watermark, PDF/A, extract and delete pages, metadata.

Every input is first opened with PDFium through `open_pdfium` (engines/pdf/render.py), so a
damaged or encrypted document gets the same classified error (`InvalidInput`,
`PasswordRequired`) as with every other `pdf.*` operation, even where qpdf alone would
have patched up a file no viewer can show. The editing itself is pikepdf (qpdf): it rewrites
only what changes, keeps outlines, forms, tags and XMP metadata, and repairs small damage
(reported in the job's warnings).

Encryption: an encrypted input opens with its user or owner password in `password`. Its
output keeps the input's encryption (same passwords, same permissions) for every operation
but `pdf.unprotect` (which removes it), `pdf.protect` (which replaces it) and `pdf.to-pdfa`
(PDF/A forbids encryption). Changing a document's protection needs its password, even when
it opens without one (an owner password that only restricts permissions).

The watermark is real text: PDFium draws it on a stamp page (standard Helvetica-Bold, or
DejaVu Sans embedded for text outside Windows-1252), which is placed on each page as a form
XObject, upright on the page as displayed whatever its /Rotate. PDF/A-1b/2b/3b is written by
Ghostscript when installed (with an sRGB output intent), else by LibreOffice's PDF import
through the worker's office engine; either way the result must declare PDF/A in its XMP
metadata or the job fails.
"""

from __future__ import annotations

import ctypes
import io
import math
import os
import re
import secrets
import shutil
import subprocess
import threading
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from glob import glob
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

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
from docmill.engines.pdf.render import PDF, open_pdfium, page_text
from docmill.errors import EngineFailed, InvalidInput, PasswordRequired, Timeout

if TYPE_CHECKING:
    import pikepdf

MAX_WARNINGS = 10
GHOSTSCRIPT_TIMEOUT_S = 600.0  # the job's own timeout usually comes first
STAMP_FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
                    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SRGB_PROFILES = ("/usr/share/color/icc/ghostscript/srgb.icc",
                 "/usr/share/ghostscript/*/iccprofiles/srgb.icc")


# --- parameters ------------------------------------------------------------------------------

class _Password(Params):
    password: str | None = Field(None, description="User or owner password of an encrypted "
                                 "input.")


class RotateParams(_Password):
    angle: Literal[90, 180, 270, -90] = Field(90, description="Degrees clockwise.")
    pages: str | None = Field(None, description="Page ranges, e.g. '1-3,5'; all when empty.")
    relative: bool = Field(True, description="Add to each page's current rotation; false "
                           "sets the rotation to `angle`.")


class CompressParams(_Password):
    dpi: int = Field(150, ge=36, le=1200, description="Images shown at a higher resolution "
                     "than this are downsampled to it.")
    quality: int = Field(75, ge=10, le=100, description="JPEG quality of recompressed images.")
    lossless: bool = Field(False, description="Only recompress streams losslessly; leave "
                           "images as they are.")


class ProtectParams(_Password):
    user_password: str | None = Field(None, max_length=127, description="Needed to open the "
                                      "document; empty: anyone may open it.")
    owner_password: str | None = Field(None, max_length=127, description="Lifts the "
                                       "permissions; a random one when empty.")
    encryption: Literal["aes-256", "aes-128"] = "aes-256"
    allow_print: bool = True
    allow_print_high_res: bool = True
    allow_copy: bool = Field(True, description="Copying or extracting text and images.")
    allow_modify: bool = True
    allow_annotate: bool = True
    allow_fill_forms: bool = True
    allow_assemble: bool = Field(True, description="Inserting, rotating, deleting pages.")
    allow_accessibility: bool = Field(True, description="Text extraction for accessibility.")

    @model_validator(mode="after")
    def _some_password(self) -> ProtectParams:
        if not self.user_password and not self.owner_password:
            raise ValueError("give user_password, owner_password or both")
        return self


class UnprotectParams(_Password):
    pass


Position = Literal["center", "top-left", "top", "top-right", "left", "right",
                   "bottom-left", "bottom", "bottom-right"]
_COLOR_RE = re.compile(r"^#?([0-9a-fA-F]{6})$")


class WatermarkParams(_Password):
    text: str = Field(..., min_length=1, max_length=200)
    font_size: float | None = Field(None, ge=4, le=500, description="Points; empty fits the "
                                    "text to the page.")
    opacity: float = Field(0.3, gt=0, le=1)
    angle: float = Field(45, ge=-360, le=360, description="Degrees counter-clockwise.")
    position: Position = "center"
    color: str = Field("#808080", description="Hex RGB, e.g. #ff0000.")
    margin: float = Field(36, ge=0, le=1000, description="Points kept free at the page edges "
                          "for positions other than center.")
    pages: str | None = Field(None, description="Page ranges to stamp; all when empty.")

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value or any(ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0 for ch in value):
            raise ValueError("text must be printable characters")
        return value

    @field_validator("color")
    @classmethod
    def _color(cls, value: str) -> str:
        match = _COLOR_RE.match(value.strip())
        if not match:
            raise ValueError("color must be a hex RGB value such as #808080")
        return "#" + match.group(1).lower()


class ToPdfaParams(_Password):
    pdf_format: Literal["pdfa-1b", "pdfa-2b", "pdfa-3b"] = "pdfa-2b"
    engine: Literal["auto", "ghostscript", "libreoffice"] = Field(
        "auto", description="auto: Ghostscript when installed, else LibreOffice.")


class ExtractParams(_Password):
    pages: str = Field(..., min_length=1, description="Pages to keep, in this order, e.g. "
                       "'1-3,5'.")


class DeletePagesParams(_Password):
    pages: str = Field(..., min_length=1, description="Pages to remove, e.g. '2,4-6'.")


class MetadataParams(_Password):
    title: str | None = Field(None, max_length=2000)
    author: str | None = Field(None, max_length=2000)
    subject: str | None = Field(None, max_length=2000)
    keywords: str | None = Field(None, max_length=2000)

    @model_validator(mode="after")
    def _something(self) -> MetadataParams:
        if all(v is None for v in (self.title, self.author, self.subject, self.keywords)):
            raise ValueError("give at least one of title, author, subject, keywords "
                             "(an empty string removes the field)")
        return self


# --- opening and saving ----------------------------------------------------------------------

@dataclass
class Opened:
    pdf: pikepdf.Pdf
    pages: int
    warnings: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # qpdf's, while reading and writing

    def all_warnings(self) -> list[str]:
        found = list(self.warnings)
        if self.repairs:
            shown = "; ".join(w.split(": ", 1)[-1] for w in self.repairs[:3])
            found.insert(0, f"the PDF is damaged; {len(self.repairs)} problem(s) were "
                         f"repaired ({shown})")
        return found[:MAX_WARNINGS]

    @property
    def password_matched(self) -> str | None:
        if not self.pdf.is_encrypted:
            return None
        if self.pdf.owner_password_matched:
            return "owner"
        return "user" if self.pdf.user_password_matched else None


@contextmanager
def open_document(item: EngineInput, password: str | None) -> Iterator[Opened]:
    """PDFium decides whether the file is readable and the password right; pikepdf edits."""
    import pikepdf

    with open_pdfium(item.path, password) as doc:
        pages = len(doc)
    try:
        pdf = pikepdf.open(item.path, password=password or "")
    except pikepdf.PasswordError as exc:
        raise PasswordRequired("the PDF is encrypted: " + (
            "the password is wrong" if password else "give its password in 'password'")) from exc
    except Exception as exc:  # qpdf's errors for files PDFium could read are rare
        raise InvalidInput(f"the PDF is damaged and cannot be edited ({exc})") from exc
    try:
        if len(pdf.pages) == 0:
            raise InvalidInput("the PDF has no pages")
        yield Opened(pdf, pages, repairs=[str(w) for w in pdf.get_warnings()])
    finally:
        pdf.close()


def _save(opened: Opened, out: Path, progress: Progress, start: float, *,
          encryption: pikepdf.Encryption | bool | None = None, **options: Any) -> None:
    """Write with qpdf; the input's encryption is kept unless told otherwise."""
    pdf = opened.pdf
    if encryption is None:
        encryption = pdf.is_encrypted

    def saving(percent: int) -> None:
        progress(start + (99 - start) * percent / 100, "writing the PDF")

    try:
        pdf.save(out, encryption=encryption, progress=saving, **options)
    except Exception as exc:
        raise EngineFailed(f"cannot write the PDF ({exc})") from exc
    progress(100, "wrote the PDF")
    opened.repairs += [str(w) for w in pdf.get_warnings()]  # (each call drains qpdf's list)


def _result(out: Path, opened: Opened, processed: int, **data: Any) -> EngineResult:
    return EngineResult(outputs=[EngineOutput(out, "application/pdf")], data=data,
                        warnings=opened.all_warnings(), pages=processed)


def _normal_rotation(page: pikepdf.Page) -> int:
    try:
        value = int(page.obj.get("/Rotate", 0))
    except (TypeError, ValueError):
        value = 0
    return (round(value / 90) * 90) % 360


# --- rotate, extract, delete, metadata -------------------------------------------------------

def rotate(item: EngineInput, params: RotateParams, workdir: Path,
           progress: Progress) -> EngineResult:
    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        indexes = sorted(set(parse_page_ranges(params.pages, len(pdf.pages))))
        for done, index in enumerate(indexes):
            page = pdf.pages[index]
            if params.relative:
                page.rotate(params.angle, relative=True)
            else:
                page.rotate(params.angle % 360, relative=False)
            progress(80 * (done + 1) / len(indexes), f"rotated page {index + 1}")
        out = workdir / f"{output_stem(item.name)}-rotated.pdf"
        _save(opened, out, progress, 80)
        rotations = [_normal_rotation(p) for p in pdf.pages]
        return _result(out, opened, len(indexes), pages=len(pdf.pages),
                       rotated=[i + 1 for i in indexes], rotation=rotations)


def _keep_pages(pdf: pikepdf.Pdf, keep: list[int], progress: Progress) -> None:
    """Make the page list exactly `keep` (old indexes, in order, repeats allowed). Kept
    pages stay the same objects, so links and outline entries to them still work; a page
    asked for twice is copied the second time (pikepdf copies a page appended twice)."""
    old = list(pdf.pages)
    kept = {old[i].obj.objgen for i in keep}
    removed = {page.obj.objgen for page in old} - kept
    if keep == sorted(set(keep)):
        dropped = sorted(set(range(len(old))) - set(keep), reverse=True)
        for done, index in enumerate(dropped):
            del pdf.pages[index]
            progress(50 * (done + 1) / len(dropped), f"removed page {index + 1}")
    else:
        for index in range(len(old) - 1, -1, -1):
            del pdf.pages[index]
        for done, index in enumerate(keep):
            pdf.pages.append(old[index])
            progress(50 * (done + 1) / len(keep), f"placed page {index + 1}")
    _forget_pages(pdf, removed)
    progress(60, "removed references to the other pages")


def _forget_pages(pdf: pikepdf.Pdf, removed: set[tuple[int, int]]) -> None:
    """Cut every remaining reference to removed pages (outline and link destinations, form
    widgets' /P, structure elements' /Pg...): qpdf writes whatever is referenced, so the
    removed pages, content and all, would otherwise still be in the file."""
    import pikepdf

    if not removed:
        return

    def gone(value: Any) -> bool:
        return isinstance(value, pikepdf.Object) and value.is_indirect \
            and value.objgen in removed

    def scrub(container: Any, depth: int) -> None:
        if depth > 32:
            return
        if isinstance(container, pikepdf.Array):
            for index, value in enumerate(container):
                if gone(value):
                    container[index] = None
                elif isinstance(value, (pikepdf.Array, pikepdf.Dictionary)) \
                        and not value.is_indirect:
                    scrub(value, depth + 1)
        else:
            for key in list(container.keys()):
                value = container.get(key)
                if gone(value):
                    del container[key]  # a null entry is an absent one
                elif isinstance(value, (pikepdf.Array, pikepdf.Dictionary)) \
                        and not value.is_indirect:
                    scrub(value, depth + 1)

    for obj in pdf.objects:
        if isinstance(obj, (pikepdf.Array, pikepdf.Dictionary, pikepdf.Stream)) \
                and obj.objgen not in removed:
            scrub(obj, 0)


def extract(item: EngineInput, params: ExtractParams, workdir: Path,
            progress: Progress) -> EngineResult:
    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        count = len(pdf.pages)
        keep = parse_page_ranges(params.pages, count)
        if not keep:
            raise InvalidInput(f"the page range {params.pages!r} selects no page")
        _keep_pages(pdf, keep, progress)
        progress(70, f"kept {len(keep)} of {count} pages")
        out = workdir / f"{output_stem(item.name)}-extract.pdf"
        _save(opened, out, progress, 70)
        return _result(out, opened, len(keep), pages=len(keep),
                       source_pages=[i + 1 for i in keep])


def delete_pages(item: EngineInput, params: DeletePagesParams, workdir: Path,
                 progress: Progress) -> EngineResult:
    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        count = len(pdf.pages)
        removed = set(parse_page_ranges(params.pages, count))
        keep = [i for i in range(count) if i not in removed]
        if not keep:
            raise InvalidInput("this would delete every page of the document")
        _keep_pages(pdf, keep, progress)
        out = workdir / f"{output_stem(item.name)}-pages-deleted.pdf"
        _save(opened, out, progress, 70)
        return _result(out, opened, len(keep), pages=len(keep),
                       deleted=sorted(i + 1 for i in removed),
                       source_pages=[i + 1 for i in keep])


METADATA_FIELDS = {"title": ("/Title", "dc:title"), "author": ("/Author", "dc:creator"),
                   "subject": ("/Subject", "dc:description"),
                   "keywords": ("/Keywords", "pdf:Keywords")}


def _docinfo_text(pdf: pikepdf.Pdf, key: str) -> str | None:
    if "/Info" not in pdf.trailer or key not in pdf.docinfo:
        return None
    try:
        return str(pdf.docinfo[key])
    except Exception:
        return None


def metadata(item: EngineInput, params: MetadataParams, workdir: Path,
             progress: Progress) -> EngineResult:
    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        changes = {name: getattr(params, name) for name in METADATA_FIELDS
                   if getattr(params, name) is not None}
        # Both the XMP metadata and the Info dictionary: readers differ in which one they
        # show, and PDF/A wants the two to agree.
        try:
            with pdf.open_metadata(set_pikepdf_as_editor=False, update_docinfo=False) as meta:
                for name, value in changes.items():
                    xmp_key = METADATA_FIELDS[name][1]
                    if value:
                        meta[xmp_key] = [value] if xmp_key == "dc:creator" else value
                    elif xmp_key in meta:
                        del meta[xmp_key]
        except Exception as exc:  # unparseable XMP: the Info dictionary still gets it
            opened.warnings.append(f"the XMP metadata could not be updated ({exc})")
        progress(40, "updated XMP metadata")
        for name, value in changes.items():
            key = METADATA_FIELDS[name][0]
            if value:
                pdf.docinfo[key] = value
            elif "/Info" in pdf.trailer and key in pdf.docinfo:
                del pdf.docinfo[key]
        progress(60, "updated document information")
        out = workdir / f"{output_stem(item.name)}.pdf"
        _save(opened, out, progress, 60)
        now = {name: _docinfo_text(pdf, keys[0]) for name, keys in METADATA_FIELDS.items()}
        return _result(out, opened, opened.pages, pages=opened.pages, metadata=now,
                       changed=sorted(changes))


# --- protect / unprotect ---------------------------------------------------------------------

def _needs_password(opened: Opened, params: _Password, what: str) -> None:
    """Changing an encrypted document's protection takes its password, even if it opens
    without one (an owner password restricting what may be done with it)."""
    if opened.pdf.is_encrypted and (not params.password or opened.password_matched is None):
        raise PasswordRequired(f"the PDF is encrypted: give its password in 'password' to "
                               f"{what} it")


def protect(item: EngineInput, params: ProtectParams, workdir: Path,
            progress: Progress) -> EngineResult:
    import pikepdf

    with open_document(item, params.password) as opened:
        _needs_password(opened, params, "re-protect")
        progress(20, "opened")
        owner = params.owner_password or secrets.token_urlsafe(24)
        if not params.owner_password:
            opened.warnings.append("no owner password was given: a random one was set, so "
                                   "the permissions cannot be lifted")
        elif params.owner_password == params.user_password:
            opened.warnings.append("the owner and user passwords are the same: whoever "
                                   "opens the document may lift the permissions")
        allow = pikepdf.Permissions(
            print_lowres=params.allow_print,
            print_highres=params.allow_print and params.allow_print_high_res,
            extract=params.allow_copy, modify_other=params.allow_modify,
            modify_annotation=params.allow_annotate, modify_form=params.allow_fill_forms,
            modify_assembly=params.allow_assemble, accessibility=params.allow_accessibility)
        encryption = pikepdf.Encryption(user=params.user_password or "", owner=owner,
                                        R=6 if params.encryption == "aes-256" else 4,
                                        aes=True, metadata=True, allow=allow)
        out = workdir / f"{output_stem(item.name)}-protected.pdf"
        _save(opened, out, progress, 30, encryption=encryption)
        permissions = {"print": params.allow_print,
                       "print_high_res": params.allow_print and params.allow_print_high_res,
                       "copy": params.allow_copy, "modify": params.allow_modify,
                       "annotate": params.allow_annotate, "fill_forms": params.allow_fill_forms,
                       "assemble": params.allow_assemble,
                       "accessibility": params.allow_accessibility}
        return _result(out, opened, opened.pages, pages=opened.pages,
                       encryption=params.encryption.upper(),
                       user_password=bool(params.user_password),
                       owner_password="given" if params.owner_password else "random",
                       permissions=permissions)


def unprotect(item: EngineInput, params: UnprotectParams, workdir: Path,
              progress: Progress) -> EngineResult:
    with open_document(item, params.password) as opened:
        was_encrypted = opened.pdf.is_encrypted
        matched = opened.password_matched
        if not was_encrypted:
            opened.warnings.append("the PDF was not encrypted")
        _needs_password(opened, params, "unprotect")
        progress(20, "decrypted")
        out = workdir / f"{output_stem(item.name)}-unprotected.pdf"
        _save(opened, out, progress, 30, encryption=False)
        return _result(out, opened, opened.pages, pages=opened.pages,
                       was_encrypted=was_encrypted, password_matched=matched)


# --- compress --------------------------------------------------------------------------------

Matrix = tuple[float, float, float, float, float, float]
IDENTITY: Matrix = (1, 0, 0, 1, 0, 0)


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
    return numbers if len(numbers) == 6 else None  # type: ignore[return-value]


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
        for operands, operator in instructions:
            op = str(operator)
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
    is_jpeg = image.get("/Filter") == Name.DCTDecode or (
        isinstance(image.get("/Filter"), pikepdf.Array)
        and Name.DCTDecode in list(image.get("/Filter")))
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


# --- watermark -------------------------------------------------------------------------------

def _displayed_box(page: pikepdf.Page) -> tuple[float, float, float, float, int]:
    """(x0, y0, width, height) of the crop box in user space, and the page's rotation."""
    box = page.cropbox
    x0, x1 = sorted((float(box[0]), float(box[2])))
    y0, y1 = sorted((float(box[1]), float(box[3])))
    return x0, y0, x1 - x0, y1 - y0, _normal_rotation(page)


def _display_to_user(x0: float, y0: float, width: float, height: float, rotation: int
                     ) -> Matrix:
    """Maps displayed-page coordinates (origin bottom left of the page as shown) into the
    page's user space, undoing its /Rotate (which turns the page clockwise)."""
    return {0: (1, 0, 0, 1, x0, y0),
            90: (0, 1, -1, 0, x0 + width, y0),
            180: (-1, 0, 0, -1, x0 + width, y0 + height),
            270: (0, -1, 1, 0, x0, y0 + height)}[rotation]


class StampMaker:
    """Stamp pages drawn by PDFium, one per displayed page size: the text as a real text
    object, turned about its centre and placed at the requested position."""

    def __init__(self, params: WatermarkParams) -> None:
        import pypdfium2 as pdfium

        self.params = params
        self.doc = pdfium.PdfDocument.new()
        self.font_data: Any = None  # PDFium reads the font buffer until the document is saved
        self.sizes: list[tuple[float, float]] = []
        self.font_sizes: list[float] = []
        self.font_name = self._load_font()

    def _load_font(self) -> str:
        import pypdfium2.raw as pdfium_c

        try:
            self.params.text.encode("cp1252")
        except UnicodeEncodeError:
            pass
        else:  # a standard font: nothing embedded, every reader has it
            self.font = pdfium_c.FPDFText_LoadStandardFont(self.doc.raw, b"Helvetica-Bold")
            return "Helvetica-Bold"
        path = next((Path(p) for p in STAMP_FONT_FILES if Path(p).is_file()), None)
        if path is None:
            raise InvalidInput("the watermark text has characters outside Windows-1252 and "
                               "no Unicode font (DejaVu Sans) is installed")
        data = path.read_bytes()
        self.font_data = (ctypes.c_uint8 * len(data)).from_buffer_copy(data)
        self.font = pdfium_c.FPDFText_LoadFont(self.doc.raw, self.font_data, len(data),
                                               pdfium_c.FPDF_FONT_TRUETYPE, True)
        if not self.font:
            raise EngineFailed(f"PDFium could not load the font {path}")
        return path.stem

    def _text_object(self, size: float) -> Any:
        import pypdfium2.raw as pdfium_c

        obj = pdfium_c.FPDFPageObj_CreateTextObj(self.doc.raw, self.font, ctypes.c_float(size))
        text = (self.params.text + "\0").encode("utf-16-le")
        if not pdfium_c.FPDFText_SetText(obj, ctypes.cast(ctypes.c_char_p(text),
                                                          pdfium_c.FPDF_WIDESTRING)):
            pdfium_c.FPDFPageObj_Destroy(obj)
            raise EngineFailed("PDFium could not set the watermark text")
        red, green, blue = (int(self.params.color[i:i + 2], 16) for i in (1, 3, 5))
        # The alpha becomes the text's own /ca: the stamp is see-through in any viewer.
        pdfium_c.FPDFPageObj_SetFillColor(obj, red, green, blue,
                                          max(1, round(self.params.opacity * 255)))
        return obj

    @staticmethod
    def _bounds(obj: Any) -> tuple[float, float, float, float]:
        import pypdfium2.raw as pdfium_c

        box = [ctypes.c_float() for _ in range(4)]
        pdfium_c.FPDFPageObj_GetBounds(obj, *box)
        return box[0].value, box[1].value, box[2].value, box[3].value

    def _font_size(self, width: float, height: float, turned_w: float, turned_h: float
                   ) -> float:
        """The requested size, or one fitting the page: 80% of it for a centred stamp, a
        corner or edge one at most 48 pt and inside the margins."""
        p = self.params
        if p.font_size is not None:
            return p.font_size
        if p.position == "center":
            size = 100 * min(0.8 * width / turned_w, 0.8 * height / turned_h)
        else:
            room_w, room_h = max(width - 2 * p.margin, 1), max(height - 2 * p.margin, 1)
            size = min(100 * 0.4 * width / turned_w, 100 * 0.4 * height / turned_h,
                       100 * room_w / turned_w, 100 * room_h / turned_h, 48)
        return max(4.0, min(size, 500.0))

    def add(self, width: float, height: float) -> int:
        """The stamp page for a displayed page of this size (made once); its index."""
        import pypdfium2.raw as pdfium_c

        key = (round(width, 2), round(height, 2))
        if key in self.sizes:
            return self.sizes.index(key)
        p = self.params
        theta = math.radians(p.angle)
        cos, sin = math.cos(theta), math.sin(theta)
        probe = self._text_object(100)
        left, bottom, right, top = self._bounds(probe)
        pdfium_c.FPDFPageObj_Destroy(probe)
        turned_w = (right - left) * abs(cos) + (top - bottom) * abs(sin)  # at 100 pt
        turned_h = (right - left) * abs(sin) + (top - bottom) * abs(cos)
        size = self._font_size(width, height, turned_w, turned_h)
        obj = self._text_object(size)
        left, bottom, right, top = self._bounds(obj)
        cx, cy = (left + right) / 2, (bottom + top) / 2
        half_w, half_h = turned_w * size / 200, turned_h * size / 200
        parts = p.position.split("-")
        column = 0 if "left" in parts else 2 if "right" in parts else 1
        row = 0 if "top" in parts else 2 if "bottom" in parts else 1
        px = (p.margin + half_w, width / 2, width - p.margin - half_w)[column]
        py = (height - p.margin - half_h, height / 2, p.margin + half_h)[row]
        # Centre the text on the origin, turn it, move it to (px, py).
        pdfium_c.FPDFPageObj_Transform(obj, cos, sin, -sin, cos,
                                       -cx * cos + cy * sin + px, -cx * sin - cy * cos + py)
        page = self.doc.new_page(width, height)
        pdfium_c.FPDFPage_InsertObject(page.raw, obj)
        if not pdfium_c.FPDFPage_GenerateContent(page.raw):
            raise EngineFailed("PDFium could not draw the watermark")
        page.close()
        self.sizes.append(key)
        self.font_sizes.append(round(size, 2))
        return len(self.sizes) - 1

    def save(self) -> bytes:
        buffer = io.BytesIO()
        self.doc.save(buffer)
        self.doc.close()
        return buffer.getvalue()


def _pdf_number(value: float) -> str:
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def watermark(item: EngineInput, params: WatermarkParams, workdir: Path,
              progress: Progress) -> EngineResult:
    import pikepdf
    from pikepdf import Name

    with open_document(item, params.password) as opened:
        pdf = opened.pdf
        indexes = sorted(set(parse_page_ranges(params.pages, len(pdf.pages))))
        maker = StampMaker(params)
        plan: list[tuple[int, int, Matrix]] = []
        for index in indexes:
            x0, y0, width, height, rotation = _displayed_box(pdf.pages[index])
            shown = (height, width) if rotation in (90, 270) else (width, height)
            plan.append((index, maker.add(*shown),
                         _display_to_user(x0, y0, width, height, rotation)))
        progress(20, "drew the watermark")
        # The stamps' PDF stays open until the output is written: qpdf copies the data of
        # foreign streams only then.
        with pikepdf.open(io.BytesIO(maker.save())) as stamps:
            forms = [pdf.copy_foreign(page.as_form_xobject()) for page in stamps.pages]
            for done, (index, stamp, matrix) in enumerate(plan):
                page = pdf.pages[index]
                name = page.add_resource(forms[stamp], Name.XObject, prefix="Wm")
                # The page's own drawing is wrapped in q/Q so whatever graphics state it
                # leaves behind cannot move or recolour the stamp.
                page.contents_add(pdf.make_stream(b"q\n"), prepend=True)
                cm = " ".join(_pdf_number(v) for v in matrix)
                page.contents_add(pdf.make_stream(f"\nQ\nq {cm} cm {name} Do Q\n".encode()))
                progress(20 + 60 * (done + 1) / len(plan), f"stamped page {index + 1}")
            out = workdir / f"{output_stem(item.name)}-watermarked.pdf"
            _save(opened, out, progress, 80)
        return _result(out, opened, len(indexes), pages=len(pdf.pages),
                       stamped=[i + 1 for i in indexes], font=maker.font_name,
                       font_sizes=maker.font_sizes)


# --- PDF/A -----------------------------------------------------------------------------------

PDFA_PARTS = {"pdfa-1b": 1, "pdfa-2b": 2, "pdfa-3b": 3}
XMP_PDFAID = "{http://www.aiim.org/pdfa/ns/id/}"


def pdfa_claim(path: Path) -> tuple[str | None, str | None, bool]:
    """(pdfaid:part, pdfaid:conformance, has an output intent) as the file declares them."""
    import pikepdf

    with pikepdf.open(path) as pdf:
        try:
            meta = pdf.open_metadata()
            part = meta.get(f"{XMP_PDFAID}part")
            conformance = meta.get(f"{XMP_PDFAID}conformance")
        except Exception:
            part = conformance = None
        intents = pdf.Root.get("/OutputIntents")
        return (str(part) if part is not None else None,
                str(conformance) if conformance is not None else None,
                isinstance(intents, pikepdf.Array) and len(intents) > 0)


def _srgb_profile() -> Path | None:
    for pattern in SRGB_PROFILES:
        for found in sorted(glob(pattern)):
            if Path(found).is_file():
                return Path(found).resolve()
    return None


def _ps_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _pdfa_definitions(profile: Path) -> str:
    """Ghostscript's PDFA_def.ps, reduced to what matters: an sRGB output intent."""
    return f"""%!
/ICCProfile {_ps_string(str(profile))} def
[/_objdef {{icc_PDFA}} /type /stream /OBJ pdfmark
[{{icc_PDFA}} << /N 3 >> /PUT pdfmark
[{{icc_PDFA}} ICCProfile (r) file /PUT pdfmark
[/_objdef {{OutputIntent_PDFA}} /type /dict /OBJ pdfmark
[{{OutputIntent_PDFA}} << /Type /OutputIntent /S /GTS_PDFA1
  /DestOutputProfile {{icc_PDFA}} /OutputConditionIdentifier (sRGB) >> /PUT pdfmark
[{{Catalog}} << /OutputIntents [ {{OutputIntent_PDFA}} ] >> /PUT pdfmark
"""


def _ghostscript(source: Path, target: Path, part: int, pages: int, workdir: Path,
                 progress: Progress) -> list[str]:
    from docmill.engines.office.engine import _child_setup, _load_prctl

    gs = shutil.which("gs")
    profile = _srgb_profile()
    if gs is None or profile is None:
        raise EngineFailed("Ghostscript (with its sRGB profile) is not installed")
    workdir, source, target = workdir.resolve(), source.resolve(), target.resolve()
    definitions = workdir / "pdfa-def.ps"
    definitions.write_text(_pdfa_definitions(profile), encoding="ascii")
    # PDFACompatibilityPolicy=1: what PDF/A forbids is left out (and reported) instead of
    # the whole output silently falling back to a plain PDF.
    command = [gs, f"-dPDFA={part}", "-dBATCH", "-dNOPAUSE", "-dSAFER",
               f"--permit-file-read={profile.parent}/", "-sDEVICE=pdfwrite",
               "-sColorConversionStrategy=RGB", "-dPDFACompatibilityPolicy=1",
               f"-sOutputFile={target}", str(definitions), str(source)]
    _load_prctl()
    parent = os.getpid()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, cwd=workdir, text=True,
                               errors="replace", start_new_session=True,
                               preexec_fn=lambda: _child_setup(parent))  # noqa: PLW1509
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        process.kill()

    watchdog = threading.Timer(GHOSTSCRIPT_TIMEOUT_S, kill)
    watchdog.daemon = True
    watchdog.start()
    messages: list[str] = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.strip()
            match = re.fullmatch(r"Page (\d+)", line)
            if match:
                done = int(match.group(1))
                progress(10 + 80 * done / max(pages, 1), f"converted page {done}")
            elif line and not line.startswith(("GPL Ghostscript", "Copyright", "This software",
                                               "see the file", "Processing pages")):
                messages.append(line)
        code = process.wait()
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.wait()
    if timed_out.is_set():
        raise Timeout(f"Ghostscript took longer than {GHOSTSCRIPT_TIMEOUT_S:g} s")
    if code != 0 or not target.is_file() or target.stat().st_size == 0:
        detail = "; ".join(messages[-3:]) or f"exit status {code}"
        raise EngineFailed(f"Ghostscript could not convert the document ({detail})")
    return _ghostscript_warnings(messages)


def _ghostscript_warnings(messages: list[str]) -> list[str]:
    """Ghostscript's remarks on the input as one warning, without its boilerplate."""
    remarks = []
    for line in messages:
        text = line.lstrip("* ").strip()
        if not text or text.startswith(("The following", "Loading", "Please notify",
                                        "file that it", "specification", "Output may be")):
            continue
        if text not in remarks:
            remarks.append(text)
    return [f"Ghostscript: {'; '.join(remarks[:5])}"] if remarks else []


def _text_kept(before: Path, after: Path, password: str | None) -> list[int]:
    """Pages whose text the conversion lost (under 80% of the characters kept): a font
    Ghostscript cannot map back to Unicode is written without its text meaning."""
    def texts(path: Path, pw: str | None) -> list[str]:
        with open_pdfium(path, pw) as doc:
            found = []
            for index in range(len(doc)):
                textpage = doc[index].get_textpage()
                found.append("".join(page_text(textpage).split()))
                textpage.close()
            return found

    lost = []
    for number, (old, new) in enumerate(zip(texts(before, password), texts(after, None),
                                            strict=False), start=1):
        if old and sum((Counter(old) & Counter(new)).values()) < 0.8 * len(old):
            lost.append(number)
    return lost


def _libreoffice(source: Path, target: Path, part: int, workdir: Path,
                 progress: Progress) -> list[str]:
    from docmill.engines.office.engine import shared_converter

    workdir, source, target = workdir.resolve(), source.resolve(), target.resolve()
    staged = workdir / f"lo-{secrets.token_hex(4)}.pdf"  # the name LibreOffice detects by
    shutil.copyfile(source, staged)
    info = shared_converter().convert(
        staged, target, lambda percent, message: progress(10 + 0.8 * percent, message),
        export_filter="draw_pdf_Export", family_filters=None,
        filter_data={"SelectPdfVersion": part, "UseTaggedPDF": True}, filter_options="",
        password=None, import_filter="draw_pdf_import", import_options="")
    note = ("converted through LibreOffice's PDF import: the text is kept, but the layout "
            "may shift slightly")
    return [*info["warnings"], note]


def _flag_links_printable(pdf: pikepdf.Pdf) -> int:
    import pikepdf
    from pikepdf import Name

    flagged = 0
    for page in pdf.pages:
        annots = page.obj.get("/Annots")
        if not isinstance(annots, pikepdf.Array):
            continue
        for annot in annots:
            if isinstance(annot, pikepdf.Dictionary) and annot.get("/Subtype") == Name.Link:
                try:
                    flags = int(annot.get("/F", 0))
                except (TypeError, ValueError):
                    flags = 0
                if not flags & 4:
                    annot.F = flags | 4
                    flagged += 1
    return flagged


def to_pdfa(item: EngineInput, params: ToPdfaParams, workdir: Path,
            progress: Progress) -> EngineResult:
    part = PDFA_PARTS[params.pdf_format]
    with open_document(item, params.password) as opened:
        pages = opened.pages
        source = item.path
        # Neither converter gets the password (a clear copy instead), and links get the
        # print flag PDF/A asks of every annotation, or Ghostscript drops them.
        if _flag_links_printable(opened.pdf) or opened.pdf.is_encrypted:
            source = workdir / f"prepared-{secrets.token_hex(4)}.pdf"
            _save(opened, source, lambda *_: None, 0, encryption=False)
        warnings = opened.all_warnings()
    progress(10, "converting")
    engine = params.engine
    if engine == "auto":
        engine = "ghostscript" if shutil.which("gs") and _srgb_profile() else "libreoffice"
    target = workdir / f"{output_stem(item.name)}-pdfa.pdf"
    if engine == "ghostscript":
        warnings += _ghostscript(source, target, part, pages, workdir, progress)
    else:
        warnings += _libreoffice(source, target, part, workdir, progress)
    progress(92, "checking the PDF/A declaration")
    try:
        claimed, conformance, intent = pdfa_claim(target)
        with open_pdfium(target, None) as doc:
            written = len(doc)
    except Exception as exc:
        raise EngineFailed(f"the converter wrote an unreadable PDF ({exc})") from exc
    if claimed != str(part) or (conformance or "").upper() != "B":
        raise EngineFailed(f"the converted document does not declare PDF/A-{part}b in its "
                           f"XMP metadata (part {claimed}, conformance {conformance})")
    if not intent:
        raise EngineFailed("the converted document has no output intent")
    if written != pages:
        raise EngineFailed(f"the converter wrote {written} of the {pages} pages")
    lost = _text_kept(item.path, target, params.password)
    if lost:
        warnings.insert(0, f"the text of page(s) {', '.join(map(str, lost[:20]))} is no "
                        "longer extractable as it was (a font without a Unicode mapping)")
    progress(100, "checked the PDF/A declaration")
    return EngineResult(outputs=[EngineOutput(target, "application/pdf")],
                        data={"pages": pages, "pdf_format": params.pdf_format,
                              "engine": engine, "pdfaid": {"part": claimed,
                                                           "conformance": conformance}},
                        warnings=warnings[:MAX_WARNINGS], pages=pages)


# --- the engine ------------------------------------------------------------------------------

Handler = Callable[[EngineInput, Any, Path, Progress], EngineResult]


class PdfToolsEngine(Engine):
    name = "pdftools"
    operations = (
        Operation("pdf.rotate", "Rotate pages by 90, 180 or 270 degrees.",
                  RotateParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.compress", "Make a PDF smaller: downsample and JPEG-recompress "
                  "images, recompress streams losslessly.",
                  CompressParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.protect", "Encrypt a PDF (AES-256) with user/owner passwords and "
                  "permissions.", ProtectParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.unprotect", "Remove a PDF's encryption, given its password.",
                  UnprotectParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.watermark", "Stamp text on pages (size, opacity, angle, position).",
                  WatermarkParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.to-pdfa", "Convert a PDF to archival PDF/A-1b, 2b or 3b.",
                  ToPdfaParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.extract", "Keep only the given pages, in the order given.",
                  ExtractParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.delete-pages", "Remove the given pages.",
                  DeletePagesParams, PDF, ("pdf",), engine="pdftools"),
        Operation("pdf.metadata", "Set the title, author, subject and keywords.",
                  MetadataParams, PDF, ("pdf",), engine="pdftools"),
    )
    handlers: ClassVar[dict[str, Handler]] = {
        "pdf.rotate": rotate, "pdf.compress": compress, "pdf.protect": protect,
        "pdf.unprotect": unprotect, "pdf.watermark": watermark, "pdf.to-pdfa": to_pdfa,
        "pdf.extract": extract, "pdf.delete-pages": delete_pages, "pdf.metadata": metadata,
    }

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        return self.handlers[operation](inputs[0], params, workdir, progress)
