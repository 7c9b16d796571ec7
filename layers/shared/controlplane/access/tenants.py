"""The Tenants table. Access pattern: get a tenant ... tenantId = :t"""

from __future__ import annotations

from typing import Any

from controlplane.access import dynamo
from controlplane.access.clients import client
from controlplane.settings import get_settings


def get(tenant_id: str) -> dict[str, Any] | None:
    response = client("dynamodb").get_item(
        TableName=get_settings().tenants_table_name,
        Key=dynamo.to_item({"tenantId": tenant_id}),
        ConsistentRead=True,
    )
    return dynamo.from_item(response.get("Item"))
