"""pdf.rotate, pdf.extract, pdf.delete-pages and pdf.metadata: edits of the page list and
the document information, everything else kept as it was."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from docmill.engines.base import EngineInput, EngineResult, Progress, output_stem, parse_page_ranges
from docmill.engines.pdf.editing import _normal_rotation, _result, _save, open_document
from docmill.engines.pdf.params import (
    DeletePagesParams,
    ExtractParams,
    MetadataParams,
    RotateParams,
)
from docmill.errors import InvalidInput

if TYPE_CHECKING:
    import pikepdf


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
