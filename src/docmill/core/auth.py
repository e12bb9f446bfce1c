"""Organizations and API keys.

A key is shown once at creation and stored only as a hash; requests are authenticated by
looking the key's prefix up and comparing hashes in constant time. Everything a request does
afterwards is scoped to the `Principal`'s organization.

A key that authenticated is remembered in-process for `KEY_CACHE_TTL_S` seconds (by its hash,
never the key itself), so a busy client costs one database lookup per key every few seconds
instead of one per request. The price: a key revoked from another process (the CLI, another
server) keeps working here for at most that long; a revocation made in this process drops the
entry at once. Unknown and invalid keys are never cached: every refusal reads the database.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import select, update

from docmill.core.db import session_scope
from docmill.core.models import ApiKey, Organization, Role, utcnow
from docmill.errors import Conflict, InvalidInput, NotFound, Unauthorized
from docmill.security import keys

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
KEY_CACHE_TTL_S = 5.0
KEY_CACHE_MAX = 10_000


@dataclass(frozen=True)
class Principal:
    org_id: str
    org_slug: str
    role: Role
    key_id: str

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


@dataclass(frozen=True)
class KeyInfo:
    id: str
    org_slug: str
    prefix: str
    role: str
    name: str
    created_at: str
    last_used_at: str | None
    revoked: bool


def _new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def get_or_create_org(slug: str, name: str | None = None) -> Organization:
    if not SLUG_RE.match(slug):
        raise InvalidInput("organization slug: 2-63 lowercase letters, digits and dashes")
    with session_scope() as session:
        org = session.scalar(select(Organization).where(Organization.slug == slug))
        if org is None:
            org = Organization(slug=slug, name=name or slug, webhook_secret=_new_webhook_secret())
            session.add(org)
            session.flush()
        return org


def create_key(org_slug: str, role: Role = Role.USER, name: str = "") -> tuple[str, KeyInfo]:
    """Creates the organization if needed; returns (the key, shown once; its info)."""
    org = get_or_create_org(org_slug)
    key, prefix, key_hash = keys.generate_key()
    with session_scope() as session:
        row = ApiKey(org_id=org.id, prefix=prefix, key_hash=key_hash, role=role.value, name=name)
        session.add(row)
        session.flush()
        return key, _info(row, org.slug)


def _info(row: ApiKey, slug: str) -> KeyInfo:
    return KeyInfo(id=row.id, org_slug=slug, prefix=row.prefix, role=row.role, name=row.name,
                   created_at=row.created_at.isoformat(),
                   last_used_at=row.last_used_at.isoformat() if row.last_used_at else None,
                   revoked=row.revoked_at is not None)


def list_keys(org_slug: str | None = None) -> list[KeyInfo]:
    with session_scope(readonly=True) as session:
        query = select(ApiKey, Organization.slug).join(Organization).order_by(ApiKey.created_at)
        if org_slug:
            query = query.where(Organization.slug == org_slug)
        return [_info(row, slug) for row, slug in session.execute(query).all()]


def revoke_key(prefix_or_id: str, org_id: str | None = None) -> KeyInfo:
    """Revoke by prefix or id; with `org_id`, another organization's key is a 404."""
    with session_scope() as session:
        query = select(ApiKey).where(
            (ApiKey.prefix == prefix_or_id) | (ApiKey.id == prefix_or_id))
        if org_id is not None:
            query = query.where(ApiKey.org_id == org_id)
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"no key {prefix_or_id!r}")
        if row.revoked_at is not None:
            raise Conflict("key already revoked")
        row.revoked_at = utcnow()
        _key_cache.forget(row.id)
        return _info(row, row.org.slug)


def any_key_exists() -> bool:
    with session_scope(readonly=True) as session:
        return session.scalar(select(ApiKey.id).limit(1)) is not None


class _KeyCache:
    """Key hash -> (Principal, monotonic expiry); see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[Principal, float]] = {}

    def get(self, key_hash: str) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if entry[1] <= time.monotonic():
            with self._lock:
                if self._entries.get(key_hash) is entry:
                    del self._entries[key_hash]
            return None
        return entry[0]

    def put(self, key_hash: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= KEY_CACHE_MAX:
                self._entries.clear()
            self._entries[key_hash] = (principal, time.monotonic() + KEY_CACHE_TTL_S)

    def forget(self, key_id: str) -> None:
        with self._lock:
            for key_hash in [h for h, (p, _) in self._entries.items() if p.key_id == key_id]:
                del self._entries[key_hash]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_key_cache = _KeyCache()


def _normalised(key: str | None) -> tuple[str, str]:
    """(key, its lookup prefix), or Unauthorized."""
    if not key:
        raise Unauthorized("an API key is required")
    key = key.strip()
    prefix = keys.split_prefix(key)
    if prefix is None:
        raise Unauthorized("invalid API key")
    return key, prefix


def cached_principal(key: str | None) -> Principal | None:
    """The principal of a key that authenticated less than `KEY_CACHE_TTL_S` ago, without
    touching the database (cheap enough for the event loop); None means: call
    `authenticate`."""
    if not key:
        return None
    return _key_cache.get(keys.hash_key(key.strip()))


def authenticate(key: str | None) -> Principal:
    key, prefix = _normalised(key)
    key_hash = keys.hash_key(key)
    cached = _key_cache.get(key_hash)
    if cached is not None:
        return cached
    with session_scope(readonly=True) as session:
        found = session.execute(
            select(ApiKey, Organization.slug).join(Organization, ApiKey.org_id == Organization.id)
            .where(ApiKey.prefix == prefix)).first()
        row, org_slug = found if found is not None else (None, "")
        if row is None or row.revoked_at is not None or not keys.matches(key, row.key_hash):
            raise Unauthorized("invalid API key")
        principal = Principal(org_id=row.org_id, org_slug=org_slug, role=Role(row.role),
                              key_id=row.id)
        stale = row.last_used_at is None or (utcnow() - row.last_used_at).total_seconds() > 60
    if stale:  # at most one write a minute per key, off the read path's transaction
        with session_scope() as session:
            session.execute(update(ApiKey).where(ApiKey.id == principal.key_id)
                            .values(last_used_at=utcnow()))
    _key_cache.put(key_hash, principal)
    return principal


def principal_for_key_id(key_id: str) -> Principal:
    """The principal of an unrevoked key, by the key's id: for credentials derived from a key
    (the expert.ai face's bearer tokens), which must stop working when the key is revoked."""
    with session_scope(readonly=True) as session:
        found = session.execute(
            select(ApiKey, Organization.slug).join(Organization, ApiKey.org_id == Organization.id)
            .where(ApiKey.id == key_id)).first()
        if found is None or found[0].revoked_at is not None:
            raise Unauthorized("the key behind these credentials is revoked or unknown")
        row = found[0]
        return Principal(org_id=row.org_id, org_slug=found[1], role=Role(row.role),
                         key_id=row.id)


def org_by_slug(slug: str) -> Organization:
    with session_scope(readonly=True) as session:
        org = session.scalar(select(Organization).where(Organization.slug == slug))
        if org is None:
            raise NotFound(f"no organization {slug!r}")
        return org
