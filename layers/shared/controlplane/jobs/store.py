"""The Jobs table.

Access patterns (key conditions as in template.yaml):
- get / claim / transition a job ........ jobId = :j (claim: attribute_not_exists(jobId))
- a tier's waiting room, oldest first ... index tier-queue: queueTier = :tier, ascending queuedAt
- a tenant's waiting jobs in a tier ..... index share-queue: queueShare = :tier#tenant, ascending queuedAt
- a waiting job's position (explaining) .. index tier-queue: queueTier = :tier AND queuedAt < :queuedAt, and
                                           index share-queue: queueShare = :share AND queuedAt < :queuedAt,
                                           Select=COUNT, one page of at most POSITION_COUNT_LIMIT items
- close the job of an ended execution ... jobId = :j IF executionArn = :arn AND status not terminal
- cancel (API) ........................... jobId = :j IF status IN (RECEIVED, VALIDATED) -> CANCELLED, else
                                           IF status IN (QUEUED, ADMITTED, RUNNING) -> SET cancelRequestedAt
- record build results and cost, once ..... jobId = :j IF attribute_not_exists(costRecordedAt), in one
                                           TransactWriteItems with the usage counters (usage.store)

Every status change is a conditional UpdateItem that also appends ``{status, at, state, reason?}`` to
``timeline``; a terminal status is never overwritten.

What leaves this module is a typed ``Job`` (controlplane.jobs.lifecycle), never a raw item. An item that
does not parse raises, except in the waiting-room and open-jobs pages: there it is logged and left out,
so one corrupt item cannot stall admission or the sweep.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, NoReturn

from botocore.exceptions import ClientError
from pydantic import ValidationError

from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.core.errors import JobClosedError, JobNotFoundError, TransitionNotAllowedError
from controlplane.core.model import BoundedCount
from controlplane.jobs.lifecycle import (
    STATE_PIPELINE_WAIT,
    STATE_VALIDATE,
    Job,
    JobStatus,
    StatusUpdate,
    can_transition,
    status_update,
)
from controlplane.observability import logger
from controlplane.settings import get_settings

TIER_QUEUE_INDEX: Final = "tier-queue"
OPEN_JOBS_INDEX: Final = "open-jobs"
SHARE_QUEUE_INDEX: Final = "share-queue"


def _table() -> str:
    return get_settings().jobs_table_name


def _names(*names: str) -> dict[str, str]:
    return {f"#{name}": name for name in names}


def _job(item: Mapping[str, Any] | None) -> Job | None:
    """The job an item holds (None: there is no item)."""
    return None if item is None else Job.model_validate(item)


def _written(job_id: str, item: Mapping[str, Any] | None) -> Job:
    """The job an applied ALL_NEW update returned (it always returns the item)."""
    job = _job(item)
    if job is None:
        raise JobNotFoundError(job_id)
    return job


def _readable(raw_items: list[dict[str, Any]]) -> list[Job]:
    """The jobs of an index page that parse; any other entry is logged and left out (module docstring)."""
    found: list[Job] = []
    for item in filter(None, map(dynamo.from_item, raw_items)):
        try:
            found.append(Job.model_validate(item))
        except ValidationError as error:
            logger.error(
                "A job item does not parse; left out of the page",
                extra={"jobId": item.get("jobId"), "error": str(error)},
            )
    return found


def get(job_id: str) -> Job | None:
    response = client("dynamodb").get_item(
        TableName=_table(), Key=dynamo.to_item({"jobId": job_id}), ConsistentRead=True
    )
    return _job(dynamo.from_item(response.get("Item")))


def claim(item: Mapping[str, Any]) -> Job | None:
    """Create the job item unless it exists. Returns None when created, else the existing job."""
    if not can_transition(None, JobStatus(str(item["status"]))):
        raise TransitionNotAllowedError(str(item["jobId"]), None, str(item["status"]))
    try:
        client("dynamodb").put_item(
            TableName=_table(),
            Item=dynamo.to_item(item),
            ConditionExpression="attribute_not_exists(jobId)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            raise
        return _job(dynamo.old_item(error)) or get(str(item["jobId"])) or Job.model_validate(item)
    return None


def _raise_for_status(job_id: str, old: Job | None, wanted: JobStatus) -> NoReturn:
    if old is None:
        raise JobNotFoundError(job_id)
    if old.is_terminal:
        raise JobClosedError(job_id, old.status.value)
    raise TransitionNotAllowedError(job_id, old.status.value, wanted.value)


def _apply(
    job_id: str, update: StatusUpdate, *, return_values: str = "ALL_NEW"
) -> tuple[bool, dict[str, Any] | None]:
    """Run one status write: (True, the item as ``return_values`` asks) when it applied, (False, the item
    as it was) when the table (or the caller's extra condition) refused it."""
    return dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=dynamo.to_item({"jobId": job_id}),
        UpdateExpression=update.expression,
        ConditionExpression=update.condition,
        ExpressionAttributeNames=update.names,
        ExpressionAttributeValues=dynamo.values(update.values),
        ReturnValues=return_values,
    )


