"""The Tiers table. Access patterns: get a tier's settings and counter ... tier = :tier
(taking a slot lives in controlplane.access.slots)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.access import dynamo
from controlplane.access.clients import client
from controlplane.domain.models import TierSettings
from controlplane.settings import get_settings


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
    attributes |= {"running": 0, "createdAt": now}
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
