"""Core errors as DocRaptor answers them: `<errors><error>...</error></errors>` with the
vendor's statuses (a refused download is a 400, another organization's document a 403)."""

from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import escape

from fastapi import Request
from fastapi.responses import Response

from docmill import errors
from docmill.faces.common import status_for
from docmill.faces.contract import Responses, error_responses
from docmill.faces.docraptor.request import BadRequest

XML_TYPE = "application/xml; charset=utf-8"
DOWNLOAD_KEY_ERROR = "[Download Key Error] The supplied download key is not valid."
STATUS_FORBIDDEN = ("[Authentication Error] You do not have permission to view the status "
                    "of this document.")
EXPIRE_FORBIDDEN = "[Authentication Error] You do not have permission to expire this document."
_XML_BAD = re.compile(r"[^\x09\x0a\x0d\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


class DownloadKeyError(errors.NotFound):
    """An unknown, expired, used-up or unfinished download (400 with the vendor's text)."""

    code = "download_key_error"


class NoPermission(errors.Forbidden):
    code = "forbidden"


class DocumentFailed(errors.InvalidInput):
    """A document that could not be made (422), one <error> per line of its message."""

    code = "document_failed"


# Read top down: a refused download is a NotFound, but the vendor's 400; another
# organization's document, or none, is a 403.
STATUS_BY_ERROR: list[tuple[Any, int]] = [
    (errors.Unauthorized, 401),
    (errors.MethodNotAllowed, 405),
    ((DownloadKeyError, BadRequest, errors.TooLarge, errors.Conflict), 400),
    ((errors.Forbidden, errors.NotFound), 403),
    ((errors.InvalidInput, errors.UnsupportedFormat, errors.EngineFailed, errors.Timeout), 422),
]


def error_status(exc: errors.DocmillError) -> int:
    return status_for(exc, STATUS_BY_ERROR)


def xml_errors(messages: list[str]) -> bytes:
    items = "".join(f"\n  <error>{escape(_XML_BAD.sub('', m))}</error>" for m in messages if m)
    text = f'<?xml version="1.0" encoding="UTF-8"?>\n<errors>{items}\n</errors>\n'
    return text.encode("utf-8", "replace")  # a lone surrogate from JSON must not break it


def render_error(request: Request, exc: errors.DocmillError) -> Response:
    lines = exc.details.get("errors") if isinstance(exc.details.get("errors"), list) else None
    if lines is None:
        lines = [line for line in exc.message.split("\n") if line.strip()] or [exc.code]
    headers = ({"WWW-Authenticate": 'Basic realm="DocRaptor API"'}
               if isinstance(exc, errors.Unauthorized) else None)
    return Response(xml_errors([str(x) for x in lines]), status_code=error_status(exc),
                    media_type=XML_TYPE, headers=headers)


def fails(*statuses: int) -> Responses:
    """The vendor's XML error answers a route declares (`responses=`)."""
    return error_responses(statuses, media_type="application/xml", schema={
        "type": "string", "description": "<errors><error>...</error></errors>"})
