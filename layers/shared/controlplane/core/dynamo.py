"""Conversions between plain Python values and DynamoDB's attribute-value format."""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Context, Decimal
from typing import Any, Final

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

_SERIALIZER: Final = TypeSerializer()
_DESERIALIZER: Final = TypeDeserializer()
# DynamoDB numbers: up to 38 significant digits, magnitude 1E-130 to 9.9E+125.
_NUMBER_CONTEXT: Final = Context(prec=38)
_MIN_EXPONENT: Final = -129
_MAX_EXPONENT: Final = 125


def _to_dynamo_number(value: float) -> Decimal | None:
    if not math.isfinite(value):
        return None
    # repr() is the shortest text that round-trips (0.1 -> "0.1", not 0.1000000000000000055...).
    number = Decimal(repr(value)).normalize(_NUMBER_CONTEXT)
    if number.is_zero():
        return Decimal(0)
    exponent = number.adjusted()
    if exponent < _MIN_EXPONENT:
        return Decimal(0)
    if exponent > _MAX_EXPONENT:
        return None
    return number


def _prepare(value: Any) -> Any:
    """floats -> Decimal (boto3 rejects floats), recursively; non-representable floats -> None (NULL)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        return _to_dynamo_number(value)
    if isinstance(value, Mapping):
        return {str(key): _prepare(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_prepare(item) for item in value]
    return value


def _plain(value: Any) -> Any:
    """Decimal -> int or float, recursively (JSON-ready)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, set):
        return sorted(_plain(item) for item in value)
    return value


def serialize(value: Any) -> dict[str, Any]:
    """One attribute value."""
    serialized: dict[str, Any] = dict(_SERIALIZER.serialize(_prepare(value)))
    return serialized


def to_item(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: serialize(value) for name, value in values.items()}


def values(values: Mapping[str, Any]) -> dict[str, Any]:
    """ExpressionAttributeValues from plain values."""
    return to_item(values)


def from_item(item: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if item is None:
        return None
    return {name: _plain(_DESERIALIZER.deserialize(value)) for name, value in item.items()}


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def is_condition_failure(error: ClientError) -> bool:
    return error_code(error) == "ConditionalCheckFailedException"


def old_item(error: ClientError) -> dict[str, Any] | None:
    """The item returned with ReturnValuesOnConditionCheckFailure=ALL_OLD (None when it did not exist)."""
    item = error.response.get("Item")
    return from_item(item) if isinstance(item, Mapping) else None


def cancellation_codes(error: ClientError) -> list[str | None]:
    """The per-item codes of a TransactionCanceledException ("None" means that item's check passed)."""
    reasons = error.response.get("CancellationReasons") or []
    codes: list[str | None] = []
    for reason in reasons:
        code = reason.get("Code") if isinstance(reason, Mapping) else None
        codes.append(None if code in (None, "None") else str(code))
    return codes


def set_on_existing(
    dynamodb: Any, table: str, key: Mapping[str, Any], changes: Mapping[str, Any], *, now: str
) -> dict[str, Any] | None:
    """SET the given attributes (and updatedAt) on an existing item; the updated item, or None when
    there is no item with that key (the update never creates one)."""
    (key_name,) = key
    assignments = dict(changes) | {"updatedAt": now}
    try:
        response = dynamodb.update_item(
            TableName=table,
            Key=to_item(key),
            UpdateExpression="SET " + ", ".join(f"#{name} = :{name}" for name in assignments),
            ConditionExpression=f"attribute_exists({key_name})",
            ExpressionAttributeNames={f"#{name}": name for name in assignments},
            ExpressionAttributeValues=values({f":{name}": value for name, value in assignments.items()}),
            ReturnValues="ALL_NEW",
        )
    except ClientError as error:
        if is_condition_failure(error):
            return None
        raise
    return from_item(response.get("Attributes"))


def update_if(dynamodb: Any, **request: Any) -> tuple[bool, dict[str, Any] | None]:
    """A conditional UpdateItem: (True, the item ReturnValues asked for) when it applied, (False, the item
    as it was) when its condition failed. Any other error propagates."""
    try:
        response = dynamodb.update_item(**request, ReturnValuesOnConditionCheckFailure="ALL_OLD")
    except ClientError as error:
        if not is_condition_failure(error):
            raise
        return False, old_item(error)
    return True, from_item(response.get("Attributes"))
