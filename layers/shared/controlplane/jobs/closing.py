"""Closing the job of a build whose execution is over without having recorded an outcome.

Used by execution_events (the execution's ABORTED / TIMED_OUT / FAILED status-change event), by the gate's
sweep (leaked leases and the waiting room) and by admission (a dead task token of an ended execution).
Every step is conditional, so any number of these running for the same execution, in any order, close the
job once and release its slot once:

1. its slot, if that execution holds one, is released (the lease names the execution that took it);
2. the job becomes FAILED with a reason, unless it is terminal already or another execution owns it;
3. its pipeline execution, if one is recorded and still executing, is stopped (nothing would wait for it).

The slot goes first, as in the state machine: whoever reads a terminal job finds its slot free.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Final

from controlplane.admission import slot_store as slots
from controlplane.builds import pipeline_store as pipelines
from controlplane.core.errors import AwsServiceError
from controlplane.core.model import parse_timestamp, utc_now
from controlplane.jobs import store as jobs
from controlplane.jobs.execution_end import ExecutionEnd, closing_reason, closing_state, failure_reason
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.observability import count, logger
from controlplane.settings import get_settings

STOP_REQUEST_PREFIX: Final = "stop-"  # the same ClientRequestToken the state machine's overdue stop uses


@dataclass(frozen=True, slots=True)
class BuildClosing:
    job_id: str
    job_found: bool
    owned: bool  # the execution is the job's own (not a duplicate delivery's)
    closed: bool  # this call made the job FAILED
    status: str | None  # the job's status after this call
    tier: str | None
    released: bool  # this call released the job's slot
    pipeline_stopped: bool


def close_build(
    job_id: str, *, execution_arn: str, end: ExecutionEnd, tier: str | None = None, detected_by: str
) -> BuildClosing:
    """Close the job of ``execution_arn``, which is over (``end``), release its slot and stop its pipeline.

    ``tier`` is the lease's tier when the caller knows a lease is held (the sweep), so that the lease is
    released even when its job is gone. ``detected_by`` names the caller in logs and metrics.
    """
    now = utc_now()
    reason = closing_reason(end)
    job = jobs.get(job_id)
    owned = job is not None and job.execution_arn == execution_arn
    tier = tier or (job.tier.value if job and job.tier else None)
    context = {
        "jobId": job_id,
        "tenantId": job.tenant_id if job else None,
        "tier": tier,
        "executionArn": execution_arn,
        "executionStatus": end.status,
        "detectedBy": detected_by,
    }

    # A job that never left the waiting room holds no slot: the take sets admittedAt in its transaction.
    # (With its execution over, no admission can deliver any more: a take meanwhile finds the token dead
    # and comes here too.)
    may_hold_slot = job is None or (owned and bool(job.admitted_at))
    released = False
    if tier and may_hold_slot:
        released = slots.release(job_id, tier, now=now, execution_arn=execution_arn)
        if released:
            count("SlotsReleasedAfterExecutionEnded", tier=tier)
            logger.warning("Released the slot of an execution that ended without releasing it", extra=context)

    closing = jobs.close_for_ended_execution(
        job_id, execution_arn=execution_arn, reason=reason, state=closing_state(end), now=now
    )
    job = closing.before if closing.before is not None else job
    if closing.closed:
        count("JobsClosedAfterExecutionEnded", tier=tier)
        count("JobsFailed", tier=tier, dimensions={"reason": failure_reason(end).value})
        logger.warning(
            "Closed the job of an execution that ended without recording its outcome",
            extra=context | {"previousStatus": job.status.value if job else None, "reason": reason},
        )

    pipeline_stopped = job is not None and owned and _stop_pipeline(job, context)
    status = JobStatus.FAILED.value if closing.closed else (job.status.value if job else None)
    return BuildClosing(
        job_id=job_id,
        job_found=job is not None,
        owned=owned,
        closed=closing.closed,
        status=status,
        tier=tier,
        released=released,
        pipeline_stopped=pipeline_stopped,
    )


def _stop_pipeline(job: Job, context: dict[str, Any]) -> bool:
    """Stop the job's pipeline execution if it still runs: with the build's execution over, nothing waits
    for it, and it would go on spending compute. Best effort: a failure is logged and counted."""
    if job.pipeline_outcome is not None:
        return False  # its terminal status is recorded: nothing runs
    tier = context.get("tier")
    try:
        pipeline_arn = job.pipeline_execution_arn or _unrecorded_pipeline(job)
        if not pipeline_arn:
            return False  # never started
        if pipelines.status(pipeline_arn) not in pipelines.STOPPABLE_STATUSES:
            return False
        pipelines.stop(pipeline_arn, client_request_token=f"{STOP_REQUEST_PREFIX}{job.job_id}")
    except AwsServiceError:
        logger.exception("Could not stop the pipeline of a closed job", extra=context)
        count("PipelineStopErrors", tier=tier)
        return False
    count("PipelinesStoppedAfterExecutionEnded", tier=tier)
    logger.warning("Stopped the pipeline of a closed job", extra=context | {"pipelineArn": pipeline_arn})
    return True


def _unrecorded_pipeline(job: Job) -> str | None:
    """An admitted job whose execution ended between StartPipelineExecution and "Record that the pipeline
    started" may have a pipeline that nobody recorded: find it by its display name (the job id)."""
    if not job.admitted_at:
        return None  # never admitted: never started
    return pipelines.find_by_display_name(
        get_settings().pipeline_name,
        job.job_id,
        created_after=parse_timestamp(job.admitted_at) - timedelta(minutes=1),
    )
