"""Pipeline outcomes and the rendezvous between await_pipeline and pipeline_events.

Either side may come first: await_pipeline stores the task token, pipeline_events stores the outcome.
Whichever update leaves the item holding both (and no ``resumedAt`` claim) resumes the execution, after
claiming ``resumedAt`` with a conditional write, so exactly one side sends the task result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from controlplane.jobs.lifecycle import JobStatus, PipelineOutcome

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


def resume_decision(item: Mapping[str, Any] | None, *, abandoned_before: str | None = None) -> Resume | None:
    """Given the job item right after an update, whether the execution can be resumed now. A resume claim
    made before ``abandoned_before`` (ISO timestamps, compared as strings) no longer stands in the way."""
    claimed_at = str(item.get("resumedAt") or "") if item else ""
    if (
        not item
        or (claimed_at and (abandoned_before is None or claimed_at >= abandoned_before))
        or not item.get("pipelineTaskToken")
        or not item.get("pipelineOutcome")
    ):
        return None
    return Resume(
        job_id=str(item["jobId"]),
        task_token=str(item["pipelineTaskToken"]),
        outcome=PipelineOutcome.model_validate(item["pipelineOutcome"]),
    )


def pipeline_name_from_arn(pipeline_arn: str) -> str:
    """``arn:aws:sagemaker:<region>:<account>:pipeline/<name>`` -> ``<name>``."""
    _, _, resource = pipeline_arn.partition(":pipeline/")
    return resource.split("/", 1)[0]


def is_our_pipeline(pipeline_arn: str, pipeline_name: str) -> bool:
    """SageMaker lowercases pipeline names in the ARNs it reports: compare case-insensitively."""
    return pipeline_name_from_arn(pipeline_arn).lower() == pipeline_name.lower()
