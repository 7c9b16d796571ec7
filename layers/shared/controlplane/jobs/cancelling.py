"""Cancelling a job through the API (POST /jobs/{jobId}/cancel), with the state machine, not around it.

1. RECEIVED / VALIDATED: the job becomes CANCELLED at once (one conditional write). Nothing was queued and
   no slot is held; validation finds the job closed and queueing's condition fails, so the execution ends.
2. QUEUED / ADMITTED / RUNNING: the request is made durable first (``cancelRequestedAt``, conditional).
   From then on the gate neither stores a queue token for the job nor admits it (both writes require no
   cancel request), and whoever starts its pipeline stops it. Then:
   - QUEUED with a stored token: the wait is failed with the named error ``JobCancelled``; the state
     machine catches it, releases the (never taken) slot, and records CANCELLED. Without a stored token
     the gate fails the wait when the queue message reaches it.
   - ADMITTED / RUNNING: the pipeline execution is stopped (ClientRequestToken ``cancel-<jobId>``); its
     Stopped event ends the build STOPPED ("cancelled by the tenant") through the usual path, which
     releases the slot exactly once. If the pipeline has not started yet, await_pipeline stops it.
3. Terminal: nothing changes (JobClosedError, a 409 naming the status).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from controlplane.builds import pipeline_store as pipelines
from controlplane.core.errors import AwsServiceError, JobClosedError, JobNotFoundError, TaskTokenDeadError
from controlplane.core.model import utc_now
from controlplane.jobs import execution_store as executions
from controlplane.jobs import store as jobs
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.observability import count, logger

CANCEL_ERROR: Final = "JobCancelled"  # the state machine's Catch on the queue wait matches this name
CANCEL_REASON: Final = "cancelled by the tenant"
CANCEL_STATE: Final = "Cancelled through the API"  # timeline `state` of a job cancelled before queueing
CANCEL_STOP_PREFIX: Final = "cancel-"


@dataclass(frozen=True, slots=True)
class Cancellation:
    job: Job  # the job after the request
    action: str  # "cancelled" | "dequeued" | "dequeue-pending" | "stopping" | "stop-pending"


def fail_queue_wait(job_id: str, task_token: str) -> bool:
    """Fail the job's queue wait with JobCancelled. False when nobody waits on the token any more."""
    try:
        executions.send_task_failure(task_token, error=CANCEL_ERROR, cause=CANCEL_REASON)
    except TaskTokenDeadError:
        logger.info("The cancelled job's queue wait had already ended", extra={"jobId": job_id})
        return False
    return True


def stop_cancelled_pipeline(job: Job) -> bool:
    """Stop the pipeline of a cancelled job if it is recorded and has not ended. Idempotent per job
    (ClientRequestToken); a pipeline that already ended is left as it is."""
    arn = job.pipeline_execution_arn
    if not arn or job.pipeline_outcome is not None:
        return False
    try:
        if pipelines.status(arn) not in pipelines.STOPPABLE_STATUSES:
            return False
        pipelines.stop(arn, client_request_token=f"{CANCEL_STOP_PREFIX}{job.job_id}")
    except AwsServiceError:
        logger.exception("Could not stop the pipeline of a cancelled job", extra={"pipelineArn": arn})
        count("PipelineStopErrors", tier=job.tier)
        return False
    count("PipelinesStoppedByCancel", tier=job.tier)
    return True


def cancel_job(job_id: str, *, now: str | None = None) -> Cancellation:
    """Cancel the job (the caller has checked that it belongs to the tenant). Raises JobNotFoundError or
    JobClosedError (terminal). Repeating a request is harmless: it redoes the idempotent steps."""
    moment = now or utc_now()
    before = jobs.cancel_before_queue(job_id, reason=CANCEL_REASON, state=CANCEL_STATE, now=moment)
    if before.changed and before.item is not None:
        count("JobsCancelled", tier=before.item.tier)
        return Cancellation(job=before.item, action="cancelled")
    if before.item is None:
        raise JobNotFoundError(job_id)
    request = jobs.request_cancel(job_id, now=moment)
    job = request.item
    if job is None:
        raise JobNotFoundError(job_id)
    if not request.changed:
        # Statuses only move forward: having been neither RECEIVED/VALIDATED nor in flight, it is terminal.
        raise JobClosedError(job_id, job.status.value)
    count("JobCancelRequests", tier=job.tier)
    if job.status is JobStatus.QUEUED:
        if job.queue_task_token:
            fail_queue_wait(job_id, job.queue_task_token)
            return Cancellation(job=job, action="dequeued")
        return Cancellation(job=job, action="dequeue-pending")
    return Cancellation(job=job, action="stopping" if stop_cancelled_pipeline(job) else "stop-pending")
