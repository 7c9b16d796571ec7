"""The gate's admission loop and its safety nets: the leaked-slot reclaimer and the waiting-room sweep.

Safe under any number of concurrent gates: the only thing that grants a slot is the take transaction,
whose conditions on the account and tier counters make "never above the cap or the tier's limit" a property
of DynamoDB, and whose condition on the job (QUEUED with this token) makes every admission happen once.
Which job gets a free slot is the fair-share decision (controlplane.admission.scheduling).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from controlplane.admission import share_store as fair_share
from controlplane.admission import slot_store as slots
from controlplane.admission import tier_store as tiers
from controlplane.admission.decisions import (
    MAX_ATTEMPTS_PER_RUN,
    WAITING_ROOM_CHECKS_PER_RUN,
    AdmissionReport,
    QueuedJob,
    TakeOutcome,
    lease_is_leaked,
    order_candidates,
    queued_job_from,
    should_redeliver_admission,
)
from controlplane.admission.fair_share import (
    BACKLOG_SETTLE,
    DEFAULT_WEIGHT,
    SNAPSHOT_TENANTS_PER_TIER,
    Capacity,
    Share,
    capacity_from_items,
    may_unmark_backlog,
    on_enqueue,
    share_id,
    snapshot,
)
from controlplane.admission.run_times import folded, run_times_from_item, slot_seconds
from controlplane.admission.scheduling import Admit, Blocked, decide
from controlplane.builds import reconciling
from controlplane.core.errors import AwsServiceError, TaskTokenDeadError
from controlplane.core.model import format_timestamp, utc_now
from controlplane.jobs import execution_store as executions
from controlplane.jobs import store as jobs
from controlplane.jobs.closing import close_build
from controlplane.jobs.execution_end import ExecutionEnd, execution_is_over
from controlplane.jobs.store import TokenStored
from controlplane.jobs.sweep import sweep_open_jobs
from controlplane.jobs.sweeping import SWEEP_LIMIT, allowance_seconds
from controlplane.observability import bind_job, count, gauges, logger, unbind_job
from controlplane.settings import get_settings
from controlplane.tenants import store as tenants
from controlplane.uploads.registration import pipeline_wait_seconds

# Waiting jobs of the chosen tenant read per head lookup (a few, in case the index still shows admitted ones).
HEAD_LOOKAHEAD: Final = 5
ENQUEUE_ATTEMPTS: Final = 4
RUN_TIME_ATTEMPTS: Final = 3


@dataclass(slots=True)
class _State:
    """What one admission run believes: the capacity items and the backlogged shares it read, kept up to
    date in memory after each successful take (a failed take means it was stale: it is read again)."""

    capacity: Capacity
    shares: dict[str, Share]

    def after(self, decision: Admit, share: Share, *, now: str) -> _State:
        tiers_now = dict(self.capacity.tiers)
        tier_item = dict(tiers_now[decision.tier])
        tier_item["running"] = int(tier_item.get("running", 0)) + 1
        tier_item["fairClock"] = decision.tier_clock
        tiers_now[decision.tier] = tier_item
        capacity = replace(self.capacity, account_running=self.capacity.account_running + 1, tiers=tiers_now)
        charged = replace(
            share,
            running=share.running + 1,
            usage=decision.tenant_usage,
            usage_at=now,
            tag=decision.tenant_tag,
            version=share.version + 1,
        )
        return _State(capacity=capacity, shares=self.shares | {share.share_id: charged})


def _read_state() -> _State | None:
    account, tier_items = tiers.capacity_items()
    capacity = capacity_from_items(account, tier_items)
    if capacity is None:
        return None
    shares: dict[str, Share] = {}
    if capacity.account_running >= capacity.account_cap:
        return _State(capacity=capacity, shares=shares)  # nothing can be admitted: no need to read backlogs
    for tier in capacity.tier_states():
        if tier.running >= tier.max_running:
            continue  # a full tier admits nobody this run: its backlog is not read
        for share in fair_share.backlog(tier.name, limit=SNAPSHOT_TENANTS_PER_TIER):
            shares[share.share_id] = share
    return _State(capacity=capacity, shares=shares)


def admit() -> AdmissionReport:
    """Admit waiting jobs across all tiers, one fair-share decision at a time, until the account, the tiers
    or the tenants with waiting jobs are at their limits or nobody waits (controlplane.admission.scheduling).

    Each decision is made on a snapshot (account and tier items, each tier's lowest-tag backlogged shares)
    and carried out by the take transaction, whose conditions re-check everything the decision read:
    a concurrent gate or operator change makes it fail as STALE, and the run reads again.

    Once per run, the capacity it last knew (after its own admissions) is recorded as gauges per tier
    (``TierRunning``, ``TierGuaranteed``, ``TierBorrowable``) and for the account (``AccountRunning``,
    ``AccountCap``), for the dashboard.
    """
    report = AdmissionReport()
    capacity = _admit(report)
    if capacity is not None:
        _record_capacity(capacity)
    return report


def slot_released(tier: str, job_id: str) -> AdmissionReport:
    """The state machine released a job's slot: fold the job's slot time into its tier's run-time average
    (controlplane.admission.run_times), then admit, account-wide (the slot may go back to a lender)."""
    try:
        _record_run_time(tier, job_id)
    except AwsServiceError:
        # The average is an estimate for waiting jobs' views; admission must not wait on it.
        logger.exception("Could not record the job's run time", extra={"tier": tier, "jobId": job_id})
    return admit()


def _record_run_time(tier: str, job_id: str) -> None:
    job = jobs.get(job_id)
    if job is None or job.run_time_recorded_at or not job.pipeline_execution_arn:
        return  # gone, counted already, or never started a pipeline (its slot time says nothing of runs)
    seconds = slot_seconds(job.admitted_at, job.slot_released_at)
    if seconds is None:
        return
    for _ in range(RUN_TIME_ATTEMPTS):
        seen = run_times_from_item(tiers.get(tier))
        outcome = tiers.record_run_time(tier, job_id, seen=seen, new=folded(seen, seconds), now=utc_now())
        if outcome is not tiers.RecordOutcome.CHANGED:
            return
    logger.warning("The tier's run-time average kept changing; this run is left out", extra={"tier": tier})


def _record_capacity(capacity: Capacity) -> None:
    for tier in capacity.tier_states():
        levels = {"TierRunning": tier.running, "TierGuaranteed": tier.guaranteed}
        gauges(levels | {"TierBorrowable": tier.borrowing_limit}, tier=tier.name)
    gauges({"AccountRunning": capacity.account_running, "AccountCap": capacity.account_cap})


def _admit(report: AdmissionReport) -> Capacity | None:
    """The admission loop; returns the capacity last read or updated (None: never read)."""
    policy = get_settings().fair_share_policy()
    state: _State | None = None
    passed_over: set[str] = set()  # shares found with no waiting job during this run
    skipped_jobs: set[str] = set()  # jobs the take found out of the waiting room (the index lags the table)
    known: Capacity | None = None  # the capacity as last read, or as updated by this run's takes
    attempts = 0
    while attempts < MAX_ATTEMPTS_PER_RUN:
        if state is None:
            state = _read_state()
            if state is None:
                report.stopped_because = "the account has no settings (deploy seeds it)"
                logger.error("Cannot admit: the account item is missing from the tiers table")
                return known
        known = state.capacity
        moment = datetime.now(UTC)
        candidates = [share for key, share in state.shares.items() if key not in passed_over]
        decision = decide(snapshot(state.capacity, candidates, moment, policy))
        if isinstance(decision, Blocked):
            report.stopped_because = _explain(decision, state.capacity)
            return known
        attempts += 1
        share = state.shares[share_id(decision.tier, decision.tenant_id)]
        job = _head_job(share, skipped_jobs)
        if job is None:
            _leave_backlog(share, moment)
            passed_over.add(share.share_id)
            continue
        outcome = slots.take(
            job, decision=decision, share=share, capacity=state.capacity, now=(at := utc_now())
        )
        if outcome is TakeOutcome.TAKEN:
            state = state.after(decision, share, now=at)
            known = state.capacity
            if decision.borrowed:
                count("SlotsBorrowed", tier=decision.tier)
            dead_before = len(report.dead_tokens)
            if not _deliver(job, at, report, borrowed=decision.borrowed):
                report.stopped_because = "an admission could not be delivered; the sweep redelivers it"
                return known
            if len(report.dead_tokens) > dead_before:
                state = None  # nobody waited for it and the slot was given back: the counts changed again
        elif outcome is TakeOutcome.ACCOUNT_FULL:
            report.stopped_because = "the account cap is reached"
            return known
        elif outcome is TakeOutcome.NOT_QUEUED:
            report.skipped += 1
            skipped_jobs.add(job.job_id)
        else:  # STALE or RETRY: someone else admitted or changed a limit; decide again on fresh reads.
            state = None
    report.stopped_because = f"attempt limit ({MAX_ATTEMPTS_PER_RUN}) reached; the next trigger continues"
    return known


def _explain(blocked: Blocked, capacity: Capacity) -> str:
    """Why the run stopped. Backlogs of full tiers are not read (nor any when the account is full), so
    "nothing waits" is narrowed to what was actually looked at."""
    if blocked is not Blocked.NOTHING_WAITS:
        return blocked.value
    if capacity.account_running >= capacity.account_cap:
        return Blocked.ACCOUNT_FULL.value
    if any(tier.running >= tier.max_running for tier in capacity.tier_states()):
        return "no job is waiting in a tier that has a free slot"
    return blocked.value


def enqueue(
    job_id: str, *, tenant_id: str, tier: str, task_token: str, now: str, queue_round: int = 0
) -> tuple[TokenStored, str | None]:
    """Store a queued job's task token (it enters the waiting room) and mark its tenant's share of the tier
    backlogged, in one transaction; retried when the share changed under us. ``queue_round`` is the wait the
    token belongs to (how many times the job was put back in line). Returns the outcome and, when not
    stored, the job's status (or tier, or current round)."""
    policy = get_settings().fair_share_policy()
    tenant = tenants.get(tenant_id) or {}
    weight = float(tenant.get("fairShareWeight") or DEFAULT_WEIGHT)
    cap = int(tenant["maxRunningJobs"]) if tenant.get("maxRunningJobs") is not None else None
    for _ in range(ENQUEUE_ATTEMPTS):
        share = replace(fair_share.get(tier, tenant_id), weight=weight)
        tier_item = tiers.get(tier) or {}
        placed = on_enqueue(share, tier_clock=float(tier_item.get("fairClock", 0)), now=now, policy=policy)
        stored, detail = jobs.store_queue_token(
            job_id,
            tier=tier,
            task_token=task_token,
            queue_round=queue_round,
            now=now,
            share_id=share.share_id,
            share_update=fair_share.enqueue_update(share, placed, weight=weight, cap=cap, now=now),
        )
        if stored is not TokenStored.SHARE_CHANGED:
            return stored, detail
    raise RuntimeError(
        f"the fair share of tenant {tenant_id} in tier {tier} kept changing ({ENQUEUE_ATTEMPTS} attempts); "
        "the queue message is retried"
    )


def _head_job(share: Share, skipped: set[str]) -> QueuedJob | None:
    """The share's oldest waiting job (share-queue index), or None when it has none."""
    page = jobs.share_waiting(share.share_id, limit=HEAD_LOOKAHEAD)
    waiting = order_candidates(job for job in map(queued_job_from, page) if job is not None)
    return next((job for job in waiting if job.job_id not in skipped), None)


def _leave_backlog(share: Share, moment: datetime) -> None:
    """Nothing of the tenant waits any more (admitted, cancelled or expired): take it out of the backlog
    index, unless a job was enqueued for it too recently for the index to show it yet."""
    if not may_unmark_backlog(share, moment):
        return
    settled = format_timestamp(moment - BACKLOG_SETTLE)
    if fair_share.unmark_backlog(share, settled_before=settled):
        logger.debug("Share left the backlog", extra={"shareId": share.share_id})


def _deliver(job: QueuedJob, admitted_at: str, report: AdmissionReport, *, borrowed: bool) -> bool:
    """Resume the admitted job's execution. False when delivery failed for a transient reason. ``borrowed``:
    the slot is one the tier borrowed (the ``borrowed`` dimension of ``JobsAdmitted``)."""
    bind_job(tenant_id=job.tenant_id, job_id=job.job_id, tier=job.tier)
    try:
        executions.send_task_success(job.task_token, {"admittedAt": admitted_at, "tier": job.tier})
    except TaskTokenDeadError as dead:
        report.dead_tokens.append(job.job_id)
        count("AdmissionTokensDead", tier=job.tier)
        _give_back(job, dead)
        return True
    except AwsServiceError:
        # The slot stays held with the token stored: the scheduled sweep redelivers the admission.
        logger.exception("Could not deliver an admission")
        count("AdmissionDeliveryErrors", tier=job.tier)
        return False
    finally:
        unbind_job()
    jobs.clear_queue_token(job.job_id, job.task_token)
    report.admitted.append(job.job_id)
    count("JobsAdmitted", tier=job.tier, dimensions={"borrowed": "true" if borrowed else "false"})
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
    except AwsServiceError:
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
        acquired_at = str(lease.get("acquiredAt", ""))
        if should_redeliver_admission(job, acquired_at, moment) and job is not None and job.queue_task_token:
            _redeliver(job_id, tier, job.queue_task_token, job.admitted_at or "")
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
    # Shares (tier#tenant) that had a live waiting job but were not in the backlog, put back.
    rejoined: list[str] = field(default_factory=list)
    # Where the next sweep continues (None: from the oldest), so a long waiting room is covered in turns.
    next_key: dict[str, Any] | None = None


def sweep_waiting_room(
    tier: str, *, start_key: dict[str, Any] | None = None, limit: int = WAITING_ROOM_CHECKS_PER_RUN
) -> WaitingRoomSweep:
    """Safety net over the tier's waiting room (the tier-queue index, never a Scan): close the jobs whose
    execution is over, so they reach a terminal status and admission never takes a slot for them, and
    make sure the tenants of the live ones are in the tier's backlog, so admission can reach them.

    At most ``limit`` entries are looked at (one DescribeExecution each), from ``start_key`` on. A wait that
    timed out is left alone: its execution still runs, and the state machine records EXPIRED itself.
    """
    sweep = WaitingRoomSweep(tier=tier)
    key = start_key
    examined = 0
    live_shares: set[tuple[str, str]] = set()
    while examined < limit:
        page_start = key
        page, key = jobs.waiting(tier, limit=limit - examined, start_key=key)
        examined += len(page)
        for job in map(queued_job_from, page):
            if job is None or not job.execution_arn:
                continue  # admitted a moment ago (the index lags the table), or not ours to judge
            sweep.checked += 1
            try:
                end = executions.execution_end(job.execution_arn)
            except AwsServiceError:
                # Throttled, most likely: stop here, and let the next run continue from this page.
                logger.exception("Waiting-room sweep could not describe an execution", extra={"tier": tier})
                count("WaitingRoomSweepErrors", tier=tier)
                sweep.next_key = page_start
                return sweep
            if not execution_is_over(end.status):
                live_shares.add((job.tier, job.tenant_id))
                continue
            closing = close_build(job.job_id, execution_arn=job.execution_arn, end=end, detected_by="sweep")
            if closing.closed:
                sweep.closed.append(job.job_id)
        if not key or not page:
            break
    sweep.next_key = key or None
    sweep.rejoined = [
        f"{tier_name}#{tenant}" for tier_name, tenant in sorted(live_shares) if _rejoin(tier_name, tenant)
    ]
    return sweep


def _rejoin(tier: str, tenant_id: str) -> bool:
    """Put a tenant that has a live waiting job back in its tier's backlog if it is not there (it left on a
    stale read of the share-queue index): without this its jobs would wait until they expire."""
    share = fair_share.get(tier, tenant_id)
    if share.backlogged:
        return False
    tier_item = tiers.get(tier) or {}
    now = utc_now()
    placed = on_enqueue(
        share,
        tier_clock=float(tier_item.get("fairClock", 0)),
        now=now,
        policy=get_settings().fair_share_policy(),
    )
    if not fair_share.rejoin_backlog(share, placed, now=now):
        return False  # it changed meanwhile: an enqueue marked it, or the next sweep looks again
    count("SharesRejoinedBacklog", tier=tier)
    logger.warning(
        "A tenant with a waiting job was back in its tier's backlog",
        extra={"tier": tier, "tenantId": tenant_id},
    )
    return True


# --------------------------------------------------------------------------- the scheduled run (every minute)


@dataclass
class ScheduledSweep:
    tiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed_tiers: list[str] = field(default_factory=list)
    open_jobs: dict[str, Any] = field(default_factory=dict)
    admission: AdmissionReport | None = None


def _allowance(tier: str | None) -> int | None:
    """How long a job of ``tier`` may stay open (None: unknown tier), from the tier's current settings."""
    item = tiers.get(tier) if tier else None
    if item is None:
        return None
    return allowance_seconds(
        queue_wait_seconds=int(item["queueWaitSeconds"]),
        pipeline_wait_seconds=pipeline_wait_seconds(
            int(item["maxRuntimeSeconds"]), bool(item.get("useSpotInstances", False))
        ),
    )


def scheduled_sweep(tier_names: tuple[str, ...], cursors: dict[str, Any]) -> ScheduledSweep:
    """Every safety net, then an admission run: per tier, leaked slots, lost pipeline completions and the
    waiting room (``cursors`` carries where each tier's waiting-room sweep goes on); then every open job
    whose execution is over. One tier's failure is logged and does not stop the others."""
    settings = get_settings()
    # One knob for both sweeps: long enough for EventBridge's and Lambda's own retries to have run.
    grace = timedelta(seconds=settings.sweep_grace_seconds)
    result = ScheduledSweep()
    for tier in tier_names:
        try:
            reclaimed = reclaim(tier)
            recovered = reconciling.recover_lost_completions(tier, grace=grace)
            waiting = sweep_waiting_room(tier, start_key=cursors.get(tier))
            cursors[tier] = waiting.next_key
            result.tiers[tier] = {
                "reclaimed": reclaimed,
                "closedWaiting": waiting.closed,
                "rejoinedBacklog": waiting.rejoined,
                "recoveredCompletions": recovered.recovered,
            }
        except Exception:
            logger.exception("Sweep of a tier failed", extra={"tier": tier})
            count("SweepErrors")
            result.failed_tiers.append(tier)
    allowances = {tier: _allowance(tier) for tier in tier_names}
    open_jobs = sweep_open_jobs(
        now=datetime.now(UTC),
        grace=grace,
        limit=SWEEP_LIMIT,
        allowance=lambda tier: allowances.get(tier) if tier else None,
        tiers=tier_names,
    )
    result.open_jobs = {
        "lookedAt": open_jobs.looked_at,
        "closed": open_jobs.closed,
        "resumed": open_jobs.resumed,
        "overdue": dict(open_jobs.overdue),
        "errors": open_jobs.errors,
    }
    result.admission = admit()
    return result
