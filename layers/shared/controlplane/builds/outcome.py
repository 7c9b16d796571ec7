"""Pipeline outcomes and the rendezvous between await_pipeline and pipeline_events.

Either side may come first: await_pipeline stores the task token, pipeline_events stores the outcome.
Whichever update leaves the item holding both (and no ``resumedAt`` claim) resumes the execution, after
claiming ``resumedAt`` with a conditional write, so exactly one side sends the task result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from controlplane.jobs.lifecycle import Job, JobStatus, PipelineOutcome

CANCELLED_BY_TENANT: Final = "cancelled by the tenant: its pipeline execution was stopped"

_SAGEMAKER_TERMINAL: Final[Mapping[str, JobStatus]] = {
    "Succeeded": JobStatus.SUCCEEDED,
    "Failed": JobStatus.FAILED,
    "Stopped": JobStatus.STOPPED,
}


@dataclass(frozen=True, slots=True)
class Resume:
    job_id: str
    task_token: str
    outcome: PipelineOutcome


def is_terminal_pipeline_status(status: str) -> bool:
    return status in _SAGEMAKER_TERMINAL


def outcome_from_status(
    status: str,
    *,
    pipeline_execution_arn: str,
    at: str,
    failure_reason: str | None = None,
    cancelled_by_tenant: bool = False,
) -> PipelineOutcome | None:
    """Map a SageMaker pipeline execution status to the build outcome; None for non-terminal statuses.
    ``cancelled_by_tenant``: the job carries a cancel request (POST /jobs/{jobId}/cancel stopped it)."""
    build_status = _SAGEMAKER_TERMINAL.get(status)
    if build_status is None:
        return None
    if build_status is JobStatus.SUCCEEDED:
        reason = ""
    elif build_status is JobStatus.STOPPED and cancelled_by_tenant:
        reason = CANCELLED_BY_TENANT
    elif build_status is JobStatus.STOPPED:
        reason = "the pipeline execution was stopped"
    else:
        detail = (failure_reason or "").strip()
        reason = (
            f"the pipeline failed: {detail}" if detail else "the pipeline failed (SageMaker gave no reason)"
        )
    return PipelineOutcome(
        status=build_status, reason=reason, at=at, pipeline_execution_arn=pipeline_execution_arn
    )


def resume_decision(job: Job | None, *, abandoned_before: str | None = None) -> Resume | None:
    """Given the job right after an update, whether the execution can be resumed now. A resume claim
    made before ``abandoned_before`` (ISO timestamps, compared as strings) no longer stands in the way."""
    if job is None or not job.pipeline_task_token or job.pipeline_outcome is None:
        return None
    claimed_at = job.resumed_at or ""
    if claimed_at and (abandoned_before is None or claimed_at >= abandoned_before):
        return None
    return Resume(job_id=job.job_id, task_token=job.pipeline_task_token, outcome=job.pipeline_outcome)


def pipeline_name_from_arn(pipeline_arn: str) -> str:
    """``arn:aws:sagemaker:<region>:<account>:pipeline/<name>`` -> ``<name>``."""
    _, _, resource = pipeline_arn.partition(":pipeline/")
    return resource.split("/", 1)[0]


def is_our_pipeline(pipeline_arn: str, pipeline_name: str) -> bool:
    """SageMaker lowercases pipeline names in the ARNs it reports: compare case-insensitively."""
    return pipeline_name_from_arn(pipeline_arn).lower() == pipeline_name.lower()
