"""The gate's admission loop and its safety nets: the leaked-slot reclaimer and the waiting-room sweep.

Safe under any number of concurrent gates: the only thing that grants a slot is the take transaction,
whose condition on the tier counter makes "never above concurrencyLimit" a property of DynamoDB, and whose
condition on the job (QUEUED with this token) makes every admission happen once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from controlplane.access import executions, jobs, slots, tiers
from controlplane.domain.admission import (
    MAX_ATTEMPTS_PER_RUN,
    WAITING_ROOM_CHECKS_PER_RUN,
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
from controlplane.domain.execution_end import ExecutionEnd, execution_is_over
from controlplane.domain.models import utc_now
from controlplane.observability import bind_job, count, logger, unbind_job
from controlplane.services.closing import close_build

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
        report.dead_tokens.append(job.job_id)
        count("AdmissionTokensDead", tier=job.tier)
        _give_back(job, dead)
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


def _give_back(job: QueuedJob, dead: TaskTokenDeadError) -> None:
    """Nobody waits for the admission just taken: give the slot back, and close the job when its execution
    is over (nothing else would: it is out of the waiting room and holds no lease any more).

    While the execution still runs, the wait timed out (States.Timeout): the state machine's timeout path
    releases the slot too and records EXPIRED, so the job is left to it. Release is exactly-once, whichever
    of us gets there first. When the execution cannot be described, the lease is kept: the reclaimer (over
    leases) then deals with the job on a later sweep.
    """
    try:
        end = executions.execution_end(job.execution_arn) if job.execution_arn else ExecutionEnd(None)
    except (ClientError, BotoCoreError):
        logger.exception("Admitted a job whose wait had ended; its execution could not be described")
        return
    if execution_is_over(end.status) and job.execution_arn:
        closing = close_build(job.job_id, execution_arn=job.execution_arn, end=end, detected_by="admission")
        released = closing.released
    else:
        released = slots.release(job.job_id, job.tier)
    jobs.clear_queue_token(job.job_id, job.task_token)
    logger.warning(
        "Admitted a job whose wait had ended; slot given back",
        extra={"error": dead.code, "released": released, "executionStatus": end.status},
    )


def reclaim(tier: str, *, now: datetime | None = None) -> list[str]:
    """Safety net over the tier's leases: release slots whose execution is over (failed, timed out,
    aborted: nothing else will release them) and close their jobs, and redeliver admissions an invocation
    died before sending. Returns the job ids whose slots were reclaimed."""
    moment = now or datetime.now(UTC)
    reclaimed: list[str] = []
    for lease in slots.leases(tier):
        job_id = str(lease["jobId"])
        execution_arn = str(lease.get("executionArn") or "")
        end = executions.execution_end(execution_arn) if execution_arn else ExecutionEnd(None)
        if lease_is_leaked(end.status):
            if execution_arn:
                released = close_build(
                    job_id, execution_arn=execution_arn, end=end, tier=tier, detected_by="sweep"
                ).released
            else:  # A lease that names no execution cannot be matched to one: only give the slot back.
                released = slots.release(job_id, tier)
            if released:
                reclaimed.append(job_id)
                count("LeakedSlotsReclaimed", tier=tier)
                logger.warning(
                    "Reclaimed a leaked slot",
                    extra={
                        "tier": tier,
                        "jobId": job_id,
                        "executionArn": execution_arn,
                        "executionStatus": end.status,
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


@dataclass(slots=True)
class WaitingRoomSweep:
    tier: str
    closed: list[str] = field(default_factory=list)
    checked: int = 0
    # Where the next sweep continues (None: from the oldest), so a long waiting room is covered in turns.
    next_key: dict[str, Any] | None = None


def sweep_waiting_room(
    tier: str, *, start_key: dict[str, Any] | None = None, limit: int = WAITING_ROOM_CHECKS_PER_RUN
) -> WaitingRoomSweep:
    """Safety net over the tier's waiting room (the tier-queue index, never a Scan): close the jobs whose
    execution is over, so they reach a terminal status and admission never takes a slot for them.

    At most ``limit`` entries are looked at (one DescribeExecution each), from ``start_key`` on. A wait that
    timed out is left alone: its execution still runs, and the state machine records EXPIRED itself.
    """
    sweep = WaitingRoomSweep(tier=tier)
    key = start_key
    examined = 0
    while examined < limit:
        page_start = key
        page, key = jobs.waiting(tier, limit=limit - examined, start_key=key)
        examined += len(page)
        for job in (queued_job_from_item(item) for item in page):
            if job is None or not job.execution_arn:
                continue  # admitted a moment ago (the index lags the table), or not ours to judge
            sweep.checked += 1
            try:
                end = executions.execution_end(job.execution_arn)
            except (ClientError, BotoCoreError):
                # Throttled, most likely: stop here, and let the next run continue from this page.
                logger.exception("Waiting-room sweep could not describe an execution", extra={"tier": tier})
                count("WaitingRoomSweepErrors", tier=tier)
                sweep.next_key = page_start
                return sweep
            if not execution_is_over(end.status):
                continue
            closing = close_build(job.job_id, execution_arn=job.execution_arn, end=end, detected_by="sweep")
            if closing.closed:
                sweep.closed.append(job.job_id)
        if not key or not page:
            break
    sweep.next_key = key or None
    return sweep
