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

import base64
import logging
import re
import secrets
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal
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
from docmill.errors import DocmillError, DownloadFailed, EngineFailed, InvalidInput, UnsafeUrl

log = logging.getLogger(__name__)

ANY = frozenset({"*/*"})  # the caller says the input is HTML; sniffing has no say here
PDF_VARIANTS = {"pdfa-1b": "pdf/a-1b", "pdfa-2b": "pdf/a-2b", "pdfa-3b": "pdf/a-3b",
                "pdfa-2u": "pdf/a-2u", "pdfa-3u": "pdf/a-3u", "pdfua-1": "pdf/ua-1",
                "pdfx-1a": "pdf/x-1a", "pdfx-3": "pdf/x-3", "pdfx-4": "pdf/x-4"}
_LENGTH = r"(?:0|\d+(?:\.\d+)?(?:mm|cm|in|pt|px|pc|q|em|rem))"
_MARGIN_RE = re.compile(r"^" + _LENGTH + r"(?:\s+" + _LENGTH + r"){0,3}$", re.IGNORECASE)
_MEDIA_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_WATERMARK_RE = re.compile(r"^[\w .,:;!?()\-/#&+'@]{1,80}$", re.UNICODE)


def _http_url(value: str | None, what: str) -> str | None:
    if value is None or not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} must be an absolute http or https URL")
    return value.strip()


class FetchParams(Params):
    """Where the document comes from and how it and its resources are fetched."""

    document_url: str | None = Field(None, description="Fetch the document from this URL "
                                     "(through the SSRF guard) when no file is given.")
    referrer: str | None = Field(None, max_length=2000, description="Referer header sent "
                                 "with every fetch.")
    http_user: str | None = Field(None, max_length=500, description="HTTP Basic user for "
                                  "fetches.")
    http_password: str | None = Field(None, max_length=500)
    http_timeout_s: float | None = Field(None, gt=0, le=120, description="Per-fetch timeout "
                                         "(at most the server's own).")
    fail_with: str | None = Field(None, max_length=20_000, description="Fail the job with "
                                  "this message without rendering (request validation "
                                  "errors reported through the job).")

    @field_validator("document_url")
    @classmethod
    def _document_url(cls, value: str | None) -> str | None:
        return _http_url(value, "document_url")

    @field_validator("referrer")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        if value is not None and ("\r" in value or "\n" in value):
            raise ValueError("must be a single line")
        return value or None

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.referrer:
            headers["Referer"] = self.referrer
        if self.http_user is not None or self.http_password is not None:
            token = f"{self.http_user or ''}:{self.http_password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
        return headers


