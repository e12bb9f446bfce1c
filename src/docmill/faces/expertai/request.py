"""Reading an expert.ai request: the caller's bearer token, the bodies of the token and
layout requests, each refused with the vendor's `Bad Request:` / `Unauthorized:` wording.

The parsers after `read_body` take bytes and dicts, not a request, so they are tested
without a server; `read_body` drains an oversize upload so the client can read the 413.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

from fastapi import Request

from docmill import errors
from docmill.core.auth import KEY_CACHE_TTL_S, Principal, principal_for_key_id
from docmill.faces.expertai import tokens
from docmill.settings import get_settings

DRAIN_MAX = 256 * 1024 * 1024  # an oversize body is read (and dropped) up to this, then cut
TOKEN_BODY_MAX = 64 * 1024


# --- the caller ----------------------------------------------------------------------------


_principals: dict[str, tuple[Principal, float]] = {}


def _principal_for(key_id: str) -> Principal:
    """The key's principal, remembered for `KEY_CACHE_TTL_S` like the core's key cache (a
    polling client would otherwise cost a database read per poll just for auth); a key
    revoked from another process stops its tokens here within that time."""
    now = time.monotonic()
    cached = _principals.get(key_id)
    if cached is not None and cached[1] > now:
        return cached[0]
    principal = principal_for_key_id(key_id)
    if len(_principals) >= 10_000:
        _principals.clear()
    _principals[key_id] = (principal, now + KEY_CACHE_TTL_S)
    return principal


def token_principal(request: Request) -> Principal:
    """The caller, from `Authorization: Bearer <token>`; 401 or 403 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("Unauthorized: send Authorization: Bearer <token>")
    key_id = tokens.key_id_of(token.strip())
    if key_id is None:
        raise errors.Unauthorized("Unauthorized: the token is invalid or expired")
    principal = _principal_for(key_id)
    subscribed = get_settings().expertai_subscribed_orgs
    if subscribed and principal.org_slug not in subscribed:
        raise errors.Forbidden("No active subscription for Extract")
    return principal


# --- bodies --------------------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or TooLarge past `limit` (after draining it, so the client can read the
    413 instead of seeing its upload cut off)."""
    declared = request.headers.get("content-length", "")
    over = declared.isdigit() and int(declared) > limit
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            over = True
        if over:
            chunks.clear()
            if size > DRAIN_MAX:
                break
        else:
            chunks.append(chunk)
    if over:
        raise errors.TooLarge(f"Request Entity Too Large: the request is larger than "
                              f"{limit} bytes")
    return b"".join(chunks)


def json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise errors.InvalidInput(f"Bad Request: malformed JSON ({exc})") from None
    if not isinstance(value, dict):
        raise errors.InvalidInput("Bad Request: the body must be a JSON object")
    return value


def credentials(body: bytes) -> tuple[str, str]:
    """The token request's `(username, password)`; a missing or empty one is a 401, as the
    vendor answers it."""
    fields = json_object(body)
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not password:
        raise errors.Unauthorized("Unauthorized: send username and password")
    return username, password


def document(body: bytes) -> tuple[str, bytes]:
    """The layout request's `(document.name, decoded document.data)`."""
    fields = json_object(body)
    document = fields.get("document")
    if not isinstance(document, dict):
        raise errors.InvalidInput("Bad Request: 'document' (an object) is required")
    name, data = document.get("name"), document.get("data")
    if not isinstance(name, str):
        raise errors.InvalidInput("Bad Request: 'document.name' (a string) is required")
    if not isinstance(data, str) or not data.strip():
        raise errors.InvalidInput("Bad Request: 'document.data' (Base64) is required")
    try:
        raw = base64.b64decode(re.sub(r"\s+", "", data), validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidInput("Bad Request: 'document.data' is not valid Base64") from None
    if not raw:
        raise errors.InvalidInput("Bad Request: 'document.data' is empty")
    return name, raw
