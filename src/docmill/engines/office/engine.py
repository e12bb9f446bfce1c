"""Office documents to PDF and between office formats, with LibreOffice driven over UNO.

One headless `soffice.bin` per worker process (`process.py`), started on the first office
job in that process and reused across jobs. The worker talks to it in-process through
Debian's pyuno (`bridge.py`) over a private named pipe; every instance has its own pipe name
and its own throw-away user profile, so two workers never share state. The formats, their
filters and the operations' parameters are in `formats.py`.

Supervision, because LibreOffice does crash and hang on hostile documents (`converter.py`):

- before each job the process is checked (`poll()`) and pinged over UNO with a short deadline;
  a dead or unresponsive instance is killed and a fresh one started, so a crash on one
  document never costs the next job more than a restart (about a second);
- a watchdog kills the instance when one document runs past `office_document_timeout_s`;
  the blocked UNO call then fails at once (the pipe closes), the job fails with `Timeout`,
  and the next job gets a new instance;
- a document whose instance dies under it (not a timeout) is tried once more on a fresh one;
- between jobs, never during one, the instance is recycled after
  `office_max_conversions` documents or when its resident memory passes
  `office_max_memory_mb`;
- `soffice.bin` is started directly (not through the `soffice` script and `oosplash`, which
  would put another process in between) in its own process group with
  `PR_SET_PDEATHSIG=SIGKILL`, so when the runner's job timeout kills the worker child the
  office process dies with it; stale profile folders of dead workers are swept at start.

Documents are loaded hidden, read-only, with macros never executed and links never updated,
through an interaction handler that answers every question LibreOffice would ask a person:
password prompts become `PasswordRequired`, a damaged package is repaired (with a warning),
anything else is declined.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
from docmill.engines.office.bridge import program_dir
from docmill.engines.office.converter import OfficeConverter, shared_converter, shutdown
from docmill.engines.office.formats import (
    CONVERT_TARGETS,
    FORMATS,
    INPUT_TYPES,
    OFFICE_INPUTS,
    PDF_FILTERS,
    PDF_VERSIONS,
    ConvertParams,
    ToPdfParams,
)
from docmill.errors import EngineFailed, InvalidInput

log = logging.getLogger(__name__)


def staged_input(item: EngineInput, workdir: Path) -> Path:
    """The input under a name whose extension LibreOffice's type detection trusts."""
    ext = INPUT_TYPES.get(item.content_type.split(";")[0].strip().lower(), "")
    suffix = Path(item.name).suffix.lower().lstrip(".")
    if not ext or (ext == "txt" and suffix == "csv"):
        ext = suffix if suffix in FORMATS else ext
    ext = ext or "bin"
    _check_container(item, ext)
    staged = workdir / f"input-{uuid.uuid4().hex[:8]}.{ext}"
    try:
        os.link(item.path, staged)
    except OSError:
        shutil.copyfile(item.path, staged)
    return staged


ZIP_MAGIC = b"PK\x03\x04"
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
PACKAGE_FORMATS = {"docx", "xlsx", "pptx", "odt", "ods", "odp"}


def _check_container(item: EngineInput, ext: str) -> None:
    """OOXML and ODF files are ZIP packages (or, encrypted, OLE containers). Anything else
    would reach LibreOffice's type detection, which happily imports random bytes as text."""
    if ext not in PACKAGE_FORMATS:
        return
    with open(item.path, "rb") as handle:
        head = handle.read(8)
    if not (head.startswith(ZIP_MAGIC) or head == OLE_MAGIC):
        raise InvalidInput(f"{item.name} is not a valid {ext} file: it is not a ZIP package "
                           "(damaged, or another format under this name)")