class PrintPdfParams(FetchParams):
    base_url: str | None = Field(None, description="Absolute http(s) URL relative references "
                                 "resolve against (default: document_url).")
    media: str = Field("print", description="CSS media type, e.g. print or screen.")
    page_margin: str | None = Field(None, description="Default @page margin (author CSS "
                                    "wins), e.g. '2cm' or '1in 0.75in'.")
    pdf_variant: Literal["pdfa-1b", "pdfa-2b", "pdfa-3b", "pdfa-2u", "pdfa-3u", "pdfua-1",
                         "pdfx-1a", "pdfx-3", "pdfx-4"] | None = None
    title: str | None = Field(None, max_length=2000, description="PDF title metadata.")
    watermark: str | None = Field(None, description="Text drawn across every page.")
    pdf_forms: bool = Field(False, description="HTML form fields become PDF form fields.")
    uncompressed: bool = False
    full_fonts: bool = Field(False, description="Embed whole fonts instead of subsets.")
    no_network: bool = Field(False, description="Load no resource except data: URIs.")
    fail_on_resource_errors: bool = Field(False, description="A resource that cannot be "
                                          "loaded fails the document.")
    strict_html: bool = Field(False, description="Fail on HTML parse errors.")
    encrypt: bool = False
    key_bits: Literal[40, 128] = 128
    user_password: str | None = Field(None, max_length=127)
    owner_password: str | None = Field(None, max_length=127)
    disallow_print: bool = False
    disallow_copy: bool = False
    disallow_annotate: bool = False
    disallow_modify: bool = False
    max_depth: int = Field(120, ge=10, le=140, description="Deepest element nesting "
                           "accepted (WeasyPrint's own limit is about 140).")
    max_elements: int = Field(300_000, ge=100, le=5_000_000)
    javascript: bool = Field(False, description="Run the document's scripts: renders in "
                             "headless Chromium instead of WeasyPrint (no PDF profiles or "
                             "forms there).")
    iframes: bool = Field(True, description="Load iframes: Chromium natively (javascript); "
                          "for WeasyPrint each frame's document is fetched through the SSRF "
                          "guard (or taken from srcdoc/data:) and laid out in its place.")
    insecure: bool = Field(False, description="Accepted for compatibility and ignored with a "
                           "warning: TLS certificates are always verified.")

    @field_validator("base_url")
    @classmethod
    def _base(cls, value: str | None) -> str | None:
        return _http_url(value, "base_url")

    @field_validator("media")
    @classmethod
    def _media(cls, value: str) -> str:
        value = value.strip().lower()
        if not _MEDIA_RE.match(value):
            raise ValueError("media must be a CSS media type such as print or screen")
        return value

    @field_validator("page_margin")
    @classmethod
    def _margin(cls, value: str | None) -> str | None:
        if value is not None and not _MARGIN_RE.match(value.strip()):
            raise ValueError("page_margin must be one to four CSS lengths, e.g. '2cm'")
        return value.strip() if value else None

    @field_validator("watermark")
    @classmethod
    def _watermark(cls, value: str | None) -> str | None:
        if value is not None and not _WATERMARK_RE.match(value):
            raise ValueError("watermark: 1-80 letters, digits, spaces and simple punctuation")
        return value

    @model_validator(mode="after")
    def _compatible(self) -> "PrintPdfParams":
        if self.encrypt and self.pdf_variant and self.pdf_variant.startswith(("pdfa", "pdfx")):
            raise ValueError("PDF/A and PDF/X documents cannot be encrypted")
        if self.javascript and self.pdf_variant:
            raise ValueError("javascript renders with Chromium, which writes no PDF/A, PDF/UA "
                             "or PDF/X profile")
        if self.javascript and self.pdf_forms:
            raise ValueError("javascript renders with Chromium, which writes no PDF forms")
        return self


class PrintSheetParams(FetchParams):
    format: Literal["xlsx", "xls"] = "xlsx"
    max_rows: int | None = Field(None, ge=1, description="Keep at most this many rows of "
                                 "each table.")
    detect_types: bool = True
    header_bold: bool = True


# --- fetching ------------------------------------------------------------------------------


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError) or "SSL" in str(current) \
                or "CERTIFICATE" in str(current).upper():
            return True
        current = current.__cause__ or current.__context__
    return False


def download_document(params: FetchParams, target: Path) -> Path:
    """The document at `params.document_url`, through the SSRF guard, size and time capped."""
    from docmill.security.ssrf import open_url, policy_from_settings
    from docmill.settings import get_settings

    settings = get_settings()
    url = params.document_url or ""
    timeout = min(settings.url_download_timeout_s, params.http_timeout_s or float("inf"))
    deadline = time.monotonic() + timeout
    size = 0
    try:
        with open_url(policy_from_settings(), url, timeout=timeout,
                      max_redirects=settings.outbound_max_redirects,
                      headers=params.headers()) as response, open(target, "wb") as sink:
            if response.status_code >= 400:
                raise DownloadFailed(f"Error downloading document content from supplied url: "
                                     f"HTTP {response.status_code}")
            for chunk in response.iter_bytes(64 * 1024):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise DownloadFailed("The document at the supplied url is larger than "
                                         f"{settings.max_upload_bytes} bytes")
                if time.monotonic() > deadline:
                    raise DownloadFailed("Timed out downloading document content from "
                                         "supplied url")
                sink.write(chunk)
    except UnsafeUrl as exc:
        raise UnsafeUrl(f"Refused to download document content from supplied url: "
                        f"{exc.message}") from exc
    except DocmillError as exc:
        if _tls_failure(exc):
            raise DownloadFailed("SSL Error downloading document content from supplied "
                                 "url.") from exc
        if exc.message.startswith(("Error downloading", "The document", "Timed out")):
            raise
        raise DownloadFailed(f"Error downloading document content from supplied url: "
                             f"{exc.message}") from exc
    except Exception as exc:  # httpx errors while streaming the body
        if _tls_failure(exc):
            raise DownloadFailed("SSL Error downloading document content from supplied "
                                 "url.") from exc
        raise DownloadFailed(f"Error downloading document content from supplied url: "
                             f"{type(exc).__name__}: {exc}") from exc
    if size == 0:
        raise InvalidInput("The document at the supplied url is empty")
    return target


