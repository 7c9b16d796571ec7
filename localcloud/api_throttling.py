"""API Gateway's request throttling on loopback: usage plans, their API keys, and the stage's own limit.

API Gateway throttles with token buckets: a bucket holds at most ``burstLimit`` requests and refills at
``rateLimit`` per second; a request that finds it empty is a 429 (the THROTTLED gateway response). A
method that requires an API key is counted against the bucket of the (usage plan, API key) pair whose plan
covers the API's stage; the key comes from the authorizer's ``usageIdentifierKey`` when the API's
ApiKeySourceType is AUTHORIZER (else from the ``x-api-key`` header). A key that is unknown, disabled or in
no plan of the stage is a 403 ("Forbidden"), as on AWS. The stage's MethodSettings limit is one more
bucket, shared by every caller.

Usage plans and API keys live in moto's API Gateway backend (the template's AWS::ApiGateway::UsagePlan,
ApiKey and UsagePlanKey, and whatever the functions create with CreateApiKey / CreateUsagePlanKey), read
in-process on every request, so a key moved to another plan counts against the new plan at once (AWS
takes up to a few seconds). Not emulated: quotas (the plan's Quota), per-method throttles of a plan
(ApiStages[].Throttle), and account-level limits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Throttle:
    rate_limit: float  # requests per second, steady
    burst_limit: int  # the bucket's size

    @classmethod
    def of(cls, setting: Any) -> Throttle | None:
        """A usage plan's or MethodSettings' throttle (None when it sets none)."""
        if not isinstance(setting, dict):
            return None
        rate = setting.get("rateLimit", setting.get("ThrottlingRateLimit"))
        burst = setting.get("burstLimit", setting.get("ThrottlingBurstLimit"))
        if rate is None or burst is None:
            return None
        return cls(rate_limit=float(rate), burst_limit=int(burst))


class TokenBuckets:
    """One token bucket per name, created full; thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # name -> (tokens, when counted)

    def take(self, name: str, throttle: Throttle) -> float:
        """Take one token. 0.0 when the request may pass, else the seconds until a token is back."""
        now = self._clock()
        with self._lock:
            tokens, counted = self._buckets.get(name, (float(throttle.burst_limit), now))
            tokens = min(float(throttle.burst_limit), tokens + (now - counted) * throttle.rate_limit)
            if tokens >= 1.0:
                self._buckets[name] = (tokens - 1.0, now)
                return 0.0
            self._buckets[name] = (tokens, now)
            if throttle.rate_limit <= 0:
                return float("inf")
            return (1.0 - tokens) / throttle.rate_limit


@dataclass(frozen=True, slots=True)
class PlanOfKey:
    plan_id: str
    key_id: str
    throttle: Throttle | None


def plan_of_key(account_id: str, region: str, api_id: str, stage: str, key_value: str) -> PlanOfKey | None:
    """The usage plan of ``api_id``'s ``stage`` that the enabled API key ``key_value`` belongs to (None: no
    such key, disabled, or in no plan of that stage)."""
    from moto.apigateway.models import apigateway_backends  # noqa: PLC0415 - moto only inside the emulator

    backend = apigateway_backends[account_id][region]
    key = next((k for k in list(backend.keys.values()) if k.value == key_value), None)
    if key is None or not key.enabled:
        return None
    for plan in backend.get_usage_plans(api_key_id=key.id):
        stages = plan.api_stages or []
        if any(s.get("apiId") == api_id and s.get("stage") == stage for s in stages):
            return PlanOfKey(plan_id=plan.id, key_id=key.id, throttle=Throttle.of(plan.throttle))
    return None
