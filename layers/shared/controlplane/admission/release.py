"""The release of a slot, defined once: the TransactWriteItems that gives a job's slot back.

Deleting the lease (only if present) and decrementing the tier, account and tenant-share counters in
one transaction is what makes release exactly-once, whoever releases. The same items serve both
writers: ``admission.slot_store.release`` renders them with the job's values, and ``make asl``
(scripts/asl_conditions.py) renders them with the state machine's JSONPath into "Release the job's
slot"; a unit test fails when the committed definition differs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from controlplane.admission.fair_share import ACCOUNT_KEY

# The values a release needs, by name: each writer says how to write them (a literal attribute value,
# or a JSONPath the state machine resolves).
Slot = Literal["jobId", "tier", "shareId", "now"]
Table = Literal["slotLeases", "tiers", "fairShare", "jobs"]


def release_items(
    value: Callable[[Slot], dict[str, str]], table: Callable[[Table], str]
) -> list[dict[str, Any]]:
    """The release transaction, in DynamoDB's attribute-value form. ``value(name)`` gives the attribute
    value of a slot (``{"S": ...}`` or ``{"S.$": path}``), ``table(name)`` a table name."""
    return [
        # 1. The lease, only if present: a second release is cancelled here.
        {
            "Delete": {
                "TableName": table("slotLeases"),
                "Key": {"jobId": value("jobId")},
                "ConditionExpression": "attribute_exists(jobId)",
            }
        },
        # 2. The tier's counter, never below zero (a drifted counter is repaired by the reclaimer).
        {
            "Update": {
                "TableName": table("tiers"),
                "Key": {"tier": value("tier")},
                "UpdateExpression": "SET #running = #running - :one",
                "ConditionExpression": "#running > :zero",
                "ExpressionAttributeNames": {"#running": "running"},
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
            }
        },
        # 3. and 4. The account's and the tenant's share counters follow the tier's.
        _decrement(table("tiers"), {"tier": {"S": ACCOUNT_KEY}}),
        _decrement(table("fairShare"), {"shareId": value("shareId")}),
        # 5. The end of [admittedAt, slotReleasedAt], the interval the job held a slot; conditional, so a
        # release never creates a stub job item.
        {
            "Update": {
                "TableName": table("jobs"),
                "Key": {"jobId": value("jobId")},
                "UpdateExpression": "SET #slotReleasedAt = :now",
                "ConditionExpression": "attribute_exists(jobId)",
                "ExpressionAttributeNames": {"#slotReleasedAt": "slotReleasedAt"},
                "ExpressionAttributeValues": {":now": value("now")},
            }
        },
    ]


def _decrement(table_name: str, key: dict[str, dict[str, str]]) -> dict[str, Any]:
    """running - 1, unconditionally: the lease delete in the same transaction makes it happen once."""
    return {
        "Update": {
            "TableName": table_name,
            "Key": key,
            "UpdateExpression": "ADD #running :minusOne",
            "ExpressionAttributeNames": {"#running": "running"},
            "ExpressionAttributeValues": {":minusOne": {"N": "-1"}},
        }
    }


LEASE, TIER_COUNTER, ACCOUNT_COUNTER, SHARE_COUNTER, JOB_STAMP = range(5)
