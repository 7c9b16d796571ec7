"""Why a job is where it is: the pure rules behind the job view's ``explanation`` (no I/O).

- A **QUEUED** job: its position among its tenant's waiting jobs and in its tier's waiting room (arrival
  order), the limits that hold it (the tenant's cap, the account cap, the tier's guaranteed + borrowable
  slots, borrowing), its fair-share standing (who the gate picks before it, and why) and an estimate of when
  it starts.
- An **ADMITTED** or **RUNNING** job: whether its slot is borrowed, and from whom.
- A **FAILED** or **STOPPED** job: the state that recorded the end, the step the job was in when it failed,
  the reason, and where its logs are.

The estimate (``estimate_start``): the tier's moving average of slot time (controlplane.admission.run_times)
times the number of slot turnovers before the job's turn, ``ceil((jobs ahead + 1) / slots)``. Jobs ahead are
the fair-share order's, approximated as "every backlogged tenant gets one admission per round": the tenant's
own earlier jobs times the backlogged tenants, plus the tenants ahead of it in the current round, never more
than the other jobs waiting in the tier. It ignores how long the running jobs have already run and
weights other than equal ones; the view says so.

Counts come from bounded queries (controlplane.core.model.BoundedCount): the explanation's cost does not
grow with the number of tenants or jobs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from controlplane.admission.fair_share import Share
from controlplane.admission.run_times import RunTimes
from controlplane.admission.scheduling import ACCOUNT_LENDER, TierState
from controlplane.core.model import BoundedCount, format_timestamp
from controlplane.jobs.lifecycle import (
    STATE_PIPELINE_WAIT,
    STATE_QUEUE_WAIT,
    STATE_REGISTER,
    STATE_SWEEP,
    STATE_VALIDATE,
    Job,
    JobStatus,
)

# How many of the next tenants in fair order an operator's view lists (a tenant's view lists none: other
# tenants' usage is theirs).
NEXT_IN_LINE: Final = 5
ESTIMATE_METHOD: Final = (
    "moving average of the tier's recent slot times x ceil((jobs ahead + 1) / the tier's slots); jobs ahead "
    "assume one admission per backlogged tenant per round (equal weights), capped by the other jobs waiting "
    "in the tier; it ignores how long the running jobs have already run"
)

# The step a job was in when it failed, by the status it had just before (its timeline), and the
# template's logical ids of what ran it (a unit test checks each step is a state of the ASL).
STATE_PUT_IN_QUEUE: Final = "Put the job in its tier's queue"
STATE_START_PIPELINE: Final = "Start the tenant's pipeline build"
STATE_MACHINE: Final = "TrainingJobStateMachine"
FAILED_STEPS: Final[Mapping[JobStatus | None, tuple[str, tuple[str, ...]]]] = {
    None: (STATE_REGISTER, ("RegisterUploadFunction",)),
    JobStatus.RECEIVED: (STATE_VALIDATE, ("ValidateDatasetFunction",)),
    JobStatus.VALIDATED: (STATE_PUT_IN_QUEUE, ()),
    JobStatus.QUEUED: (STATE_QUEUE_WAIT, ("GateFunction",)),
    JobStatus.ADMITTED: (STATE_START_PIPELINE, ()),
    JobStatus.RUNNING: (STATE_PIPELINE_WAIT, ("AwaitPipelineFunction", "PipelineEventsFunction")),
}
# Closed by the gate's sweep (its execution was over): the gate's log says how it found it.
SWEEP_FUNCTION: Final = "GateFunction"
EXPLAINED_ENDINGS: Final = frozenset({JobStatus.FAILED, JobStatus.STOPPED})


class Audience(StrEnum):
    TENANT = "tenant"  # its own job: counts of other tenants, never their ids or usage
    OPERATOR = "operator"


class Hold(StrEnum):
    """What keeps a waiting job from a slot right now."""

    TENANT_CAP = "TENANT_CAP"
    ACCOUNT_CAP = "ACCOUNT_CAP"
    TIER_LIMIT = "TIER_LIMIT"
    BORROWING = "BORROWING"
    FAIR_SHARE = "FAIR_SHARE"
    NOTHING = "NOTHING"


# --------------------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Position:
    """1-based place in a line of ``of`` jobs (arrival order)."""

    place: int
    of: int
    at_least: bool = False  # a count hit its bound: the place (and the line) are at least this


@dataclass(frozen=True, slots=True)
class Slots:
    running: int
    guaranteed: int
    borrowable: int
    limit: int  # guaranteed + borrowable: the tier never runs more


@dataclass(frozen=True, slots=True)
class Usage:
    running: int
    cap: int | None  # None: no cap


@dataclass(frozen=True, slots=True)
class Holding:
    hold: Hold
    detail: str


@dataclass(frozen=True, slots=True)
class AheadTenant:
    """A tenant the gate picks before this job's (operator views only)."""

    tenant_id: str
    fair_key: float
    tag: float
    weight: float
    running: int
    cap: int | None
    why: str


