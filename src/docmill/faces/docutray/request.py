"""Reading a Docutray processing request: the document (multipart part `image`, JSON
`image_base64` with or without a data-URI prefix, or JSON `image_url`) and its fields, and
staging the document into the blob store; also the caller (`Authorization: Bearer` only),
the face's prefix and public base URL, `?page=&limit=` and JSON bodies in the vendor's
error shapes.

Part types and names sent by the client can be wrong (bytes go up as `document`, typed
`application/pdf`), so the staged file's type is sniffed from its bytes; the declared type
only names the file when nothing better is known.
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import unquote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.requests import Request

from docmill import errors
from docmill.core.auth import Principal, authenticate, cached_principal
from docmill.core.inputs import InputStager, StagedInput
from docmill.faces.common import public_base as common_public_base
from docmill.faces.common import read_form, read_json
from docmill.faces.contract import MAX_PAGE
from docmill.faces.docutray.errors import CONTENT_TYPE, INVALID_KEY, VendorError, validation
from docmill.security.ssrf import policy_from_settings
from docmill.settings import get_settings

ACCEPTED = frozenset({"image/jpeg", "image/png", "image/gif", "image/bmp", "image/webp",
                      "image/tiff", "application/pdf"})
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/gif": ".gif",
              "image/bmp": ".bmp", "image/webp": ".webp", "image/tiff": ".tif",
              "application/pdf": ".pdf"}
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 20


@dataclass
class DocRequest:
    kind: str  # upload | base64 | url
    value: Any  # UploadFile | str
    filename: str | None = None
    declared_type: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    async def close(self) -> None:
        if isinstance(self.value, UploadFile):
            await self.value.close()

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise validation(f"{name}: Expected string, received {type(value).__name__}")
        return value.strip()

    def metadata(self) -> dict[str, Any] | None:
        """`document_metadata`: an object, or a JSON string of one (multipart sends that)."""
        value = self.fields.get("document_metadata")
        if value is None or value == "":
            return None
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise validation("document_metadata: must be a JSON object") from None
        if not isinstance(value, dict):
            raise validation("document_metadata: must be a JSON object")
        return value

    def options(self) -> list[str] | None:
        """`document_type_code_options`: a JSON array (or its string), a single code, or
        comma-separated codes; None when absent or empty (then every usable type counts)."""
        value = self.fields.get("document_type_code_options")
        if value is None or value == "" or value == []:
            return None
        if isinstance(value, str):
            text = value.strip()
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = [part.strip() for part in text.split(",") if part.strip()]
            if isinstance(value, str):
                value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise validation("document_type_code_options: must be an array of codes")
        return list(dict.fromkeys(v.strip() for v in value)) or None


def _type_from_data_uri(text: str) -> str | None:
    head = text[:200]
    if head.startswith("data:") and "," in head:
        return head[5:].split(",", 1)[0].split(";", 1)[0].strip().lower() or None
    return None


async def read_request(request: Request) -> DocRequest:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        form = await read_form(request)
        fields: dict[str, Any] = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        upload = next((v for k, v in form.multi_items()
                       if k in ("image", "file") and isinstance(v, UploadFile)), None)
        for _key, value in form.multi_items():
            if isinstance(value, UploadFile) and value is not upload:
                await value.close()
        if upload is not None:
            return DocRequest("upload", upload, upload.filename,
                              (upload.content_type or "").split(";")[0].lower() or None, fields)
        return _from_fields(fields)
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        body = await read_json(request)
        if not isinstance(body, dict):
            raise validation("body: Expected object")
        return _from_fields(body)
    raise VendorError(415, {"message": CONTENT_TYPE})


def _from_fields(fields: dict[str, Any]) -> DocRequest:
    declared = fields.get("image_content_type")
    declared = declared.strip().lower() if isinstance(declared, str) and declared.strip() else None
    b64, url = fields.get("image_base64"), fields.get("image_url")
    if b64 not in (None, "") and url not in (None, ""):
        raise validation("Provide only one of image, image_base64 or image_url")
    if isinstance(b64, str) and b64.strip():
        return DocRequest("base64", b64, None, _type_from_data_uri(b64) or declared, fields)
    if isinstance(url, str) and url.strip():
        name = PurePosixPath(unquote(urlsplit(url.strip()).path)).name or None
        return DocRequest("url", url.strip(), name, declared, fields)
    if b64 not in (None, "") or url not in (None, ""):
        raise validation("image_base64 / image_url: Expected string")
    raise validation("image: Required (send a file part 'image', image_base64 or image_url)")


def _name(doc: DocRequest) -> str:
    """A file name whose extension matches the declared type when the sender gave none."""
    name = doc.filename or "document"
    ext = EXTENSIONS.get(doc.declared_type or "") or (
        mimetypes.guess_extension(doc.declared_type) if doc.declared_type else None)
    if ext and not PurePosixPath(name).suffix:
        name += ext
    return name


async def stage(doc: DocRequest, stager: InputStager) -> StagedInput:
    settings = get_settings()
    name = _name(doc)

    def work() -> StagedInput:
        if doc.kind == "upload":
            return stager.add_stream(name, doc.value.file)
        if doc.kind == "base64":
            return stager.add_base64(name, doc.value)
        return stager.add_url(doc.value, name, policy_from_settings(),
                              settings.url_download_timeout_s)

    try:
        staged = await run_in_threadpool(work)
        base_type = staged.content_type.split(";")[0]
        if base_type not in ACCEPTED:
            raise validation(f"Unsupported file type {base_type}; send JPEG, PNG, GIF, BMP, "
                             "WebP, TIFF or PDF")
        return staged
    except BaseException:
        await run_in_threadpool(stager.discard)
        raise
    finally:
        await doc.close()


def original_filename(doc: DocRequest, staged: StagedInput) -> str:
    return doc.filename or staged.name


# --- the caller, the prefix, paging and JSON bodies ----------------------------------------

def face_prefix() -> str:
    prefix = get_settings().docutray_prefix.strip("/")
    return f"/{prefix}" if prefix else ""


def public_base(request: Request) -> str:
    return common_public_base(request, face_prefix())


async def caller(request: Request) -> Principal:
    """Only `Authorization: Bearer <key>`; any Docmill API key is a Docutray key."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    key = value.strip()
    if scheme.lower() != "bearer" or not key:
        raise VendorError(401, dict(INVALID_KEY))
    try:
        cached = cached_principal(key)
        return cached if cached is not None else await run_in_threadpool(authenticate, key)
    except errors.Unauthorized:
        raise VendorError(401, dict(INVALID_KEY)) from None