def update_for_transaction(job_id: str, update: StatusUpdate) -> dict[str, Any]:
    """``update`` as one item of a TransactWriteItems (the gate's take)."""
    return {
        "Update": {
            "TableName": _table(),
            "Key": dynamo.to_item({"jobId": job_id}),
            "UpdateExpression": update.expression,
            "ConditionExpression": update.condition,
            "ExpressionAttributeNames": update.names,
            "ExpressionAttributeValues": dynamo.values(update.values),
        }
    }


@dataclass(frozen=True, slots=True)
class Transitioned:
    """Whether the write applied, and the job after it (applied) or as it was (refused; None: no job)."""

    applied: bool
    item: Job | None


def transition(
    job_id: str,
    target: JobStatus,
    *,
    state: str,
    now: str,
    reason: str | None = None,
    only_from: tuple[JobStatus, ...] = (),
    only_execution: str | None = None,
) -> Transitioned:
    """Move a job to ``target`` if the transitions table allows it from its current status, optionally
    only from some of those statuses (``only_from``) or only while ``only_execution`` owns the job."""
    update = status_update(target, at=now, state=state, reason=reason)
    conditions = []
    values: dict[str, Any] = {}
    names: dict[str, str] = {}
    if only_from:
        placeholders = {f":only{status.value.title()}": status.value for status in only_from}
        conditions.append(f"#status IN ({', '.join(placeholders)})")
        values |= placeholders
    if only_execution is not None:
        conditions.append("#executionArn = :executionArn")
        names["#executionArn"] = "executionArn"
        values[":executionArn"] = only_execution
    if conditions:
        update = update.extended(names=names, values=values, condition=" AND ".join(conditions))
    applied, item = _apply(job_id, update)
    return Transitioned(applied=applied, item=_job(item))


def record_validation(
    job_id: str,
    *,
    valid: bool,
    reasons: list[str],
    stats: Mapping[str, Any],
    training_data_uri: str | None,
    model_output_uri: str | None,
    now: str,
) -> None:
    """RECEIVED -> VALIDATED (stats, input and output URIs) or REJECTED (reasons). Replaying the same
    result (a retried invocation) is accepted; anything else raises."""
    status = JobStatus.VALIDATED if valid else JobStatus.REJECTED
    reason = None if valid else "; ".join(reasons)
    update = status_update(status, at=now, state=STATE_VALIDATE, reason=reason, reasons=reasons)
    sets: tuple[str, ...] = ("#stats = :stats",)
    names = _names("stats")
    values: dict[str, Any] = {":stats": dict(stats)}
    if valid:
        sets += ("#trainingDataUri = :trainingDataUri", "#modelOutputUri = :modelOutputUri")
        names |= _names("trainingDataUri", "modelOutputUri")
        values |= {":trainingDataUri": training_data_uri, ":modelOutputUri": model_output_uri}
    applied, old = _apply(
        job_id, update.extended(sets=sets, names=names, values=values), return_values="NONE"
    )
    job = _job(old)
    if applied or (job is not None and job.status is status):
        return
    _raise_for_status(job_id, job, status)