def _print_fetcher(params: PrintPdfParams) -> Any:
    """to_pdf.py's guarded fetcher, plus request headers, a per-fetch timeout and no_network."""
    from docmill.engines.html.to_pdf import _fetcher_class
    from docmill.security.ssrf import open_url, read_capped

    base = _fetcher_class()

    class PrintFetcher(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.extra_headers = params.headers()
            if params.http_timeout_s:
                self.timeout = min(self.timeout, params.http_timeout_s)

        def fetch(self, url: str, headers: dict[str, str] | None = None) -> Any:
            scheme = urlsplit(url).scheme.lower()
            shown = url if len(url) <= 200 else url[:197] + "..."
            if scheme == "data" or scheme not in ("http", "https"):
                return super().fetch(url, headers)  # data: decoded, other schemes refused
            if params.no_network:
                self._note(url, f"refused {shown}: no_network is set", refused=True)
                raise UnsafeUrl("no_network")
            if not self.extra_headers:
                return super().fetch(url, headers)
            return self._fetch_with_headers(url, shown)

        def _fetch_with_headers(self, url: str, shown: str) -> Any:
            from weasyprint.urls import URLFetcherResponse

            if len(self.fetched) >= self.max_resources:
                self._note(url, f"skipped {shown}: the document loads more than "
                           f"{self.max_resources} resources", refused=True)
                raise DownloadFailed("too many resources")
            remaining = self.budget_end - time.monotonic()
            if remaining <= 0:
                self._note(url, f"skipped {shown}: the time budget for loading resources "
                           "is spent", refused=True)
                raise DownloadFailed("fetch budget spent")
            timeout = min(self.timeout, remaining)
            deadline = time.monotonic() + timeout
            self.fetched.append(url)
            try:
                with open_url(self.policy, url, timeout=timeout,
                              max_redirects=self.max_redirects,
                              headers=self.extra_headers) as response:
                    if response.status_code >= 400:
                        raise DownloadFailed(f"HTTP {response.status_code}")
                    body = read_capped(response, max_bytes=self.max_bytes, deadline=deadline,
                                       timeout=timeout)
                    content_type = response.headers.get("content-type", "")
                    final_url = str(response.url)
            except UnsafeUrl as exc:
                self._note(url, f"refused {shown}: {exc.message}", refused=True)
                raise
            except DocmillError as exc:
                self._note(url, f"could not load {shown}: {exc.message}", refused=False)
                raise DownloadFailed(exc.message) from exc
            except Exception as exc:
                self._note(url, f"could not load {shown}: {type(exc).__name__}: {exc}",
                           refused=False)
                raise DownloadFailed(str(exc)) from exc
            return URLFetcherResponse(final_url, bytes(body),
                                      {"Content-Type": content_type} if content_type else {})

    return PrintFetcher()


# --- iframes for WeasyPrint ----------------------------------------------------------------

INSECURE_IGNORED = "insecure is ignored: TLS certificates are always verified"
FRAME_DEPTH = 3  # frames inside frames inside frames, then no more
FRAME_STYLE = ("display: block; overflow: hidden; border: 2px inset #d0d0d0; "
               "box-sizing: border-box; width: {width}; height: {height};")


def _css_length(value: str | None, default: str) -> str:
    value = (value or "").strip()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return f"{value}px"
    if re.fullmatch(r"\d+(\.\d+)?%", value):
        return value
    return default


def _frame_document(frame: Any, base_url: str | None, fetcher: Any) -> tuple[str, str] | None:
    """(HTML, its base URL) of one iframe: `srcdoc`, else `src` fetched by the job's guarded
    fetcher (refusals and failures land in its warnings); None when there is nothing to show."""
    from urllib.parse import urljoin

    from docmill.engines.html.to_pdf import NO_BASE

    srcdoc = frame.get("srcdoc")
    if srcdoc is not None:
        return srcdoc, base_url or NO_BASE
    src = (frame.get("src") or "").strip()
    if not src or src.startswith("about:"):
        return None
    url = urljoin(base_url or NO_BASE, src)
    try:
        response = fetcher.fetch(url)
    except DocmillError:
        return None  # the fetcher noted why
    try:
        body = response.read()
        kind = response.content_type or "text/html"
        charset = response.charset or "utf-8"
    finally:
        response.close()
    if kind not in ("text/html", "application/xhtml+xml", "text/plain"):
        fetcher.warnings.append(f"left out the iframe {src[:200]}: it is {kind}, not HTML")
        return None
    try:
        text = body.decode(charset, errors="replace")
    except LookupError:
        text = body.decode("utf-8", errors="replace")
    if kind == "text/plain":
        from html import escape

        text = f"<pre>{escape(text)}</pre>"
    return text, getattr(response, "url", None) or url


def inline_iframes(html: str, base_url: str | None, fetcher: Any, depth: int = 0) -> str:
    """Each `<iframe>` replaced by a box of its size holding its document's body. The framed
    document's own style sheets and scripts are dropped (they would apply to the whole page);
    its links are made absolute against its own URL, so its images load through the same
    guard; local files stay unreachable because the fetcher refuses every non-http(s) URL."""
    if "<iframe" not in html.lower():
        return html
    import lxml.html

    from docmill.engines.html.to_pdf import NO_BASE

    root = lxml.html.document_fromstring(html)
    for frame in list(root.iter("iframe")):
        found = _frame_document(frame, base_url, fetcher) if depth < FRAME_DEPTH else None
        box = lxml.html.Element("div")
        box.set("class", "docmill-iframe")
        style = FRAME_STYLE.format(width=_css_length(frame.get("width"), "300px"),
                                   height=_css_length(frame.get("height"), "150px"))
        box.set("style", style + " " + (frame.get("style") or ""))
        if found is not None:
            inner_html, inner_base = found
            inner_html = inline_iframes(inner_html, inner_base, fetcher, depth + 1)
            inner = lxml.html.document_fromstring(inner_html or "<p></p>")
            if not inner_base.startswith(NO_BASE):
                inner.make_links_absolute(inner_base, resolve_base_href=True)
            for junk in inner.xpath("//script | //style | //link | //noscript"):
                junk.drop_tree()
            body = inner.find("body")
            if body is not None:
                box.text = body.text
                for child in list(body):
                    box.append(child)
        box.tail = frame.tail
        frame.getparent().replace(frame, box)
    return lxml.html.tostring(root, encoding="unicode")


# --- checks before rendering ---------------------------------------------------------------


def check_structure(html: str, max_depth: int, max_elements: int) -> None:
    """Refuse documents whose nesting or size would only burn the time budget."""
    from lxml import etree

    parser = etree.HTMLPullParser(events=("start", "end"), recover=True, huge_tree=True)
    depth = deepest = count = 0
    step = 1 << 20
    for offset in range(0, max(len(html), 1), step):
        parser.feed(html[offset:offset + step])
        for event, _element in parser.read_events():
            if event == "start":
                depth += 1
                count += 1
                deepest = max(deepest, depth)
                if deepest > max_depth:
                    raise InvalidInput(f"Document Malformed: elements are nested more than "
                                       f"{max_depth} levels deep")
                if count > max_elements:
                    raise InvalidInput(f"Document Malformed: the document has more than "
                                       f"{max_elements} elements")
            else:
                depth -= 1
    try:
        parser.close()
    except etree.LxmlError:
        pass


IGNORED_PARSE_ERRORS = ("expected-doctype", "unknown-doctype", "non-html-root")


def check_strict(html: str) -> None:
    """`strict`: the HTML5 parser's errors (bar a missing doctype) fail the document."""
    from tinyhtml5.parser import HTMLParser

    parser = HTMLParser()
    parser.parse(html)
    problems = [(pos, code, data) for pos, code, data in parser.errors
                if not code.startswith(IGNORED_PARSE_ERRORS)]
    if problems:
        lines = [f"line {pos[0]}, column {pos[1]}: {code}"
                 + (f" ({data['name']})" if isinstance(data, dict) and data.get("name") else "")
                 for pos, code, data in problems[:10]]
        more = f" and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise InvalidInput("Document Malformed: " + "; ".join(lines) + more)


# --- rendering -----------------------------------------------------------------------------


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
    from docmill.engines.html.to_pdf import MAX_WARNINGS, NO_BASE, _weasyprint_messages

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
