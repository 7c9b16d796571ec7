"""Authorizing a status API caller (use case): the key, its role, and whether its tenant may still call.

A key works only while it is ACTIVE and not expired (a rotated key: until its grace period ends) and, for a
tenant key, while its tenant is ACTIVE: suspending or offboarding a tenant stops its keys at once (the
authorizer does not cache), without touching them, so a resumed tenant's keys work again. A granted
request records the key's last use, at most once every few minutes per key; failing to record it never
refuses the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controlplane.api import key_store
from controlplane.api.keys import (
    ApiKey,
    KeyRefusal,
    Role,
    enrolment,
    hash_key,
    key_from_header,
    last_use_cutoff,
    use_due,
)
from controlplane.core.errors import AwsServiceError
from controlplane.observability import logger
from controlplane.settings import get_api_settings
from controlplane.tenants import store as tenants
from controlplane.tenants.model import TenantStatus

PRINCIPAL_ID_LENGTH = 16  # a prefix of the key's hash, for a key without an id yet: never the key
_EXPIRED = frozenset({KeyRefusal.EXPIRED, KeyRefusal.GRACE_OVER})


@dataclass(frozen=True, slots=True)
class Grant:
    key_id: str  # also the principal id (access log lines name it)
    role: Role
    tenant_id: str | None
    # What API Gateway counts the request against (controlplane.api.rate_limits); None: no usage plan,
    # which API Gateway refuses with a 403.
    usage_key: str | None = None


class Refusal(StrEnum):
    NO_KEY = "no key presented"
    UNKNOWN_KEY = "the key is unknown, revoked or not a key of a known role"
    EXPIRED_KEY = "the key has expired (or its rotation grace period is over)"
    TENANT_INACTIVE = "the key's tenant is suspended or offboarded"


def authorize(authorization_header: str | None, *, now: str) -> Grant | Refusal:
    secret = key_from_header(authorization_header)
    if secret is None:
        return Refusal.NO_KEY
    key = key_store.get(hash_key(secret))
    if key is None:
        return Refusal.UNKNOWN_KEY
    policy = get_api_settings().key_policy()
    refusal = key.refusal(now, policy)
    if refusal is not None:
        return Refusal.EXPIRED_KEY if refusal in _EXPIRED else Refusal.UNKNOWN_KEY
    usage_key: str | None = get_api_settings().operator_usage_key
    if key.role is Role.TENANT:
        tenant = tenants.get(str(key.tenant_id))
        if tenant is None or tenant.get("status") != TenantStatus.ACTIVE.value:
            return Refusal.TENANT_INACTIVE
        usage_key = str(tenant["usageKey"]) if tenant.get("usageKey") else None
    _record_use(key, now, enrolment(key, secret, now, policy))
    key_id = key.key_id or key.key_hash[:PRINCIPAL_ID_LENGTH]
    return Grant(key_id, key.role, key.tenant_id if key.role is Role.TENANT else None, usage_key)


def _record_use(key: ApiKey, now: str, missing: dict[str, str]) -> None:
    if not missing and not use_due(key, now):
        return
    try:
        key_store.record_use(key.key_hash, now=now, cutoff=last_use_cutoff(now), missing=missing)
    except AwsServiceError as error:
        logger.warning("Could not record the key's use", extra={"keyId": key.key_id, "error": str(error)})