class OfficeEngine(Engine):
    name = "office"
    operations = (
        Operation("office.to-pdf", "Convert a word-processing, spreadsheet or presentation "
                  "document (doc, docx, odt, rtf, txt, xls, xlsx, ods, csv, ppt, pptx, odp) "
                  "to PDF or PDF/A with LibreOffice.",
                  ToPdfParams, OFFICE_INPUTS, ("pdf",), engine="office"),
        Operation("office.convert", "Convert between office formats within a family: "
                  "docx/odt/doc/rtf/txt, xlsx/ods/xls/csv, pptx/odp/ppt.",
                  ConvertParams, OFFICE_INPUTS,
                  tuple(ext for exts in CONVERT_TARGETS.values() for ext in exts),
                  engine="office"),
    )

    def start(self) -> None:
        """Nothing heavy here: LibreOffice starts with the first office job in the worker
        (a missing installation fails that job with a clear message, not the worker)."""
        try:
            program_dir()
        except EngineFailed as exc:
            log.warning("office: %s", exc.message)

    def stop(self) -> None:
        shutdown()

    def get_converter(self) -> OfficeConverter:
        return shared_converter()

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        source = inputs[0]
        staged = staged_input(source, workdir)
        stem = output_stem(source.name)
        import_filter, import_options = _import_filter(staged)
        if operation == "office.to-pdf":
            assert isinstance(params, ToPdfParams)
            target = workdir / f"{stem}.pdf"
            filter_data: dict[str, Any] = {"SelectPdfVersion": PDF_VERSIONS[params.pdf_format]}
            if params.pages:
                filter_data["PageRange"] = _lo_page_range(params.pages)
            if params.tagged or params.pdf_format != "pdf":
                filter_data["UseTaggedPDF"] = True
            if params.single_page_sheets:
                filter_data["SinglePageSheets"] = True
            info = self.get_converter().convert(
                staged, target, progress, export_filter=None, family_filters=PDF_FILTERS,
                filter_data=filter_data, filter_options="", password=params.password,
                import_filter=import_filter, import_options=import_options)
            pages = _pdf_pages(target)
            if pages == 0:
                raise InvalidInput(f"the page range {params.pages!r} selects no page of the "
                                   "document" if params.pages else
                                   "LibreOffice produced an empty PDF")
            progress(98, "exported pdf")
            return EngineResult(outputs=[EngineOutput(target, "application/pdf")],
                                data={"pages": pages, "family": info["family"],
                                      "pdf_format": params.pdf_format},
                                warnings=info["warnings"], pages=pages)
        assert isinstance(params, ConvertParams)
        fmt = FORMATS[params.format]
        target = workdir / f"{stem}.{fmt.ext}"
        info = self.get_converter().convert(
            staged, target, progress, export_filter=None,
            family_filters={fmt.family: fmt.filter}, filter_data={},
            filter_options=fmt.filter_options, password=params.password,
            import_filter=import_filter, import_options=import_options)
        if not target.exists() or target.stat().st_size == 0:
            raise EngineFailed(f"LibreOffice wrote no {fmt.ext} file")
        progress(98, f"exported {fmt.ext}")
        return EngineResult(outputs=[EngineOutput(target, fmt.content_type)],
                            data={"format": fmt.ext, "family": info["family"]},
                            warnings=info["warnings"], pages=1)


def _import_filter(path: Path) -> tuple[str | None, str]:
    """Text inputs get an explicit import filter: type detection would guess otherwise."""
    ext = path.suffix.lstrip(".")
    if ext == "csv":
        return "Text - txt - csv (StarCalc)", "44,34,76,1,,0,false,true"
    if ext == "txt":
        return "Text (encoded)", "UTF8"
    return None, ""


def _lo_page_range(spec: str) -> str:
    """Validate '1-3,5,8-' and write it the way LibreOffice's PageRange takes it."""
    parts = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        start, dash, end = part.partition("-")
        start, end = start.strip(), end.strip()
        if not (start or end) or (start and not start.isdigit()) or (end and not end.isdigit()):
            raise InvalidInput(f"invalid page range {part!r}; use e.g. 1-3,5,8-")
        if (start and int(start) < 1) or (start and end and int(end) < int(start)):
            raise InvalidInput(f"invalid page range {part!r}")
        parts.append(f"{start or 1}-{end}" if dash else start)
    if not parts:
        raise InvalidInput("the page range is empty")
    return ";".join(parts)


def _pdf_pages(path: Path) -> int:
    import pypdfium2 as pdfium  # noqa: PLC0415

    if not path.exists() or path.stat().st_size == 0:
        return 0
    try:
        doc = pdfium.PdfDocument(path)
    except pdfium.PdfiumError as exc:
        raise EngineFailed(f"LibreOffice wrote an unreadable PDF ({exc})") from exc
    try:
        return len(doc)
    finally:
        doc.close()
