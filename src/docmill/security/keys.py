"""API keys: generated once, shown once, stored as a SHA-256 hash and found by prefix.

Keys carry 256 bits of randomness, so a fast hash is the right tool (a slow password hash
protects low-entropy secrets; it would only slow every request here).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_TAG = "dm"
PREFIX_LEN = 12


def generate_key() -> tuple[str, str, str]:
    """Returns (full key to show once, lookup prefix, hash to store)."""
    prefix = secrets.token_hex(PREFIX_LEN // 2)
    key = f"{KEY_TAG}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def split_prefix(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_TAG or len(parts[1]) != PREFIX_LEN:
        return None
    return parts[1]


def matches(key: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored_hash)
