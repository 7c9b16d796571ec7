"""Changing a tenant (PATCH /tenants/{tenantId}): tier, suspend or resume, threshold, weight, cap.

A tier change also moves the tenant's usage key to the new tier's usage plan, so its status API calls
are limited as its tier says from the next request on (controlplane.api.rate_limits). A tenant onboarded
before usage plans existed gets its usage key here (its calls are refused with 403 until it has one).
Suspending needs nothing more: the authorizer refuses the keys of a tenant that is not ACTIVE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.api import usage_store
from controlplane.api.models import TenantPatch
from controlplane.tenants import store as tenants
from controlplane.tenants.model import TenantStatus
from controlplane.tenants.offboarding import TenantNotFoundError


class TenantOffboardingError(Exception):
    def __init__(self, tenant_id: str) -> None:
        super().__init__("the tenant is being offboarded: it cannot be resumed")
        self.tenant_id = tenant_id


@dataclass(frozen=True, slots=True)
class TenantChange:
    before: dict[str, Any] | None  # as read just before the change (the audit trail's "before")
    after: dict[str, Any]


def change_tenant(tenant_id: str, patch: TenantPatch, *, now: str) -> TenantChange:
    """Apply ``patch``; the tenant item before and after."""
    before = tenants.get(tenant_id)
    if before is not None and patch.status is TenantStatus.ACTIVE and before.get("offboarding"):
        raise TenantOffboardingError(tenant_id)
    item = tenants.update(tenant_id, patch.changes(), now=now)
    if item is None:
        raise TenantNotFoundError(tenant_id)
    if patch.tier is not None:
        item = _place_usage_key(tenant_id, item, now=now)
    return TenantChange(before=before, after=item)


def _place_usage_key(tenant_id: str, item: dict[str, Any], *, now: str) -> dict[str, Any]:
    tier = str(item["tier"])
    key_id = item.get("usageKeyId")
    if key_id:
        usage_store.place_usage_key(str(key_id), tier)
        return item
    usage = usage_store.ensure_tenant_usage_key(tenant_id, tier)
    return tenants.update(tenant_id, {"usageKeyId": usage.key_id, "usageKey": usage.value}, now=now) or item
