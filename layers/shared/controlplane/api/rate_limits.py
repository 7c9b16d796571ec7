"""Per-tier rate limits of the status API: the rules (no AWS here).

API Gateway throttles a caller by the usage plan of its usage key. Every tenant gets a usage key of its
own in its tier's plan (template.yaml: BasicUsagePlan, StandardUsagePlan, PremiumUsagePlan, with the
figures of TierDefaults' ApiRateLimit / ApiBurstLimit), so a busy tenant spends only its own bucket; the
operators share one key in OperatorUsagePlan. The authorizer names the key (``usageIdentifierKey``, with
the API's ApiKeySourceType AUTHORIZER): a usage key is an identifier API Gateway counts requests by, never
a credential (a caller's ``x-api-key`` header is ignored).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Final

_VALUE_BYTES: Final = 30  # 40 URL-safe characters (API Gateway wants at least 20)


@dataclass(frozen=True, slots=True)
class UsageKey:
    key_id: str
    value: str


class UsagePlanMissingError(Exception):
    """The tier has no usage plan configured (USAGE_PLAN_IDS): its tenants could not call the API."""

    def __init__(self, tier: str) -> None:
        super().__init__(f"no usage plan is configured for tier {tier} (USAGE_PLAN_IDS)")
        self.tier = tier


def usage_key_name(prefix: str, tenant_id: str) -> str:
    """The usage key's name: how a retried onboarding finds the key an earlier attempt created."""
    return f"{prefix}{tenant_id}"


def new_usage_key_value() -> str:
    return secrets.token_urlsafe(_VALUE_BYTES)


def plan_for(plans: dict[str, str], tier: str) -> str:
    try:
        return plans[tier]
    except KeyError:
        raise UsagePlanMissingError(tier) from None
