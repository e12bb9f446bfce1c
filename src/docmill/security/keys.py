"""API keys: generated once, shown once, stored as a SHA-256 hash and found by prefix.

Keys carry 256 bits of randomness, so a fast hash is the right tool (a slow password hash
protects low-entropy secrets; it would only slow every request here).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

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


def secret_from_file(path: Path, setting: str) -> bytes:
    """A server secret kept in `path`, made on first use: O_EXCL so concurrent first starts
    agree on one (`setting` names the variable that sets it explicitly instead)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process is writing it right now
            value = path.read_bytes().strip()
            if value:
                return value
            time.sleep(0.02)
        raise RuntimeError(f"{path} is empty; delete it or set {setting}") from None
    value = secrets.token_hex(32).encode()
    with os.fdopen(fd, "wb") as handle:
        handle.write(value)
    return value
