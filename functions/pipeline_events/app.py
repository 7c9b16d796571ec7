"""pipeline_events: record the shared pipeline's terminal status on the job and resume its execution.

In: EventBridge "SageMaker Model Building Pipeline Execution Status Change". The job id is the
execution's display name (the state machine starts the pipeline with PipelineExecutionDisplayName = jobId).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from controlplane.builds import pipeline_store as pipelines
from controlplane.builds.outcome import is_our_pipeline, is_terminal_pipeline_status
from controlplane.builds.rendezvous import record_pipeline_outcome
from controlplane.core.errors import AwsServiceError
from controlplane.core.model import format_timestamp
from controlplane.observability import bind_job, instrumented, logger
from controlplane.settings import get_settings
from controlplane.uploads.keys import is_job_id

settings = get_settings()


class PipelineExecutionStatusDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    pipeline_arn: str = Field(alias="pipelineArn")
    pipeline_execution_arn: str = Field(alias="pipelineExecutionArn")
    pipeline_execution_display_name: str = Field(alias="pipelineExecutionDisplayName")
    current_pipeline_execution_status: str = Field(alias="currentPipelineExecutionStatus")
    previous_pipeline_execution_status: str | None = Field(
        default=None, alias="previousPipelineExecutionStatus"
    )
    execution_start_time: str | None = Field(default=None, alias="executionStartTime")
    execution_end_time: str | None = Field(default=None, alias="executionEndTime")
    pipeline_execution_description: str | None = Field(default=None, alias="pipelineExecutionDescription")


class PipelineExecutionStatusChangeEvent(EventBridgeModel):  # type: ignore[misc]
    detail: PipelineExecutionStatusDetail  # type: ignore[assignment]


def _failure_reason(pipeline_execution_arn: str) -> str | None:
    try:
        return pipelines.failure_reason(pipeline_execution_arn)
    except AwsServiceError as error:
        # The outcome matters more than its detail: record FAILED with what we know.
        logger.exception("Could not read the pipeline's failure reason")
        return f"(its failure reason could not be read: {error})"


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = parse(event=event, model=PipelineExecutionStatusChangeEvent)
    detail = change.detail
    status = detail.current_pipeline_execution_status
    job_id = detail.pipeline_execution_display_name
    if not is_our_pipeline(detail.pipeline_arn, settings.pipeline_name):
        logger.info("Ignored: another pipeline", extra={"pipelineArn": detail.pipeline_arn})
        return {"ignored": "another pipeline"}
    if not is_terminal_pipeline_status(status):
        return {"ignored": f"non-terminal status {status}"}
    if not is_job_id(job_id):
        logger.warning("Ignored: execution display name is not a job id", extra={"displayName": job_id})
        return {"ignored": "not a control plane execution"}
    bind_job(job_id=job_id)

    reason = _failure_reason(detail.pipeline_execution_arn) if status == "Failed" else None
    recorded = record_pipeline_outcome(
        job_id,
        status,
        pipeline_execution_arn=detail.pipeline_execution_arn,
        at=format_timestamp(change.time),
        failure_reason=reason,
        claimant=f"pipeline_events:{context.aws_request_id}",
    )
    if recorded is None:
        logger.warning("Ignored: no such job")
        return {"ignored": "no such job"}
    outcome = recorded.outcome
    logger.info(
        "Pipeline outcome recorded",
        extra={"outcome": outcome.status.value, "reason": outcome.reason, "resumed": recorded.resumed},
    )
    return {"jobId": job_id, "outcome": outcome.status.value, "resumed": recorded.resumed}
