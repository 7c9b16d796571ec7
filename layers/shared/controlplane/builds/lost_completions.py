"""Lost pipeline completions: which running jobs to ask SageMaker about, and what its answer means.

The normal path is event driven (the pipeline's status-change event -> pipeline_events -> resume). When that
event is lost, the job would sit RUNNING until its wait times out. The gate's scheduled sweep looks at the
jobs holding a slot lease that have been quiet for a grace period (so the event path wins whenever it works),
asks SageMaker for their pipeline execution's status, and records a terminal one as pipeline_events would.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from controlplane.builds.outcome import is_terminal_pipeline_status
from controlplane.core.model import parse_timestamp
from controlplane.jobs.lifecycle import Job, JobStatus

# A resume claim this old was abandoned: its claimant (a Lambda with a 30 s Timeout, retried twice) died
# between its claim and its SendTaskSuccess; the sweep takes the claim over.
RESUME_CLAIM_ABANDONED_AFTER: Final = timedelta(minutes=15)
# Long enough for EventBridge's and Lambda's own retries of a status event to have run their course.
LOST_COMPLETION_GRACE: Final = timedelta(minutes=5)
# DescribePipelineExecution calls per tier and run (each a suspect job); the rest wait for the next runs.
LOST_COMPLETION_CHECKS_PER_RUN: Final = 10


@dataclass(frozen=True, slots=True)
class Suspect:
    """A running job whose pipeline may have ended without us hearing of it."""

    job_id: str
    tier: str
    pipeline_execution_arn: str
    updated_at: str
    # The outcome is already on the job (its event was handled) but the execution was never resumed.
    outcome_recorded: bool = False


@dataclass(frozen=True, slots=True)
class PipelineExecutionState:
    """What DescribePipelineExecution says about an execution."""

    status: str
    failure_reason: str | None = None
    last_modified: datetime | None = None


def suspect_from_job(job: Job | None, *, now: datetime, grace: timedelta) -> Suspect | None:
    """The job as a suspect, or None when it is not one: not RUNNING, no pipeline execution recorded, already
    resumed, or updated within ``grace`` (its event may still be on its way)."""
    if job is None or job.status is not JobStatus.RUNNING:
        return None
    if job.resumed_at and not claim_abandoned(job.resumed_at, now):
        return None
    arn = job.pipeline_execution_arn
    updated_at = job.updated_at
    if not arn or not updated_at:
        return None
    try:
        quiet_since = parse_timestamp(updated_at)
    except ValueError:
        return None
    if now - quiet_since < grace:
        return None
    return Suspect(
        job_id=job.job_id,
        tier=job.tier.value if job.tier else "",
        pipeline_execution_arn=arn,
        updated_at=updated_at,
        outcome_recorded=job.pipeline_outcome is not None,
    )


def claim_abandoned(claimed_at: str, now: datetime) -> bool:
    """A resume claim made RESUME_CLAIM_ABANDONED_AFTER ago or more (or unreadable) no longer holds."""
    try:
        return now - parse_timestamp(claimed_at) >= RESUME_CLAIM_ABANDONED_AFTER
    except ValueError:
        return True


def select_for_run(suspects: Iterable[Suspect], *, now: datetime, limit: int) -> list[Suspect]:
    """At most ``limit`` suspects, rotating with the minute over the whole (job id ordered) set, so that jobs
    whose long pipelines are still executing cannot keep a lost completion from ever being looked at."""
    ordered: Sequence[Suspect] = sorted(suspects, key=lambda suspect: suspect.job_id)
    if limit <= 0 or not ordered:
        return []
    if len(ordered) <= limit:
        return list(ordered)
    minute = int(now.timestamp() // 60)
    start = (minute * limit) % len(ordered)
    return [ordered[(start + offset) % len(ordered)] for offset in range(limit)]


def is_lost_completion(state: PipelineExecutionState) -> bool:
    """The pipeline has ended (Succeeded, Failed, Stopped): its outcome can be recorded now."""
    return is_terminal_pipeline_status(state.status)
