"""execution_events: close the job of a build whose execution ended without recording its outcome.

In: EventBridge "Step Functions Execution Status Change" for the TrainingJob state machine, status ABORTED
(StopExecution), TIMED_OUT (the definition's TimeoutSeconds) or FAILED. The state machine records FAILED
itself before its Fail states, so most FAILED events find the job closed already and change nothing.

The job id is derived from the execution's input (the S3 "Object Created" event), exactly as register_upload
derives it. Closing, releasing the slot and stopping the pipeline are conditional (see
controlplane.jobs.closing), so a redelivered event changes nothing twice; a freed slot goes to the
tier's next waiting job at once.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import (
    EventBridgeModel,
    S3EventNotificationEventBridgeModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controlplane.admission import gate as admission
from controlplane.jobs.closing import close_build
from controlplane.jobs.execution_end import UNRECORDED_ENDINGS, ExecutionEnd, job_id_of_upload_event
from controlplane.observability import bind_job, count, instrumented, logger
from controlplane.settings import get_settings

settings = get_settings()


class ExecutionDataDetails(BaseModel):
    included: bool


class ExecutionStatusChangeDetail(BaseModel):
    """The event's detail as Step Functions sends it (dates in epoch milliseconds)."""

    model_config = ConfigDict(populate_by_name=True)

    execution_arn: str = Field(alias="executionArn", min_length=1)
    state_machine_arn: str = Field(alias="stateMachineArn", min_length=1)
    name: str
    status: str
    start_date: int | None = Field(default=None, alias="startDate")
    stop_date: int | None = Field(default=None, alias="stopDate")
    # Null when too large to fit in the event (inputDetails.included is then false).
    input: str | None = None
    input_details: ExecutionDataDetails | None = Field(default=None, alias="inputDetails")
    output: str | None = None
    output_details: ExecutionDataDetails | None = Field(default=None, alias="outputDetails")
    error: str | None = None
    cause: str | None = None


class ExecutionStatusChangeEvent(EventBridgeModel):  # type: ignore[misc]
    detail: ExecutionStatusChangeDetail  # type: ignore[assignment]


def _metric_name(status: str) -> str:
    return "Executions" + "".join(part.title() for part in status.split("_"))  # ExecutionsTimedOut


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    detail = parse(event=event, model=ExecutionStatusChangeEvent).detail
    logger.append_keys(executionArn=detail.execution_arn, executionStatus=detail.status)
    if detail.state_machine_arn != settings.state_machine_arn:
        logger.info("Ignored: another state machine", extra={"stateMachineArn": detail.state_machine_arn})
        return {"ignored": "another state machine"}
    if detail.status not in UNRECORDED_ENDINGS:
        return {"ignored": f"status {detail.status}"}
    if detail.input is None:
        # Without the input there is no job id, and no index finds a job by execution: the gate's sweep
        # (leases and waiting room) closes it instead. S3 events are small, so this should never happen.
        logger.error("The event carries no execution input; the gate's sweep must close this job")
        count("ExecutionEventsWithoutInput")
        return {"ignored": "the event carries no execution input"}
    try:
        upload = S3EventNotificationEventBridgeModel.model_validate_json(detail.input)
    except ValidationError:
        logger.warning("Ignored: the execution's input is not an S3 upload event")
        return {"ignored": "the execution's input is not an upload event"}

    job_id = job_id_of_upload_event(
        upload.detail.bucket.name, upload.detail.object.key, upload.detail.object.version_id
    )
    bind_job(job_id=job_id)
    end = ExecutionEnd(status=detail.status, error=detail.error, cause=detail.cause)
    closing = close_build(job_id, execution_arn=detail.execution_arn, end=end, detected_by="execution_events")
    bind_job(tier=closing.tier)
    count(_metric_name(detail.status), tier=closing.tier)

    admitted: list[str] = []
    if closing.released and closing.tier:
        try:
            admitted = admission.admit().admitted
        except Exception:
            # The job is closed and the slot free: the scheduled sweep admits into it within a minute. Not
            # raised, since a retried event would find nothing left to release and admit nobody either.
            logger.exception("Admission after closing a job failed")
            count("AdmissionErrors", tier=closing.tier)
    result = {
        "jobId": job_id,
        "jobFound": closing.job_found,
        "closed": closing.closed,
        "status": closing.status,
        "released": closing.released,
        "pipelineStopped": closing.pipeline_stopped,
        "admitted": admitted,
    }
    if not closing.owned and closing.job_found:
        logger.info("The job belongs to another execution (a duplicate delivery's); nothing changed")
    logger.info("Execution end handled", extra=result)
    return result
