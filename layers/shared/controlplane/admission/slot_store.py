"""Tier slots: one DynamoDB transaction to take, one to release (docs/contracts.md, "Slot leases").

Take = {account ``running < accountCap`` -> +1; tier ``running < concurrencyLimit + borrowingLimit`` (limits
and fair clock as read) -> +1; put lease if absent; job QUEUED -> ADMITTED; tenant share as read -> charged}.
Release = {delete lease if present; tier, account and share ``running`` -1; job ``slotReleasedAt``}: a second
release is cancelled, so each taken slot is given back exactly once, whoever releases it (the state machine,
the gate, the leak reclaimer, or execution_events when an execution ends without releasing it).

Access patterns of the SlotLeases table:
- take / release a job's slot ....... jobId = :j (put IF attribute_not_exists, delete IF attribute_exists;
                                      release reads the lease first, for its tenant)
- a tier's held slots (reconciler) ... index tier-leases: tier = :tier
"""

from __future__ import annotations

import random
import time
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.admission import share_store as fair_share
from controlplane.admission.decisions import QueuedJob, TakeOutcome, classify_take_failure
from controlplane.admission.fair_share import ACCOUNT_KEY, Capacity, Share, share_id
from controlplane.admission.release import (
    ACCOUNT_COUNTER,
    JOB_STAMP,
    LEASE,
    SHARE_COUNTER,
    TIER_COUNTER,
    Table,
    release_items,
)
from controlplane.admission.scheduling import Admit
from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.core.model import utc_now
from controlplane.jobs import store as jobs
from controlplane.jobs.lifecycle import STATE_QUEUE_WAIT, JobStatus, status_update
from controlplane.observability import logger
from controlplane.settings import get_settings

TIER_LEASES_INDEX: Final = "tier-leases"
_TRANSACTION_ATTEMPTS: Final = 3


def _pause(attempt: int) -> None:
    # Full jitter: concurrent gates contending on one tier item spread out instead of colliding again.
    time.sleep(random.uniform(0, 0.05 * 2**attempt))


