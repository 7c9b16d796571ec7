"""The ApiKeys table: one item per key, keyed by the key's SHA-256 (the key itself is never stored).

Access patterns:
- authorize a request ......... keyHash = :h (GetItem)
- create a key ................ keyHash = :h IF attribute_not_exists(keyHash)
"""

from __future__ import annotations

from typing import Any

from controlplane.api.keys import KeyStatus, Role
from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.settings import get_api_settings


def _table() -> str:
    return get_api_settings().api_keys_table_name


def get(key_hash: str) -> dict[str, Any] | None:
    response = client("dynamodb").get_item(TableName=_table(), Key=dynamo.to_item({"keyHash": key_hash}))
    return dynamo.from_item(response.get("Item"))


def put(key_hash: str, *, role: Role, tenant_id: str | None, now: str, table: str | None = None) -> None:
    item: dict[str, Any] = {
        "keyHash": key_hash,
        "role": role.value,
        "status": KeyStatus.ACTIVE.value,
        "createdAt": now,
    }
    if tenant_id is not None:
        item["tenantId"] = tenant_id
    client("dynamodb").put_item(
        TableName=table or _table(),
        Item=dynamo.to_item(item),
        ConditionExpression="attribute_not_exists(keyHash)",
    )
