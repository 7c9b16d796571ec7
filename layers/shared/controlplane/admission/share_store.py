"""The FairShare table: one share per (tier, tenant) (see controlplane.admission.fair_share).

Access patterns (key conditions as in template.yaml):
- a tenant's share of a tier ........... shareId = :tier#tenant; every write IF version = :seen
                                          (or attribute_not_exists(shareId) for the first)
- a tier's backlogged tenants ........... index tier-backlog: backlogTier = :tier, ascending tag
- tenants ahead of a share (explaining) . index tier-backlog: backlogTier = :tier AND tag <= :key, filtered to
                                          those before it in fair order and below their cap, Select=COUNT,
                                          one page of at most BACKLOG_COUNT_LIMIT items
- a tenant's shares (offboarding) ....... index tenant-shares: tenantId = :t

The writes that must be atomic with a job or slot change are returned as TransactWriteItems entries
(``*_update``) for the transaction that owns them (storing a queue token, taking and releasing a slot).
"""

from __future__ import annotations

from typing import Any, Final

from controlplane.admission.fair_share import Enqueue, Share, share_from_item, share_id
from controlplane.admission.scheduling import Admit
from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.core.model import BoundedCount
from controlplane.settings import get_settings

TIER_BACKLOG_INDEX: Final = "tier-backlog"
TENANT_SHARES_INDEX: Final = "tenant-shares"
# Backlogged shares one count may read (a single Query page): the explanation's cost stays bounded however
# many tenants there are; beyond it the view says "at least".
BACKLOG_COUNT_LIMIT: Final = 500


def _table() -> str:
    return get_settings().fair_share_table_name


def _key(tier: str, tenant_id: str) -> dict[str, Any]:
    return dynamo.to_item({"shareId": share_id(tier, tenant_id)})


def _version_condition(share: Share) -> tuple[str, dict[str, Any]]:
    if share.version == 0:
        return "attribute_not_exists(shareId)", {}
    return "#version = :seenVersion", {":seenVersion": share.version}


def get(tier: str, tenant_id: str) -> Share:
    """The share as stored (strongly consistent); a fresh, empty share when there is none yet."""
    response = client("dynamodb").get_item(TableName=_table(), Key=_key(tier, tenant_id), ConsistentRead=True)
    item = dynamo.from_item(response.get("Item"))
    return share_from_item(item) if item else Share(tier=tier, tenant_id=tenant_id)


def backlog(tier: str, *, limit: int) -> list[Share]:
    """Up to ``limit`` of the tier's backlogged shares, lowest fair tag first (eventually consistent)."""
    response = client("dynamodb").query(
        TableName=_table(),
        IndexName=TIER_BACKLOG_INDEX,
        KeyConditionExpression="#backlogTier = :tier",
        ExpressionAttributeNames={"#backlogTier": "backlogTier"},
        ExpressionAttributeValues=dynamo.values({":tier": tier}),
        ScanIndexForward=True,
        Limit=limit,
    )
    return [
        share_from_item(item) for item in (dynamo.from_item(raw) for raw in response.get("Items", [])) if item
    ]


def count_ahead(tier: str, *, key: float, backlog_since: str, strictly_lower: bool) -> BoundedCount:
    """Backlogged shares of the tier the gate would pick before one whose fair key (``max(tag, clock)``)
    is ``key`` and whose backlog began at ``backlog_since``, counting only those below their cap (the gate
    skips the others). With ``strictly_lower`` (the share's tag is above the tier's clock), a lower tag
    is ahead and an equal one is ahead when backlogged earlier; otherwise every share at or below the
    clock ties at the clock, and those backlogged earlier are ahead (controlplane.admission.scheduling)."""
    order = "(#tag < :key OR #since < :since)" if strictly_lower else "#since < :since"
    response = client("dynamodb").query(
        TableName=_table(),
        IndexName=TIER_BACKLOG_INDEX,
        KeyConditionExpression="#backlogTier = :tier AND #tag <= :key",
        FilterExpression=f"{order} AND (attribute_not_exists(#cap) OR #running < #cap)",
        ExpressionAttributeNames={
            "#backlogTier": "backlogTier",
            "#tag": "tag",
            "#since": "backlogSince",
            "#cap": "cap",
            "#running": "running",
        },
        ExpressionAttributeValues=dynamo.values({":tier": tier, ":key": key, ":since": backlog_since}),
        Select="COUNT",
        Limit=BACKLOG_COUNT_LIMIT,
    )
    return BoundedCount(value=int(response.get("Count", 0)), at_least=bool(response.get("LastEvaluatedKey")))


def count_backlogged(tier: str) -> BoundedCount:
    """The tier's backlogged shares (tenants that may have jobs waiting), bounded like count_ahead."""
    response = client("dynamodb").query(
        TableName=_table(),
        IndexName=TIER_BACKLOG_INDEX,
        KeyConditionExpression="#backlogTier = :tier",
        ExpressionAttributeNames={"#backlogTier": "backlogTier"},
        ExpressionAttributeValues=dynamo.values({":tier": tier}),
        Select="COUNT",
        Limit=BACKLOG_COUNT_LIMIT,
    )
    return BoundedCount(value=int(response.get("Count", 0)), at_least=bool(response.get("LastEvaluatedKey")))


