"""Reading a DocRaptor document request and translating it into a core submission.

The vendor's official client sends flat JSON (the `Doc` fields at the top level); raw REST
users also send `type` for `document_type`, a `{"doc": {...}}` wrapper, or Rails-style form
bodies (`doc[prince_options][media]=screen`). All of them end up as one flat dict. Parsing is
tolerant: unknown keys are ignored and booleans or numbers sent as strings are understood.

Validation errors are collected, not raised, with the vendor's wording: a synchronous
request answers them at once (422), an asynchronous one reports them later as a `failed`
status (the client's documented behaviour). The caller's key, the query's and body's fields
merged, and a job's retention and download terms are read here too.
"""

from __future__ import annotations

import json
import re
from base64 import b64decode
from binascii import Error as BinasciiError
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from docmill.core.auth import Principal, authenticate
from docmill.core.models import utcnow
from docmill.errors import InvalidInput, Unauthorized
from docmill.faces.common import read_form
from docmill.settings import get_settings

DOCUMENT_TYPES = ("pdf", "xls", "xlsx")
CONTENT_TYPES = {
    "pdf": "application/pdf",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
MAX_LABEL = 200
PROFILES = {"pdf/a-1b": "pdfa-1b", "pdf/a-2b": "pdfa-2b", "pdf/a-3b": "pdfa-3b",
            "pdf/a-2u": "pdfa-2u", "pdf/a-3u": "pdfa-3u", "pdf/ua-1": "pdfua-1",
            "pdf/x-1a": "pdfx-1a", "pdf/x-1a:2001": "pdfx-1a", "pdf/x-1a:2003": "pdfx-1a",
            "pdf/x-3": "pdfx-3", "pdf/x-3:2002": "pdfx-3", "pdf/x-3:2003": "pdfx-3",
            "pdf/x-4": "pdfx-4"}
SUPPORTED_PROFILES = "PDF/A-1b, PDF/A-2b, PDF/A-3b, PDF/A-2u, PDF/A-3u, PDF/UA-1, PDF/X-1a, " \
    "PDF/X-3:2003, PDF/X-4"
_LENGTH = r"(?:0|\d+(?:\.\d+)?(?:mm|cm|in|pt|px|pc|q|em|rem))"
_MARGIN_RE = re.compile(r"^" + _LENGTH + r"(?:\s+" + _LENGTH + r"){0,3}$", re.IGNORECASE)
_MEDIA_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
JS_ERROR = ("[Javascript Error] JavaScript is not supported by this server: its operator "
            "turned it off. Send javascript: false to render the document "
            "without running its scripts.")


class BadRequest(InvalidInput):
    """The request body cannot be read (400, where validation errors are 422)."""

    code = "bad_request"


# --- bodies --------------------------------------------------------------------------------


def _nest(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """Rails-style `doc[prince_options][media]=screen` pairs into nested dicts (a repeated
    key keeps its last value: no document field is a list)."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        node = root
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return root


def _unwrap(body: dict[str, Any]) -> dict[str, Any]:
    doc = body.get("doc")
    if isinstance(doc, dict):
        rest = {k: v for k, v in body.items() if k != "doc"}
        return {**rest, **doc}
    return body


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """The document fields of a JSON or form-encoded body (multipart is read by the route)."""
    ctype = content_type.split(";")[0].strip().lower()
    text_body = raw.strip()
    if not text_body:
        return {}
    if ctype == "application/x-www-form-urlencoded":
        return form_fields(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        if ctype in ("application/json", "text/json") or text_body[:1] in (b"{", b"["):
            raise BadRequest(f"Malformed POST: the body is not valid JSON ({exc})") from None
        # No (or an odd) content type: a form body is the other thing clients send.
        return form_fields(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    if not isinstance(body, dict):
        raise BadRequest("Malformed POST: the body must be a JSON object of document fields")
    return _unwrap(body)


def form_fields(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return _unwrap(_nest(pairs))


def query_fields(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Document fields given in the query string (`doc[...]=`), bar the credentials."""
    return form_fields([(k, v) for k, v in pairs if k != "user_credentials"])


# --- tolerant values -----------------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n", "", "null", "none"}


def as_bool(value: Any, default: bool | None = None) -> bool | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False if lowered else default
    return default


def as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
        return int(value)
    return None


def parse_time(value: Any) -> datetime | None:
    """ISO 8601, leniently; no offset means UTC (the vendor's own tests send none)."""
    text = as_text(value)
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", text)  # +0000 -> +00:00
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(text) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _is_http_url(value: str) -> bool:
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.hostname)


# --- the request ---------------------------------------------------------------------------


@dataclass
class DocRequest:
    """A parsed request: what to run, how to report it, and what was wrong with it."""

    document_type: str
    name: str | None
    tag: str | None
    test: bool
    content: str | None
    operation: str
    params: dict[str, Any]
    callback_url: str | None = None
    asynchronous: bool = False
    hosted: bool = False
    hosted_download_limit: int | None = None
    hosted_expires_at: datetime | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES.get(self.document_type, "application/octet-stream")

    @property
    def filename(self) -> str:
        ext = self.document_type if self.document_type in CONTENT_TYPES else "pdf"
        name = (self.name or "").strip() or f"document.{ext}"
        return name if name.lower().endswith(f".{ext}") else f"{name}.{ext}"


def _prince(options: dict[str, Any], params: dict[str, Any], errors: list[str]) -> None:
    """prince_options -> html.print-pdf parameters; the ones the engine cannot honour are
    validation errors, named."""

    def unsupported(option: str, why: str) -> None:
        errors.append(f"Prince option {option} is not supported by this server: {why}")

    baseurl = as_text(options.get("baseurl"))
    if baseurl and baseurl.strip():
        if _is_http_url(baseurl):
            params["base_url"] = baseurl.strip()
        else:
            errors.append("Prince option baseurl must be an absolute http or https URL")
    media = as_text(options.get("media"))
    if media and media.strip():
        if _MEDIA_RE.match(media.strip().lower()):
            params["media"] = media.strip().lower()
        else:
            errors.append("Prince option media is not a valid CSS media type")
    if as_bool(options.get("no_network")):
        params["no_network"] = True
    for key in ("http_user", "http_password"):
        value = as_text(options.get(key))
        if value is not None:
            params[key] = value
    if as_text(options.get("http_proxy")):
        unsupported("http_proxy", "resources are fetched directly, through its SSRF guard")
    timeout = options.get("http_timeout")
    if timeout is not None:
        seconds = as_int(timeout)
        if seconds is None or seconds <= 0:
            errors.append("Prince option http_timeout must be a positive number of seconds")
        else:
            params["http_timeout_s"] = min(seconds, 120)
    if as_bool(options.get("insecure")):  # a no-op with a warning: never skip TLS checks
        params["insecure"] = True
    if as_bool(options.get("no_author_style")):
        unsupported("no_author_style", "the document's own styles are always applied")
    if as_bool(options.get("no_default_style")):
        unsupported("no_default_style", "the default style sheet is always applied")
    if as_bool(options.get("no_embed_fonts")):
        unsupported("no_embed_fonts", "fonts are always embedded")
    if as_bool(options.get("no_subset_fonts")):
        params["full_fonts"] = True
    if as_bool(options.get("no_compress")):
        params["uncompressed"] = True
    if as_bool(options.get("encrypt")):
        params["encrypt"] = True
        bits = options.get("key_bits")
        if bits is not None:
            if as_int(bits) in (40, 128):
                params["key_bits"] = as_int(bits)
            else:
                errors.append("Prince option key_bits is not included in the list (40, 128)")
        for key in ("user_password", "owner_password"):
            value = as_text(options.get(key))
            if value:
                params[key] = value
        for key in ("disallow_print", "disallow_copy", "disallow_annotate", "disallow_modify"):
            if as_bool(options.get(key)):
                params[key] = True
    source = as_text(options.get("input"))
    if source and source.strip().lower() == "xml":
        unsupported("input=xml", "documents are read as HTML (use input html or auto)")
    elif source and source.strip().lower() not in ("html", "auto"):
        errors.append("Prince option input is not included in the list (html, xml, auto)")
    if as_bool(options.get("javascript")):
        _javascript(params, errors)
    dpi = options.get("css_dpi")
    if dpi is not None and as_int(dpi) != 96:
        unsupported("css_dpi", "the CSS resolution is fixed at 96 dpi")
    profile = as_text(options.get("profile"))
    if profile and profile.strip():
        variant = PROFILES.get(profile.strip().lower())
        if variant is None:
            unsupported(f"profile {profile.strip()}", f"the profiles offered are "
                        f"{SUPPORTED_PROFILES}")
        else:
            params["pdf_variant"] = variant
    title = as_text(options.get("pdf_title"))
    if title is not None:
        params["title"] = title
    if as_bool(options.get("iframes")) is False:  # loaded by default, as the vendor does
        params["iframes"] = False
    margin = as_text(options.get("page_margin"))
    if margin and margin.strip():
        if _MARGIN_RE.match(margin.strip()):
            params["page_margin"] = margin.strip()
        else:
            errors.append("Prince option page_margin must be one to four CSS lengths, "
                          "e.g. 2cm")
    if as_bool(options.get("pdf_forms")):
        params["pdf_forms"] = True
    if params.get("encrypt") and str(params.get("pdf_variant", "")).startswith(("pdfa", "pdfx")):
        errors.append(f"Prince option profile {profile} cannot be combined with encrypt")
    if params.get("javascript") and params.get("pdf_variant"):
        errors.append(f"Prince option profile {profile} cannot be combined with javascript: "
                      "true (documents with JavaScript are printed by Chromium, which writes "
                      "no PDF profiles)")
    if params.get("javascript") and params.get("pdf_forms"):
        errors.append("Prince option pdf_forms cannot be combined with javascript: true "
                      "(documents with JavaScript are printed by Chromium, which writes no "
                      "PDF forms)")
    # no_xinclude, no_parallel_downloads (fetches are sequential), debug, version: accepted.


def _javascript(params: dict[str, Any], errors: list[str]) -> None:
    """javascript: true (the Doc field or the Prince option): Chromium, unless the operator
    refuses scripts or renders such documents without them."""
    mode = get_settings().docraptor_javascript
    if mode == "chromium":
        params["javascript"] = True
    elif mode == "reject" and JS_ERROR not in errors:
        errors.append(JS_ERROR)


def read_doc(fields: dict[str, Any], *, asynchronous: bool, hosted: bool) -> DocRequest:
    """Validate and translate the document fields (flat dict) into a DocRequest."""
    settings = get_settings()
    errors: list[str] = []
    raw_type = fields.get("type") if fields.get("type") not in (None, "") else \
        fields.get("document_type")
    document_type = (as_text(raw_type) or "").strip().lower()
    if not document_type:
        errors.append("Document type can't be blank")
    elif document_type not in DOCUMENT_TYPES:
        errors.append("Document type is not included in the list")
    name = as_text(fields.get("name"))
    if name is not None and len(name) > MAX_LABEL:
        errors.append(f"Name is too long (maximum is {MAX_LABEL} characters)")
    tag = as_text(fields.get("tag"))
    if tag is not None and len(tag) > MAX_LABEL:
        errors.append(f"Tag is too long (maximum is {MAX_LABEL} characters)")
    test = bool(as_bool(fields.get("test"), False))

    content = fields.get("document_content")
    if content is not None and not isinstance(content, str):
        content = json.dumps(content) if isinstance(content, dict | list) else str(content)
    url = as_text(fields.get("document_url"))
    params: dict[str, Any] = {}
    if content is not None and content.strip():
        pass  # the content wins over a URL
    elif url and url.strip():
        content = None
        if _is_http_url(url):
            params["document_url"] = url.strip()
        else:
            errors.append("Document url must be an absolute http or https URL")
    else:
        content = None
        errors.append("Document content can't be blank")

    referrer = as_text(fields.get("referrer"))
    if referrer and referrer.strip():
        if "\r" in referrer or "\n" in referrer:
            errors.append("Referrer must be a single line")
        else:
            params["referrer"] = referrer.strip()
    strict = (as_text(fields.get("strict")) or "none").strip().lower() or "none"
    if strict not in ("none", "html"):
        errors.append("Strict is not included in the list")

    if as_bool(fields.get("javascript")) and document_type == "pdf":
        _javascript(params, errors)

    if document_type == "pdf":
        operation = "html.print-pdf"
        if strict == "html":
            params["strict_html"] = True
        if as_bool(fields.get("ignore_resource_errors"), True) is False:
            params["fail_on_resource_errors"] = True
        options = fields.get("prince_options")
        if isinstance(options, dict):
            _prince(options, params, errors)
        elif options not in (None, "", {}):
            errors.append("Prince options must be an object")
        if test and settings.docraptor_test_watermark:
            params["watermark"] = settings.docraptor_test_watermark
    else:
        operation = "html.print-sheet"
        if document_type in ("xls", "xlsx"):
            params["format"] = document_type
        if test and settings.docraptor_test_max_rows:
            params["max_rows"] = settings.docraptor_test_max_rows
        # Fetch options apply to a document_url; prince_options are PDF-only.
        options = fields.get("prince_options")
        if isinstance(options, dict):
            for key in ("http_user", "http_password"):
                if as_text(options.get(key)) is not None:
                    params[key] = as_text(options.get(key))

    callback = as_text(fields.get("callback_url"))
    callback = callback.strip() if callback and callback.strip() else None
    if callback and not _is_http_url(callback):
        errors.append("Callback url must be an absolute http or https URL")

    limit = None
    raw_limit = fields.get("hosted_download_limit")
    if raw_limit not in (None, ""):
        limit = as_int(raw_limit)
        if limit is None or limit < 1:
            errors.append("Hosted download limit must be a positive whole number")
            limit = None
    expires = None
    try:
        expires = parse_time(fields.get("hosted_expires_at"))
    except ValueError:
        errors.append("Hosted expires at is not a valid ISO 8601 time")

    return DocRequest(document_type=document_type, name=name, tag=tag, test=test,
                      content=content, operation=operation, params=params,
                      callback_url=callback, asynchronous=asynchronous, hosted=hosted,
                      hosted_download_limit=limit if hosted else None,
                      hosted_expires_at=expires if hosted else None, errors=errors)


# --- the request: the caller, its fields, the document -------------------------------------

def api_key(request: Request) -> str | None:
    """The key: the Basic user name (the password is ignored), a Bearer or Token header,
    or `?user_credentials=`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                user = b64decode(value.strip(), validate=False).decode("utf-8")
            except (BinasciiError, UnicodeDecodeError, ValueError):
                raise Unauthorized(
                    "Unable to authenticate: malformed Basic credentials") from None
            key = user.partition(":")[0]  # the password is ignored
            if key:
                return key
        elif scheme.lower() in ("bearer", "token") and value.strip():
            return value.strip()
    return request.query_params.get("user_credentials") or None


async def caller(request: Request) -> Principal:
    key = api_key(request)
    if not key:
        raise Unauthorized("Unable to authenticate: send your API key as the HTTP "
                           "Basic user name or as user_credentials")
    try:
        return await run_in_threadpool(authenticate, key)
    except Unauthorized:
        raise Unauthorized("Unable to authenticate: the API key is not valid") from None


async def read_fields(request: Request) -> dict[str, Any]:
    """The query's fields, overridden by the body's (a form, multipart or JSON)."""
    content_type = request.headers.get("content-type", "")
    if content_type.lower().startswith("multipart/form-data"):
        form = await read_form(request)
        body = form_fields([(k, v) for k, v in form.multi_items() if isinstance(v, str)])
    else:
        body = parse_body(content_type, await request.body())
    query = query_fields(list(request.query_params.multi_items()))
    return {**query, **body}


async def read_request(request: Request, *, asynchronous: bool,
                       hosted: bool) -> tuple[Principal, DocRequest]:
    """The caller and the document; the body's `async` / `hosted` can only turn the
    endpoint's choice on."""
    principal = await caller(request)
    fields = await read_fields(request)
    asynchronous = asynchronous or bool(as_bool(fields.get("async"), False))
    hosted = hosted or bool(as_bool(fields.get("hosted"), False))
    return principal, read_doc(fields, asynchronous=asynchronous, hosted=hosted)


def retention_terms(doc: DocRequest) -> tuple[float, dict[str, Any]]:
    """Job retention and the download terms kept in face_state."""
    settings = get_settings()
    state: dict[str, Any] = {}
    if doc.hosted:
        state["downloads"] = doc.hosted_download_limit
        if doc.hosted_expires_at is not None:
            state["link_expires_at"] = doc.hosted_expires_at.isoformat()
            left = (doc.hosted_expires_at - utcnow()).total_seconds()
            floor = settings.docraptor_async_timeout_s + 3600  # status stays readable
            return max(left, floor), state
        return settings.docraptor_hosted_retention_s, state
    state["downloads"] = 1 if settings.docraptor_short_retention else \
        settings.docraptor_download_limit
    return settings.docraptor_retention_s or settings.retention_s, state


def strip_format(value: str) -> str:
    """An id from the path, without the `.json` / `.xml` the vendor's URLs may carry."""
    for suffix in (".json", ".xml"):
        if value.lower().endswith(suffix):
            return value[: -len(suffix)]
    return value
