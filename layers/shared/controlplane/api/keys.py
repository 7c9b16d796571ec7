"""API keys: high-entropy bearer secrets, stored only as their SHA-256 hash, and their lifecycle rules.

A key is ``mlaas_`` + 43 URL-safe characters (32 random bytes). Its SHA-256 (hex) is the item key in the
ApiKeys table; the key itself is returned once, when it is created or rotated, and never stored or logged.
A plain hash (no salt, no slow KDF) is enough because the key is random, not a password: guessing is
2^256. What identifies a key in listings, rotations, revocations and the audit trail is its public
``keyId`` (time-ordered, random, not derived from the secret) and a display ``prefix`` (the secret's first
12 characters, 36 bits of its 256: enough to recognise it, useless to guess it).

The lifecycle (plain rules, no AWS):
- **Expiry.** Every key expires: tenant keys after ``tenant_lifetime_days`` (default 365), operator keys
  after ``operator_lifetime_days`` (default 90), or sooner if asked (never later).
- **Rotation.** A new key is issued; the old one keeps working for the grace period (default 24 h, at most
  30 days, per call), that is its ``expiresAt`` becomes ``min(expiresAt, now + grace)``.
- **Revocation** (``status`` REVOKED) and expiry take effect on the next request: API Gateway does not cache
  the authorizer's answer (``ReauthorizeEvery: 0`` in template.yaml, REVOCATION_BOUND_SECONDS here) and the
  authorizer reads the key with a strongly consistent GetItem.
- **Last use** is recorded at most once every LAST_USED_RESOLUTION_SECONDS per key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

from controlplane.core.model import CamelModel, format_timestamp, parse_timestamp

KEY_PREFIX: Final = "mlaas_"
_KEY_BYTES: Final = 32
# Longest header value worth hashing: anything longer is not one of our keys.
_MAX_KEY_LENGTH: Final = 128
DISPLAY_PREFIX_LENGTH: Final = 12  # "mlaas_" and the first 6 random characters
KEY_ID_PATTERN: Final = re.compile(r"^key-[0-9a-f]{19}$")
OPERATOR_OWNER: Final = "operator"
# How late a revocation or an expiry can still let a request through: API Gateway caches the authorizer's
# result for ReauthorizeEvery seconds (template.yaml; tests/template asserts the two agree).
REVOCATION_BOUND_SECONDS: Final = 0
# lastUsedAt is written at most this often per key (one conditional UpdateItem by the authorizer).
LAST_USED_RESOLUTION_SECONDS: Final = 300
DEFAULT_TENANT_LIFETIME_DAYS: Final = 365
DEFAULT_OPERATOR_LIFETIME_DAYS: Final = 90
DEFAULT_ROTATION_GRACE_SECONDS: Final = 86_400
MAX_ROTATION_GRACE_SECONDS: Final = 30 * 86_400


class Role(StrEnum):
    TENANT = "tenant"
    OPERATOR = "operator"


class KeyStatus(StrEnum):
    ACTIVE = "ACTIVE"
    REVOKED = "REVOKED"


class KeyRefusal(StrEnum):
    """Why a stored key cannot authorize a request."""

    REVOKED = "the key is revoked"
    NO_TENANT = "the key names no tenant"
    EXPIRED = "the key has expired"
    GRACE_OVER = "the key was rotated and its grace period is over"


class KeyState(StrEnum):
    """What a listing shows: whether the key works now, and why not."""

    ACTIVE = "active"
    GRACE = "grace"  # rotated: works until its expiresAt
    EXPIRED = "expired"
    REVOKED = "revoked"


class KeyNotFoundError(Exception):
    """No such key for this owner: a missing key and another tenant's key are the same answer."""

    def __init__(self, key_id: str) -> None:
        super().__init__("no such key")
        self.key_id = key_id


class KeyNotChangeableError(Exception):
    """The key cannot be rotated (revoked, expired or already rotated): issue a new one instead."""


class KeyRequestError(ValueError):
    """A key request asks for more than the policy allows (a lifetime longer than the role's)."""


@dataclass(frozen=True, slots=True)
class KeyPolicy:
    """Lifetimes per role and the default rotation grace (template parameters TenantKeyLifetimeDays,
    OperatorKeyLifetimeDays, KeyRotationGraceSeconds)."""

    tenant_lifetime_days: int = DEFAULT_TENANT_LIFETIME_DAYS
    operator_lifetime_days: int = DEFAULT_OPERATOR_LIFETIME_DAYS
    rotation_grace_seconds: int = DEFAULT_ROTATION_GRACE_SECONDS

    def lifetime(self, role: Role) -> timedelta:
        days = self.operator_lifetime_days if role is Role.OPERATOR else self.tenant_lifetime_days
        return timedelta(days=days)

    def requested_lifetime(self, role: Role, seconds: int | None) -> timedelta:
        """The lifetime of a new key: the role's, or a shorter one asked for; never longer."""
        longest = self.lifetime(role)
        if seconds is None:
            return longest
        if seconds > longest.total_seconds():
            raise KeyRequestError(
                f"expiresInSeconds may be at most {int(longest.total_seconds())} for {role.value} keys "
                f"({longest.days} days)"
            )
        return timedelta(seconds=seconds)

    def grace(self, seconds: int | None) -> timedelta:
        return timedelta(seconds=self.rotation_grace_seconds if seconds is None else seconds)


@dataclass(frozen=True, slots=True)
class KeyOwner:
    """Whose keys: a tenant's, or the operators' (one pool: every operator manages every operator key)."""

    role: Role
    tenant_id: str | None = None

    @classmethod
    def operators(cls) -> KeyOwner:
        return cls(Role.OPERATOR)

    @classmethod
    def tenant(cls, tenant_id: str) -> KeyOwner:
        return cls(Role.TENANT, tenant_id)

    @property
    def partition(self) -> str:
        """The ``owner`` attribute: the owner-keys index's partition key."""
        return OPERATOR_OWNER if self.role is Role.OPERATOR else f"tenant#{self.tenant_id}"