class TokenStored(StrEnum):
    STORED = "STORED"
    NOT_QUEUED = "NOT_QUEUED"  # admitted already, closed, or gone: nothing to wait for
    WRONG_TIER = "WRONG_TIER"
    CANCELLED = "CANCELLED"  # the tenant cancelled it before its token was stored: fail the wait
    # A message of an earlier wait of this job (redelivered after the job was put back in line): its token is
    # spent, and storing it would strand the current wait, whose token no admission could then resume.
    EARLIER_WAIT = "EARLIER_WAIT"
    SHARE_CHANGED = "SHARE_CHANGED"  # the tenant's share changed since it was read: read it and try again


def _same_wait(queue_round: int) -> str:
    # Jobs queued by a definition older than queueRound carry none: they are in their first wait.
    same = "#queueRound = :round"
    return f"({same} OR attribute_not_exists(#queueRound))" if queue_round == 0 else same


def store_queue_token(
    job_id: str,
    *,
    tier: str,
    task_token: str,
    queue_round: int,
    now: str,
    share_id: str,
    share_update: Mapping[str, Any],
) -> tuple[TokenStored, str | None]:
    """Put a QUEUED job in its tier's waiting room (the sparse tier-queue and share-queue indexes) with its
    task token, in one transaction with ``share_update`` (controlplane.admission.share_store.enqueue_update),
    so a waiting job's tenant is always in the tier's backlog. Only a token of the job's current wait
    (``queue_round``, the times it was put back in line) is stored. Returns the outcome and the job's status
    (or tier) when it was not stored."""
    job_update = {
        "Update": {
            "TableName": _table(),
            "Key": dynamo.to_item({"jobId": job_id}),
            "UpdateExpression": (
                "SET #queueTaskToken = :token, #queueTier = :tier, #queueShare = :share, #updatedAt = :now"
            ),
            "ConditionExpression": (
                "#status = :queued AND #tier = :tier AND attribute_not_exists(#cancelRequestedAt) AND "
                + _same_wait(queue_round)
            ),
            "ExpressionAttributeNames": _names(
                "queueTaskToken",
                "queueTier",
                "queueShare",
                "updatedAt",
                "status",
                "tier",
                "cancelRequestedAt",
                "queueRound",
            ),
            "ExpressionAttributeValues": dynamo.values(
                {
                    ":token": task_token,
                    ":tier": tier,
                    ":share": share_id,
                    ":now": now,
                    ":queued": JobStatus.QUEUED.value,
                    ":round": queue_round,
                }
            ),
        }
    }
    try:
        client("dynamodb").transact_write_items(TransactItems=[job_update, dict(share_update)])
    except ClientError as error:
        code = dynamo.error_code(error)
        if code == "TransactionConflictException":
            return TokenStored.SHARE_CHANGED, None
        if code != "TransactionCanceledException":
            raise
        job_code, share_code = [*dynamo.cancellation_codes(error), None, None][:2]
        if job_code == "ConditionalCheckFailed":
            return _why_not_stored(job_id, queue_round)
        if share_code == "ConditionalCheckFailed":
            return TokenStored.SHARE_CHANGED, None
        raise
    return TokenStored.STORED, None


def _why_not_stored(job_id: str, queue_round: int) -> tuple[TokenStored, str | None]:
    job = get(job_id)
    if job is None or job.status is not JobStatus.QUEUED:
        return TokenStored.NOT_QUEUED, None if job is None else job.status.value
    if job.cancel_requested_at:
        return TokenStored.CANCELLED, job.status.value
    if job.queue_round != queue_round:
        return TokenStored.EARLIER_WAIT, str(job.queue_round)
    return TokenStored.WRONG_TIER, job.tier.value if job.tier else None


def clear_queue_token(job_id: str, task_token: str) -> None:
    """Forget a delivered (or dead) admission token; a no-op when another token is stored by now."""
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key=dynamo.to_item({"jobId": job_id}),
            UpdateExpression="REMOVE #queueTaskToken",
            ConditionExpression="#queueTaskToken = :token",
            ExpressionAttributeNames=_names("queueTaskToken"),
            ExpressionAttributeValues=dynamo.values({":token": task_token}),
        )
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            raise


