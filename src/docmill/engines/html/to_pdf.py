"""HTML and Markdown to PDF with WeasyPrint, every resource fetched through the SSRF guard.

The HTML comes from an uploaded file, never from a path: WeasyPrint gets the bytes and an
explicit `base_url` (or none), so a relative reference can only resolve against a URL the
client named. `GuardedFetcher` (fetching.py) is the only way WeasyPrint reaches anything
outside the document: `data:` URIs are decoded, `http`/`https` go through
`security.ssrf.open_url` (public addresses only unless allow-listed, redirects checked hop by
hop) with a size and time cap per resource, a cap on the number of resources and a time
budget for the whole document; every other scheme (`file:`, `ftp:`, ...) is refused. Each
refused or failed resource is reported in the job's warnings and the document is rendered
without it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

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
)
from docmill.engines.html.fetching import NO_BASE, make_fetcher
from docmill.errors import DocmillError, EngineFailed, InvalidInput

log = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml", "text/xml", "text/plain"})
MARKDOWN_TYPES = frozenset({"text/markdown", "text/x-markdown", "text/plain"})
MAX_WARNINGS = 50
PDF_VARIANTS = {"pdf": None, "pdfa-1b": "pdf/a-1b", "pdfa-2b": "pdf/a-2b",
                "pdfa-3b": "pdf/a-3b", "pdfua-1": "pdf/ua-1"}

# CSS values taken from parameters go into a stylesheet: allow only what a size or a margin
# can look like, so a parameter cannot smuggle in rules (or url()s).
_LENGTH = r"(?:0|\d+(?:\.\d+)?(?:mm|cm|in|pt|px|pc|q|em|rem))"
_SIZE_RE = re.compile(r"^(?:(?:a[0-9]|a10|b[0-9]|b10|c[0-9]|c10|letter|legal|ledger|jis-b[0-9])"
                      r"(?:\s+(?:portrait|landscape))?|" + _LENGTH + r"(?:\s+" + _LENGTH +
                      r")?|auto|portrait|landscape)$", re.IGNORECASE)
_MARGIN_RE = re.compile(r"^" + _LENGTH + r"(?:\s+" + _LENGTH + r"){0,3}$", re.IGNORECASE)


class HtmlToPdfParams(Params):
    base_url: str | None = Field(None, description="Absolute http(s) URL that relative links "
                                 "in the document resolve against; without it they are "
                                 "ignored.")
    media: Literal["print", "screen"] = Field("print", description="CSS media type.")
    page_size: str | None = Field(None, description="CSS @page size, e.g. 'A4', "
                                  "'letter landscape', '210mm 297mm'.")
    margin: str | None = Field(None, description="CSS @page margin, e.g. '2cm' or "
                               "'1in 0.75in'.")
    pdf_format: Literal["pdf", "pdfa-1b", "pdfa-2b", "pdfa-3b", "pdfua-1"] = "pdf"
    engine: Literal["weasyprint", "chromium"] | None = Field(
        None, description="weasyprint (CSS Paged Media, no scripts) or chromium (headless "
        "Chromium, runs JavaScript when asked); default: chromium when javascript is true, "
        "else weasyprint.")
    javascript: bool = Field(False, description="Run the document's scripts before printing "
                             "(Chromium): waits for the load event, network idle and a "
                             "docraptorJavaScriptFinished() the page defines.")
    javascript_delay_ms: int = Field(0, ge=0, le=30_000, description="Chromium: wait this "
                                     "much longer after the page is ready.")
    page_timeout_s: float | None = Field(None, gt=0, description="Chromium: give up on a "
                                         "page not ready after this (at most the server's "
                                         "DOCMILL_CHROMIUM_PAGE_TIMEOUT_S).")
    landscape: bool = Field(False, description="Chromium: landscape pages (the document's "
                            "@page size wins).")
    print_background: bool = Field(True, description="Chromium: print background colours "
                                   "and images (WeasyPrint always does).")

    @model_validator(mode="after")
    def _engine(self) -> HtmlToPdfParams:
        if self.engine is None:
            self.engine = "chromium" if self.javascript else "weasyprint"
        if self.engine == "weasyprint":
            chromium_only: list[str] = [
                name for name in ("javascript", "javascript_delay_ms", "page_timeout_s",
                                  "landscape")
                if name in self.model_fields_set and getattr(self, name)]
            if "print_background" in self.model_fields_set and not self.print_background:
                chromium_only.append("print_background false")
            if chromium_only:
                raise ValueError(f"{', '.join(chromium_only)} need engine chromium")
        elif self.pdf_format != "pdf":
            raise ValueError("engine chromium writes plain PDF: pdf_format must be pdf "
                             "(use engine weasyprint for PDF/A and PDF/UA)")
        return self

    @field_validator("base_url")
    @classmethod
    def _absolute_http(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be an absolute http or https URL")
        return value.strip()

    @field_validator("page_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE_RE.match(value.strip()):
            raise ValueError("page_size must be a page name (A4, letter...) with an optional "
                             "orientation, or one or two CSS lengths")
        return value.strip() if value else None

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: str | None) -> str | None:
        if value is not None and not _MARGIN_RE.match(value.strip()):
            raise ValueError("margin must be one to four CSS lengths, e.g. '2cm' or '1in 2cm'")
        return value.strip() if value else None


class MarkdownToPdfParams(HtmlToPdfParams):
    title: str | None = Field(None, max_length=500, description="Document title (metadata).")


class _Collect(logging.Handler):
    """WeasyPrint's own complaints (bad CSS, unreadable images...) for the job's warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.messages.append(record.getMessage())
        except Exception:
            pass


