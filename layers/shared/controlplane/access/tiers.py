"""The Tiers table. Access patterns: get a tier's settings and counter ... tier = :tier
(taking a slot lives in controlplane.access.slots)."""

from __future__ import annotations

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