def _oldest_first(
    index: str, attribute: str, value: str, *, limit: int, start_key: Mapping[str, Any] | None = None
) -> tuple[list[Job], Any]:
    """One page of a sparse waiting-room index, oldest first, and where the next page starts."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": index,
        "KeyConditionExpression": f"#{attribute} = :value",
        "ExpressionAttributeNames": _names(attribute),
        "ExpressionAttributeValues": dynamo.values({":value": value}),
        "ScanIndexForward": True,
        "Limit": limit,
    }
    if start_key:
        request["ExclusiveStartKey"] = start_key
    response = client("dynamodb").query(**request)
    return _readable(response.get("Items", [])), response.get("LastEvaluatedKey")


def waiting(tier: str, *, limit: int, start_key: Mapping[str, Any] | None = None) -> tuple[list[Job], Any]:
    """One page of the tier's waiting room, oldest first (index reads are eventually consistent: callers
    must tolerate entries that were admitted a moment ago)."""
    return _oldest_first(TIER_QUEUE_INDEX, "queueTier", tier, limit=limit, start_key=start_key)


def open_jobs(status: JobStatus, *, before: str, limit: int) -> list[Job]:
    """Open jobs in ``status`` nobody has written or swept since ``before``, least recently first (index
    open-jobs: openStatus = :status AND sweepAt < :before; eventually consistent, so a job may have moved
    on a moment ago: the sweep's actions are all conditional)."""
    response = client("dynamodb").query(
        TableName=_table(),
        IndexName=OPEN_JOBS_INDEX,
        KeyConditionExpression="#openStatus = :status AND #sweepAt < :before",
        ExpressionAttributeNames=_names("openStatus", "sweepAt"),
        ExpressionAttributeValues=dynamo.values({":status": status.value, ":before": before}),
        ScanIndexForward=True,
        Limit=limit,
    )
    return _readable(response.get("Items", []))


def look_again_later(job_id: str, *, status: JobStatus, now: str) -> bool:
    """Move a live open job to the back of the sweep's line (sweepAt = now), unless its status changed."""
    applied, _ = dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=dynamo.to_item({"jobId": job_id}),
        UpdateExpression="SET #sweepAt = :now",
        ConditionExpression="#openStatus = :status",
        ExpressionAttributeNames=_names("sweepAt", "openStatus"),
        ExpressionAttributeValues=dynamo.values({":now": now, ":status": status.value}),
        ReturnValues="NONE",
    )
    return applied


# Items one position count may read (a single Query page): the explanation's cost is bounded by it, not by
# how many jobs wait; beyond it the view says "at least".
POSITION_COUNT_LIMIT: Final = 1000


def _count_waiting(index: str, attribute: str, value: str, before: str | None) -> BoundedCount:
    condition = "#key = :key" + (" AND #queuedAt < :before" if before is not None else "")
    names = {"#key": attribute} | ({"#queuedAt": "queuedAt"} if before is not None else {})
    values = {":key": value} | ({":before": before} if before is not None else {})
    response = client("dynamodb").query(
        TableName=_table(),
        IndexName=index,
        KeyConditionExpression=condition,
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=dynamo.values(values),
        Select="COUNT",
        Limit=POSITION_COUNT_LIMIT,
    )
    return BoundedCount(value=int(response.get("Count", 0)), at_least=bool(response.get("LastEvaluatedKey")))


def count_waiting_in_tier(tier: str, *, queued_before: str | None = None) -> BoundedCount:
    """Jobs in the tier's waiting room (queued before ``queued_before``, when given)."""
    return _count_waiting(TIER_QUEUE_INDEX, "queueTier", tier, queued_before)


def count_waiting_in_share(share_id: str, *, queued_before: str | None = None) -> BoundedCount:
    """A tenant's waiting jobs in a tier (queued before ``queued_before``, when given)."""
    return _count_waiting(SHARE_QUEUE_INDEX, "queueShare", share_id, queued_before)


def share_waiting(share_id: str, *, limit: int) -> list[Job]:
    """A tenant's oldest waiting jobs in a tier (index share-queue; eventually consistent, like waiting())."""
    return _oldest_first(SHARE_QUEUE_INDEX, "queueShare", share_id, limit=limit)[0]


