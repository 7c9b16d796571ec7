"""The Tiers table. Access patterns:
- get a tier's settings and counter ............ tier = :tier
- the account cap and counter, and every tier .. BatchGetItem tier IN ("account", basic, standard, premium)
- a tier's run-time average (one job folded in) .. tier = :tier IF runsMeasured = :seen, in one transaction
                                                  with jobId = :j IF attribute_not_exists(runTimeRecordedAt)
(taking a slot lives in controlplane.admission.slot_store)."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError

from controlplane.admission.fair_share import ACCOUNT_KEY
from controlplane.admission.run_times import AVERAGE_ATTRIBUTE, MEASURED_ATTRIBUTE, RunTimes
from controlplane.admission.tiers import TierSettings
from controlplane.core import dynamo
from controlplane.core.clients import client, translated
from controlplane.core.model import Tier
from controlplane.settings import get_settings


class RecordOutcome(StrEnum):
    RECORDED = "RECORDED"
    ALREADY_RECORDED = "ALREADY_RECORDED"  # this job's run was folded in before (a redelivered trigger)
    CHANGED = "CHANGED"  # another run was folded in since the average was read: read it again


def get(tier: str) -> dict[str, Any] | None:
    response = client("dynamodb").get_item(
        TableName=get_settings().tiers_table_name, Key=dynamo.to_item({"tier": tier}), ConsistentRead=True
    )
    return dynamo.from_item(response.get("Item"))


def seed(settings: TierSettings, *, now: str) -> None:
    """Write a tier's deploy-time defaults without overwriting anything changed at run time: every
    tunable attribute (and the ``running`` counter, starting at 0) is set with if_not_exists.

    ``queueUrl`` is the exception: it is infrastructure, not a tunable, and must follow the stack's
    queue (a replaced queue would otherwise strand every job sent to the old URL).
    """
    attributes = settings.model_dump(mode="json", by_alias=True, exclude={"tier", "queue_url"})
    attributes |= {"running": 0, "fairClock": 0, "createdAt": now}
    names = {f"#{name}": name for name in attributes} | {"#queueUrl": "queueUrl", "#updatedAt": "updatedAt"}
    values = {f":{name}": value for name, value in attributes.items()} | {
        ":queueUrl": settings.queue_url,
        ":updatedAt": now,
    }
    assignments = [f"#{name} = if_not_exists(#{name}, :{name})" for name in attributes]
    assignments += ["#queueUrl = :queueUrl", "#updatedAt = :updatedAt"]
    client("dynamodb").update_item(
        TableName=get_settings().tiers_table_name,
        Key=dynamo.to_item({"tier": settings.tier.value}),
        UpdateExpression="SET " + ", ".join(assignments),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=dynamo.values(values),
    )


def seed_account(account_cap: int, *, now: str) -> None:
    """Create the account item (``accountCap``, ``running`` 0) unless it exists: a cap changed at run time
    survives redeploys, like the tiers' tunables."""
    client("dynamodb").update_item(
        TableName=get_settings().tiers_table_name,
        Key=dynamo.to_item({"tier": ACCOUNT_KEY}),
        UpdateExpression=(
            "SET #cap = if_not_exists(#cap, :cap), #running = if_not_exists(#running, :zero), "
            "#createdAt = if_not_exists(#createdAt, :now), #updatedAt = :now"
        ),
        ExpressionAttributeNames={
            "#cap": "accountCap",
            "#running": "running",
            "#createdAt": "createdAt",
            "#updatedAt": "updatedAt",
        },
        ExpressionAttributeValues=dynamo.values({":cap": account_cap, ":zero": 0, ":now": now}),
    )


