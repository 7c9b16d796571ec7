"""The Audit table: one item per recorded action, all in one trail partition.

Access patterns:
- record an action ............ trail = :t, eventId = :e IF attribute_not_exists(eventId)
- the trail, newest first ..... trail = :t (eventId descending; eventId = <at>#<random>), paginated
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from controlplane.api.audit import TRAIL, AuditEvent
from controlplane.core import dynamo
from controlplane.core.clients import client, translated
from controlplane.core.errors import ConfigurationError
from controlplane.settings import get_api_settings

PAGE_KEYS: Final = frozenset({"trail", "eventId"})


def _table() -> str:
    name = get_api_settings().audit_table_name
    if not name:
        raise ConfigurationError("environment variable AUDIT_TABLE_NAME is not set")
    return name


@translated
def put(event: AuditEvent) -> None:
    client("dynamodb").put_item(
        TableName=_table(),
        Item=dynamo.to_item(event.stored()),
        ConditionExpression="attribute_not_exists(eventId)",
    )


@translated
def page(
    *, limit: int, start_key: Mapping[str, str] | None
) -> tuple[list[AuditEvent], dict[str, Any] | None]:
    request: dict[str, Any] = {
        "TableName": _table(),
        "KeyConditionExpression": "trail = :trail",
        "ExpressionAttributeValues": dynamo.values({":trail": TRAIL}),
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start_key:
        request["ExclusiveStartKey"] = dynamo.to_item(start_key)
    response = client("dynamodb").query(**request)
    events = [
        AuditEvent.model_validate(item)
        for raw in response.get("Items", [])
        if (item := dynamo.from_item(raw)) is not None
    ]
    return events, dynamo.from_item(response.get("LastEvaluatedKey"))
