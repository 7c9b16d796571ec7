"""SageMaker pipelines: how an execution stands, why it failed, whether it still runs, stopping it."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from controlplane.builds.lost_completions import PipelineExecutionState
from controlplane.core.clients import client, translated

# Statuses in which StopPipelineExecution has something to stop.
STOPPABLE_STATUSES: Final = frozenset({"Executing"})


@translated
def failure_reason(pipeline_execution_arn: str) -> str | None:
    """The execution's FailureReason as SageMaker reports it (None when it gives none)."""
    response = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)
    reason = response.get("FailureReason")
    return str(reason) if reason else None


@translated
def describe(pipeline_execution_arn: str) -> PipelineExecutionState:
    """Status, FailureReason (the field failure_reason() reads) and LastModifiedTime in one call."""
    response = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)
    reason = response.get("FailureReason")
    modified = response.get("LastModifiedTime")
    return PipelineExecutionState(
        status=str(response["PipelineExecutionStatus"]),
        failure_reason=str(reason) if reason else None,
        last_modified=modified if isinstance(modified, datetime) else None,
    )


@translated
def status(pipeline_execution_arn: str) -> str:
    """Executing, Stopping, Stopped, Failed or Succeeded."""
    response = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)
    return str(response["PipelineExecutionStatus"])


@translated
def stop(pipeline_execution_arn: str, *, client_request_token: str) -> None:
    """Ask SageMaker to stop the execution (idempotent per token: a retry does not stop twice)."""
    client("sagemaker").stop_pipeline_execution(
        PipelineExecutionArn=pipeline_execution_arn, ClientRequestToken=client_request_token
    )


@translated
def find_by_display_name(pipeline_name: str, display_name: str, *, created_after: datetime) -> str | None:
    """The execution of ``pipeline_name`` started with ``display_name`` (the job id) since
    ``created_after``, or None: for a job that was admitted but ended before its start was recorded.
    Newest first, stopping at the first page older than ``created_after``, so the work stays bounded."""
    pages = (
        client("sagemaker")
        .get_paginator("list_pipeline_executions")
        .paginate(
            PipelineName=pipeline_name,
            CreatedAfter=created_after,
            SortBy="CreationTime",
            SortOrder="Descending",
        )
    )
    for page in pages:
        for summary in page.get("PipelineExecutionSummaries", []):
            if summary.get("PipelineExecutionDisplayName") == display_name:
                return str(summary["PipelineExecutionArn"])
    return None
