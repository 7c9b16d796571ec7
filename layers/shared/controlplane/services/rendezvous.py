"""Resume a build's execution exactly once, from whichever side (await_pipeline or pipeline_events)
finds both the task token and the pipeline outcome on the job."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.access import executions, jobs
from controlplane.domain.errors import TaskTokenDeadError
from controlplane.domain.models import utc_now
from controlplane.domain.pipeline_outcome import resume_decision
from controlplane.observability import count, logger


def resume_if_ready(item: Mapping[str, Any] | None, *, claimant: str) -> bool:
    """True when this call resumed the execution. ``item`` is the job right after the caller's update."""
    decision = resume_decision(item)
    if decision is None:
        return False
    if not jobs.claim_resume(
        decision.job_id, task_token=decision.task_token, claimant=claimant, now=utc_now()
    ):
        return False  # The other side claimed it first.
    tier = str(item.get("tier")) if item and item.get("tier") else None
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
    logger.info("Resumed the build's execution", extra={"outcome": decision.outcome.status.value})
    return True
