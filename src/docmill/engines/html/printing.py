"""HTML to PDF and spreadsheets with the option set of hosted HTML-to-PDF services.

`html.print-pdf` is `html.to-pdf` plus what Prince-style services let a caller ask for: the
document may come from a URL fetched here (through the SSRF guard), resources may be fetched
with a referrer, HTTP credentials and a per-resource timeout, or not at all (`no_network`),
a resource that fails can fail the whole document (`fail_on_resource_errors`), a default page
margin, a PDF profile, the title, form fields, full fonts, uncompressed output, encryption
with permissions (pikepdf) and a visible watermark (drawn by WeasyPrint itself from a user
stylesheet, so it is real embedded text on every page). Before WeasyPrint sees a document,
a fast lxml pass refuses ones nested deeper or with more elements than the limits: those
would otherwise burn the job's whole time budget or exhaust the recursion limit.
`javascript: true` prints the document in headless Chromium instead (`chromium.py`, the same
SSRF-guarded fetching), with the options Chromium can honour.

`html.print-sheet` is `html.to-xlsx`/`html.to-xls` with the same document sources and an
optional cap on the rows kept per table (test documents).

Both take zero or one input: the HTML as an uploaded file, or none and `document_url`. A
face that must report a refused request through the job's own failure (an asynchronous
API whose validation errors surface as a failed status) passes `fail_with`: the job then
fails at once with that message and renders nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
from docmill.engines.html.checks import check_strict, check_structure
from docmill.engines.html.fetching import _print_fetcher, download_document
from docmill.engines.html.iframes import inline_iframes
from docmill.engines.html.print_params import FetchParams, PrintPdfParams, PrintSheetParams
from docmill.errors import DocmillError, EngineFailed, InvalidInput

log = logging.getLogger(__name__)


ANY = frozenset({"*/*"})  # the caller says the input is HTML; sniffing has no say here
PDF_VARIANTS = {"pdfa-1b": "pdf/a-1b", "pdfa-2b": "pdf/a-2b", "pdfa-3b": "pdf/a-3b",
                "pdfa-2u": "pdf/a-2u", "pdfa-3u": "pdf/a-3u", "pdfua-1": "pdf/ua-1",
                "pdfx-1a": "pdf/x-1a", "pdfx-3": "pdf/x-3", "pdfx-4": "pdf/x-4"}
INSECURE_IGNORED = "insecure is ignored: TLS certificates are always verified"


def watermark_css(text: str, solid: bool) -> str:
    color = "rgb(246, 196, 196)" if solid else "rgba(220, 0, 0, 0.22)"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    # A fixed box is repeated on every page; `!important` in a user sheet beats the author.
    return f"""html::after {{
  content: "{escaped}" !important; display: block !important; position: fixed !important;
  top: 42% !important; left: 0 !important; width: 100% !important; margin: 0 !important;
  text-align: center !important; transform: rotate(-30deg) !important;
  font: bold 56pt "DejaVu Sans", sans-serif !important; color: {color} !important;
  z-index: 2147483647 !important; background: none !important;
}}"""


def encrypt_pdf(path: Path, params: PrintPdfParams) -> None:
    import pikepdf

    permissions = pikepdf.Permissions(
        print_lowres=not params.disallow_print, print_highres=not params.disallow_print,
        extract=not params.disallow_copy, accessibility=True,
        modify_annotation=not params.disallow_annotate, modify_form=not params.disallow_modify,
        modify_other=not params.disallow_modify, modify_assembly=not params.disallow_modify)
    # Without an owner password anyone could lift the restrictions: make one up.
    owner = params.owner_password or secrets.token_urlsafe(24)
    encryption = pikepdf.Encryption(user=params.user_password or "", owner=owner,
                                    R=2 if params.key_bits == 40 else 4,
                                    allow=permissions, aes=params.key_bits != 40,
                                    metadata=params.key_bits != 40)
    with pikepdf.open(path, allow_overwriting_input=True) as pdf:
        pdf.save(path, encryption=encryption)


def render_pdf(html: str, params: PrintPdfParams, target: Path, progress: Progress,
               fallback_base: str | None) -> EngineResult:
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise EngineFailed(f"WeasyPrint cannot load (is pango installed?): {exc}") from exc
    from docmill.engines.html.fetching import NO_BASE
    from docmill.engines.html.to_pdf import MAX_WARNINGS, _weasyprint_messages

    check_structure(html, params.max_depth, params.max_elements)
    if params.strict_html:
        check_strict(html)
    if params.javascript:
        return _render_chromium(html, params, target, progress, fallback_base)
    fetcher = _print_fetcher(params)
    base_url = params.base_url or fallback_base
    if params.iframes:  # else WeasyPrint leaves them out, fetching nothing
        progress(15, "loading iframes")
        framed = inline_iframes(html, base_url, fetcher)
        if framed is not html:  # the frames' documents count against the same limits
            check_structure(framed, params.max_depth, params.max_elements)
        html = framed
    css = []
    if params.page_margin:
        css.append(f"@page {{ margin: {params.page_margin}; }}")
    if params.watermark:
        css.append(watermark_css(params.watermark, solid=params.pdf_variant is not None))
    progress(20, "rendering pages")
    with _weasyprint_messages() as collected:
        try:
            stylesheets = ([weasyprint.CSS(string="\n".join(css), url_fetcher=fetcher)]
                           if css else [])

            def layout(base: str | None) -> Any:
                return weasyprint.HTML(string=html, base_url=base, url_fetcher=fetcher,
                                       media_type=params.media).render(
                    stylesheets=stylesheets, pdf_forms=params.pdf_forms or None)

            try:
                rendered = layout(base_url)
            except Exception as exc:  # relative @import without a base: see to_pdf.py
                if base_url or "without a base URI" not in str(exc):
                    raise
                rendered = layout(NO_BASE)
            pages = len(rendered.pages)
            if pages == 0:
                raise InvalidInput("Document Malformed: the document has no content to "
                                   "render")
            if params.title is not None:
                rendered.metadata.title = params.title
            progress(75, f"writing pdf of {pages} pages")
            rendered.write_pdf(
                target, pdf_variant=PDF_VARIANTS.get(params.pdf_variant or ""),
                uncompressed_pdf=params.uncompressed, full_fonts=params.full_fonts,
                pdf_forms=params.pdf_forms or None)
        except DocmillError:
            raise
        except RecursionError as exc:
            raise InvalidInput("Document Malformed: the document is nested too deeply to "
                               "render") from exc
        except Exception as exc:  # WeasyPrint's parser and layout raise assorted types
            log.exception("weasyprint failed")
            raise EngineFailed(f"cannot render the HTML: {type(exc).__name__}: {exc}") from exc
    if params.fail_on_resource_errors and fetcher.seen:
        failed = [w for w in fetcher.warnings]
        raise InvalidInput("Resource error: " + "; ".join(failed[:10])
                           + (f" and {len(failed) - 10} more" if len(failed) > 10 else ""))
    if params.encrypt:
        progress(90, "encrypting")
        encrypt_pdf(target, params)
    warnings = list(fetcher.warnings)
    if params.insecure:
        warnings.append(INSECURE_IGNORED)
    for message in collected.messages:
        if not any(url in message for url in fetcher.seen):
            warnings.append(message)
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"... and {len(warnings) - MAX_WARNINGS} more"]
    return EngineResult(
        outputs=[EngineOutput(target, "application/pdf")],
        data={"pages": pages,
              "resources_loaded": [u for u in fetcher.fetched if u not in fetcher.seen],
              "resources_refused": fetcher.refused},
        warnings=warnings, pages=pages)


# Chromium wraps the full-width watermark box inside the page margins: keep it on one line,
# centred on the page.
CHROMIUM_WATERMARK = """
html::after { white-space: nowrap !important; width: auto !important; left: 50% !important;
  transform: translateX(-50%) rotate(-30deg) !important; }"""


def _render_chromium(html: str, params: PrintPdfParams, target: Path, progress: Progress,
                     fallback_base: str | None) -> EngineResult:
    """`javascript: true`: the same options, printed by headless Chromium."""
    from docmill.engines.html.chromium import ChromiumJob, render_pdf

    job = ChromiumJob(
        html=html, base_url=params.base_url or fallback_base, javascript=True,
        media=params.media,
        default_css=f"@page {{ margin: {params.page_margin}; }}" if params.page_margin else "",
        override_css=(watermark_css(params.watermark, solid=False) + CHROMIUM_WATERMARK
                      if params.watermark else ""),
        headers=params.headers(), no_network=params.no_network,
        resource_timeout_s=params.http_timeout_s, frames=params.iframes)
    result = render_pdf(job, target, progress)
    if params.insecure:
        result.warnings.append(INSECURE_IGNORED)
    problems = result.data["resources_refused"] + result.data["resources_failed"]
    if params.fail_on_resource_errors and problems:
        failed = [w for w in result.warnings if any(url in w for url in problems)]
        raise InvalidInput("Resource error: " + "; ".join(failed[:10])
                           + (f" and {len(failed) - 10} more" if len(failed) > 10 else ""))
    for flag, what in ((params.full_fonts, "full fonts"), (params.uncompressed,
                                                          "uncompressed output")):
        if flag:
            result.warnings.append(f"{what} is not available with javascript (Chromium)")
    if params.title is not None:
        import pikepdf

        with pikepdf.open(target, allow_overwriting_input=True) as pdf:
            pdf.docinfo["/Title"] = params.title
            pdf.save(target)
    if params.encrypt:
        progress(90, "encrypting")
        encrypt_pdf(target, params)
    return result


def cut_rows(html: str, max_rows: int) -> str:
    """Keep the first `max_rows` rows of every top-level table."""
    import lxml.html

    from docmill.engines.html.spreadsheet import _rows

    try:
        root = lxml.html.document_fromstring(html)
    except Exception as exc:
        raise InvalidInput(f"cannot parse the HTML: {exc}") from exc
    for table in root.iter("table"):
        if any(a.tag == "table" for a in table.iterancestors()):
            continue
        for row in _rows(table)[max_rows:]:
            row.getparent().remove(row)
    return lxml.html.tostring(root, encoding="unicode")


class HtmlPrintEngine(Engine):
    name = "htmlprint"
    operations = (
        Operation("html.print-pdf", "HTML (a file, or fetched from document_url) to PDF with "
                  "the print options of hosted HTML-to-PDF services: fetch policy (referrer, "
                  "HTTP credentials, timeout, no network, fail on resource errors), default "
                  "page margin, PDF profile, title, forms, encryption and permissions, "
                  "watermark; javascript renders in headless Chromium.", PrintPdfParams, ANY,
                  ("pdf",), min_inputs=0, max_inputs=1, engine="htmlprint"),
        Operation("html.print-sheet", "The tables of an HTML document (a file, or fetched "
                  "from document_url) to XLSX or XLS, optionally keeping only the first rows "
                  "of each table.", PrintSheetParams, ANY, ("xlsx", "xls"), min_inputs=0,
                  max_inputs=1, engine="htmlprint"),
    )

    def stop(self) -> None:
        from docmill.engines.html.chromium import shutdown

        shutdown()

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        from docmill.engines.html.to_pdf import read_text

        assert isinstance(params, FetchParams)
        if params.fail_with:
            raise InvalidInput(params.fail_with)
        if inputs:
            source_path, stem = inputs[0].path, output_stem(inputs[0].name)
        elif params.document_url:
            progress(5, "downloading the document")
            source_path = download_document(params, workdir / "document.html")
            stem = output_stem(Path(urlsplit(params.document_url).path).name or "document")
        else:
            raise InvalidInput("Document content can't be blank")
        html = read_text(source_path)
        if operation == "html.print-pdf":
            assert isinstance(params, PrintPdfParams)
            fallback_base = params.document_url if not inputs else None
            return render_pdf(html, params, workdir / f"{stem}.pdf", progress, fallback_base)
        assert isinstance(params, PrintSheetParams)
        return self._sheet(html, params, workdir, stem, progress)

    def _sheet(self, html: str, params: PrintSheetParams, workdir: Path, stem: str,
               progress: Progress) -> EngineResult:
        from docmill.engines.html.spreadsheet import (
            XLS,
            XLSX,
            HtmlToSheetParams,
            html_tables_to_xlsx,
            to_xls,
        )

        if params.max_rows:
            html = cut_rows(html, params.max_rows)
        progress(10, "parsing html")
        xlsx = workdir / f"{stem}.xlsx"
        data = html_tables_to_xlsx(html, xlsx, HtmlToSheetParams(
            detect_types=params.detect_types, header_bold=params.header_bold), progress)
        if params.format == "xlsx":
            return EngineResult(outputs=[EngineOutput(xlsx, XLSX)], data=data,
                                pages=len(data["sheets"]))
        xls = workdir / f"{stem}.xls"
        to_xls(xlsx, xls, progress)
        return EngineResult(outputs=[EngineOutput(xls, XLS)], data=data,
                            pages=len(data["sheets"]))
