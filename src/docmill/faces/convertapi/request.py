"""Reading a ConvertAPI request, whatever its encoding, and staging its files.

Parameters come from the query string and the body (the body wins), with names compared
without regard to case. The body is one of: `application/x-www-form-urlencoded` (the only
form the official client sends), `multipart/form-data` (file parts for file parameters),
ConvertAPI's JSON `{"Parameters": [{"Name", "Value" | "FileValue" | "FileValues"}]}`, or the
input file itself (octet-stream, named by `Content-Disposition`).

File parameters are `File`, `Files[i]` (or repeated `Files`) and any other name ending in
`File` except `StoreFile`. Their value is an upload, a file id from `/upload`, a URL (this
server's own `/d/` URLs are read locally, any other goes through the SSRF guard), or JSON
`FileValue` data.

Also here: the caller (a key in `Authorization: Bearer`, or `Secret`/`Token`/`auth` in the
query; an upload without one may be anonymous) and the face's own options (`Timeout`,
`JobId`, `PageRange`, `download`/`Accept`, the converter's parameters), each refused with
the vendor's 4000 naming the parameter as it was sent.
"""

from __future__ import annotations

import io
import json
import math
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

import anyio
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from docmill import errors
from docmill.core import public_files, service
from docmill.core.auth import Principal, authenticate, cached_principal
from docmill.core.files import get_blob_store
from docmill.core.inputs import InputStager
from docmill.core.ratelimit import FixedWindow
from docmill.faces.common import public_base as common_public_base
from docmill.faces.common import read_form
from docmill.faces.convertapi import converters, render
from docmill.faces.convertapi.errors import (
    BAD_JSON,
    BAD_SECRET,
    BAD_TOKEN,
    FILE_ID_INVALID,
    NO_CREDENTIALS,
    VendorError,
)
from docmill.security.ssrf import SsrfPolicy
from docmill.settings import get_settings

FILES_INDEXED = re.compile(r"files\[(\d+)\]")
URL_RE = re.compile(r"^https?://", re.IGNORECASE)
PAGE_RANGE = re.compile(r"^\s*\d+\s*(-\s*\d*\s*)?(,\s*\d+\s*(-\s*\d*\s*)?)*$")
FACE_PARAMS = frozenset({"storefile", "timeout", "filename", "async", "jobid", "webhook",
                         "download", "secret", "token", "apikey", "auth", "url", "converter"})
RATE_LIMITED = 5031  # Docmill's code for the 503 of too many anonymous uploads


@dataclass
class FileRef:
    """One file parameter: where its bytes come from (`kind`) and what it is called."""

    param: str
    kind: str  # upload | base64 | id | url | html | body
    value: Any
    name: str | None = None


@dataclass
class VendorRequest:
    params: dict[str, tuple[str, Any]] = field(default_factory=dict)  # lower -> (sent, value)
    files: list[FileRef] = field(default_factory=list)
    uploads: list[UploadFile] = field(default_factory=list)

    def get(self, name: str, default: Any = None) -> Any:
        found = self.params.get(name.lower())
        if found is None or found[1] is None or (isinstance(found[1], str) and not found[1]):
            return default
        return found[1]

    def sent_name(self, name: str) -> str:
        return self.params.get(name.lower(), (name, None))[0]

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise VendorError(400, 4000, f"{self.sent_name(name)} must be true or false.",
                          {self.sent_name(name): [f"'{value}' is not a boolean"]})

    async def close(self) -> None:
        for upload in self.uploads:
            await upload.close()


def filename_from_disposition(header: str | None) -> str | None:
    """`filename*=UTF-8''...` (RFC 5987) beats `filename="..."`."""
    if not header:
        return None
    star = re.search(r"filename\*\s*=\s*([^']*)'[^']*'([^;]+)", header, re.IGNORECASE)
    if star:
        charset = star.group(1).strip() or "utf-8"
        try:
            return unquote(star.group(2).strip().strip('"'), encoding=charset, errors="strict")
        except (LookupError, UnicodeDecodeError):
            return unquote(star.group(2).strip().strip('"'))
    plain = re.search(r'filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]+))', header, re.IGNORECASE)
    if plain:
        return (plain.group(1) if plain.group(1) is not None else plain.group(2)).strip()
    return None


def url_name(url: str, ext: str = "") -> str:
    """A file name for a URL input: the last path segment, else the host (with `ext`, so
    that `http://example.com:8080/` converts to `example.com.pdf`, not `example.pdf`)."""
    parts = urlsplit(url)
    name = unquote(PurePosixPath(parts.path).name)
    if name:
        return name
    host = parts.hostname or "document"
    return f"{host}.{ext}" if ext else host


