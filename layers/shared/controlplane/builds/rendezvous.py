"""Resume a build's execution exactly once, from whichever side (await_pipeline or pipeline_events)
finds both the task token and the pipeline outcome on the job; and record a pipeline's terminal status on
its job (pipeline_events, and the gate's sweep for completion events that were lost)."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.builds.outcome import outcome_from_status, resume_decision
from controlplane.builds.recording import record_build_results
from controlplane.core.errors import TaskTokenDeadError
from controlplane.core.model import utc_now
from controlplane.jobs import execution_store as executions
from controlplane.jobs import store as jobs
from controlplane.jobs.lifecycle import FailureReason, Job, JobStatus, PipelineOutcome
from controlplane.observability import bind_job, count, logger


@dataclass(frozen=True, slots=True)
class RecordedOutcome:
    outcome: PipelineOutcome  # the outcome this call derived from the status
    job: Job  # the job right after the update
    recorded: bool  # this call's outcome is the one on the job (the first recorded one wins)
    resumed: bool  # this call resumed the execution


def record_pipeline_outcome(
    job_id: str,
    status: str,
    *,
    pipeline_execution_arn: str,
    at: str,
    failure_reason: str | None,
    claimant: str,
) -> RecordedOutcome | None:
    """Record a terminal pipeline status on the job and resume its execution when its token is there.
    None when there is no such job; ValueError for a status that is not terminal."""
    # A tenant's cancel is made durable on the job before its pipeline is stopped: read it to say so.
    before = jobs.get(job_id) if status == "Stopped" else None
    cancelled = before is not None and bool(before.cancel_requested_at)
    outcome = outcome_from_status(
        status,
        pipeline_execution_arn=pipeline_execution_arn,
        at=at,
        failure_reason=failure_reason,
        cancelled_by_tenant=cancelled,
    )
    if outcome is None:
        raise ValueError(f"pipeline status {status} is not terminal")
    job = jobs.store_pipeline_outcome(job_id, outcome.wire(), now=utc_now())
    if job is None:
        return None
    bind_job(tenant_id=job.tenant_id, tier=job.tier)
    count(f"Pipelines{outcome.status.value.title()}", tier=job.tier)
    # Before resuming: the job reads SUCCEEDED only with its model and cost there. Never raises.
    record_build_results(job, job.pipeline_outcome or outcome, now=utc_now())
    resumed = resume_if_ready(job, claimant=claimant)
    recorded = job.pipeline_outcome == outcome
    return RecordedOutcome(outcome=outcome, job=job, recorded=recorded, resumed=resumed)


def resume_if_ready(job: Job | None, *, claimant: str, abandoned_before: str | None = None) -> bool:
    """True when this call resumed the execution. ``job`` is the job right after the caller's update.
    ``abandoned_before`` (the sweep): a resume claim made before then is taken over."""
    decision = resume_decision(job, abandoned_before=abandoned_before)
    if decision is None:
        return False
    if not jobs.claim_resume(
        decision.job_id,
        task_token=decision.task_token,
        claimant=claimant,
        now=utc_now(),
        abandoned_before=abandoned_before,
    ):
        return False  # The other side claimed it first.
    tier = job.tier.value if job and job.tier else None
    try:
        executions.send_task_success(decision.task_token, decision.outcome.resume_payload())
    except TaskTokenDeadError as dead:
        # The wait already ended (timed out and the pipeline was stopped): nothing is waiting to be resumed.
        logger.warning("The pipeline wait had already ended", extra={"error": dead.code})
        count("PipelineResumeTokensDead", tier=tier)
        return False
    except Exception:
        jobs.release_resume_claim(decision.job_id, claimant=claimant)
        raise
    count("PipelineWaitsResumed", tier=tier)
    if decision.outcome.status is JobStatus.FAILED:
        # Once per job: exactly one caller resumes it, and the state machine then records FAILED.
        count("JobsFailed", tier=tier, dimensions={"reason": FailureReason.PIPELINE_FAILED.value})
    logger.info("Resumed the build's execution", extra={"outcome": decision.outcome.status.value})
    return True