class ApiKey(CamelModel):
    """A stored key (never the secret). Items created before the lifecycle lack key_id, owner, prefix and
    expires_at until the authorizer enrols them on their next use (``enrolment``)."""

    key_hash: str
    role: Role
    status: KeyStatus
    created_at: str
    tenant_id: str | None = None
    key_id: str | None = None
    owner: str | None = None
    prefix: str | None = None
    expires_at: str | None = None
    last_used_at: str | None = None
    revoked_at: str | None = None
    rotated_at: str | None = None
    replaced_by: str | None = None
    replaces: str | None = None
    created_by: str | None = None

    def expiry(self, policy: KeyPolicy) -> str:
        """When it stops working; a key created before expiry existed expires a lifetime after creation."""
        if self.expires_at is not None:
            return self.expires_at
        return format_timestamp(parse_timestamp(self.created_at) + policy.lifetime(self.role))

    def refusal(self, now: str, policy: KeyPolicy) -> KeyRefusal | None:
        """Why the key cannot authorize a request at ``now``; None when it can."""
        if self.status is not KeyStatus.ACTIVE:
            return KeyRefusal.REVOKED
        if self.role is Role.TENANT and not self.tenant_id:
            return KeyRefusal.NO_TENANT
        if parse_timestamp(now) >= parse_timestamp(self.expiry(policy)):
            return KeyRefusal.EXPIRED if self.replaced_by is None else KeyRefusal.GRACE_OVER
        return None

    def state(self, now: str, policy: KeyPolicy) -> KeyState:
        refusal = self.refusal(now, policy)
        if refusal is KeyRefusal.REVOKED:
            return KeyState.REVOKED
        if refusal is not None:
            return KeyState.EXPIRED
        return KeyState.GRACE if self.replaced_by is not None else KeyState.ACTIVE

    def stored(self) -> dict[str, str]:
        """The item's attributes (None left out)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_KEY_BYTES)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:DISPLAY_PREFIX_LENGTH]


def new_key_id(now: str) -> str:
    """``key-`` + the creation time in milliseconds (11 hex digits) + 8 random hex digits: listing by id is
    listing by age."""
    millis = int(parse_timestamp(now).timestamp() * 1000)
    return f"key-{millis:011x}{secrets.token_hex(4)}"


def is_key_id(value: str) -> bool:
    return KEY_ID_PATTERN.fullmatch(value) is not None


def issue(
    owner: KeyOwner, *, now: str, lifetime: timedelta, created_by: str | None, replaces: str | None = None
) -> tuple[str, ApiKey]:
    """A new secret and the key to store for it."""
    secret = new_key()
    key = ApiKey(
        key_hash=hash_key(secret),
        key_id=new_key_id(now),
        owner=owner.partition,
        role=owner.role,
        tenant_id=owner.tenant_id,
        status=KeyStatus.ACTIVE,
        prefix=display_prefix(secret),
        created_at=now,
        expires_at=format_timestamp(parse_timestamp(now) + lifetime),
        created_by=created_by,
        replaces=replaces,
    )
    return secret, key


def rotation_refusal(key: ApiKey, now: str, policy: KeyPolicy) -> str | None:
    """Why ``key`` cannot be rotated; None when it can (active, not expired, not rotated before)."""
    if key.replaced_by is not None:
        return f"key {key.key_id} was already rotated (replaced by {key.replaced_by})"
    refusal = key.refusal(now, policy)
    return (
        None if refusal is None else f"key {key.key_id} cannot be rotated: {refusal.value}; create a new key"
    )


def grace_end(key: ApiKey, now: str, grace: timedelta, policy: KeyPolicy) -> str:
    """The rotated key's new expiry: the end of the grace period, never later than it already expired."""
    end = parse_timestamp(now) + grace
    return format_timestamp(min(end, parse_timestamp(key.expiry(policy))))


def use_due(key: ApiKey, now: str) -> bool:
    """Record this use? Only when the last recorded one is older than the resolution (or there is none)."""
    if key.last_used_at is None:
        return True
    return parse_timestamp(now) - parse_timestamp(key.last_used_at) >= timedelta(
        seconds=LAST_USED_RESOLUTION_SECONDS
    )


def last_use_cutoff(now: str) -> str:
    """A recorded use before this time is stale (the authorizer's conditional update)."""
    return format_timestamp(parse_timestamp(now) - timedelta(seconds=LAST_USED_RESOLUTION_SECONDS))


def enrolment(key: ApiKey, secret: str, now: str, policy: KeyPolicy) -> dict[str, str]:
    """What a key created before the lifecycle lacks, to be set on its next use: an id, its owner, its
    display prefix (from the presented secret) and its expiry (a lifetime after creation)."""
    missing: dict[str, str] = {}
    if key.key_id is None:
        missing["keyId"] = new_key_id(now)
    if key.owner is None:
        missing["owner"] = KeyOwner(key.role, key.tenant_id).partition
    if key.prefix is None:
        missing["prefix"] = display_prefix(secret)
    if key.expires_at is None:
        missing["expiresAt"] = key.expiry(policy)
    return missing


def key_from_header(value: str | None) -> str | None:
    """The key in an ``Authorization: Bearer <key>`` header (None when there is none worth looking up)."""
    if not value:
        return None
    scheme, _, key = value.strip().partition(" ")
    key = key.strip()
    if scheme.lower() != "bearer" or not key.startswith(KEY_PREFIX) or len(key) > _MAX_KEY_LENGTH:
        return None
    return key
