"""gate: admit queued jobs into free slots of their tier.

Invoked three ways (docs/contracts.md):
- SQS batch from a tier queue, body {taskToken, jobId, tenantId, tier, executionArn, queueRound}: store each
  token on its job if it belongs to the job's current wait (the job enters the tier's waiting room, its
  tenant the tier's backlog), then admit. Partial batch failures.
  A job the tenant cancelled before its token arrived gets its wait failed with JobCancelled instead.
- {"trigger": "slot-released", "tier", "jobId"} (the state machine, after a release): fold the job's slot
  time into its tier's run-time average (the waiting jobs' start estimate), then admit.
- {"trigger": "schedule"} (every minute, safety net): for every tier reclaim leaked slots, record the outcome
  of running jobs whose pipeline ended without its event reaching us, close waiting jobs whose execution is
  over; then admit.

Admission is account-wide and fair (services.admission.admit): every trigger decides over all tiers, so a
freed slot goes to a tier below its guarantee first, then to the fairest waiting tenant.

No idempotency layer is needed: every effect is a conditional write (token store, take, release), so a
redelivered message or a concurrent invocation changes nothing twice.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.parser.models import SqsRecordModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, Json, TypeAdapter

from controlplane.admission import gate as admission
from controlplane.admission.decisions import AdmissionReport
from controlplane.core.model import Tier, utc_now
from controlplane.jobs.cancelling import fail_queue_wait
from controlplane.jobs.store import TokenStored
from controlplane.observability import bind_job, count, instrumented, logger, unbind_job
from controlplane.settings import get_settings
from controlplane.uploads.keys import JOB_ID_REGEX

settings = get_settings()
# Where each tier's next waiting-room sweep continues. Kept by the warm sandbox only: a cold one starts from
# the oldest waiting job, which is the right place to start anyway; rotation just covers long queues in turns.
_waiting_room_cursors: dict[str, Any] = {}


class QueueMessage(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    task_token: str = Field(alias="taskToken", min_length=1)
    job_id: str = Field(alias="jobId", pattern=JOB_ID_REGEX)
    tenant_id: str = Field(alias="tenantId", min_length=1)
    tier: Tier
    execution_arn: str = Field(alias="executionArn", min_length=1)
    # Which wait of the job this is (0, then once more per capacity shortage); absent in older definitions.
    queue_round: int = Field(alias="queueRound", default=0, ge=0)


class QueueRecord(SqsRecordModel):  # type: ignore[misc]
    body: Json[QueueMessage]  # type: ignore[assignment]


class SlotReleased(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    trigger: Literal["slot-released"]
    tier: Tier
    job_id: str = Field(alias="jobId")


class Schedule(BaseModel):
    trigger: Literal["schedule"]


Trigger: TypeAdapter[SlotReleased | Schedule] = TypeAdapter(
    Annotated[SlotReleased | Schedule, Field(discriminator="trigger")]
)
processor = BatchProcessor(event_type=EventType.SQS, model=QueueRecord)


def _admit() -> dict[str, Any]:
    return _report(admission.admit())


def _report(report: AdmissionReport | None) -> dict[str, Any]:
    if report is None:
        return {}
    if report.admitted or report.dead_tokens:
        logger.info(
            "Admission run",
            extra={
                "admitted": report.admitted,
                "deadTokens": report.dead_tokens,
                "why": report.stopped_because,
            },
        )
    return {
        "admitted": report.admitted,
        "deadTokens": report.dead_tokens,
        "skipped": report.skipped,
        "stoppedBecause": report.stopped_because,
    }


def _handle_queue_batch(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    tiers_with_new_jobs: set[str] = set()

    def store_token(record: QueueRecord) -> None:
        message: QueueMessage = record.body
        bind_job(tenant_id=message.tenant_id, job_id=message.job_id, tier=message.tier.value)
        try:
            stored, status = admission.enqueue(
                message.job_id,
                tenant_id=message.tenant_id,
                tier=message.tier.value,
                task_token=message.task_token,
                now=utc_now(),
                queue_round=message.queue_round,
            )
            if stored is TokenStored.STORED:
                tiers_with_new_jobs.add(message.tier.value)
            elif stored is TokenStored.CANCELLED:
                # Cancelled before its token reached us: fail the wait (JobCancelled); the state machine
                # records CANCELLED. Never stored, so no admission can take a slot for it.
                fail_queue_wait(message.job_id, message.task_token)
                logger.info("Queued job was cancelled; its wait is failed")
            elif stored is TokenStored.WRONG_TIER:
                # Retrying cannot fix a message on the wrong queue; the wait times out and the job EXPIRES.
                logger.error("Queue message names another tier than the job", extra={"jobTier": status})
                count("QueueMessagesMisrouted", tier=message.tier.value)
            elif stored is TokenStored.EARLIER_WAIT:
                # Redelivered after the job was put back in line: its token is spent; the current wait's own
                # message stores the live one.
                logger.warning(
                    "Queue message of an earlier wait dropped",
                    extra={"messageRound": message.queue_round, "jobRound": status},
                )
                count("StaleQueueMessages", tier=message.tier.value)
            else:
                logger.info("Job no longer waits for admission; message dropped", extra={"status": status})
        finally:
            unbind_job()

    response = process_partial_response(
        event=event, record_handler=store_token, processor=processor, context=context
    )
    if tiers_with_new_jobs:
        try:
            _admit()
        except Exception:
            # The tokens are stored: the scheduled sweep admits these jobs within a minute.
            logger.exception("Admission after enqueue failed", extra={"tiers": sorted(tiers_with_new_jobs)})
            for tier in sorted(tiers_with_new_jobs):
                count("AdmissionErrors", tier=tier)
    return dict(response)


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "Records" in event:
        return _handle_queue_batch(event, context)
    trigger = Trigger.validate_python(event)
    if isinstance(trigger, SlotReleased):
        logger.append_keys(releasedJobId=trigger.job_id)
        # Admission is account-wide: the freed slot may go back to a tier that lent it, or to another tier.
        return {"admission": _report(admission.slot_released(trigger.tier.value, trigger.job_id))}

    sweep = admission.scheduled_sweep(tuple(tier.value for tier in Tier), _waiting_room_cursors)
    if sweep.failed_tiers:
        raise RuntimeError(
            f"the sweep failed for tier(s) {', '.join(sweep.failed_tiers)}; see the log for each error"
        )
    return {"tiers": sweep.tiers, "openJobs": sweep.open_jobs, "admission": _report(sweep.admission)}