def take(job: QueuedJob, *, decision: Admit, share: Share, capacity: Capacity, now: str) -> TakeOutcome:
    """Give ``job`` the slot ``decision`` chose, or say why not, in one transaction:

    1. the account item: ``running < accountCap`` -> +1 (the account cap, across tiers);
    2. the tier item: ``running < concurrencyLimit + borrowingLimit`` with both limits and ``fairClock`` as
       read, and ``running`` below the guarantee for an own slot, at or above it for a borrowed one -> +1 and
       the new clock (never above the tier's limit; one admission per tier at a time);
    3. the lease, put if absent; 4. the job, QUEUED with this token -> ADMITTED (once per job);
    5. the tenant's share, as read (``version``) and below its cap -> +1, usage and tag charged.
    """
    settings = get_settings()
    tier_item = capacity.tiers[job.tier]
    guaranteed = int(tier_item.get("concurrencyLimit", 0))
    borrowing = int(tier_item.get("borrowingLimit", 0))
    items: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": settings.tiers_table_name,
                "Key": dynamo.to_item({"tier": ACCOUNT_KEY}),
                "UpdateExpression": "SET #running = #running + :one",
                "ConditionExpression": "#running < #cap",
                "ExpressionAttributeNames": {"#running": "running", "#cap": "accountCap"},
                "ExpressionAttributeValues": dynamo.values({":one": 1}),
            }
        },
        {
            "Update": {
                "TableName": settings.tiers_table_name,
                "Key": dynamo.to_item({"tier": job.tier}),
                "UpdateExpression": "SET #running = #running + :one, #clock = :clock",
                # The slot is borrowed exactly when the tier already runs its guarantee: checked here on the
                # counter itself, so the lease's and the job's borrowed flag never rest on a stale snapshot
                # (the decision's count may predate releases made since; then it is STALE and decided again).
                "ConditionExpression": (
                    "attribute_exists(#tier) AND #running < :max AND #limit = :guaranteed "
                    "AND #borrowing = :borrowing AND #clock = :seenClock AND "
                    + ("#running >= :guaranteed" if decision.borrowed else "#running < :guaranteed")
                ),
                "ExpressionAttributeNames": {
                    "#running": "running",
                    "#limit": "concurrencyLimit",
                    "#borrowing": "borrowingLimit",
                    "#clock": "fairClock",
                    "#tier": "tier",
                },
                "ExpressionAttributeValues": dynamo.values(
                    {
                        ":one": 1,
                        ":max": guaranteed + borrowing,
                        ":guaranteed": guaranteed,
                        ":borrowing": borrowing,
                        ":clock": decision.tier_clock,
                        ":seenClock": float(tier_item.get("fairClock", 0)),
                    }
                ),
            }
        },
        {
            "Put": {
                "TableName": settings.slot_leases_table_name,
                "Item": dynamo.to_item(
                    {
                        "jobId": job.job_id,
                        "tier": job.tier,
                        "tenantId": job.tenant_id,
                        "executionArn": job.execution_arn,
                        "acquiredAt": now,
                        "borrowed": decision.borrowed,
                        **({"lentBy": decision.lent_by} if decision.lent_by else {}),
                    }
                ),
                "ConditionExpression": "attribute_not_exists(jobId)",
            }
        },
        # Leaving the sparse tier-queue and share-queue indexes (REMOVE queueTier, queueShare) is what takes
        # the job out of the waiting room. The token stays until the admission is delivered. A cancel request
        # made durable first (cancelRequestedAt) is never admitted.
        jobs.update_for_transaction(
            job.job_id,
            # slotBorrowed, slotLentBy: the job explains whose slot it holds (controlplane.jobs.explaining).
            status_update(JobStatus.ADMITTED, at=now, state=STATE_QUEUE_WAIT).extended(
                sets=("#admittedAt = :now", "#slotBorrowed = :borrowed", "#slotLentBy = :lentBy"),
                removes=("#queueTier", "#queueShare"),
                names={
                    "#admittedAt": "admittedAt",
                    "#slotBorrowed": "slotBorrowed",
                    "#slotLentBy": "slotLentBy",
                    "#queueTier": "queueTier",
                    "#queueShare": "queueShare",
                    "#queueTaskToken": "queueTaskToken",
                    "#cancelRequestedAt": "cancelRequestedAt",
                },
                values={
                    ":token": job.task_token,
                    ":borrowed": decision.borrowed,
                    ":lentBy": decision.lent_by or "",
                },
                condition="#queueTaskToken = :token AND attribute_not_exists(#cancelRequestedAt)",
            ),
        ),
        fair_share.take_update(share, decision, now=now),
    ]
    for attempt in range(_TRANSACTION_ATTEMPTS):
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            code = dynamo.error_code(error)
            if code == "TransactionCanceledException":
                outcome = classify_take_failure(dynamo.cancellation_codes(error))
            elif code == "TransactionConflictException":
                outcome = TakeOutcome.RETRY
            else:
                raise
            if outcome is not TakeOutcome.RETRY:
                return outcome
            _pause(attempt)
            continue
        return TakeOutcome.TAKEN
    return TakeOutcome.RETRY


def _table_names() -> dict[Table, str]:
    settings = get_settings()
    return {
        "slotLeases": settings.slot_leases_table_name,
        "tiers": settings.tiers_table_name,
        "fairShare": settings.fair_share_table_name,
        "jobs": settings.jobs_table_name,
    }