@contextmanager
def _weasyprint_messages() -> Iterator[_Collect]:
    logger = logging.getLogger("weasyprint")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def page_css(params: HtmlToPdfParams) -> str:
    rules = []
    if params.page_size:
        rules.append(f"size: {params.page_size};")
    if params.margin:
        rules.append(f"margin: {params.margin};")
    return "@page { " + " ".join(rules) + " }" if rules else ""


def render_html(html: bytes | str, params: HtmlToPdfParams, target: Path,
                progress: Progress, extra_css: str = "") -> EngineResult:
    """Render HTML to `target` (PDF) with the guarded fetcher; the shared path of both
    operations."""
    if params.engine == "chromium":
        return _render_chromium(html, params, target, progress, extra_css)
    try:
        import weasyprint
    except (ImportError, OSError) as exc:
        raise EngineFailed(f"WeasyPrint cannot load (is pango installed? run "
                           f"scripts/setup.sh): {exc}") from exc

    fetcher = make_fetcher()
    progress(10, "loading html")
    stylesheets = []
    css = "\n".join(c for c in (extra_css, page_css(params)) if c)
    with _weasyprint_messages() as collected:
        try:
            if css:
                stylesheets.append(weasyprint.CSS(string=css, url_fetcher=fetcher))
            progress(30, "rendering pages")
            try:
                rendered = weasyprint.HTML(
                    string=html, base_url=params.base_url, url_fetcher=fetcher,
                    media_type=params.media).render(stylesheets=stylesheets)
            except Exception as exc:
                # WeasyPrint raises (instead of warning) on a relative CSS @import with no
                # base URL; render again against a base that the fetcher refuses by name.
                if params.base_url or "without a base URI" not in str(exc):
                    raise
                rendered = weasyprint.HTML(
                    string=html, base_url=NO_BASE, url_fetcher=fetcher,
                    media_type=params.media).render(stylesheets=stylesheets)
            pages = len(rendered.pages)
            if pages == 0:
                raise InvalidInput("the document has no content to render")
            progress(80, f"writing pdf of {pages} pages")
            rendered.write_pdf(target, pdf_variant=PDF_VARIANTS[params.pdf_format])
        except DocmillError:
            raise
        except Exception as exc:  # WeasyPrint's parser and layout raise assorted types
            log.exception("weasyprint failed")
            raise EngineFailed(f"cannot render the HTML: {type(exc).__name__}: {exc}") from exc
    warnings = list(fetcher.warnings)
    for message in collected.messages:  # skip WeasyPrint's echo of what we already reported
        if not any(url in message for url in fetcher.seen):
            warnings.append(message)
    if len(warnings) > MAX_WARNINGS:
        warnings = warnings[:MAX_WARNINGS] + [f"... and {len(warnings) - MAX_WARNINGS} more"]
    progress(98, "pdf written")
    return EngineResult(
        outputs=[EngineOutput(target, "application/pdf")],
        data={"pages": pages,
              "resources_loaded": [u for u in fetcher.fetched if u not in fetcher.seen],
              "resources_refused": fetcher.refused},
        warnings=warnings, pages=pages)


