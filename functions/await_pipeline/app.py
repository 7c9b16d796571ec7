"""await_pipeline: mark the job RUNNING and park the pipeline task token (no polling).

In: {taskToken, jobId, tenantId, pipelineExecutionArn}. If pipeline_events already stored the outcome,
the execution is resumed at once; otherwise pipeline_events resumes it when the pipeline finishes.
A job the tenant cancelled before its pipeline was recorded has that pipeline stopped here (its Stopped
event then ends the build STOPPED, "cancelled by the tenant").
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from controlplane.builds.rendezvous import resume_if_ready
from controlplane.core.model import utc_now
from controlplane.jobs import store as jobs
from controlplane.jobs.cancelling import stop_cancelled_pipeline
from controlplane.observability import bind_job, instrumented, logger
from controlplane.settings import get_settings
from controlplane.uploads.keys import JOB_ID_REGEX

settings = get_settings()


class AwaitPipelineRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    task_token: str = Field(alias="taskToken", min_length=1)
    job_id: str = Field(alias="jobId", pattern=JOB_ID_REGEX)
    tenant_id: str = Field(alias="tenantId", min_length=1)
    pipeline_execution_arn: str = Field(alias="pipelineExecutionArn", pattern=r"^arn:[a-z-]+:sagemaker:")


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = AwaitPipelineRequest.model_validate(event)
    bind_job(tenant_id=request.tenant_id, job_id=request.job_id)
    # One atomic UpdateItem stores the token and returns the whole job: if the outcome is already there,
    # this side resumes; if not, the outcome's writer will see the token (exactly one of us claims).
    job = jobs.mark_running(
        request.job_id,
        task_token=request.task_token,
        pipeline_execution_arn=request.pipeline_execution_arn,
        now=utc_now(),
    )
    bind_job(tier=job.tier)
    if job.cancel_requested_at and stop_cancelled_pipeline(job):
        logger.info("The tenant cancelled the job before its pipeline started; stopped the pipeline")
    resumed = resume_if_ready(job, claimant=f"await_pipeline:{context.aws_request_id}")
    logger.info("Waiting for the pipeline" if not resumed else "Pipeline had already finished; resumed")
    return {"jobId": request.job_id, "status": job.status.value, "resumed": resumed}
