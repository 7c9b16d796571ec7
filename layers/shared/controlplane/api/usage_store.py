"""Tenants' usage keys in API Gateway (controlplane.api.rate_limits): one per tenant, in its tier's plan.

Access patterns (API Gateway, not DynamoDB):
- find a tenant's key .......... GetApiKeys(nameQuery=<prefix><tenantId>, includeValues) (a retried
                                  onboarding finds what the failed one created; nameQuery is a prefix
                                  match, so the exact name is checked)
- create it ..................... CreateApiKey(name, value, enabled)
- put it in a plan .............. CreateUsagePlanKey(usagePlanId, keyId) (ConflictException: it is there)
- the plans that hold it ......... GetUsagePlans(keyId)
- take it out of a plan ......... DeleteUsagePlanKey(usagePlanId, keyId) (NotFoundException: it is not in)
- delete it (offboarding) ....... DeleteApiKey(apiKey) (NotFoundException: gone already)
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from controlplane.api.rate_limits import UsageKey, new_usage_key_value, plan_for, usage_key_name
from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.settings import get_api_settings


def _find(name: str) -> UsageKey | None:
    apigateway: Any = client("apigateway")
    request: dict[str, Any] = {"nameQuery": name, "includeValues": True, "limit": 500}
    while True:
        page = apigateway.get_api_keys(**request)
        for item in page.get("items", []):
            if item.get("name") == name:
                return UsageKey(key_id=str(item["id"]), value=str(item["value"]))
        if not page.get("position"):
            return None
        request["position"] = page["position"]


def ensure_tenant_usage_key(tenant_id: str, tier: str) -> UsageKey:
    """The tenant's usage key, created if it does not exist, in the usage plan of ``tier``."""
    settings = get_api_settings()
    plan_id = plan_for(settings.usage_plan_ids, tier)
    name = usage_key_name(settings.usage_key_prefix, tenant_id)
    key = _find(name)
    if key is None:
        created = client("apigateway").create_api_key(
            name=name,
            description=f"Status API usage of tenant {tenant_id} (rate limits of its tier)",
            enabled=True,
            value=new_usage_key_value(),
        )
        key = UsageKey(key_id=str(created["id"]), value=str(created["value"]))
    _add_to_plan(plan_id, key.key_id)
    return key


def place_usage_key(key_id: str, tier: str) -> None:
    """Make ``tier``'s plan the key's only plan of this stack (after a tier change). Out of the others
    first: API Gateway keeps a key in at most one plan per API stage. Idempotent, so a retried tier change
    completes the move (of two concurrent changes, the last to add wins the plan: changing the tier again
    makes plan and tier agree)."""
    plans = get_api_settings().usage_plan_ids
    new_plan = plan_for(plans, tier)
    apigateway: Any = client("apigateway")
    holding = {str(plan["id"]) for plan in apigateway.get_usage_plans(keyId=key_id).get("items", [])}
    for other in sorted((holding & set(plans.values())) - {new_plan}):
        try:
            apigateway.delete_usage_plan_key(usagePlanId=other, keyId=key_id)
        except ClientError as error:
            if dynamo.error_code(error) != "NotFoundException":
                raise
    if new_plan not in holding:
        _add_to_plan(new_plan, key_id)


def delete_usage_key(key_id: str) -> bool:
    """Delete the key (and with it its plan membership). False when it was gone already."""
    try:
        client("apigateway").delete_api_key(apiKey=key_id)
    except ClientError as error:
        if dynamo.error_code(error) != "NotFoundException":
            raise
        return False
    return True


def _add_to_plan(plan_id: str, key_id: str) -> None:
    try:
        client("apigateway").create_usage_plan_key(usagePlanId=plan_id, keyId=key_id, keyType="API_KEY")
    except ClientError as error:
        if dynamo.error_code(error) != "ConflictException":
            raise
