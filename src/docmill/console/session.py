"""Console sessions: nothing kept on the server.

The session (the API key signed in with, its organization and role, a CSRF token) lives in
one cookie, encrypted and authenticated with Fernet under a server secret, HttpOnly,
SameSite=Strict and Secure, and expiring after `console_session_ttl_s`: a stolen cookie is
a session that ends, not the key. A visitor who has not signed in gets a keyless session
too, so that the sign-in form is CSRF-protected like every other.

`cryptography` is imported on first use, so a server whose console nobody opens never loads
it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from docmill.security.keys import secret_from_file
from docmill.settings import get_settings

COOKIE = "docmill_console"
SECRET_FILE = "console-session.key"


@dataclass
class Session:
    csrf: str
    key: str | None = None
    org: str = ""
    role: str = ""

    @property
    def signed_in(self) -> bool:
        return self.key is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def csrf_ok(self, token: Any) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token, self.csrf)


def new_session(**fields: str) -> Session:
    return Session(csrf=secrets.token_urlsafe(24), **fields)


@lru_cache
def _fernet() -> Any:
    from cryptography.fernet import Fernet

    settings = get_settings()
    secret = (settings.console_secret.encode() if settings.console_secret else
              secret_from_file(Path(settings.data_dir) / SECRET_FILE,
                               "DOCMILL_CONSOLE_SECRET"))
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"docmill-console\0" + secret)
                                           .digest()))


def load(request: Request) -> Session | None:
    """The request's session, or None if absent, forged, tampered with or expired."""
    from cryptography.fernet import InvalidToken

    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        data = json.loads(_fernet().decrypt(token.encode(),
                                            ttl=get_settings().console_session_ttl_s))
        return Session(**data)
    except (InvalidToken, ValueError, TypeError):
        return None


def store(response: Response, session: Session) -> None:
    token = _fernet().encrypt(json.dumps(asdict(session)).encode()).decode()
    response.set_cookie(COOKIE, token, max_age=get_settings().console_session_ttl_s,
                        path="/console", httponly=True, samesite="strict",
                        secure=get_settings().console_secure_cookie)


def cookie_dropped(request: Request) -> bool:
    """Whether browsers will refuse the Secure cookie: plain HTTP to a host other than
    this machine (behind a TLS proxy, X-Forwarded-Proto says https)."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme).split(",")[0].strip()
    host = (request.url.hostname or "").lower()
    return (get_settings().console_secure_cookie and proto != "https"
            and host not in ("localhost", "127.0.0.1", "::1")
            and not host.endswith(".localhost"))


def clear(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="strict",
                           secure=get_settings().console_secure_cookie)
