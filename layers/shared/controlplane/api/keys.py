"""API keys: high-entropy bearer secrets, stored only as their SHA-256 hash.

A key is ``mlaas_`` + 43 URL-safe characters (32 random bytes). Its SHA-256 (hex) is the item key in the
ApiKeys table; the key itself is returned once, when it is created, and never stored or logged. A plain
hash (no salt, no slow KDF) is enough because the key is random, not a password: guessing is 2^256.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum
from typing import Final

KEY_PREFIX: Final = "mlaas_"
_KEY_BYTES: Final = 32
# Longest header value worth hashing: anything longer is not one of our keys.
_MAX_KEY_LENGTH: Final = 128


class Role(StrEnum):
    TENANT = "tenant"
    OPERATOR = "operator"


class KeyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_from_header(value: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header (None when there is none worth looking up)."""
    if not value:
        return None
    scheme, _, key = value.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key.startswith(KEY_PREFIX) or len(key) > _MAX_KEY_LENGTH:
        return None
    return key
