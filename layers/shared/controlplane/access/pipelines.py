"""SageMaker pipelines: why an execution failed."""

from __future__ import annotations

from controlplane.access.clients import client


def failure_reason(pipeline_execution_arn: str) -> str | None:
    """The execution's FailureReason as SageMaker reports it (None when it gives none)."""
    response = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)
    reason = response.get("FailureReason")
    return str(reason) if reason else None
