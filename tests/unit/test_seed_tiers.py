from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import pytest
from conftest import LambdaContext, load_event

from controlplane.admission import tier_store as tiers
from tests.support.cfn_response import ResponseUrlServer

pytestmark = pytest.mark.usefixtures("aws")


class CloudFormation(ResponseUrlServer):
    """Stands in for the presigned S3 URL CloudFormation waits on (loopback HTTP)."""

    @property
    def url(self) -> str:
        return self.url_for("/cfn-response/TierSettings?X-Amz-Signature=abc%2Fdef&X-Amz-Expires=7200")


@pytest.fixture
def cloudformation() -> Iterator[CloudFormation]:
    server = CloudFormation()
    yield server
    server.close()


@pytest.fixture
def seed(
    load_app: Callable[[str], ModuleType], cloudformation: CloudFormation
) -> Callable[..., dict[str, Any]]:
    app = load_app("seed_tiers")

    def invoke(
        request_type: str = "Create", context: LambdaContext | None = None, **changes: Any
    ) -> dict[str, Any]:
        event = load_event("cfn_tier_settings_create.json") | {
            "RequestType": request_type,
            "ResponseURL": cloudformation.url,
        }
        if request_type != "Create":
            event["PhysicalResourceId"] = "mlaas-test-TierSettings"
        event |= changes
        result: dict[str, Any] = app.lambda_handler(event, context or LambdaContext())
        return result

    return invoke


def tier_item(table: Callable[[str], Any], tier: str) -> dict[str, Any]:
    return dict(table("TIERS_TABLE_NAME").get_item(Key={"tier": tier})["Item"])


@pytest.fixture
def empty_tiers(table: Callable[[str], Any]) -> None:
    for tier in ("basic", "standard", "premium"):
        table("TIERS_TABLE_NAME").delete_item(Key={"tier": tier})


@pytest.mark.usefixtures("empty_tiers")
def test_create_writes_every_tier_and_answers(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation, table: Callable[[str], Any]
) -> None:
    assert seed()["Status"] == "SUCCESS"
    basic = tier_item(table, "basic")
    assert basic["concurrencyLimit"] == 2
    assert basic["borrowingLimit"] == 2
    assert basic["running"] == 0
    assert basic["fairClock"] == 0
    account = tier_item(table, "account")
    assert (account["accountCap"], account["running"]) == (16, 0)
    assert basic["useSpotInstances"] is True
    assert basic["queueUrl"].endswith("mlaas-test-BasicQueue-4Xc9RkQmLw2B")
    assert tier_item(table, "premium")["useSpotInstances"] is False
    assert tier_item(table, "premium")["trainingInstanceCount"] == 2

    [response] = cloudformation.responses
    assert response == {
        "Status": "SUCCESS",
        "Reason": "See the log stream 2024/05/14/[$LATEST]0123456789abcdef",
        "PhysicalResourceId": "mlaas-test-TierSettings",
        "StackId": load_event("cfn_tier_settings_create.json")["StackId"],
        "RequestId": "6f1a2b3c-4d5e-6f70-8192-a3b4c5d6e7f8",
        "LogicalResourceId": "TierSettings",
        "NoEcho": False,
        "Data": {"Tiers": "basic,standard,premium"},
    }
    method, path, headers = cloudformation.requests[0]
    assert method == "PUT"
    assert path == "/cfn-response/TierSettings?X-Amz-Signature=abc%2Fdef&X-Amz-Expires=7200"  # untouched
    assert headers["Content-Type"] == ""


def test_update_never_overwrites_run_time_changes(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation, table: Callable[[str], Any]
) -> None:
    seed()
    table("TIERS_TABLE_NAME").update_item(
        Key={"tier": "basic"},
        UpdateExpression="SET concurrencyLimit = :limit, running = :running",
        ExpressionAttributeValues={":limit": 5, ":running": 1},
    )
    event = load_event("cfn_tier_settings_create.json")
    properties = event["ResourceProperties"]
    properties["Tiers"]["basic"] |= {
        "ConcurrencyLimit": "3",
        "QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/new-basic",
    }
    assert (
        seed("Update", ResourceProperties=properties, OldResourceProperties=event["ResourceProperties"])[
            "Status"
        ]
        == "SUCCESS"
    )
    basic = tier_item(table, "basic")
    assert basic["concurrencyLimit"] == 5  # changed at run time: kept
    assert basic["running"] == 1  # a live counter is never reset
    assert (
        basic["queueUrl"] == "https://sqs.us-east-1.amazonaws.com/1/new-basic"
    )  # infrastructure follows the stack
    assert cloudformation.responses[-1]["PhysicalResourceId"] == "mlaas-test-TierSettings"


def test_delete_keeps_the_data(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation, table: Callable[[str], Any]
) -> None:
    before = tier_item(table, "basic")
    assert seed("Delete")["Status"] == "SUCCESS"
    assert tier_item(table, "basic") == before
    assert cloudformation.responses[-1]["Status"] == "SUCCESS"


def test_invalid_properties_answer_failed_with_the_reason(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation
) -> None:
    properties = load_event("cfn_tier_settings_create.json")["ResourceProperties"]
    properties["Tiers"]["basic"]["ConcurrencyLimit"] = "lots"
    assert seed(ResourceProperties=properties)["Status"] == "FAILED"
    response = cloudformation.responses[-1]
    assert response["Status"] == "FAILED"
    assert "ConcurrencyLimit" in response["Reason"]
    assert response["PhysicalResourceId"] == "mlaas-test-TierSettings"


def test_guarantees_above_the_account_cap_answer_failed_naming_both(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation
) -> None:
    properties = load_event("cfn_tier_settings_create.json")["ResourceProperties"]
    properties["AccountCap"] = "10"  # basic 2 + standard 4 + premium 8 = 14 guaranteed
    assert seed(ResourceProperties=properties)["Status"] == "FAILED"
    [response] = cloudformation.responses
    assert "add up to 14, above AccountCap 10" in response["Reason"]


def test_a_redeploy_keeps_an_account_cap_changed_at_run_time(
    seed: Callable[..., dict[str, Any]], table: Callable[[str], Any]
) -> None:
    seed()
    table("TIERS_TABLE_NAME").update_item(
        Key={"tier": "account"}, UpdateExpression="SET accountCap = :c", ExpressionAttributeValues={":c": 40}
    )
    seed("Update")
    assert tier_item(table, "account")["accountCap"] == 40


def test_unknown_tier_answers_failed(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation
) -> None:
    properties = load_event("cfn_tier_settings_create.json")["ResourceProperties"]
    properties["Tiers"]["platinum"] = properties["Tiers"]["premium"]
    seed(ResourceProperties=properties)
    assert cloudformation.responses[-1]["Status"] == "FAILED"
    assert "platinum" in cloudformation.responses[-1]["Reason"]


def test_a_hanging_write_still_answers_before_the_timeout(
    seed: Callable[..., dict[str, Any]], cloudformation: CloudFormation, monkeypatch: pytest.MonkeyPatch
) -> None:
    def hang(*args: Any, **kwargs: Any) -> None:
        deadline = time.monotonic() + 5
        while not cloudformation.responses and time.monotonic() < deadline:
            time.sleep(0.01)
        raise TimeoutError("DynamoDB did not answer")

    monkeypatch.setattr(tiers, "seed", hang)
    seed(context=LambdaContext(remaining_millis=3_200))  # the watchdog fires 3 s before the deadline
    assert [response["Status"] for response in cloudformation.responses] == ["FAILED"]
    assert cloudformation.responses[0]["Reason"] == "seed_tiers timed out before finishing"