def _render_chromium(html: bytes | str, params: HtmlToPdfParams, target: Path,
                     progress: Progress, extra_css: str) -> EngineResult:
    from docmill.engines.html.chromium import ChromiumJob, render_pdf

    text = html if isinstance(html, str) else _decode(html)
    return render_pdf(ChromiumJob(
        html=text, base_url=params.base_url, javascript=params.javascript, media=params.media,
        override_css="\n".join(c for c in (extra_css, page_css(params)) if c),
        landscape=params.landscape, print_background=params.print_background,
        javascript_delay_ms=params.javascript_delay_ms, page_timeout_s=params.page_timeout_s),
        target, progress)


MARKDOWN_CSS = """
body { font-family: "DejaVu Sans", "Noto Sans", sans-serif; font-size: 11pt; line-height: 1.45; }
pre, code { font-family: "DejaVu Sans Mono", monospace; font-size: 9.5pt; }
pre { background: #f5f5f5; padding: 0.6em; white-space: pre-wrap; }
table { border-collapse: collapse; }
th, td { border: 1px solid #999; padding: 0.25em 0.5em; }
th { background: #eee; }
img { max-width: 100%; }
"""


def markdown_to_html(text: str, title: str | None) -> str:
    import html as html_lib

    import markdown

    body = markdown.markdown(text, extensions=["extra", "sane_lists", "toc"],
                             output_format="html")
    head = f"<title>{html_lib.escape(title)}</title>" if title else ""
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8">{head}</head>'
            f"<body>{body}</body></html>")


def read_text(path: Path) -> str:
    return _decode(path.read_bytes())


def _decode(raw: bytes) -> str:
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class HtmlEngine(Engine):
    name = "html"
    operations = (
        Operation("html.to-pdf", "Render an HTML document to PDF (WeasyPrint, or headless "
                  "Chromium with engine chromium / javascript true). Resources load only from "
                  "http(s) URLs that pass the SSRF guard, relative to base_url.",
                  HtmlToPdfParams, HTML_TYPES, ("pdf",), engine="html"),
        Operation("markdown.to-pdf", "Render Markdown to PDF through the same HTML path.",
                  MarkdownToPdfParams, MARKDOWN_TYPES, ("pdf",), engine="html"),
    )

    def start(self) -> None:
        try:
            import weasyprint  # noqa: F401 - load pango and fonts once per worker
        except (ImportError, OSError) as exc:  # pango missing: jobs fail, the worker lives
            log.warning("html: WeasyPrint cannot load: %s", exc)

    def stop(self) -> None:
        from docmill.engines.html.chromium import shutdown

        shutdown()

    def run(self, operation: str, inputs: Sequence[EngineInput], params: Params,
            workdir: Path, progress: Progress) -> EngineResult:
        source = inputs[0]
        target = workdir / f"{output_stem(source.name)}.pdf"
        if operation == "markdown.to-pdf":
            assert isinstance(params, MarkdownToPdfParams)
            html = markdown_to_html(read_text(source.path), params.title)
            return render_html(html, params, target, progress, extra_css=MARKDOWN_CSS)
        assert isinstance(params, HtmlToPdfParams)
        return render_html(source.path.read_bytes(), params, target, progress)
