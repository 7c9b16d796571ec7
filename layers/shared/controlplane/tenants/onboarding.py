"""Onboarding: everything a tenant's builds need, in an order that a retry can resume.

1. refuse an existing tenant id (409); 2. its IAM role under the tenant role path, created under the
permissions boundary, with its own-data-only policy; 3. its model package group; 4. its usage key in its
tier's usage plan (the status API's rate limits, controlplane.api.rate_limits); 5. the tenant item
(conditional: a concurrent onboarding of the same id loses here); 6. its API key (hash stored, key
returned once; it expires after the tenant key lifetime). Steps 2 to 4 are idempotent, so a failed
onboarding is retried with the same request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controlplane.api import key_store as api_key_table
from controlplane.api import keys as api_keys
from controlplane.api import usage_store
from controlplane.api.models import TenantCreate
from controlplane.core.errors import ConfigurationError
from controlplane.settings import get_api_settings, get_settings
from controlplane.tenants import access_policy as tenant_access
from controlplane.tenants import identity_store as identity
from controlplane.tenants import store as tenants
from controlplane.tenants.model import TenantStatus


class TenantExistsError(Exception):
    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id} already exists")
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class Onboarded:
    tenant: dict[str, Any]
    api_key: str
    key: api_keys.ApiKey  # what is stored of it (its id, prefix, expiry)


def onboard(request: TenantCreate, *, now: str, created_by: str | None = None) -> Onboarded:
    tenant_id = request.tenant_id
    if tenants.get(tenant_id) is not None:
        raise TenantExistsError(tenant_id)
    api_settings = get_api_settings()
    if api_settings.sagemaker_arn_prefix is None:
        raise ConfigurationError("SAGEMAKER_ARN_PREFIX is not set: tenant roles cannot be created without it")
    role_arn = identity.ensure_tenant_role(
        tenant_id,
        path=api_settings.tenant_role_path,
        boundary_arn=api_settings.tenant_role_boundary_arn,
        sagemaker_arn_prefix=api_settings.sagemaker_arn_prefix,
        policy=tenant_access.tenant_role_policy(tenant_id, get_settings().artifacts_bucket_name),
    )
    group = identity.ensure_model_package_group(tenant_id)
    usage = usage_store.ensure_tenant_usage_key(tenant_id, request.tier.value)
    item = {
        "tenantId": tenant_id,
        "tier": request.tier.value,
        "status": TenantStatus.ACTIVE.value,
        "roleArn": role_arn,
        "modelPackageGroupName": group,
        # The authorizer names this key to API Gateway (never shown: TenantView leaves it out).
        "usageKeyId": usage.key_id,
        "usageKey": usage.value,
        "metricThreshold": request.metric_threshold,
        "fairShareWeight": request.fair_share_weight,
        "contract": request.contract.model_dump(mode="json", by_alias=True, exclude_none=True),
        "createdAt": now,
        "updatedAt": now,
    }
    if request.max_running_jobs is not None:
        item["maxRunningJobs"] = request.max_running_jobs
    if not tenants.create(item):
        raise TenantExistsError(tenant_id)
    owner = api_keys.KeyOwner.tenant(tenant_id)
    lifetime = api_settings.key_policy().lifetime(owner.role)
    secret, key = api_keys.issue(owner, now=now, lifetime=lifetime, created_by=created_by)
    api_key_table.create(key)
    return Onboarded(tenant=item, api_key=secret, key=key)
