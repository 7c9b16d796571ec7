"""The Tenants table.

Access patterns:
- get a tenant .................... tenantId = :t
- onboard a tenant ................ tenantId = :t IF attribute_not_exists(tenantId)
- change a tenant ................. tenantId = :t IF attribute_exists(tenantId)
- list tenants by id .............. index tenants-by-id: listing = "TENANT" (every tenant item carries it)
- offboarded tenants due .......... index offboarding-due: offboardingDue = "due" AND deleteAfter <= :now
                                    (sparse: only offboarded tenants carry offboardingDue; keys only)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.settings import get_settings
from controlplane.tenants.offboarding_contract import (
    DELETE_AFTER_ATTRIBUTE,
    OFFBOARDING_DUE,
    OFFBOARDING_DUE_ATTRIBUTE,
    OFFBOARDING_DUE_INDEX,
)

LISTING_INDEX: Final = "tenants-by-id"
LISTING: Final = "TENANT"
PAGE_KEYS: Final = frozenset({"tenantId", "listing"})


def get(tenant_id: str) -> dict[str, Any] | None:
    response = client("dynamodb").get_item(
        TableName=get_settings().tenants_table_name,
        Key=dynamo.to_item({"tenantId": tenant_id}),
        ConsistentRead=True,
    )
    return dynamo.from_item(response.get("Item"))


def create(item: Mapping[str, Any]) -> bool:
    """Put a new tenant item (with its listing key); False when the tenant already exists."""
    try:
        client("dynamodb").put_item(
            TableName=get_settings().tenants_table_name,
            Item=dynamo.to_item(dict(item) | {"listing": LISTING}),
            ConditionExpression="attribute_not_exists(tenantId)",
        )
    except ClientError as error:
        if dynamo.is_condition_failure(error):
            return False
        raise
    return True


def update(tenant_id: str, changes: Mapping[str, Any], *, now: str) -> dict[str, Any] | None:
    """Set the given attributes; the updated item, or None when there is no such tenant."""
    return dynamo.set_on_existing(
        client("dynamodb"), get_settings().tenants_table_name, {"tenantId": tenant_id}, changes, now=now
    )


def list_page(
    *, limit: int, start_key: Mapping[str, str] | None
) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    request: dict[str, Any] = {
        "TableName": get_settings().tenants_table_name,
        "IndexName": LISTING_INDEX,
        "KeyConditionExpression": "#listing = :listing",
        "ExpressionAttributeNames": {"#listing": "listing"},
        "ExpressionAttributeValues": dynamo.values({":listing": LISTING}),
        "Limit": limit,
    }
    if start_key:
        request["ExclusiveStartKey"] = dynamo.to_item(start_key)
    response = client("dynamodb").query(**request)
    items = [item for raw in response.get("Items", []) if (item := dynamo.from_item(raw)) is not None]
    return items, dynamo.from_item(response.get("LastEvaluatedKey"))


def due_for_deletion(now: str, *, limit: int = 100) -> list[str]:
    """Offboarded tenants whose grace period ended at or before ``now``, the longest overdue first (at most
    ``limit``). A Query on the sparse offboarding-due index: tenants not offboarded are never read."""
    found: list[str] = []
    request: dict[str, Any] = {
        "TableName": get_settings().tenants_table_name,
        "IndexName": OFFBOARDING_DUE_INDEX,
        "KeyConditionExpression": "#due = :due AND #deleteAfter <= :now",
        "ExpressionAttributeNames": {
            "#due": OFFBOARDING_DUE_ATTRIBUTE,
            "#deleteAfter": DELETE_AFTER_ATTRIBUTE,
        },
        "ExpressionAttributeValues": dynamo.values({":due": OFFBOARDING_DUE, ":now": now}),
    }
    while len(found) < limit:
        request["Limit"] = limit - len(found)
        response = client("dynamodb").query(**request)
        found += [str(item["tenantId"]["S"]) for item in response.get("Items", [])]
        if not response.get("LastEvaluatedKey"):
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    return found
