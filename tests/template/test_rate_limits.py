"""The status API's rate limits in the template: a usage plan per tier (and one for operators) with the
figures of the ApiLimits mapping, every method counted against the caller's usage key, which only the
authorizer names, and a 429 that says when to retry."""

from __future__ import annotations

import json
from typing import Any

TIERS = ("basic", "standard", "premium")
PLANS = {tier: f"{tier.capitalize()}UsagePlan" for tier in TIERS} | {"operators": "OperatorUsagePlan"}


def _plan(resources: dict[str, Any], logical_id: str) -> dict[str, Any]:
    plan = resources[logical_id]
    assert plan["Type"] == "AWS::ApiGateway::UsagePlan"
    return dict(plan["Properties"])


def test_every_tier_and_the_operators_have_a_usage_plan_on_the_api_stage(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    limits = template["Mappings"]["ApiLimits"]
    assert set(limits) == {*TIERS, "operators"}
    for name in (*TIERS, "operators"):
        plan = _plan(resources, PLANS[name])
        assert plan["ApiStages"] == [
            {"ApiId": {"Ref": "ControlPlaneApi"}, "Stage": {"Ref": "ControlPlaneApi.Stage"}}
        ]
        assert plan["Throttle"] == {
            "RateLimit": {"Fn::FindInMap": ["ApiLimits", name, "RateLimit"]},
            "BurstLimit": {"Fn::FindInMap": ["ApiLimits", name, "BurstLimit"]},
        }
        assert limits[name]["BurstLimit"] >= limits[name]["RateLimit"] > 0
    # A better tier never gets fewer requests.
    rates = [limits[tier]["RateLimit"] for tier in TIERS]
    assert rates == sorted(rates)
    # The stage's own limit is above any one caller's, so no single caller can use it up.
    (setting,) = resources["ControlPlaneApi"]["Properties"]["MethodSettings"]
    assert setting["ThrottlingRateLimit"] > max(v["RateLimit"] for v in limits.values())


def test_the_api_counts_every_method_against_the_key_the_authorizer_names(resources: dict[str, Any]) -> None:
    api = resources["ControlPlaneApi"]["Properties"]
    assert api["ApiKeySourceType"] == "AUTHORIZER"  # a caller's x-api-key header counts for nothing
    assert api["Auth"]["ApiKeyRequired"] is True
    events = [
        event
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in (resource["Properties"].get("Events") or {}).values()
        if event["Type"] == "Api"
    ]
    assert events
    assert all(event["Properties"].get("Auth", {}).get("ApiKeyRequired", True) for event in events)


def test_a_throttled_caller_is_told_when_to_retry(resources: dict[str, Any]) -> None:
    throttled = resources["ControlPlaneApi"]["Properties"]["GatewayResponses"]["THROTTLED"]
    assert throttled["ResponseParameters"]["Headers"]["Retry-After"] == "'1'"
    body = json.loads(throttled["ResponseTemplates"]["application/json"])
    assert "Retry-After" in body["message"]


def test_the_operators_usage_key_is_the_one_the_authorizer_names(resources: dict[str, Any]) -> None:
    key = resources["OperatorUsageKey"]["Properties"]
    authorizer = resources["AuthorizerFunction"]["Properties"]["Environment"]["Variables"]
    assert authorizer["OPERATOR_USAGE_KEY"] == key["Value"]
    assert key["Enabled"] is True
    assert resources["OperatorUsagePlanKey"]["Properties"] == {
        "KeyId": {"Ref": "OperatorUsageKey"},
        "KeyType": "API_KEY",
        "UsagePlanId": {"Ref": "OperatorUsagePlan"},
    }


def test_the_api_function_places_tenants_keys_in_their_tiers_plans_only(resources: dict[str, Any]) -> None:
    function = resources["ApiFunction"]["Properties"]
    plans = function["Environment"]["Variables"]["USAGE_PLAN_IDS"]["Fn::Sub"]
    assert json.loads(plans) == {tier: f"${{{tier.capitalize()}UsagePlan}}" for tier in TIERS}
    statements = [s for p in function["Policies"] for s in p["Statement"]]
    plan_keys = [
        s
        for s in statements
        if "apigateway:DELETE" in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    ]
    assert [r["Fn::Sub"].split("/usageplans/")[1] for s in plan_keys for r in s["Resource"]] == [
        f"${{{tier.capitalize()}UsagePlan}}/keys*" for tier in TIERS
    ]
