"""What the lifecycle sweep does with one open job: the rules, without AWS.

Every job that has not ended sits on the sparse ``open-jobs`` index (``openStatus``, ``sweepAt``). The
sweep reads, per non-terminal status, the jobs nobody has written or looked at for a grace period, asks
Step Functions how each one's execution stands, and:

- **closes** the job (releasing any slot, stopping any pipeline) when its execution is over: nothing
  else will ever move it, whatever status it was left in (RECEIVED, VALIDATED, QUEUED with or without a
  token, ADMITTED, RUNNING);
- **resumes** the execution when the pipeline's outcome is recorded but nobody resumed the wait;
- otherwise **looks again later** (``sweepAt`` moves to now, the back of the line), and counts the job
  as **overdue** when it has been open longer than its tier allows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from controlplane.builds.lost_completions import claim_abandoned
from controlplane.core.model import parse_timestamp
from controlplane.jobs.execution_end import execution_is_over
from controlplane.jobs.lifecycle import NON_TERMINAL_STATUSES, Job, JobStatus

# Validation runs up to 900 s; an hour of margin on top of the tier's own waits covers retries and sweeps.
VALIDATION_ALLOWANCE_SECONDS: Final = 900
ALLOWANCE_MARGIN_SECONDS: Final = 3600
# Open jobs one sweep run looks at (one DescribeExecution each), well inside the gate's 30 s.
SWEEP_LIMIT: Final = 50
# Oldest-looked-at first, in this order: the earliest statuses are the cheapest to close.
SWEEP_ORDER: Final = tuple(sorted(NON_TERMINAL_STATUSES, key=list(JobStatus).index))


class Action(StrEnum):
    CLOSE = "CLOSE"
    RESUME = "RESUME"
    LOOK_AGAIN = "LOOK_AGAIN"


@dataclass(frozen=True, slots=True)
class OpenJob:
    job_id: str
    status: JobStatus
    tier: str | None
    execution_arn: str | None
    created_at: str | None
    outcome_recorded: bool
    resumed_at: str | None  # when a resume was claimed (a claim left too long is taken over)
    waiting_for_pipeline: bool  # a pipeline task token is parked


def open_job_from(job: Job) -> OpenJob | None:
    """The sweep's view of an open-jobs index entry, or None when the entry is not an open job."""
    # The index's own key: look_again_later's condition compares against it.
    status = job.open_status or job.status
    if status not in NON_TERMINAL_STATUSES:
        return None
    return OpenJob(
        job_id=job.job_id,
        status=status,
        tier=job.tier.value if job.tier else None,
        execution_arn=job.execution_arn or None,
        created_at=job.created_at or None,
        outcome_recorded=job.pipeline_outcome is not None,
        resumed_at=job.resumed_at or None,
        waiting_for_pipeline=bool(job.pipeline_task_token),
    )


def decide(job: OpenJob, execution_status: str | None, *, now: datetime) -> Action:
    """What to do with an open job whose execution stands at ``execution_status`` (None: it does not
    exist) at ``now``."""
    if execution_is_over(execution_status):
        return Action.CLOSE
    unclaimed = job.resumed_at is None or claim_abandoned(job.resumed_at, now)
    if job.status is JobStatus.RUNNING and job.outcome_recorded and job.waiting_for_pipeline and unclaimed:
        return Action.RESUME
    return Action.LOOK_AGAIN


def allowance_seconds(*, queue_wait_seconds: int, pipeline_wait_seconds: int) -> int:
    """How long a job of a tier may stay open: validation, its longest wait for a slot, its longest wait
    for the pipeline, and a margin."""
    return (
        VALIDATION_ALLOWANCE_SECONDS + queue_wait_seconds + pipeline_wait_seconds + ALLOWANCE_MARGIN_SECONDS
    )


def is_overdue(job: OpenJob, *, now: datetime, allowance: int | None) -> bool:
    if allowance is None or job.created_at is None:
        return False
    return now - parse_timestamp(job.created_at) > timedelta(seconds=allowance)
