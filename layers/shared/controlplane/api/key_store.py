"""The ApiKeys table: one item per key, keyed by the key's SHA-256 (the key itself is never stored).

Access patterns:
- authorize a request ......... keyHash = :h (GetItem, strongly consistent: a revoke counts at once)
- record a key's use .......... keyHash = :h IF attribute_exists(keyHash)
                                AND (attribute_not_exists(lastUsedAt) OR lastUsedAt <= :cutoff)
- create a key ................ keyHash = :h IF attribute_not_exists(keyHash)
- an owner's keys, newest first  index owner-keys: owner = :o (keyId descending; keyIds are time-ordered)
- one key of an owner ......... index owner-keys: owner = :o AND keyId = :k (another tenant's key is
                                simply not there)
- rotate a key ................ one transaction: keyHash = :old IF status = ACTIVE AND no replacedBy AND
                                expiresAt > :now (SET its grace-period expiry), and the new key's create
- revoke a key ................ keyHash = :h IF status = ACTIVE
- a tenant's keys (offboarding)  index tenant-keys: tenantId = :t (controlplane.tenants.removal_store)

``owner`` is ``tenant#<tenantId>`` or ``operator`` (controlplane.api.keys.KeyOwner).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError
from pydantic import ValidationError

from controlplane.api.keys import ApiKey, KeyNotChangeableError, KeyOwner, KeyStatus
from controlplane.core import dynamo
from controlplane.core.clients import client, translated
from controlplane.settings import get_api_settings

OWNER_KEYS_INDEX: Final = "owner-keys"
# A key's status is named #keyStatus in expressions: #status is the job status, written only by
# controlplane.jobs.lifecycle (tests/unit/test_lifecycle_conformance.py looks for it everywhere).


def _table() -> str:
    return get_api_settings().api_keys_table_name


def _key(item: Mapping[str, Any] | None) -> ApiKey | None:
    """An item as a key; an item that is not a valid key (unknown role or status) is no key at all."""
    if item is None:
        return None
    try:
        return ApiKey.model_validate(item)
    except ValidationError:
        return None


@translated
def get(key_hash: str) -> ApiKey | None:
    response = client("dynamodb").get_item(
        TableName=_table(), Key=dynamo.to_item({"keyHash": key_hash}), ConsistentRead=True
    )
    return _key(dynamo.from_item(response.get("Item")))


@translated
def create(key: ApiKey, *, table: str | None = None, dynamodb: Any = None) -> None:
    """Store a new key (``table``/``dynamodb`` for the operator bootstrap script, outside Lambda)."""
    (dynamodb or client("dynamodb")).put_item(
        TableName=table or _table(),
        Item=dynamo.to_item(key.stored()),
        ConditionExpression="attribute_not_exists(keyHash)",
    )


@translated
def find(owner: KeyOwner, key_id: str) -> ApiKey | None:
    response = client("dynamodb").query(
        TableName=_table(),
        IndexName=OWNER_KEYS_INDEX,
        KeyConditionExpression="#owner = :owner AND keyId = :id",
        ExpressionAttributeNames={"#owner": "owner"},
        ExpressionAttributeValues=dynamo.values({":owner": owner.partition, ":id": key_id}),
    )
    found = [key for raw in response.get("Items", []) if (key := _key(dynamo.from_item(raw))) is not None]
    return found[0] if found else None


@translated
def list_page(
    owner: KeyOwner, *, limit: int, start_key: Mapping[str, str] | None
) -> tuple[list[ApiKey], dict[str, Any] | None]:
    request: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": OWNER_KEYS_INDEX,
        "KeyConditionExpression": "#owner = :owner",
        "ExpressionAttributeNames": {"#owner": "owner"},
        "ExpressionAttributeValues": dynamo.values({":owner": owner.partition}),
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if start_key:
        request["ExclusiveStartKey"] = dynamo.to_item(start_key)
    response = client("dynamodb").query(**request)
    keys = [key for raw in response.get("Items", []) if (key := _key(dynamo.from_item(raw))) is not None]
    return keys, dynamo.from_item(response.get("LastEvaluatedKey"))


@translated
def rotate(old: ApiKey, new: ApiKey, *, expires_at: str, now: str) -> ApiKey:
    """Give ``old`` its grace-period expiry and store ``new``, in one transaction; the old key as it now is.
    KeyNotChangeableError when ``old`` was revoked, rotated or expired meanwhile."""
    changes = {"expiresAt": expires_at, "rotatedAt": now, "replacedBy": new.key_id}
    try:
        client("dynamodb").transact_write_items(
            TransactItems=[
                {
                    "Update": {
                        "TableName": _table(),
                        "Key": dynamo.to_item({"keyHash": old.key_hash}),
                        "UpdateExpression": "SET expiresAt = :expiresAt, rotatedAt = :rotatedAt, "
                        "replacedBy = :replacedBy",
                        "ConditionExpression": "#keyStatus = :active AND attribute_not_exists(replacedBy) "
                        "AND expiresAt > :now",
                        "ExpressionAttributeNames": {"#keyStatus": "status"},
                        "ExpressionAttributeValues": dynamo.values(
                            {f":{name}": value for name, value in changes.items()}
                            | {":active": KeyStatus.ACTIVE.value, ":now": now}
                        ),
                    }
                },
                {
                    "Put": {
                        "TableName": _table(),
                        "Item": dynamo.to_item(new.stored()),
                        "ConditionExpression": "attribute_not_exists(keyHash)",
                    }
                },
            ]
        )
    except ClientError as error:
        if dynamo.error_code(error) == "TransactionCanceledException":
            raise KeyNotChangeableError(
                f"key {old.key_id} was revoked, rotated or expired meanwhile"
            ) from None
        raise
    return old.model_copy(update={"expires_at": expires_at, "rotated_at": now, "replaced_by": new.key_id})


@translated
def revoke(key: ApiKey, *, now: str) -> ApiKey | None:
    """Mark an active key REVOKED; the key as it now is, or None when it was no longer active."""
    applied, item = dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=dynamo.to_item({"keyHash": key.key_hash}),
        UpdateExpression="SET #keyStatus = :revoked, revokedAt = :now",
        ConditionExpression="#keyStatus = :active",
        ExpressionAttributeNames={"#keyStatus": "status"},
        ExpressionAttributeValues=dynamo.values(
            {":revoked": KeyStatus.REVOKED.value, ":active": KeyStatus.ACTIVE.value, ":now": now}
        ),
        ReturnValues="ALL_NEW",
    )
    return _key(item) if applied else None


@translated
def record_use(key_hash: str, *, now: str, cutoff: str, missing: Mapping[str, str]) -> bool:
    """Set lastUsedAt (and, on a key created before the lifecycle, what it lacks) unless a use since
    ``cutoff`` is already recorded; False when another request recorded one first."""
    assignments = ["lastUsedAt = :now"] + [f"#{name} = if_not_exists(#{name}, :{name})" for name in missing]
    applied, _ = dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=dynamo.to_item({"keyHash": key_hash}),
        UpdateExpression="SET " + ", ".join(assignments),
        ConditionExpression="attribute_exists(keyHash) AND "
        "(attribute_not_exists(lastUsedAt) OR lastUsedAt <= :cutoff)",
        ExpressionAttributeValues=dynamo.values(
            {":now": now, ":cutoff": cutoff} | {f":{name}": value for name, value in missing.items()}
        ),
        **({"ExpressionAttributeNames": {f"#{name}": name for name in missing}} if missing else {}),
        ReturnValues="NONE",
    )
    return applied