def capacity_items() -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
    """The account item and every tier item, in one strongly consistent BatchGetItem."""
    table = get_settings().tiers_table_name
    keys = [{"tier": ACCOUNT_KEY}, *({"tier": tier.value} for tier in Tier)]
    request: dict[str, Any] = {table: {"Keys": [dynamo.to_item(key) for key in keys], "ConsistentRead": True}}
    found: dict[str, dict[str, Any]] = {}
    for _ in range(5):
        response = client("dynamodb").batch_get_item(RequestItems=request)
        for raw in response.get("Responses", {}).get(table, []):
            item = dynamo.from_item(raw)
            if item:
                found[str(item["tier"])] = item
        request = response.get("UnprocessedKeys") or {}
        if not request:
            break
    else:
        raise RuntimeError("the tiers could not be read: keys stayed unprocessed after 5 attempts")
    return found.pop(ACCOUNT_KEY, None), found


def update(tier: str, changes: Mapping[str, Any], *, now: str) -> dict[str, Any] | None:
    """Set run-time tunables of an existing tier; the updated item, or None when there is no such tier."""
    return dynamo.set_on_existing(
        client("dynamodb"), get_settings().tiers_table_name, {"tier": tier}, changes, now=now
    )


def queued_count(tier: str) -> int:
    """Jobs in the tier's waiting room: a COUNT query on the sparse tier-queue index (every page)."""
    request: dict[str, Any] = {
        "TableName": get_settings().jobs_table_name,
        "IndexName": "tier-queue",
        "KeyConditionExpression": "queueTier = :tier",
        "ExpressionAttributeValues": dynamo.values({":tier": tier}),
        "Select": "COUNT",
    }
    total = 0
    while True:
        response = client("dynamodb").query(**request)
        total += int(response.get("Count", 0))
        last = response.get("LastEvaluatedKey")
        if not last:
            return total
        request["ExclusiveStartKey"] = last


@translated
def record_run_time(tier: str, job_id: str, *, seen: RunTimes, new: RunTimes, now: str) -> RecordOutcome:
    """Fold one job's slot time into the tier's average, once per job, in one transaction:
    the tier item ``runsMeasured`` as read (compare-and-set) -> the new average and count; the job
    ``runTimeRecordedAt`` absent -> now."""
    settings = get_settings()
    seen_condition = (
        "attribute_not_exists(#measured)" if seen.average_seconds is None else "#measured = :seenMeasured"
    )
    seen_values = {} if seen.average_seconds is None else {":seenMeasured": seen.measured}
    items = [
        {
            "Update": {
                "TableName": settings.tiers_table_name,
                "Key": dynamo.to_item({"tier": tier}),
                "UpdateExpression": "SET #average = :average, #measured = :measured",
                "ConditionExpression": f"attribute_exists(#tier) AND {seen_condition}",
                "ExpressionAttributeNames": {
                    "#average": AVERAGE_ATTRIBUTE,
                    "#measured": MEASURED_ATTRIBUTE,
                    "#tier": "tier",
                },
                "ExpressionAttributeValues": dynamo.values(
                    {":average": new.average_seconds, ":measured": new.measured, **seen_values}
                ),
            }
        },
        {
            "Update": {
                "TableName": settings.jobs_table_name,
                "Key": dynamo.to_item({"jobId": job_id}),
                "UpdateExpression": "SET #recorded = :now",
                "ConditionExpression": "attribute_exists(jobId) AND attribute_not_exists(#recorded)",
                "ExpressionAttributeNames": {"#recorded": "runTimeRecordedAt"},
                "ExpressionAttributeValues": dynamo.values({":now": now}),
            }
        },
    ]
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
    except ClientError as error:
        code = dynamo.error_code(error)
        if code == "TransactionConflictException":
            return RecordOutcome.CHANGED
        if code != "TransactionCanceledException":
            raise
        tier_code, job_code = [*dynamo.cancellation_codes(error), None, None][:2]
        if job_code == "ConditionalCheckFailed":
            return RecordOutcome.ALREADY_RECORDED
        if tier_code == "ConditionalCheckFailed":
            return RecordOutcome.CHANGED
        raise
    return RecordOutcome.RECORDED
