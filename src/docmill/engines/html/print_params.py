"""The parameters of `html.print-pdf` and `html.print-sheet`: where the document comes
from and how it and its resources are fetched, and the print options."""

from __future__ import annotations

import base64
import re
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from docmill.engines.base import Params

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
    def _compatible(self) -> PrintPdfParams:
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