@dataclass(frozen=True, slots=True)
class Standing:
    tag: float
    fair_key: float  # max(tag, the tier's clock): the gate admits the lowest first
    tier_clock: float
    weight: float
    usage: float  # slot-units charged recently (halving with the policy's half-life)
    backlog_since: str | None
    tenants_ahead: BoundedCount
    backlogged_tenants: BoundedCount
    ahead: list[AheadTenant]
    rule: str


@dataclass(frozen=True, slots=True)
class StartEstimate:
    seconds: float | None  # None: no run of the tier measured yet, or the tier has no slots
    starts_at: str | None
    jobs_ahead: int
    slots: int
    average_run_seconds: float | None
    runs_measured: int
    method: str = ESTIMATE_METHOD


@dataclass(frozen=True, slots=True)
class Waiting:
    tenant_position: Position
    tier_position: Position
    tier: str
    tier_slots: Slots
    account: Usage
    tenant: Usage
    holding: list[Holding]
    fair_share: Standing
    estimate: StartEstimate


@dataclass(frozen=True, slots=True)
class SlotHeld:
    borrowed: bool | None  # None: not recorded (admitted before borrowing was recorded on jobs)
    lent_by: str | None
    detail: str


@dataclass(frozen=True, slots=True)
class LogLocation:
    what: str
    log_group: str | None = None
    log_stream: str | None = None
    query: str | None = None  # a CloudWatch Logs Insights query over the log group
    file: str | None = None  # the emulator's log file


