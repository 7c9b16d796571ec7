"""Creating, listing, rotating and revoking API keys (use case), each change recorded in the audit trail.

Every call names the keys' owner (a tenant, or the operators): a tenant's routes pass its own tenant from the
authorizer's context, so another tenant's key is not found exactly as a missing one is (KeyNotFoundError).
The secret is returned once, by create and rotate, and never stored or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from controlplane.api import auditing, key_store
from controlplane.api.audit import Actor, AuditAction, event
from controlplane.api.keys import (
    ApiKey,
    KeyNotChangeableError,
    KeyNotFoundError,
    KeyOwner,
    KeyPolicy,
    grace_end,
    is_key_id,
    issue,
    rotation_refusal,
)
from controlplane.api.models import InvalidPageTokenError, decode_page_token, encode_page_token
from controlplane.settings import get_api_settings
from controlplane.tenants import store as tenants


class OwnerNotFoundError(Exception):
    """Keys were asked for a tenant that does not exist."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__("no such tenant")
        self.tenant_id = tenant_id


_PAGE_TOKEN_KEYS: Final = frozenset({"keyId"})


@dataclass(frozen=True, slots=True)
class Issued:
    key: ApiKey
    secret: str  # shown once


@dataclass(frozen=True, slots=True)
class Rotated:
    old: ApiKey  # working until its expiresAt (the end of the grace period)
    new: Issued


def _policy() -> KeyPolicy:
    return get_api_settings().key_policy()


def _target(key: ApiKey) -> str:
    return f"key/{key.key_id}"


def _summary(key: ApiKey) -> dict[str, str | None]:
    return {"owner": key.owner, "expiresAt": key.expires_at, "prefix": key.prefix}


def create_key(owner: KeyOwner, *, actor: Actor, expires_in_seconds: int | None, now: str) -> Issued:
    if owner.tenant_id is not None and tenants.get(owner.tenant_id) is None:
        raise OwnerNotFoundError(owner.tenant_id)
    lifetime = _policy().requested_lifetime(owner.role, expires_in_seconds)
    secret, key = issue(owner, now=now, lifetime=lifetime, created_by=actor.key_id)
    key_store.create(key)
    auditing.record(event(actor, AuditAction.KEY_CREATED, _target(key), now=now, after=_summary(key)))
    return Issued(key, secret)


def list_keys(owner: KeyOwner, *, limit: int, next_token: str | None) -> tuple[list[ApiKey], str | None]:
    """The owner's keys, newest first. The page token names only the last key's id (never its hash); it is
    resolved under the caller's own owner, so a token of another listing is an InvalidPageTokenError."""
    start = None
    if next_token is not None:
        last_id = decode_page_token(next_token, expected_keys=_PAGE_TOKEN_KEYS)["keyId"]
        last = key_store.find(owner, last_id) if is_key_id(last_id) else None
        if last is None:
            raise InvalidPageTokenError("nextToken is not a token this API issued for this listing")
        start = {"keyHash": last.key_hash, "owner": owner.partition, "keyId": last_id}
    keys, last_key = key_store.list_page(owner, limit=limit, start_key=start)
    return keys, encode_page_token({"keyId": last_key["keyId"]} if last_key else None)


def find_key(owner: KeyOwner, key_id: str) -> ApiKey:
    key = key_store.find(owner, key_id) if is_key_id(key_id) else None
    if key is None:
        raise KeyNotFoundError(key_id)
    return key


def rotate_key(
    owner: KeyOwner,
    key_id: str,
    *,
    actor: Actor,
    grace_seconds: int | None,
    expires_in_seconds: int | None,
    now: str,
) -> Rotated:
    """Issue a new key for the owner; the old one keeps working for the grace period, then fails."""
    policy = _policy()
    old = find_key(owner, key_id)
    refusal = rotation_refusal(old, now, policy)
    if refusal is not None:
        raise KeyNotChangeableError(refusal)
    lifetime = policy.requested_lifetime(owner.role, expires_in_seconds)
    secret, new = issue(owner, now=now, lifetime=lifetime, created_by=actor.key_id, replaces=old.key_id)
    expires_at = grace_end(old, now, policy.grace(grace_seconds), policy)
    rotated = key_store.rotate(old, new, expires_at=expires_at, now=now)
    after = {"expiresAt": expires_at, "replacedBy": new.key_id, "newKeyExpiresAt": new.expires_at}
    before = {"expiresAt": old.expires_at}
    auditing.record(event(actor, AuditAction.KEY_ROTATED, _target(old), now=now, before=before, after=after))
    return Rotated(rotated, Issued(new, secret))


def revoke_key(owner: KeyOwner, key_id: str, *, actor: Actor, now: str) -> ApiKey:
    """Revoke a key (it fails from the next request on); revoking a revoked key changes nothing."""
    key = find_key(owner, key_id)
    revoked = key_store.revoke(key, now=now)
    if revoked is None:
        return find_key(owner, key_id)
    before, after = {"status": key.status.value}, {"status": revoked.status.value}
    auditing.record(event(actor, AuditAction.KEY_REVOKED, _target(key), now=now, before=before, after=after))
    return revoked