def pagination_error(name: str, message: str) -> VendorError:
    return VendorError(400, {"error": "Invalid pagination parameters",
                             "details": [{"path": [name], "message": message}]})


def int_query(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise pagination_error(name, "Expected an integer") from None


async def json_body(request: Request) -> Any:
    """A JSON body; an unreadable one is the vendor's `{"error": "Invalid body"}`."""
    try:
        return await read_json(request)
    except errors.InvalidInput:
        raise VendorError(400, {"error": "Invalid body"}) from None


def paging(request: Request) -> tuple[int, int]:
    """`?page=&limit=`: a page from 1 to `MAX_PAGE`, a limit of at least 1 (clamped to
    `MAX_PAGE_SIZE`), each refused in the vendor's pagination error."""
    page = int_query(request, "page", 1)
    limit = int_query(request, "limit", DEFAULT_PAGE_SIZE)
    if page < 1:
        raise pagination_error("page", "Number must be greater than or equal to 1")
    if page > MAX_PAGE:
        raise pagination_error("page", f"Number must be less than or equal to {MAX_PAGE}")
    if limit < 1:
        raise pagination_error("limit", "Number must be greater than or equal to 1")
    return page, min(limit, MAX_PAGE_SIZE)  # clamped, and the clamped value is echoed
