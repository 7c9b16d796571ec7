"""Authorizing a status API caller (use case): the key, its role, and whether its tenant may still call.

A key works only while it is ACTIVE and, for a tenant key, while its tenant is ACTIVE: suspending or
offboarding a tenant stops its keys at once (the authorizer does not cache), without touching them, so a
resumed tenant's keys work again.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from controlplane.api import key_store
from controlplane.api.keys import KeyStatus, Role, hash_key, key_from_header
from controlplane.settings import get_api_settings
from controlplane.tenants import store as tenants
from controlplane.tenants.model import TenantStatus

PRINCIPAL_ID_LENGTH = 16  # a prefix of the key's hash: never the key


@dataclass(frozen=True, slots=True)
class Grant:
    principal_id: str
    role: Role
    tenant_id: str | None
    # What API Gateway counts the request against (controlplane.api.rate_limits); None: no usage plan,
    # which API Gateway refuses with a 403.
    usage_key: str | None = None


class Refusal(StrEnum):
    NO_KEY = "no key presented"
    UNKNOWN_KEY = "the key is unknown, revoked or not a key of a known role"
    TENANT_INACTIVE = "the key's tenant is suspended or offboarded"


def authorize(authorization_header: str | None) -> Grant | Refusal:
    key = key_from_header(authorization_header)
    if key is None:
        return Refusal.NO_KEY
    item = key_store.get(hash_key(key))
    if item is None or item.get("status") != KeyStatus.ACTIVE.value or item.get("role") not in set(Role):
        return Refusal.UNKNOWN_KEY
    role = Role(item["role"])
    principal_id = str(item["keyHash"])[:PRINCIPAL_ID_LENGTH]
    if role is Role.OPERATOR:
        return Grant(principal_id, role, None, get_api_settings().operator_usage_key)
    tenant_id = str(item.get("tenantId") or "")
    if not tenant_id:
        return Refusal.UNKNOWN_KEY
    tenant = tenants.get(tenant_id)
    if tenant is None or tenant.get("status") != TenantStatus.ACTIVE.value:
        return Refusal.TENANT_INACTIVE
    usage_key = tenant.get("usageKey")
    return Grant(principal_id, role, tenant_id, str(usage_key) if usage_key else None)
