"""Safety net for lost pipeline completion events (the gate's scheduled sweep, per tier).

A job holding a slot lease, RUNNING with a pipeline execution, quiet for a grace period: ask SageMaker how its
pipeline execution stands. When it has ended, record the outcome exactly as pipeline_events does
(``record_pipeline_outcome``), which resumes the execution; the state machine then releases the slot and
records the terminal status through its normal path. Bounded per run; one job's error never stops the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from controlplane.admission import slot_store as slots
from controlplane.builds import pipeline_store as pipelines
from controlplane.builds.lost_completions import (
    LOST_COMPLETION_CHECKS_PER_RUN,
    LOST_COMPLETION_GRACE,
    RESUME_CLAIM_ABANDONED_AFTER,
    Suspect,
    is_lost_completion,
    select_for_run,
    suspect_from_job,
)
from controlplane.builds.recording import record_build_results
from controlplane.builds.rendezvous import record_pipeline_outcome, resume_if_ready
from controlplane.core.model import format_timestamp
from controlplane.jobs import store as jobs
from controlplane.observability import bind_job, count, logger, unbind_job

CLAIMANT = "gate:lost-completion-sweep"


@dataclass(slots=True)
class CompletionSweep:
    tier: str
    recovered: list[str] = field(default_factory=list)  # jobs whose lost outcome this run recorded/resumed
    checked: int = 0  # pipeline executions described
    errors: int = 0


def recover_lost_completions(
    tier: str,
    *,
    now: datetime | None = None,
    grace: timedelta = LOST_COMPLETION_GRACE,
    limit: int = LOST_COMPLETION_CHECKS_PER_RUN,
) -> CompletionSweep:
    """Record the outcome of the tier's leased jobs whose pipeline ended without its event reaching us."""
    moment = now or datetime.now(UTC)
    sweep = CompletionSweep(tier=tier)
    suspects: list[Suspect] = []
    for lease in slots.leases(tier):
        try:
            suspect = suspect_from_job(jobs.get(str(lease["jobId"])), now=moment, grace=grace)
        except Exception:
            logger.exception(
                "Lost-completion sweep could not read a job", extra={"jobId": lease.get("jobId")}
            )
            count("LostCompletionSweepErrors", tier=tier)
            sweep.errors += 1
            continue
        if suspect is not None:
            suspects.append(suspect)
    for suspect in select_for_run(suspects, now=moment, limit=limit):
        bind_job(job_id=suspect.job_id, tier=tier)
        try:
            if _recover(suspect, sweep):
                sweep.recovered.append(suspect.job_id)
        except Exception:
            logger.exception("Lost-completion sweep failed for a job")
            count("LostCompletionSweepErrors", tier=tier)
            sweep.errors += 1
        finally:
            unbind_job()
    return sweep


def _recover(suspect: Suspect, sweep: CompletionSweep) -> bool:
    if suspect.outcome_recorded:
        # The event was handled but resuming failed every time: finish the rendezvous (and record the
        # build's results and cost if that was cut short too; counted once whoever gets there).
        job = jobs.get(suspect.job_id)
        if job is not None and job.pipeline_outcome is not None:
            record_build_results(job, job.pipeline_outcome, now=format_timestamp(datetime.now(UTC)))
        resumed = resume_if_ready(
            job,
            claimant=CLAIMANT,
            abandoned_before=format_timestamp(datetime.now(UTC) - RESUME_CLAIM_ABANDONED_AFTER),
        )
        if resumed:
            count("LostCompletionsRecovered", tier=sweep.tier)
            logger.warning("Resumed a build whose pipeline outcome was recorded but never delivered")
        return resumed
    sweep.checked += 1
    state = pipelines.describe(suspect.pipeline_execution_arn)
    if not is_lost_completion(state):
        return False
    recorded = record_pipeline_outcome(
        suspect.job_id,
        state.status,
        pipeline_execution_arn=suspect.pipeline_execution_arn,
        at=format_timestamp(state.last_modified or datetime.now(UTC)),
        failure_reason=state.failure_reason,
        claimant=CLAIMANT,
    )
    if recorded is None or not (recorded.recorded or recorded.resumed):
        return False  # gone, or the event path got there in between
    count("LostCompletionsRecovered", tier=sweep.tier)
    logger.warning(
        "Recovered a lost pipeline completion",
        extra={
            "pipelineExecutionArn": suspect.pipeline_execution_arn,
            "pipelineStatus": state.status,
            "outcome": recorded.outcome.status.value,
            "resumed": recorded.resumed,
        },
    )
    return True