def release(job_id: str, tier: str, *, now: str | None = None, execution_arn: str | None = None) -> bool:
    """Give the job's slot back and stamp ``slotReleasedAt`` on the job. True when this call released it,
    False when it was not held (already released, never taken, or, with ``execution_arn``, taken by
    another execution than that one)."""
    held = _lease(job_id)
    if held is None:
        return False
    tenant_id = str(held.get("tenantId") or "")
    values: dict[str, dict[str, str]] = {
        "jobId": {"S": job_id},
        "tier": {"S": tier},
        "shareId": {"S": share_id(tier, tenant_id)},
        "now": {"S": now or utc_now()},
    }
    items = release_items(values.__getitem__, _table_names().__getitem__)
    lease, counter, account, share, job_stamp = (
        items[i] for i in (LEASE, TIER_COUNTER, ACCOUNT_COUNTER, SHARE_COUNTER, JOB_STAMP)
    )
    if execution_arn is not None:
        # Released for an ended execution: only if that execution took the slot.
        lease["Delete"]["ConditionExpression"] += " AND #executionArn = :executionArn"
        lease["Delete"]["ExpressionAttributeNames"] = {"#executionArn": "executionArn"}
        lease["Delete"]["ExpressionAttributeValues"] = {":executionArn": {"S": execution_arn}}
    # A lease from before shares were recorded names no tenant: it has no share counter to give back.
    counters = [counter, account] + ([share] if tenant_id else [])
    stamp: dict[str, Any] | None = job_stamp
    for attempt in range(_TRANSACTION_ATTEMPTS):
        items = [lease, *counters] + ([stamp] if stamp else [])
        try:
            client("dynamodb").transact_write_items(TransactItems=items)
        except ClientError as error:
            code = dynamo.error_code(error)
            if code == "TransactionConflictException":
                _pause(attempt)
                continue
            if code != "TransactionCanceledException":
                raise
            codes = [*dynamo.cancellation_codes(error), *([None] * len(items))][: len(items)]
            lease_code, tier_code, job_code = codes[0], codes[1], codes[-1] if stamp else None
            if lease_code == "ConditionalCheckFailed":
                return False
            if job_code == "ConditionalCheckFailed":
                logger.error("Releasing the slot of a job that does not exist", extra={"jobId": job_id})
                stamp = None
                continue
            if tier_code == "ConditionalCheckFailed":
                return _drop_lease_of_drifted_counter(
                    job_id, tier, [lease, *counters[1:]] + ([stamp] if stamp else [])
                )
            _pause(attempt)
            continue
        return True
    raise RuntimeError(
        f"could not release the slot of job {job_id} in tier {tier} after {_TRANSACTION_ATTEMPTS} attempts"
    )


def _drop_lease_of_drifted_counter(job_id: str, tier: str, items: list[dict[str, Any]]) -> bool:
    """The lease exists but the tier counter is already 0 (someone edited it by hand). Decrementing would
    go negative; deleting the lease alone (and stamping the job) keeps "a lease exists exactly while a slot
    is held" true."""
    logger.error(
        "Tier counter is 0 while a lease exists; dropping the lease only",
        extra={"tier": tier, "jobId": job_id},
    )
    try:
        client("dynamodb").transact_write_items(TransactItems=items)
    except ClientError as error:
        if dynamo.error_code(error) != "TransactionCanceledException":
            raise
        lease_code = next(iter(dynamo.cancellation_codes(error)), None)
        if lease_code == "ConditionalCheckFailed":
            return False
        raise
    return True


def _lease(job_id: str) -> dict[str, Any] | None:
    response = client("dynamodb").get_item(
        TableName=get_settings().slot_leases_table_name,
        Key=dynamo.to_item({"jobId": job_id}),
        ConsistentRead=True,
    )
    return dynamo.from_item(response.get("Item"))


def leases(tier: str) -> list[dict[str, Any]]:
    """Every lease held in the tier (at most its concurrency limit, plus any leaked ones)."""
    result: list[dict[str, Any]] = []
    request: dict[str, Any] = {
        "TableName": get_settings().slot_leases_table_name,
        "IndexName": TIER_LEASES_INDEX,
        "KeyConditionExpression": "#tier = :tier",
        "ExpressionAttributeNames": {"#tier": "tier"},
        "ExpressionAttributeValues": dynamo.values({":tier": tier}),
    }
    while True:
        response = client("dynamodb").query(**request)
        result += [item for item in (dynamo.from_item(raw) for raw in response.get("Items", [])) if item]
        if not response.get("LastEvaluatedKey"):
            return result
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
