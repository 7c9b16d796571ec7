"""Record what a build produced and what it cost, once per job, when its pipeline ends.

Called by the rendezvous (pipeline_events, and the gate's sweep when a completion event was lost) after
the outcome is stored and before the execution is resumed, so a tenant who reads SUCCEEDED finds the model
and the cost there. It never stands in the way of the outcome: a failure to read a result is recorded as
unreadable, and any other failure is logged and counted (BuildResultsErrors) while the caller resumes.
"""

from __future__ import annotations

from controlplane.builds import results_store
from controlplane.jobs.lifecycle import Job, PipelineOutcome
from controlplane.observability import count, logger
from controlplane.usage import store as usage
from controlplane.usage.cost import job_cost


def record_build_results(job: Job, outcome: PipelineOutcome, *, now: str) -> bool:
    """Read the build's results from SageMaker, price them, and record both with the usage counters.
    False when they were recorded before (nothing is read or counted again) or could not be recorded."""
    if job.cost_recorded_at:
        return False
    tier = job.tier.value if job.tier else "unknown"
    try:
        failure = outcome.reason if outcome.status.value != "SUCCEEDED" else None
        results = results_store.read(outcome.pipeline_execution_arn, pipeline_failure_reason=failure)
        cost = job_cost(results, tier=tier, ended_at=outcome.at)
        recorded = usage.record_job_cost(
            job.job_id,
            tenant_id=job.tenant_id,
            results=results.model_dump(mode="json", by_alias=True, exclude_none=True),
            cost=cost,
            now=now,
        )
    except Exception:
        logger.exception("Could not record the build's results and cost")
        count("BuildResultsErrors", tier=tier)
        return False
    if recorded:
        count("BuildCostsRecorded", tier=tier)
        logger.info(
            "Build results and cost recorded",
            extra={
                "modelPackageArn": results.model_package_arn,
                "billableSeconds": results.billable_seconds,
                "costUsd": cost.total_usd,
                "unreadable": results.unreadable,
            },
        )
    return recorded