def enqueue_update(
    share: Share, enqueue: Enqueue, *, weight: float, cap: int | None, now: str
) -> dict[str, Any]:
    """Mark the share backlogged (or keep it so) and refresh its weight and cap from the tenant."""
    condition, condition_values = _version_condition(share)
    assignments = [
        "#tier = :tier",
        "#tenantId = :tenantId",
        "#backlogTier = :tier",
        "#backlogSince = :backlogSince",
        "#tag = :tag",
        "#weight = :weight",
        "#lastEnqueuedAt = :now",
        "#running = if_not_exists(#running, :zero)",
        "#version = :version",
    ]
    values: dict[str, Any] = {
        ":tier": share.tier,
        ":tenantId": share.tenant_id,
        ":backlogSince": enqueue.backlog_since,
        ":tag": enqueue.tag,
        ":weight": weight,
        ":now": now,
        ":zero": 0,
        ":version": share.version + 1,
        **condition_values,
    }
    names = {
        f"#{name}": name
        for name in (
            "tier",
            "tenantId",
            "backlogTier",
            "backlogSince",
            "tag",
            "weight",
            "lastEnqueuedAt",
            "running",
            "version",
        )
    }
    names["#cap"] = "cap"
    if cap is None:
        expression = "SET " + ", ".join(assignments) + " REMOVE #cap"
    else:
        values[":cap"] = cap
        expression = "SET " + ", ".join([*assignments, "#cap = :cap"])
    return {
        "Update": {
            "TableName": _table(),
            "Key": _key(share.tier, share.tenant_id),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo.values(values),
        }
    }


def rejoin_backlog(share: Share, enqueue: Enqueue, *, now: str) -> bool:
    """Mark a share backlogged outside an enqueue (the waiting-room sweep's repair); False when the share
    changed since it was read."""
    update = enqueue_update(share, enqueue, weight=share.weight, cap=share.cap, now=now)["Update"]
    applied, _ = dynamo.update_if(client("dynamodb"), **update)
    return applied


def take_update(share: Share, admit: Admit, *, now: str) -> dict[str, Any]:
    """Charge the admission to the share: running + 1 (below its cap), usage and tag as decided."""
    condition, condition_values = _version_condition(share)
    if share.cap is not None:
        condition += " AND (attribute_not_exists(#running) OR #running < :cap)"
        condition_values[":cap"] = share.cap
    return {
        "Update": {
            "TableName": _table(),
            "Key": _key(share.tier, share.tenant_id),
            "UpdateExpression": (
                "SET #running = if_not_exists(#running, :zero) + :one, #usage = :usage, #usageAt = :now, "
                "#tag = :tag, #version = :version"
            ),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#running": "running",
                "#usage": "usage",
                "#usageAt": "usageAt",
                "#tag": "tag",
                "#version": "version",
            },
            "ExpressionAttributeValues": dynamo.values(
                {
                    ":zero": 0,
                    ":one": 1,
                    ":usage": admit.tenant_usage,
                    ":now": now,
                    ":tag": admit.tenant_tag,
                    ":version": share.version + 1,
                    **condition_values,
                }
            ),
        }
    }


def unmark_backlog(share: Share, *, settled_before: str) -> bool:
    """Take the share out of the tier's backlog index; False when it changed since it was read or a job
    was enqueued for it after ``settled_before`` (it stays backlogged then)."""
    applied, _ = dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=_key(share.tier, share.tenant_id),
        UpdateExpression="REMOVE #backlogTier, #backlogSince SET #version = :version",
        ConditionExpression=(
            "#version = :seenVersion "
            "AND (attribute_not_exists(#lastEnqueuedAt) OR #lastEnqueuedAt < :settled)"
        ),
        ExpressionAttributeNames={
            "#backlogTier": "backlogTier",
            "#backlogSince": "backlogSince",
            "#version": "version",
            "#lastEnqueuedAt": "lastEnqueuedAt",
        },
        ExpressionAttributeValues=dynamo.values(
            {":version": share.version + 1, ":seenVersion": share.version, ":settled": settled_before}
        ),
    )
    return applied


def tenant_share_ids(tenant_id: str) -> list[str]:
    """Every share of the tenant (one per tier it queued jobs in)."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": TENANT_SHARES_INDEX,
        "KeyConditionExpression": "#tenantId = :tenantId",
        "ExpressionAttributeNames": {"#tenantId": "tenantId"},
        "ExpressionAttributeValues": dynamo.values({":tenantId": tenant_id}),
    }
    found: list[str] = []
    while True:
        response = client("dynamodb").query(**request)
        found += [
            str(item["shareId"]) for item in (dynamo.from_item(raw) for raw in response["Items"]) if item
        ]
        if not response.get("LastEvaluatedKey"):
            return found
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