def mark_running(job_id: str, *, task_token: str, pipeline_execution_arn: str, now: str) -> Job:
    """Park the pipeline task token on the RUNNING job (the state machine recorded the start), in one
    UpdateItem returning the updated job. A job still ADMITTED (a definition from before the start was
    recorded) takes the ADMITTED -> RUNNING transition with its token.

    A retried await (same job already RUNNING with a token) swaps in its new token and clears any resume
    claim made for the previous token, with a compare-and-set on that token, so a resume is never lost.
    """
    ddb = client("dynamodb")
    token_values = {":token": task_token, ":arn": pipeline_execution_arn, ":now": now}
    applied, old = dynamo.update_if(
        ddb,
        TableName=_table(),
        Key=dynamo.to_item({"jobId": job_id}),
        UpdateExpression="SET #pipelineTaskToken = :token, #pipelineExecutionArn = :arn, #updatedAt = :now",
        ConditionExpression="#status = :running AND attribute_not_exists(#pipelineTaskToken)",
        ExpressionAttributeNames=_names("status", "pipelineTaskToken", "pipelineExecutionArn", "updatedAt"),
        ExpressionAttributeValues=dynamo.values(token_values | {":running": JobStatus.RUNNING.value}),
        ReturnValues="ALL_NEW",
    )
    if applied:
        return _written(job_id, old)
    job = _job(old)
    if job is not None and job.status is JobStatus.ADMITTED:
        update = status_update(JobStatus.RUNNING, at=now, state=STATE_PIPELINE_WAIT).extended(
            sets=("#pipelineTaskToken = :token", "#pipelineExecutionArn = :arn"),
            names=_names("pipelineTaskToken", "pipelineExecutionArn"),
            values={":token": task_token, ":arn": pipeline_execution_arn},
        )
        applied, old = _apply(job_id, update)
        if applied:
            return _written(job_id, old)
        job = _job(old)
    if job is None or job.status is not JobStatus.RUNNING:
        _raise_for_status(job_id, job, JobStatus.RUNNING)
    if job.pipeline_task_token == task_token:
        return job
    try:
        response = ddb.update_item(
            TableName=_table(),
            Key=dynamo.to_item({"jobId": job_id}),
            UpdateExpression=(
                "SET #pipelineTaskToken = :token, #pipelineExecutionArn = :arn, #updatedAt = :now "
                "REMOVE #resumedAt, #resumedBy"
            ),
            ConditionExpression="#status = :running AND #pipelineTaskToken = :previous",
            ExpressionAttributeNames=_names(
                "status", "pipelineTaskToken", "pipelineExecutionArn", "updatedAt", "resumedAt", "resumedBy"
            ),
            ExpressionAttributeValues=dynamo.values(
                {
                    ":running": JobStatus.RUNNING.value,
                    ":token": task_token,
                    ":previous": job.pipeline_task_token or "",
                    ":arn": pipeline_execution_arn,
                    ":now": now,
                }
            ),
            ReturnValues="ALL_NEW",
        )
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            raise
        # Another await stored a token in between: the newest token wins, and it was not ours.
        raise TransitionNotAllowedError(job_id, JobStatus.RUNNING.value, JobStatus.RUNNING.value) from None
    return _written(job_id, dynamo.from_item(response["Attributes"]))


def store_pipeline_outcome(job_id: str, outcome: Mapping[str, Any], *, now: str) -> Job | None:
    """Record the pipeline's terminal outcome (the first one wins) and return the job, or None when no
    such job exists. The status is left to the state machine, which records it after releasing the slot."""
    try:
        response = client("dynamodb").update_item(
            TableName=_table(),
            Key=dynamo.to_item({"jobId": job_id}),
            UpdateExpression=(
                "SET #pipelineOutcome = if_not_exists(#pipelineOutcome, :outcome), #updatedAt = :now"
            ),
            ConditionExpression="attribute_exists(jobId)",
            ExpressionAttributeNames=_names("pipelineOutcome", "updatedAt"),
            ExpressionAttributeValues=dynamo.values({":outcome": dict(outcome), ":now": now}),
            ReturnValues="ALL_NEW",
        )
    except ClientError as error:
        if dynamo.is_condition_failure(error):
            return None
        raise
    return _written(job_id, dynamo.from_item(response["Attributes"]))


