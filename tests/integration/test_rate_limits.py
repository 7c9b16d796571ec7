"""Per-tier rate limits of the status API on loopback (localcloud.api_throttling), as deployed from
template.yaml: each tenant is throttled by its own usage key in its tier's usage plan.

The basic plan is made very slow for the test (0.01 requests per second, a burst of 2) through
UpdateUsagePlan, so that the third request is throttled however slowly this machine serves the first
two (the bucket refills one request in 100 s), then restored.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from scripts.api_keys import create_operator_key
from scripts.cli import ApiError, call, http_sender
from tests.integration.conftest import Deployed
from tests.integration.test_status_api import _call, _onboard, _url

pytestmark = pytest.mark.integration


def _plans(deployed: Deployed) -> dict[str, str]:
    variables = deployed.cloud.client("lambda").get_function_configuration(
        FunctionName=deployed.stack.ref("ApiFunction")
    )["Environment"]["Variables"]
    return dict(json.loads(variables["USAGE_PLAN_IDS"]))


def _set_throttle(deployed: Deployed, plan_id: str, rate: str, burst: str) -> None:
    deployed.client("apigateway").update_usage_plan(
        usagePlanId=plan_id,
        patchOperations=[
            {"op": "replace", "path": "/throttle/rateLimit", "value": rate},
            {"op": "replace", "path": "/throttle/burstLimit", "value": burst},
        ],
    )


@pytest.fixture
def slow_basic_plan(deployed: Deployed) -> Iterator[str]:
    plan_id = _plans(deployed)["basic"]
    saved = deployed.client("apigateway").get_usage_plan(usagePlanId=plan_id)["throttle"]
    _set_throttle(deployed, plan_id, "0.01", "2")
    try:
        yield plan_id
    finally:
        _set_throttle(deployed, plan_id, str(saved["rateLimit"]), str(saved["burstLimit"]))


def test_a_tenant_over_its_tiers_rate_gets_429_with_retry_after_and_others_do_not(
    deployed: Deployed, slow_basic_plan: str
) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    busy = _onboard(deployed, operator, f"rl-{uuid.uuid4().hex[:8]}")
    quiet = _onboard(deployed, operator, f"rl-{uuid.uuid4().hex[:8]}")

    statuses = [_call(deployed, "GET", "/jobs", busy).status_code for _ in range(2)]
    assert statuses == [200, 200]
    throttled = _call(deployed, "GET", "/jobs", busy)
    assert throttled.status_code == 429, throttled.text
    assert throttled.headers["Retry-After"] == "1"
    assert "rate of your tier" in throttled.json()["message"]
    # The same tier, another tenant: its own bucket. An operator: another plan.
    assert _call(deployed, "GET", "/jobs", quiet).status_code == 200
    assert _call(deployed, "GET", "/tiers", operator).status_code == 200


def test_a_tier_change_moves_the_tenant_to_the_new_tiers_limits(
    deployed: Deployed, slow_basic_plan: str
) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant_id = f"rl-{uuid.uuid4().hex[:8]}"
    key = _onboard(deployed, operator, tenant_id)
    for _ in range(2):
        assert _call(deployed, "GET", "/jobs", key).status_code == 200
    assert _call(deployed, "GET", "/jobs", key).status_code == 429
    changed = _call(deployed, "PATCH", f"/tenants/{tenant_id}", operator, json={"tier": "premium"})
    assert changed.status_code == 200, changed.text
    assert _call(deployed, "GET", "/jobs", key).status_code == 200


def test_the_cli_says_what_a_429_means(deployed: Deployed, slow_basic_plan: str) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    key = _onboard(deployed, operator, f"rl-{uuid.uuid4().hex[:8]}")
    send = http_sender(_url(deployed), key, throttle_retries=1)
    for _ in range(2):
        call(send, "GET", "/jobs")
    with pytest.raises(ApiError) as raised:
        call(send, "GET", "/jobs")  # throttled, sent again a second later, throttled again
    assert raised.value.status == 429
    assert str(raised.value).endswith("Retry after the seconds in Retry-After. (retry after 1 s)")
