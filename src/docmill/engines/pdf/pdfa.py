"""pdf.to-pdfa: PDF/A-1b/2b/3b written by Ghostscript when installed (with an sRGB output
intent), else by LibreOffice's PDF import through the worker's LibreOffice; either way the
result must declare PDF/A in its XMP metadata or the job fails."""

from __future__ import annotations

import re
import secrets
import shutil
import subprocess
from collections import Counter
from glob import glob
from pathlib import Path
from typing import TYPE_CHECKING

from docmill.engines.base import EngineInput, EngineOutput, EngineResult, Progress, output_stem
from docmill.engines.pdf.editing import MAX_WARNINGS, _save, open_document
from docmill.engines.pdf.params import ToPdfaParams
from docmill.engines.pdf.render import open_pdfium, page_text
from docmill.engines.supervisor import Watchdog, kill_group, spawn
from docmill.errors import EngineFailed, Timeout

if TYPE_CHECKING:
    import pikepdf

GHOSTSCRIPT_TIMEOUT_S = 600.0  # the job's own timeout usually comes first


SRGB_PROFILES = ("/usr/share/color/icc/ghostscript/srgb.icc",
                 "/usr/share/ghostscript/*/iccprofiles/srgb.icc")


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
    # One-shot: its own process group, dying with the worker, killed past its time limit.
    process = spawn(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL, cwd=workdir, text=True, errors="replace")
    watchdog = Watchdog(GHOSTSCRIPT_TIMEOUT_S, lambda: kill_group(process.pid), "ghostscript")
    messages: list[str] = []
    try:
        with watchdog:
            assert process.stdout is not None
            for line in process.stdout:
                line = line.strip()
                match = re.fullmatch(r"Page (\d+)", line)
                if match:
                    done = int(match.group(1))
                    progress(10 + 80 * done / max(pages, 1), f"converted page {done}")
                elif line and not line.startswith(("GPL Ghostscript", "Copyright",
                                                   "This software", "see the file",
                                                   "Processing pages")):
                    messages.append(line)
            code = process.wait()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if watchdog.fired:
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
    from docmill.engines.office.converter import shared_converter

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