def claim_resume(
    job_id: str, *, task_token: str, claimant: str, now: str, abandoned_before: str | None = None
) -> bool:
    """Claim the right to resume the execution: true for exactly one caller per stored token.

    Idempotent for its claimant: when the SDK retried a claim whose first attempt was applied (its answer
    timed out), the retry's condition fails on that very claim, which is still ours. ``abandoned_before``:
    a claim made before then is taken over (its claimant died between its claim and its send)."""
    unclaimed = "attribute_not_exists(#resumedAt)"
    values: dict[str, Any] = {":now": now, ":claimant": claimant, ":token": task_token}
    if abandoned_before is not None:
        unclaimed = "(attribute_not_exists(#resumedAt) OR #resumedAt < :abandoned)"
        values[":abandoned"] = abandoned_before
    applied, before = dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=dynamo.to_item({"jobId": job_id}),
        UpdateExpression="SET #resumedAt = :now, #resumedBy = :claimant",
        ConditionExpression=(
            f"{unclaimed} AND #pipelineTaskToken = :token AND attribute_exists(#pipelineOutcome)"
        ),
        ExpressionAttributeNames=_names("resumedAt", "resumedBy", "pipelineTaskToken", "pipelineOutcome"),
        ExpressionAttributeValues=dynamo.values(values),
    )
    if applied:
        return True
    # The claim on the item is this claimant's own (an earlier attempt of this request), for this token.
    job = _job(before)
    return (
        job is not None
        and job.resumed_by == claimant
        and job.pipeline_task_token == task_token
        and job.pipeline_outcome is not None
    )


def release_resume_claim(job_id: str, *, claimant: str) -> None:
    """Give a claim back after failing to send the result, so a retry (either side) can resume."""
    try:
        client("dynamodb").update_item(
            TableName=_table(),
            Key=dynamo.to_item({"jobId": job_id}),
            UpdateExpression="REMOVE #resumedAt, #resumedBy",
            ConditionExpression="#resumedBy = :claimant",
            ExpressionAttributeNames=_names("resumedAt", "resumedBy"),
            ExpressionAttributeValues=dynamo.values({":claimant": claimant}),
        )
    except ClientError as error:
        if not dynamo.is_condition_failure(error):
            raise


@dataclass(frozen=True, slots=True)
class Closing:
    """Whether this call closed the job, and the job as it was before (None: there is no such job)."""

    closed: bool
    before: Job | None


def close_for_ended_execution(
    job_id: str, *, execution_arn: str, reason: str, state: str, now: str
) -> Closing:
    """Non-terminal -> FAILED with ``reason``, only while ``execution_arn`` owns the job (a duplicate
    delivery's execution never closes the job another execution builds). Leaves the tier's waiting room
    and forgets both task tokens, as the state machine's own "Record ..." states do."""
    update = status_update(JobStatus.FAILED, at=now, state=state, reason=reason).extended(
        names=_names("executionArn"),
        values={":arn": execution_arn},
        condition="attribute_exists(jobId) AND #executionArn = :arn",
    )
    applied, item = _apply(job_id, update, return_values="ALL_OLD")
    return Closing(closed=applied, before=_job(item))


TENANT_JOBS_INDEX: Final = "tenant-jobs"
TENANT_JOBS_PAGE_KEYS: Final = frozenset({"jobId", "tenantId", "createdAt"})


def list_for_tenant(
    tenant_id: str,
    *,
    created_from: str,
    created_to: str,
    status: str | None,
    limit: int,
    start_key: Mapping[str, str] | None,
) -> tuple[list[Job], dict[str, Any] | None]:
    """A tenant's jobs, newest first: index tenant-jobs, tenantId = :t AND createdAt BETWEEN :from AND :to,
    optionally filtered by status (a filter: a page may hold fewer than ``limit`` items and still have a
    next page)."""
    request: dict[str, Any] = {
        "TableName": _table(),
        "IndexName": TENANT_JOBS_INDEX,
        "KeyConditionExpression": "#tenantId = :tenantId AND #createdAt BETWEEN :from AND :to",
        "ExpressionAttributeNames": _names("tenantId", "createdAt"),
        "ExpressionAttributeValues": {":tenantId": tenant_id, ":from": created_from, ":to": created_to},
        "ScanIndexForward": False,
        "Limit": limit,
    }
    if status is not None:
        request["FilterExpression"] = "#status = :status"
        request["ExpressionAttributeNames"] |= _names("status")
        request["ExpressionAttributeValues"][":status"] = status
    request["ExpressionAttributeValues"] = dynamo.values(request["ExpressionAttributeValues"])
    if start_key:
        request["ExclusiveStartKey"] = dynamo.to_item(start_key)
    response = client("dynamodb").query(**request)
    # Every entry must parse (module docstring): the API and offboarding must not miss one of the jobs.
    items = [Job.model_validate(dynamo.from_item(raw)) for raw in response.get("Items", [])]
    return items, dynamo.from_item(response.get("LastEvaluatedKey"))


