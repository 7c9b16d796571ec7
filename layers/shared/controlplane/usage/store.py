"""The Usage table: per tenant and per tier, per month, atomic counters of jobs, instance-seconds and cost.

Items (key: scope, month):
- ``scope = tenant#<tenantId>``, ``month = YYYY-MM``: a tenant's month; also carries ``usageMonth`` (= month)
  and ``tenantId``, the keys of the sparse ``month-cost`` index;
- ``scope = tier#<tier>``, ``month = YYYY-MM``: a tier's month (no usageMonth: not in the index).
Counters (ADD): jobs, billableSeconds, computeUsd, controlPlaneUsd, costUsd.

Access patterns (key conditions as in template.yaml):
- count a job's cost, exactly once ............ TransactWriteItems: the job (jobId = :j IF
                                                attribute_not_exists(costRecordedAt)) + ADD on the tenant's
                                                and the tier's month items (one transaction, all or nothing)
- a tenant's months, newest first ............. scope = tenant#:t (ScanIndexForward false)
- a tier's months, newest first ............... scope = tier#:tier
- every tenant of a month, most expensive first index month-cost: usageMonth = :m, costUsd descending, paged
No Scan. Every index entry of a month sits in one index partition: at thousands of builds a second, write
sharding would be needed; builds end at a few per second.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.jobs import store as jobs
from controlplane.settings import get_settings
from controlplane.usage.cost import DIGITS, JobCost, MonthUsage

MONTH_COST_INDEX: Final = "month-cost"
MONTH_PAGE_KEYS: Final = frozenset({"scope", "month", "usageMonth", "costUsd"})
TENANT_PAGE_KEYS: Final = frozenset({"scope", "month"})
_TENANT: Final = "tenant#"
_TIER: Final = "tier#"
_ATTEMPTS: Final = 3


def _fixed(value: float, digits: int) -> Decimal:
    """Fixed-point text ("0.00052034", never "5.2034E-4"): the amounts are rounded to ``digits`` already,
    and moto's ADD cannot parse exponents (DynamoDB can)."""
    fixed = Decimal(f"{value:.{digits}f}")
    return fixed if fixed else Decimal(0)  # Decimal("0.000") prints as "0E-3"


def _table() -> str:
    return get_settings().usage_table_name


def _counters(key: Mapping[str, str], cost: JobCost, sets: Mapping[str, str]) -> dict[str, Any]:
    names = {f"#{name}": name for name in sets} | {
        "#jobs": "jobs",
        "#billableSeconds": "billableSeconds",
        "#computeUsd": "computeUsd",
        "#controlPlaneUsd": "controlPlaneUsd",
        "#costUsd": "costUsd",
    }
    values: dict[str, Any] = {f":{name}": value for name, value in sets.items()} | {
        ":one": 1,
        ":seconds": _fixed(cost.billable_seconds, 3),
        ":compute": _fixed(cost.compute_usd, DIGITS),
        ":controlPlane": _fixed(cost.control_plane_usd, DIGITS),
        ":cost": _fixed(cost.total_usd, DIGITS),
    }
    assignments = ", ".join(f"#{name} = :{name}" for name in sets)
    return {
        "Update": {
            "TableName": _table(),
            "Key": dynamo.to_item(key),
            "UpdateExpression": (
                (f"SET {assignments} " if assignments else "")
                + "ADD #jobs :one, #billableSeconds :seconds, #computeUsd :compute, "
                "#controlPlaneUsd :controlPlane, #costUsd :cost"
            ),
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": dynamo.values(values),
        }
    }


def record_job_cost(
    job_id: str, *, tenant_id: str, results: Mapping[str, Any], cost: JobCost, now: str
) -> bool:
    """Record the job's results and cost and count them in its tenant's and tier's month, in one
    transaction. False when they were recorded before (the job's costRecordedAt): nothing is counted."""
    items = [
        jobs.results_update_for_transaction(
            job_id,
            results=results,
            cost=cost.model_dump(mode="json", by_alias=True, exclude_none=True),
            now=now,
        ),
        _counters(
            {"scope": f"{_TENANT}{tenant_id}", "month": cost.month},
            cost,
            {"tenantId": tenant_id, "tier": cost.tier, "usageMonth": cost.month},
        ),
        _counters({"scope": f"{_TIER}{cost.tier}", "month": cost.month}, cost, {"tier": cost.tier}),
    ]
    for attempt in range(_ATTEMPTS):
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            if dynamo.error_code(error) != "TransactionCanceledException":
                raise
            codes = dynamo.cancellation_codes(error)
            if (codes or [None])[0] == "ConditionalCheckFailed":
                return False  # recorded and counted already (or the job is gone)
            # Another write to the job (a token, a status) or a month item at the same moment: try again.
            if "TransactionConflict" not in codes or attempt == _ATTEMPTS - 1:
                raise
            continue
        return True
    return False  # not reached: the last attempt returns or raises


def _usage(item: Mapping[str, Any]) -> MonthUsage:
    return MonthUsage.model_validate(item)


def _query(request: dict[str, Any], start_key: Mapping[str, Any] | None) -> tuple[list[MonthUsage], Any]:
    if start_key:
        request["ExclusiveStartKey"] = dynamo.to_item(start_key)
    response = client("dynamodb").query(**request)
    items = [_usage(dynamo.from_item(raw) or {}) for raw in response.get("Items", [])]
    return items, dynamo.from_item(response.get("LastEvaluatedKey"))


def _months(
    scope: str, *, limit: int, start_key: Mapping[str, Any] | None
) -> tuple[list[MonthUsage], dict[str, Any] | None]:
    return _query(
        {
            "TableName": _table(),
            "KeyConditionExpression": "#scope = :scope",
            "ExpressionAttributeNames": {"#scope": "scope"},
            "ExpressionAttributeValues": dynamo.values({":scope": scope}),
            "ScanIndexForward": False,
            "Limit": limit,
        },
        start_key,
    )


def tenant_months(
    tenant_id: str, *, limit: int, start_key: Mapping[str, Any] | None = None
) -> tuple[list[MonthUsage], dict[str, Any] | None]:
    """A tenant's months, newest first (scope = tenant#:t)."""
    return _months(f"{_TENANT}{tenant_id}", limit=limit, start_key=start_key)


def tier_months(
    tier: str, *, limit: int, start_key: Mapping[str, Any] | None = None
) -> tuple[list[MonthUsage], dict[str, Any] | None]:
    """A tier's months, newest first (scope = tier#:tier)."""
    return _months(f"{_TIER}{tier}", limit=limit, start_key=start_key)


def month_by_cost(
    month: str, *, limit: int, start_key: Mapping[str, Any] | None = None
) -> tuple[list[MonthUsage], dict[str, Any] | None]:
    """Every tenant's usage of ``month``, most expensive first (index month-cost: usageMonth = :m)."""
    return _query(
        {
            "TableName": _table(),
            "IndexName": MONTH_COST_INDEX,
            "KeyConditionExpression": "#usageMonth = :month",
            "ExpressionAttributeNames": {"#usageMonth": "usageMonth"},
            "ExpressionAttributeValues": dynamo.values({":month": month}),
            "ScanIndexForward": False,
            "Limit": limit,
        },
        start_key,
    )