@dataclass(frozen=True, slots=True)
class Failure:
    status: JobStatus
    recorded_by: str | None  # the state that wrote the terminal status
    failed_step: str  # the step the job was in when it failed
    reason: str
    at: str | None
    execution_arn: str | None
    pipeline_execution_arn: str | None
    logs: list[LogLocation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Explanation:
    summary: str
    waiting: Waiting | None = None
    slot: SlotHeld | None = None
    failure: Failure | None = None


# --------------------------------------------------------------------------- QUEUED


@dataclass(frozen=True, slots=True)
class QueueFacts:
    """What the use case reads for a waiting job (every count bounded)."""

    tier: TierState
    account_cap: int
    account_running: int
    share: Share
    tenant_ahead: BoundedCount  # the tenant's jobs in this tier queued before this one
    tenant_waiting: BoundedCount
    tier_ahead: BoundedCount  # the tier's jobs queued before this one
    tier_waiting: BoundedCount
    tenants_ahead: BoundedCount  # backlogged tenants before this one's in fair order, below their cap
    backlogged_tenants: BoundedCount
    next_in_line: Sequence[Share]  # the tier's lowest-tag backlogged shares (a few)
    run_times: RunTimes
    usage: float  # the share's usage decayed to now


def _position(ahead: BoundedCount, line: BoundedCount) -> Position:
    place = ahead.value + 1
    return Position(place=place, of=max(line.value, place), at_least=ahead.at_least or line.at_least)


def holdings(facts: QueueFacts) -> list[Holding]:
    """Every limit that holds the job now, most binding first; NOTHING when a slot is free for it."""
    tier, share = facts.tier, facts.share
    found: list[Holding] = []
    if share.cap is not None and share.running >= share.cap:
        found.append(
            Holding(
                Hold.TENANT_CAP,
                f"the tenant runs {share.running} of its cap of {share.cap}: "
                "its next job starts when one ends",
            )
        )
    if facts.account_running >= facts.account_cap:
        found.append(
            Holding(
                Hold.ACCOUNT_CAP,
                f"the account runs {facts.account_running} of its cap of {facts.account_cap} pipelines",
            )
        )
    if tier.running >= tier.max_running:
        found.append(
            Holding(
                Hold.TIER_LIMIT,
                f"tier {tier.name} runs {tier.running} of its {tier.guaranteed} guaranteed + "
                f"{tier.borrowing_limit} borrowable slots",
            )
        )
    elif tier.running >= tier.guaranteed:
        found.append(
            Holding(
                Hold.BORROWING,
                f"tier {tier.name} uses all {tier.guaranteed} guaranteed slots: its next job needs a "
                "borrowed one, and a tier below its guarantee with waiting jobs is served first",
            )
        )
    ahead = facts.tenants_ahead.value + facts.tenant_ahead.value
    if ahead:
        found.append(
            Holding(
                Hold.FAIR_SHARE,
                f"{facts.tenants_ahead} other tenant(s) come first in fair order and {facts.tenant_ahead} of "
                "this tenant's own jobs were queued before it",
            )
        )
    if not found:
        found.append(
            Holding(
                Hold.NOTHING,
                "a slot is free and the job is next: the gate admits it on its next run (a queue message, a "
                "freed slot, or the sweep every minute)",
            )
        )
    return found


def _why_ahead(other: Share, other_key: float, mine: float, clock: float) -> str:
    if other_key < mine:
        return (
            f"fair key {other_key:g} is below this job's {mine:g}: it used fewer slot-units recently for its "
            f"weight {other.weight:g}"
        )
    if other_key == clock:
        return f"both are at the tier's clock ({clock:g}): it has waited longer (since {other.backlog_since})"
    return f"same fair key ({mine:g}): it has waited longer (since {other.backlog_since})"


def _ahead_of(facts: QueueFacts, mine: float, audience: Audience) -> list[AheadTenant]:
    if audience is not Audience.OPERATOR:
        return []
    clock = facts.tier.clock
    since = facts.share.backlog_since or ""
    listed: list[AheadTenant] = []
    for other in facts.next_in_line:
        if other.tenant_id == facts.share.tenant_id or not other.backlogged:
            continue
        key = fair_key_of(other, clock)
        before = key < mine or (key == mine and (other.backlog_since or "") < since)
        if not before:
            continue
        at_cap = other.cap is not None and other.running >= other.cap
        why = (
            f"at its cap ({other.running} of {other.cap}): skipped until one of its jobs ends"
            if at_cap
            else _why_ahead(other, key, mine, clock)
        )
        listed.append(
            AheadTenant(
                tenant_id=other.tenant_id,
                fair_key=key,
                tag=other.tag,
                weight=other.weight,
                running=other.running,
                cap=other.cap,
                why=why,
            )
        )
    return listed[:NEXT_IN_LINE]


def fair_key_of(share: Share, clock: float) -> float:
    return max(share.tag, clock)


def standing(facts: QueueFacts, audience: Audience) -> Standing:
    share, clock = facts.share, facts.tier.clock
    mine = fair_key_of(share, clock)
    return Standing(
        tag=share.tag,
        fair_key=mine,
        tier_clock=clock,
        weight=share.weight,
        usage=facts.usage,
        backlog_since=share.backlog_since,
        tenants_ahead=facts.tenants_ahead,
        backlogged_tenants=facts.backlogged_tenants,
        ahead=_ahead_of(facts, mine, audience),
        rule=(
            "the gate admits, among the tier's backlogged tenants below their cap, the one with the lowest "
            "fair key max(tag, tier clock) (ties: waiting longest); each admission moves its tag on by "
            "1 / weight, and a tenant rejoining starts behind the clock by its recent usage (at most the "
            "usage debt)"
        ),
    )


def jobs_ahead(facts: QueueFacts) -> int:
    """Jobs the gate admits in this tier before this one (see the module docstring)."""
    tenants = max(facts.backlogged_tenants.value, 1)
    fair = facts.tenant_ahead.value * tenants + facts.tenants_ahead.value
    others_waiting = max(facts.tier_waiting.value - 1, facts.tenant_ahead.value)
    return min(fair, others_waiting)


def estimate_start(facts: QueueFacts, holds: Sequence[Holding], now: datetime) -> StartEstimate:
    slots = min(facts.tier.max_running, facts.account_cap)
    ahead = jobs_ahead(facts)
    average = facts.run_times.average_seconds
    seconds: float | None
    if [holding.hold for holding in holds] == [Hold.NOTHING]:
        seconds = 0.0
    elif average is None or slots <= 0:
        seconds = None
    else:
        seconds = math.ceil((ahead + 1) / slots) * average
    return StartEstimate(
        seconds=seconds,
        starts_at=None if seconds is None else format_timestamp(now + timedelta(seconds=seconds)),
        jobs_ahead=ahead,
        slots=slots,
        average_run_seconds=average,
        runs_measured=facts.run_times.measured,
    )


def explain_waiting(facts: QueueFacts, *, audience: Audience, now: datetime) -> Explanation:
    holds = holdings(facts)
    tier = facts.tier
    estimate = estimate_start(facts, holds, now)
    waiting = Waiting(
        tenant_position=_position(facts.tenant_ahead, facts.tenant_waiting),
        tier_position=_position(facts.tier_ahead, facts.tier_waiting),
        tier=tier.name,
        tier_slots=Slots(
            running=tier.running,
            guaranteed=tier.guaranteed,
            borrowable=tier.borrowing_limit,
            limit=tier.max_running,
        ),
        account=Usage(running=facts.account_running, cap=facts.account_cap),
        tenant=Usage(running=facts.share.running, cap=facts.share.cap),
        holding=holds,
        fair_share=standing(facts, audience),
        estimate=estimate,
    )
    return Explanation(summary=_waiting_summary(waiting), waiting=waiting)


def _waiting_summary(waiting: Waiting) -> str:
    def place(position: Position) -> str:
        more = "+" if position.at_least else ""
        return f"{position.place}{more} of {position.of}{more}"

    held = "; ".join(holding.detail for holding in waiting.holding)
    estimate = waiting.estimate
    if estimate.seconds is None:
        when = "no start estimate yet (no run of the tier has finished)"
    elif estimate.seconds == 0:
        when = "starts at the gate's next run"
    else:
        when = f"starts in about {_duration(estimate.seconds)} (around {estimate.starts_at})"
    return (
        f"waiting: {place(waiting.tenant_position)} of the tenant's waiting jobs, "
        f"{place(waiting.tier_position)} in tier {waiting.tier} by arrival; {held}; {when}"
    )


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# --------------------------------------------------------------------------- ADMITTED / RUNNING


def explain_slot(job: Job) -> Explanation:
    if job.slot_borrowed is None:
        slot = SlotHeld(
            borrowed=None,
            lent_by=None,
            detail="not recorded: the job was admitted before slots' lenders were recorded on jobs",
        )
    elif not job.slot_borrowed:
        slot = SlotHeld(borrowed=False, lent_by=None, detail=f"one of tier {job.tier}'s guaranteed slots")
    elif job.slot_lent_by == ACCOUNT_LENDER or not job.slot_lent_by:
        slot = SlotHeld(
            borrowed=True,
            lent_by=ACCOUNT_LENDER,
            detail="borrowed from the account's unguaranteed slots (the cap above the tiers' guarantees)",
        )
    else:
        slot = SlotHeld(
            borrowed=True,
            lent_by=job.slot_lent_by,
            detail=f"borrowed from tier {job.slot_lent_by}'s idle guaranteed slots; it goes back to "
            f"{job.slot_lent_by} when this job ends if {job.slot_lent_by} has jobs waiting",
        )
    status = "admitted, starting its pipeline" if job.status is JobStatus.ADMITTED else "running"
    return Explanation(summary=f"{status}: its slot is {slot.detail}", slot=slot)


# --------------------------------------------------------------------------- FAILED / STOPPED


@dataclass(frozen=True, slots=True)
class LogPlaces:
    """Where logs are: on AWS, log group names by the template's logical id (the state machine's under
    STATE_MACHINE); in the emulator, the directory of its per-function log files."""

    log_groups: Mapping[str, str] = field(default_factory=dict)
    local_log_dir: str | None = None


def failed_step(job: Job) -> tuple[str, tuple[str, ...]]:
    """The step the job was in when it ended, from the status its timeline shows just before the end."""
    entries = [entry for entry in job.timeline if entry.status not in EXPLAINED_ENDINGS]
    before = entries[-1].status if entries else None
    return FAILED_STEPS.get(before, (STATE_PIPELINE_WAIT, ()))


def _function_log(logical_id: str, job: Job, places: LogPlaces) -> LogLocation:
    if places.local_log_dir:
        return LogLocation(
            what=f"{logical_id} (emulator log file; lines carry job_id)",
            file=f"{places.local_log_dir.rstrip('/')}/{logical_id}.log",
        )
    return LogLocation(
        what=f"{logical_id} (one stream per Lambda sandbox: query by job_id)",
        log_group=places.log_groups.get(logical_id),
        query=f'fields @timestamp, level, message | filter job_id = "{job.job_id}" | sort @timestamp',
    )


def log_locations(job: Job, functions: Sequence[str], places: LogPlaces) -> list[LogLocation]:
    execution = job.execution_arn.rsplit(":", 1)[-1] if job.execution_arn else None
    if places.local_log_dir:
        machine = LogLocation(
            what="the execution's history in the emulator (GetExecutionHistory on the execution ARN)",
            log_stream=job.execution_arn,
        )
    else:
        machine = LogLocation(
            what="the state machine's error log (and the execution's history in the Step Functions console)",
            log_group=places.log_groups.get(STATE_MACHINE),
            query=f'fields @timestamp, type, details | filter execution_arn like "{execution}"'
            if execution
            else None,
        )
    found = [machine, *(_function_log(name, job, places) for name in functions)]
    if job.pipeline_execution_arn:
        found.append(
            LogLocation(
                what="the pipeline's steps (ListPipelineExecutionSteps on the pipeline execution ARN names "
                "each step's job; its logs are under /aws/sagemaker/ProcessingJobs or "
                "/aws/sagemaker/TrainingJobs, streams starting with that job's name)",
                log_stream=job.pipeline_execution_arn,
            )
        )
    return found


def explain_ending(job: Job, places: LogPlaces) -> Explanation:
    final = next((entry for entry in reversed(job.timeline) if entry.status is job.status), None)
    step, functions = failed_step(job)
    if final is not None and final.state == STATE_SWEEP:
        functions = (*functions, SWEEP_FUNCTION) if SWEEP_FUNCTION not in functions else functions
    reason = "; ".join(job.reasons) or (final.reason if final and final.reason else "no reason was recorded")
    failure = Failure(
        status=job.status,
        recorded_by=final.state if final else None,
        failed_step=step,
        reason=reason,
        at=job.finished_at or (final.at if final else None),
        execution_arn=job.execution_arn,
        pipeline_execution_arn=job.pipeline_execution_arn,
        logs=log_locations(job, functions, places),
    )
    return Explanation(
        summary=(
            f'{job.status.value.lower()} at step "{step}" (recorded by "{failure.recorded_by}"): {reason}'
        ),
        failure=failure,
    )