# ------------------------------------------------------------------ cancellation (POST /jobs/{jobId}/cancel)

_NOT_YET_QUEUED: Final = (JobStatus.RECEIVED.value, JobStatus.VALIDATED.value)
_CANCELLABLE_IN_FLIGHT: Final = (JobStatus.QUEUED.value, JobStatus.ADMITTED.value, JobStatus.RUNNING.value)


@dataclass(frozen=True, slots=True)
class CancelRequest:
    """The outcome of one conditional cancel write: ``item`` is the job after it (``changed``) or as it was
    when the condition failed (None: there is no such job)."""

    changed: bool
    item: Job | None


def cancel_before_queue(job_id: str, *, reason: str, state: str, now: str) -> CancelRequest:
    """RECEIVED / VALIDATED -> CANCELLED at once: nothing was queued, no slot is held, nothing started.
    (Validation then finds the job closed, and queueing's condition fails: the execution just ends.)"""
    update = status_update(JobStatus.CANCELLED, at=now, state=state, reason=reason).extended(
        sets=("#cancelRequestedAt = :now",),
        names=_names("cancelRequestedAt"),
        values={":received": _NOT_YET_QUEUED[0], ":validated": _NOT_YET_QUEUED[1]},
        condition="#status IN (:received, :validated)",
    )
    applied, item = _apply(job_id, update)
    return CancelRequest(changed=applied, item=_job(item))


def request_cancel(job_id: str, *, now: str) -> CancelRequest:
    """Make the cancellation durable on a QUEUED / ADMITTED / RUNNING job (``cancelRequestedAt``, kept from
    the first request): from here on no admission takes a slot for it and no token is stored for it, and
    whoever starts its pipeline stops it. The state machine records the terminal status."""
    applied, item = dynamo.update_if(
        client("dynamodb"),
        TableName=_table(),
        Key=dynamo.to_item({"jobId": job_id}),
        UpdateExpression=(
            "SET #cancelRequestedAt = if_not_exists(#cancelRequestedAt, :now), #updatedAt = :now"
        ),
        ConditionExpression="#status IN (:queued, :admitted, :running)",
        ExpressionAttributeNames=_names("cancelRequestedAt", "updatedAt", "status"),
        ExpressionAttributeValues=dynamo.values(
            {
                ":now": now,
                ":queued": _CANCELLABLE_IN_FLIGHT[0],
                ":admitted": _CANCELLABLE_IN_FLIGHT[1],
                ":running": _CANCELLABLE_IN_FLIGHT[2],
            }
        ),
        ReturnValues="ALL_NEW",
    )
    return CancelRequest(changed=applied, item=_job(item))


# ------------------------------------------------------------------ build results and cost (exactly once)

COST_RECORDED_AT: Final = "costRecordedAt"


def results_update_for_transaction(
    job_id: str, *, results: Mapping[str, Any], cost: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """One item of the TransactWriteItems that records a build's results and cost with its usage counters
    (controlplane.usage.store): applies only once per job (``costRecordedAt`` absent), so a second delivery
    of the outcome, or the sweep's recovery, counts nothing twice."""
    return {
        "Update": {
            "TableName": _table(),
            "Key": dynamo.to_item({"jobId": job_id}),
            "UpdateExpression": "SET #buildResults = :results, #cost = :cost, #costRecordedAt = :now",
            "ConditionExpression": "attribute_exists(jobId) AND attribute_not_exists(#costRecordedAt)",
            "ExpressionAttributeNames": _names("buildResults", "cost", COST_RECORDED_AT),
            "ExpressionAttributeValues": dynamo.values(
                {":results": dict(results), ":cost": dict(cost), ":now": now}
            ),
        }
    }
