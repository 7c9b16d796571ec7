"""Admission decisions used by the gate: which waiting jobs to try and in which order, how to read a
cancelled take-slot transaction, and when a held slot is leaked.

The slot itself is a DynamoDB conditional write (see controlplane.admission.slot_store); these rules only
decide what to attempt, so they cannot break the "never above the limit" invariant, whatever they return.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from controlplane.core.model import parse_timestamp
from controlplane.jobs.execution_end import execution_is_over
from controlplane.jobs.lifecycle import Job, JobStatus

# Bounded so one invocation fits the function timeout even when the waiting room holds stale entries.
MAX_ATTEMPTS_PER_RUN: Final = 50
# A take and its SendTaskSuccess happen within one invocation (timeout 30 s). An ADMITTED job whose
# queue token is still stored this long after the take means that invocation died in between.
REDELIVER_ADMISSION_AFTER: Final = timedelta(seconds=120)
# Waiting jobs whose execution the safety-net sweep looks up per tier and run (one DescribeExecution each).
WAITING_ROOM_CHECKS_PER_RUN: Final = 25
CONDITION_FAILED: Final = "ConditionalCheckFailed"


class TakeOutcome(StrEnum):
    TAKEN = "TAKEN"
    ACCOUNT_FULL = "ACCOUNT_FULL"  # the account cap is reached: stop admitting until a slot frees
    STALE = "STALE"  # the tier or the tenant's share changed since the snapshot (or is full): read again
    NOT_QUEUED = "NOT_QUEUED"  # the job left the waiting room or already holds a lease: skip it
    RETRY = "RETRY"  # contention or throttling: worth trying again shortly


@dataclass(frozen=True, slots=True)
class QueuedJob:
    job_id: str
    tenant_id: str
    tier: str
    queued_at: str
    task_token: str
    execution_arn: str


@dataclass(slots=True)
class AdmissionReport:
    admitted: list[str] = field(default_factory=list)
    dead_tokens: list[str] = field(default_factory=list)
    skipped: int = 0
    stopped_because: str = "no job is waiting"


def queued_job_from(job: Job) -> QueuedJob | None:
    """A waiting-room entry, or None when the (eventually consistent) index entry is not a waiting job."""
    if job.status is not JobStatus.QUEUED or not job.queue_task_token or job.queue_tier is None:
        return None
    return QueuedJob(
        job_id=job.job_id,
        tenant_id=job.tenant_id,
        tier=job.queue_tier.value,
        queued_at=job.queued_at or "",
        task_token=job.queue_task_token,
        execution_arn=job.execution_arn or "",
    )


def order_candidates(jobs: Iterable[QueuedJob]) -> list[QueuedJob]:
    """Oldest first; the job id breaks ties so concurrent gates try candidates in the same order."""
    return sorted(jobs, key=lambda job: (job.queued_at, job.job_id))


def classify_take_failure(codes: Sequence[str | None]) -> TakeOutcome:
    """Read the CancellationReasons of the take transaction, whose items are, in order:
    the account counter, the tier counter, the slot lease, the job, the tenant's share."""
    account_code, tier_code, lease_code, job_code, share_code = [*codes, None, None, None, None, None][:5]
    if account_code == CONDITION_FAILED:
        return TakeOutcome.ACCOUNT_FULL
    if CONDITION_FAILED in (lease_code, job_code):
        return TakeOutcome.NOT_QUEUED
    if CONDITION_FAILED in (tier_code, share_code):
        return TakeOutcome.STALE
    return TakeOutcome.RETRY


def lease_is_leaked(execution_status: str | None) -> bool:
    """A lease is leaked when its execution is over (None: the execution does not exist): nothing will
    release it through the state machine any more."""
    return execution_is_over(execution_status)


def should_redeliver_admission(job: Job | None, acquired_at: str, now: datetime) -> bool:
    """The job holds a slot and is ADMITTED but its queue token was never cleared: resend the admission."""
    if job is None or job.status is not JobStatus.ADMITTED or not job.queue_task_token:
        return False
    try:
        acquired = parse_timestamp(acquired_at)
    except ValueError:
        return True
    return now - acquired >= REDELIVER_ADMISSION_AFTER
