"""The gate's admission loop and the leaked-slot reclaimer.

Safe under any number of concurrent gates: the only thing that grants a slot is the take transaction,
whose condition on the tier counter makes "never above concurrencyLimit" a property of DynamoDB, and whose
condition on the job (QUEUED with this token) makes every admission happen once.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from botocore.exceptions import BotoCoreError, ClientError

from controlplane.access import executions, jobs, slots, tiers
from controlplane.domain.admission import (
    MAX_ATTEMPTS_PER_RUN,
    AdmissionReport,
    QueuedJob,
    TakeOutcome,
    free_slots,
    lease_is_leaked,
    order_candidates,
    queued_job_from_item,
    should_redeliver_admission,
)
from controlplane.domain.errors import TaskTokenDeadError
from controlplane.domain.models import utc_now
from controlplane.observability import bind_job, count, logger, unbind_job

PAGE_SIZE: Final = 25


def admit(tier: str) -> AdmissionReport:
    """Admit the tier's oldest waiting jobs until it is full or nobody waits."""
    report = AdmissionReport(tier=tier)
    tier_item = tiers.get(tier)
    if tier_item is None:
        report.stopped_because = "the tier has no settings"
        logger.error("Cannot admit: tier has no settings", extra={"tier": tier})
        return report
    if free_slots(int(tier_item.get("concurrencyLimit", 0)), int(tier_item.get("running", 0))) == 0:
        report.stopped_because = "the tier is full"
        return report

    attempts = 0
    start_key = None
    while attempts < MAX_ATTEMPTS_PER_RUN:
        page, start_key = jobs.waiting(tier, limit=PAGE_SIZE, start_key=start_key)
        candidates = order_candidates(job for job in map(queued_job_from_item, page) if job is not None)
        report.skipped += len(page) - len(candidates)
        for job in candidates:
            attempts += 1
            outcome = slots.take(job, now=(admitted_at := utc_now()))
            if outcome is TakeOutcome.TIER_FULL:
                report.stopped_because = "the tier is full"
                return report
            if outcome is TakeOutcome.RETRY:
                report.stopped_because = "contention on the tier; the next trigger continues"
                return report
            if outcome is TakeOutcome.NOT_QUEUED:
                report.skipped += 1
            elif not _deliver(job, admitted_at, report):
                report.stopped_because = "an admission could not be delivered; the sweep redelivers it"
                return report
            if attempts >= MAX_ATTEMPTS_PER_RUN:
                break
        if not start_key:
            report.stopped_because = "no more jobs are waiting"
            return report
    report.stopped_because = f"attempt limit ({MAX_ATTEMPTS_PER_RUN}) reached; the next trigger continues"
    return report


def _deliver(job: QueuedJob, admitted_at: str, report: AdmissionReport) -> bool:
    """Resume the admitted job's execution. False when delivery failed for a transient reason."""
    bind_job(tenant_id=job.tenant_id, job_id=job.job_id, tier=job.tier)
    try:
        executions.send_task_success(job.task_token, {"admittedAt": admitted_at, "tier": job.tier})
    except TaskTokenDeadError as dead:
        # The wait timed out (or the execution is gone): give the slot back; the state machine's timeout
        # path records EXPIRED. Release is idempotent, whichever of us gets there first.
        released = slots.release(job.job_id, job.tier)
        jobs.clear_queue_token(job.job_id, job.task_token)
        report.dead_tokens.append(job.job_id)
        count("AdmissionTokensDead", tier=job.tier)
        logger.warning(
            "Admitted a job whose wait had ended; slot released",
            extra={"error": dead.code, "released": released},
        )
        return True
    except (ClientError, BotoCoreError):
        # The slot stays held with the token stored: the scheduled sweep redelivers the admission.
        logger.exception("Could not deliver an admission")
        count("AdmissionDeliveryErrors", tier=job.tier)
        return False
    finally:
        unbind_job()
    jobs.clear_queue_token(job.job_id, job.task_token)
    report.admitted.append(job.job_id)
    count("JobsAdmitted", tier=job.tier)
    logger.info("Job admitted", extra={"tier": job.tier, "jobId": job.job_id, "tenantId": job.tenant_id})
    return True


def reclaim(tier: str, *, now: datetime | None = None) -> list[str]:
    """Safety net over the tier's leases: release slots whose execution no longer runs (failed, timed out,
    aborted: nothing else will release them), and redeliver admissions an invocation died before sending.
    Returns the job ids whose slots were reclaimed."""
    moment = now or datetime.now(UTC)
    reclaimed: list[str] = []
    for lease in slots.leases(tier):
        job_id = str(lease["jobId"])
        execution_arn = str(lease.get("executionArn") or "")
        status = executions.execution_status(execution_arn) if execution_arn else None
        if lease_is_leaked(status):
            if slots.release(job_id, tier):
                reclaimed.append(job_id)
                count("LeakedSlotsReclaimed", tier=tier)
                logger.warning(
                    "Reclaimed a leaked slot",
                    extra={
                        "tier": tier,
                        "jobId": job_id,
                        "executionArn": execution_arn,
                        "executionStatus": status,
                    },
                )
            continue
        job = jobs.get(job_id)
        if should_redeliver_admission(job, str(lease.get("acquiredAt", "")), moment) and job is not None:
            _redeliver(job_id, tier, str(job["queueTaskToken"]), str(job.get("admittedAt", "")))
    return reclaimed


def _redeliver(job_id: str, tier: str, task_token: str, admitted_at: str) -> None:
    try:
        executions.send_task_success(task_token, {"admittedAt": admitted_at, "tier": tier})
    except TaskTokenDeadError:
        # The wait ended meanwhile; the state machine releases the slot on its timeout path.
        logger.warning("Admission redelivery found the wait over", extra={"jobId": job_id, "tier": tier})
    else:
        count("AdmissionsRedelivered", tier=tier)
        logger.warning("Redelivered an admission", extra={"jobId": job_id, "tier": tier})
    jobs.clear_queue_token(job_id, task_token)
