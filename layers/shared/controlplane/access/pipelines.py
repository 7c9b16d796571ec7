"""SageMaker pipelines: why an execution failed, whether it still runs, stopping it."""

from __future__ import annotations

from typing import Final

from controlplane.access.clients import client

# Statuses in which StopPipelineExecution has something to stop.
STOPPABLE_STATUSES: Final = frozenset({"Executing"})


def failure_reason(pipeline_execution_arn: str) -> str | None:
    """The execution's FailureReason as SageMaker reports it (None when it gives none)."""
    response = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)
    reason = response.get("FailureReason")
    return str(reason) if reason else None


def status(pipeline_execution_arn: str) -> str:
    """Executing, Stopping, Stopped, Failed or Succeeded."""
    response = client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)
    return str(response["PipelineExecutionStatus"])


def stop(pipeline_execution_arn: str, *, client_request_token: str) -> None:
    """Ask SageMaker to stop the execution (idempotent per token: a retry does not stop twice)."""
    client("sagemaker").stop_pipeline_execution(
        PipelineExecutionArn=pipeline_execution_arn, ClientRequestToken=client_request_token
    )
