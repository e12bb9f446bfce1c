"""Bearer tokens and refused-task ids of the expert.ai face: HS256 JWTs (PyJWT).

Why the payload is searched for a clean encoding: the official client checks expiry by
decoding the token's middle segment with *standard* base64, which silently drops `-` and `_`
(base64url's two extra letters) and then fails on padding, so every call would fail. A
random `jti` filler is re-drawn until the segment holds neither (about one draw in four
succeeds, so a handful of tries at most).

A bearer token names the API key it was issued for (`sub`); each use looks the key up, so a
revoked key's tokens die with it. A *refused task* (input that is not a PDF or an image,
which the vendor still answers with 202 and then FAILURE) is never a core job: its taskId is
a token of its own audience carrying the organization and the message, so polling it needs
no stored state and another organization's poll is a 404.

PyJWT is imported where it is used, not at module level: it loads `cryptography` (about 10 MB
per process), which a server that never sees an expert.ai client should not carry.
"""

from __future__ import annotations

import secrets
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from docmill.security.keys import secret_from_file
from docmill.settings import get_settings

ALGORITHM = "HS256"
TOKEN_AUDIENCE = "docmill-expertai"
REFUSAL_AUDIENCE = "docmill-expertai-refused"
SECRET_FILE = "expertai-token.key"
MAX_DRAWS = 64


@lru_cache
def _secret() -> bytes:
    settings = get_settings()
    if settings.expertai_token_secret:
        return settings.expertai_token_secret.encode()
    return secret_from_file(Path(settings.data_dir) / SECRET_FILE,
                            "DOCMILL_EXPERTAI_TOKEN_SECRET")


def _clean_encode(claims: dict[str, Any]) -> str:
    import jwt

    for _ in range(MAX_DRAWS):
        token = jwt.encode({**claims, "jti": secrets.token_hex(6)}, _secret(),
                           algorithm=ALGORITHM)
        payload = token.split(".")[1]
        if "-" not in payload and "_" not in payload:
            return token
    raise RuntimeError("could not draw a token payload free of '-' and '_'")


def issue_token(key_id: str, now: float | None = None) -> str:
    now = int(now if now is not None else time.time())
    return _clean_encode({"sub": key_id, "aud": TOKEN_AUDIENCE, "iat": now,
                          "exp": now + get_settings().expertai_token_ttl_s})


def key_id_of(token: str) -> str | None:
    """The API key id a valid, unexpired token was issued for; None for anything else."""
    import jwt

    try:
        claims = jwt.decode(token, _secret(), algorithms=[ALGORITHM], audience=TOKEN_AUDIENCE,
                            options={"require": ["exp", "sub"]})
    except jwt.PyJWTError:
        return None
    return str(claims["sub"])


def refused_task_id(org_id: str, kind: str) -> str:
    """A taskId standing for a task refused before it started, because its document is of
    type `kind` (URL-unreserved characters only)."""
    import jwt

    now = int(time.time())
    return jwt.encode({"org": org_id, "kind": kind[:100], "aud": REFUSAL_AUDIENCE,
                       "exp": now + int(get_settings().expertai_retention_s)},
                      _secret(), algorithm=ALGORITHM)


def refusal_of(task_id: str, org_id: str) -> str | None:
    """The refused document type of the caller's own, unexpired refused task; else None."""
    import jwt

    if task_id.count(".") != 2:
        return None
    try:
        claims = jwt.decode(task_id, _secret(), algorithms=[ALGORITHM],
                            audience=REFUSAL_AUDIENCE, options={"require": ["exp", "org"]})
    except jwt.PyJWTError:
        return None
    return str(claims.get("kind") or "") if claims["org"] == org_id else None