def _file_ref(param: str, value: Any) -> FileRef | None:
    if isinstance(value, UploadFile):
        return FileRef(param, "upload", value, value.filename)
    if isinstance(value, dict):  # JSON FileValue
        lowered = {str(k).lower(): v for k, v in value.items()}
        name = lowered.get("name")
        if lowered.get("data"):
            return FileRef(param, "base64", lowered["data"], name)
        if lowered.get("url"):
            return FileRef(param, "url", str(lowered["url"]), name)
        if lowered.get("id"):
            return FileRef(param, "id", str(lowered["id"]), name)
        raise VendorError(400, 4005, f"{param} has no Data, Url or Id.",
                          {param: ["a file value needs Data, Url or Id"]})
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if URL_RE.match(text):
        return FileRef(param, "url", text)
    if text.startswith("data:"):
        return FileRef(param, "base64", text)
    return FileRef(param, "id", text)


def _json_items(payload: Any) -> list[tuple[str, Any]]:
    if not isinstance(payload, dict):
        raise VendorError(400, BAD_JSON, "The JSON body must be an object with 'Parameters'.")
    entries = next((v for k, v in payload.items() if k.lower() == "parameters"), None)
    if not isinstance(entries, list):
        raise VendorError(400, BAD_JSON, "The JSON body must have a 'Parameters' list.")
    items: list[tuple[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict):
            raise VendorError(400, BAD_JSON, "Each parameter must be a JSON object.")
        lowered = {str(k).lower(): v for k, v in entry.items()}
        name = lowered.get("name")
        if not isinstance(name, str) or not name:
            raise VendorError(400, BAD_JSON, "Each parameter needs a 'Name'.")
        if lowered.get("filevalues") is not None:
            values = lowered["filevalues"]
            if not isinstance(values, list):
                raise VendorError(400, BAD_JSON, f"{name}: FileValues must be a list.")
            items.extend((name, v if isinstance(v, dict) else str(v)) for v in values)
        elif lowered.get("filevalue") is not None:
            items.append((name, lowered["filevalue"]))
        else:
            items.append((name, lowered.get("value")))
    return items


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length.strip() not in ("", "0")
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


async def read_request(request: Request) -> VendorRequest:
    """Every parameter and file reference of a convert request (files are not read yet)."""
    items: list[tuple[str, Any]] = list(request.query_params.multi_items())
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body_file: FileRef | None = None
    result = VendorRequest()
    if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await read_form(request)
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                result.uploads.append(value)
            items.append((key, value))
    elif content_type in ("application/json", "text/json"):
        body = await request.body()
        if body.strip():
            try:
                payload = json.loads(body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise VendorError(400, BAD_JSON, f"Malformed JSON: {exc}") from None
            items.extend(_json_items(payload))
    elif request.method in ("POST", "PUT") and _has_body(request):
        name = filename_from_disposition(request.headers.get("content-disposition"))
        body_file = FileRef("File", "body", request, name)

    primary: FileRef | None = body_file
    indexed: dict[int, FileRef] = {}
    repeated: list[FileRef] = []
    extra: dict[str, FileRef] = {}
    for key, value in items:
        low = key.lower()
        match = FILES_INDEXED.fullmatch(low)
        if low == "file":
            primary = _file_ref(key, value) or primary
        elif match:
            ref = _file_ref(key, value)
            if ref:
                indexed[int(match.group(1))] = ref
        elif low == "files":
            ref = _file_ref(f"Files[{len(repeated)}]", value)
            if ref:
                repeated.append(ref)
        elif low.endswith("file") and low != "storefile":
            ref = _file_ref(key, value)
            if ref:
                extra[low] = ref
        else:
            result.params[low] = (key, value)
    result.files = ([primary] if primary else []) + [indexed[i] for i in sorted(indexed)] \
        + repeated + list(extra.values())
    return result


class BodyReader(io.RawIOBase):
    """The request body as a blocking file for `InputStager.add_stream`, read chunk by chunk
    from the event loop: call only from a thread started by `run_in_threadpool`."""

    def __init__(self, request: Request) -> None:
        super().__init__()
        self._chunks: AsyncIterator[bytes] = request.stream().__aiter__()
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next_chunk(self) -> bytes:
        return await self._chunks.__anext__()

    def read(self, size: int = -1) -> bytes:
        while not self._done:
            try:
                chunk = anyio.from_thread.run(self._next_chunk)
            except StopAsyncIteration:
                self._done = True
                break
            if chunk:
                return chunk
        return b""


@dataclass
class StageContext:
    """What staging needs to know about the request."""

    org_id: str
    own_hosts: frozenset[str]
    prefix: str
    policy: SsrfPolicy
    download_timeout: float
    default_ext: str = ""


def own_file_id(url: str, ctx: StageContext) -> tuple[str, str | None] | None:
    """(file id, name) if `url` is one of this server's `/d/{FileId}[/{FileName}]` URLs."""
    parts = urlsplit(url)
    if parts.netloc.lower() not in ctx.own_hosts:
        return None
    match = re.fullmatch(re.escape(ctx.prefix) + r"/d/([A-Za-z0-9]+)(?:/([^/]*))?/?", parts.path)
    if not match:
        return None
    return match.group(1).lower(), unquote(match.group(2)) if match.group(2) else None


def _with_ext(name: str | None, ext: str) -> str:
    """A name without extension gets the one `{from}` names (ConvertAPI's clients send
    `/convert/docx/to/pdf` for a file called `test`)."""
    name = name or "file"
    return name if not ext or PurePosixPath(name).suffix else f"{name}.{ext}"


def _stage_file_id(stager: InputStager, file_id: str, name: str | None, ctx: StageContext,
                   param: str) -> None:
    try:
        info = public_files.get_usable(file_id, ctx.org_id)
    except errors.NotFound:
        raise VendorError(500, FILE_ID_INVALID, f"File id '{file_id}' is invalid or expired.",
                          {param: ["unknown or expired file id"]}) from None
    try:
        handle = get_blob_store().open(info.blob_key)
    except Exception:  # noqa: BLE001 - the job owning a result was deleted: same answer
        raise VendorError(500, FILE_ID_INVALID, f"File id '{file_id}' is invalid or expired.",
                          {param: ["unknown or expired file id"]}) from None
    with handle:
        stager.add_stream(_with_ext(name or info.name, ctx.default_ext), handle)


def stage(stager: InputStager, refs: list[FileRef], ctx: StageContext) -> None:
    """Stage every file parameter, in order (blocking: run in a thread)."""
    for ref in refs:
        if ref.kind == "upload":
            stager.add_stream(_with_ext(ref.name, ctx.default_ext), ref.value.file)
        elif ref.kind == "body":
            stager.add_stream(_with_ext(ref.name, ctx.default_ext), BodyReader(ref.value))
        elif ref.kind == "base64":
            stager.add_base64(_with_ext(ref.name, ctx.default_ext), str(ref.value))
        elif ref.kind == "html":
            stager.add_stream(ref.name or "document.html", io.BytesIO(str(ref.value).encode()))
        elif ref.kind == "id":
            _stage_file_id(stager, str(ref.value).strip().lower(), ref.name, ctx, ref.param)
        elif ref.kind == "url":
            own = own_file_id(ref.value, ctx)
            if own is not None:
                _stage_file_id(stager, own[0], ref.name or own[1], ctx, ref.param)
            else:
                name = _with_ext(ref.name or url_name(ref.value, ctx.default_ext),
                                 ctx.default_ext)
                stager.add_url(ref.value, name, ctx.policy, ctx.download_timeout)
        else:  # pragma: no cover - every kind is produced above
            raise AssertionError(ref.kind)


# --- the request's context and caller --------------------------------------------------------

def face_prefix() -> str:
    return "/" + get_settings().convertapi_prefix.strip("/") if \
        get_settings().convertapi_prefix.strip("/") else ""


def public_base(request: Request) -> str:
    return common_public_base(request, face_prefix())


def own_hosts(request: Request) -> frozenset[str]:
    settings = get_settings()
    hosts = {urlsplit(public_base(request)).netloc.lower(),
             request.headers.get("host", "").lower(),
             f"{settings.host}:{settings.port}".lower()}
    if settings.public_url:
        hosts.add(urlsplit(settings.public_url).netloc.lower())
    return frozenset(h for h in hosts if h)


def credentials(request: Request) -> tuple[str | None, str]:
    """(key, "token" | "secret"): `Authorization: Bearer <key>` (2.x clients), or the
    `Secret`, `Token` (1.x clients, with an `ApiKey` number Docmill does not need) or `auth`
    query parameter."""
    key, source = None, "token"
    authorization = request.headers.get("authorization", "")
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        key = value.strip()
    for name, value in request.query_params.multi_items():
        low = name.lower()
        if low in ("secret", "token", "auth") and value.strip():
            key, source = value.strip(), ("token" if low == "token" else "secret")
    return key, source


async def caller(request: Request) -> Principal:
    """The caller's principal; any Docmill API key is valid."""
    key, source = credentials(request)
    if not key:
        raise VendorError(401, NO_CREDENTIALS,
                          "User credentials not set, secret or token must be passed.")
    try:
        # a key seen in the last seconds is answered from memory, on the loop
        cached = cached_principal(key)
        return cached if cached is not None else await run_in_threadpool(authenticate, key)
    except errors.Unauthorized:
        code = BAD_SECRET if source == "secret" else BAD_TOKEN
        raise VendorError(401, code, "Unauthorized.") from None


def invalid(param: str, message: str) -> VendorError:
    return VendorError(400, 4000, f"{param}: {message}", {param: [message]})


anonymous_uploads = FixedWindow()


async def uploader(request: Request) -> tuple[str, int, float]:
    """(organization id, size cap, retention) of an upload. With no credentials at all (what
    1.x clients send) and `convertapi_anonymous_uploads` on, the upload is anonymous: capped,
    rate-limited per client address and short-lived, and its id is useless without a key."""
    settings = get_settings()
    if credentials(request)[0] or not settings.convertapi_anonymous_uploads:
        principal = await caller(request)
        return principal.org_id, settings.max_upload_bytes, settings.convertapi_file_retention_s
    if any(k.lower() == "url" for k in request.query_params):
        raise VendorError(401, NO_CREDENTIALS, "Uploading from a url needs "
                          "credentials: secret or token must be passed.")
    cap = settings.convertapi_anonymous_max_bytes
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > cap + (64 << 10):  # room for multipart framing
        raise errors.TooLarge(f"An upload without credentials may be at most {cap} bytes.")
    client = request.client.host if request.client else "unknown"
    allowed, reset = anonymous_uploads.take(client, settings.convertapi_anonymous_rate,
                                            settings.convertapi_anonymous_rate_window_s)
    if not allowed:
        raise VendorError(503, RATE_LIMITED, "Too many uploads without credentials "
                          "from this address; retry later or pass a secret or token.",
                          headers={"Retry-After": str(max(1, math.ceil(reset)))})
    org_id = await run_in_threadpool(public_files.anonymous_org_id)
    return org_id, cap, settings.convertapi_anonymous_retention_s


# --- conversion options --------------------------------------------------------------------

def parse_timeout(req: VendorRequest, source: str) -> int:
    settings = get_settings()
    raw = req.get("Timeout")
    if raw is None:
        return settings.convertapi_web_timeout_s if source == "web" else \
            settings.convertapi_default_timeout_s
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise invalid(req.sent_name("Timeout"), f"'{raw}' is not a whole number of seconds") \
            from None
    if not 1 <= value <= settings.convertapi_max_timeout_s:
        raise invalid(req.sent_name("Timeout"),
                      f"must be between 1 and {settings.convertapi_max_timeout_s}")
    return value


def client_job_id(req: VendorRequest) -> str | None:
    raw = req.get("JobId")
    if raw is None:
        return None
    try:
        return str(uuid.UUID(str(raw).strip()))
    except ValueError:
        raise invalid(req.sent_name("JobId"), "must be a UUID (RFC 4122)") from None


def check_page_range(req: VendorRequest) -> None:
    value = req.get("PageRange")
    if value is not None and not PAGE_RANGE.match(str(value)):
        raise invalid(req.sent_name("PageRange"),
                      f"'{value}' is not a page range such as 1-3,5 or 2-")


def translate(converter: converters.Converter, req: VendorRequest,
              url: str | None) -> dict[str, Any]:
    """The operation's parameters, validated now (a bad one is the vendor's 4000)."""
    vendor_params = {k: v for k, v in req.params.items() if k not in FACE_PARAMS}
    extra = {"base_url": url} if url and converter.source == "web" else None
    params, names = converters.translate(converter, vendor_params, extra)
    try:
        return service.validate_params(converter.operation, params)
    except errors.InvalidInput as exc:
        by_param: dict[str, list[str]] = {}
        for problem in exc.details.get("problems") or []:
            name = str(problem.get("param", "")).split(".")[0]
            by_param.setdefault(names.get(name, name or "Parameters"), []).append(
                str(problem.get("message", "")))
        raise VendorError(400, 4000, "Parameter validation error.", by_param) from None


def find_converter(source: str, target: str) -> converters.Converter:
    converter = converters.find(source, target)
    if converter is None:
        raise VendorError(
            404, 4000, f"Converter '{source}' to '{target}' is not supported. "
            "GET /info/converters lists what this server converts.")
    return converter


def answer_form(req: VendorRequest, accept: str) -> tuple[str, bool]:
    """How the answer is wanted, `(disposition, multipart)`: the bytes for `download=inline|
    attachment` (or `Accept: application/octet-stream`), every file in one body for `Accept:
    multipart/mixed`, else the JSON."""
    disposition = str(req.get("download") or "").lower() or (
        "attachment" if accept.startswith("application/octet-stream") else "")
    if disposition and disposition not in ("inline", "attachment"):
        raise invalid(req.sent_name("download"), "must be inline or attachment")
    return disposition, not disposition and render.wants_multipart(accept)
