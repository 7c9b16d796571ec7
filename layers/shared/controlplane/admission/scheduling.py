"""Fair, work-conserving admission across tiers and tenants: a pure decision over a small snapshot.

Two levels, both decided here and enforced elsewhere (the DynamoDB conditions of the take transaction):

* **Between tiers** (Kueue-style cohort). The account has a global cap (SageMaker's concurrent pipeline
  executions). Each tier has ``guaranteed`` slots (the guarantees must fit in the cap) and may borrow idle
  slots of other tiers up to ``borrowing_limit`` more. A tier below its guarantee is always served
  before any tier that would borrow, so when a borrowed slot frees while the lender has a backlog, the
  slot goes back to the lender: a tier waits at most one job's duration for its guarantee, without
  preemption.
* **Inside a tier** (start-time fair queueing, with AWS Batch-style decaying usage). Each tenant has a
  usage, charged ``cost`` slot-units per admission and halving every ``half_life_seconds``, and a fair
  tag in the tier's virtual time. The tier's clock is the tag of its last admission. The backlogged
  tenant (below its cap) with the lowest ``max(tag, clock)`` is admitted (ties: older head job, then
  tenant id) and its tag moves on by ``cost / weight``: backlogged tenants share slots by weight.
  A tenant that becomes backlogged starts at ``clock + min(usage / weight, max_usage_debt)``: idle time
  banks no credit, recent heavy use puts it behind (forgotten with the half-life), but never more than
  ``max_usage_debt`` behind, which is what bounds its wait.

No-starvation bound (proved in ``tests/unit/test_scheduling_properties.py``): while tenant A's head job
waits and A is below its cap, another tenant B of the tier is admitted at most
``floor(max(max_usage_debt, max_cost / w_A) * w_B / min_cost) + 1`` times, however large B's backlog
(see :func:`starvation_bound`). Why: A's tag is fixed, at most ``max(debt, cost/w_A)`` above the clock
when it starts waiting; the clock never passes A's tag while A waits (only the lowest tag is admitted);
B starts at or above the clock, and every admission of B moves B's tag up by at least ``min_cost / w_B``.

Everything is plain arithmetic on plain dataclasses: no I/O, O(tenants in the snapshot) per decision.
The snapshot only needs the backlogged tenants' fair-share items (a Query), never every job.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

DEFAULT_HALF_LIFE_SECONDS: Final = 6 * 3600.0
DEFAULT_MAX_USAGE_DEBT: Final = 2.0
DEFAULT_JOB_COST: Final = 1.0


@dataclass(frozen=True, slots=True)
class FairSharePolicy:
    # Usage halves every half_life_seconds: the window over which past use still counts against a tenant.
    half_life_seconds: float = DEFAULT_HALF_LIFE_SECONDS
    # How far (in weight-normalised slot-units) a returning heavy user may start behind the tier clock.
    max_usage_debt: float = DEFAULT_MAX_USAGE_DEBT

    def __post_init__(self) -> None:
        if self.half_life_seconds <= 0 or self.max_usage_debt < 0:
            raise ValueError("half_life_seconds must be > 0 and max_usage_debt >= 0")


@dataclass(frozen=True, slots=True)
class TierState:
    name: str
    guaranteed: int
    borrowing_limit: int
    running: int
    # The tier's virtual time: the fair tag of its last admission (never decreases).
    clock: float = 0.0

    @property
    def max_running(self) -> int:
        """The tier's effective limit: its guarantee plus what it may borrow."""
        return self.guaranteed + self.borrowing_limit


@dataclass(frozen=True, slots=True)
class WaitingJob:
    job_id: str
    queued_at: float  # seconds since the epoch: only compared, so any monotone clock will do
    cost: float = DEFAULT_JOB_COST  # slot-units charged to the tenant's usage on admission


@dataclass(frozen=True, slots=True)
class TenantState:
    tenant_id: str
    tier: str
    running: int
    usage: float = 0.0  # slot-units charged, decayed to now (see decay)
    tag: float = 0.0  # position in the tier's virtual time (see tag_on_backlogged)
    weight: float = 1.0
    cap: int | None = None  # at most this many running jobs for the tenant; None: no cap
    head: WaitingJob | None = None  # the tenant's oldest waiting job; None: nothing waits

    @property
    def below_cap(self) -> bool:
        return self.cap is None or self.running < self.cap


@dataclass(frozen=True, slots=True)
class Snapshot:
    account_cap: int
    tiers: Sequence[TierState]
    tenants: Sequence[TenantState]  # the tier's backlogged tenants suffice; others are ignored


class Blocked(StrEnum):
    NOTHING_WAITS = "no job is waiting"
    ACCOUNT_FULL = "the account cap is reached"
    TIERS_AT_LIMIT = "every tier with waiting jobs is at its limit"
    TENANTS_AT_CAP = "every tenant with waiting jobs is at its cap"


@dataclass(frozen=True, slots=True)
class Admit:
    tier: str
    tenant_id: str
    job: WaitingJob
    borrowed: bool  # the slot is lent by another tier (the tier is at or above its guarantee)
    # What to write back: the tenant's usage (as of now) and tag after the charge, the tier's clock.
    tenant_usage: float
    tenant_tag: float
    tier_clock: float
    # Whose slot a borrowed admission uses (see lender); None when the slot is the tier's own.
    lent_by: str | None = None


Decision = Admit | Blocked


def validate_tiers(account_cap: int, tiers: Iterable[TierState]) -> None:
    """Guarantees must fit in the account cap, or the lender's one-job-duration promise cannot hold."""
    tiers = list(tiers)
    if account_cap < 0 or any(t.guaranteed < 0 or t.borrowing_limit < 0 for t in tiers):
        raise ValueError("caps, guarantees and borrowing limits must be >= 0")
    if sum(t.guaranteed for t in tiers) > account_cap:
        raise ValueError("the tiers' guarantees exceed the account cap")


# --- usage decay -------------------------------------------------------------------------------------


def decay(value: float, elapsed_seconds: float, half_life_seconds: float) -> float:
    """``value`` after ``elapsed_seconds`` of exponential decay (never grows when time goes backwards)."""
    return value * math.exp2(-max(0.0, elapsed_seconds) / half_life_seconds)


def tag_on_backlogged(
    usage: float, weight: float, clock: float, policy: FairSharePolicy, *, tag: float = 0.0
) -> float:
    """A tenant's tag when it becomes backlogged (its usage decayed to now): behind the clock by its
    recent usage, never ahead of it (no credit banked while idle) and at most ``max_usage_debt`` behind
    (keeps the starvation bound); and never before its own last ``tag``. That tag is at most one job
    ahead of the clock (every admission starts at the clock or later), but without it a tenant that
    submits one job at a time would rejoin at the clock after each admission, ahead of a tenant waiting
    one job ahead of the clock, and could starve it (the property test found this with a debt of 0)."""
    return max(tag, clock + min(max(usage, 0.0) / weight, policy.max_usage_debt))


def fair_key(tenant: TenantState, clock: float) -> float:
    return max(tenant.tag, clock)


def starvation_bound(
    policy: FairSharePolicy, waiting_weight: float, other_weight: float, min_cost: float, max_cost: float
) -> int:
    """Most admissions another tenant (``other_weight``) gets while a tenant (``waiting_weight``, below
    its cap) has a job waiting in the same tier."""
    lead = max(policy.max_usage_debt, max_cost / waiting_weight)
    return math.floor(lead * other_weight / min_cost + 1e-9) + 1


# --- the decision ------------------------------------------------------------------------------------


def tier_priority(tier: TierState) -> tuple[int, float, str]:
    """Tiers below their guarantee first (lenders reclaim before anyone borrows), then the tier using
    the smallest share of its guarantee (borrowed slots spread in proportion to guarantees)."""
    return (
        0 if tier.running < tier.guaranteed else 1,
        (tier.running + 1) / max(tier.guaranteed, 1e-9),
        tier.name,
    )


# The lender named for a slot taken from the account's unguaranteed remainder (cap - sum of guarantees).
ACCOUNT_LENDER: Final = "account"


def lender(borrower: str, tiers: Sequence[TierState], account_cap: int) -> str:
    """Whose slot a borrowing tier takes, as the explanation names it: the account's unguaranteed
    remainder while borrowed slots in use do not exhaust it, else the other tier with the most idle
    guaranteed slots (ties by name). Borrowed slots are not tagged to a lender anywhere else: this only
    names where the capacity came from at admission, it decides nothing."""
    unguaranteed = account_cap - sum(tier.guaranteed for tier in tiers)
    borrowed_in_use = sum(max(0, tier.running - tier.guaranteed) for tier in tiers)
    if borrowed_in_use < unguaranteed:
        return ACCOUNT_LENDER
    others = [tier for tier in tiers if tier.name != borrower]
    if not others:
        return ACCOUNT_LENDER
    idlest = min(others, key=lambda tier: (-(tier.guaranteed - tier.running), tier.name))
    return idlest.name


def tier_can_admit(tier: TierState, account_running: int, account_cap: int) -> bool:
    return tier.running < tier.max_running and account_running < account_cap


def tenant_order(tenant: TenantState, clock: float) -> tuple[float, float, str]:
    assert tenant.head is not None
    return (fair_key(tenant, clock), tenant.head.queued_at, tenant.tenant_id)


def decide(snapshot: Snapshot) -> Decision:
    """The next job to admit, or why none may be: O(tiers + tenants in the snapshot)."""
    clocks = {tier.name: tier.clock for tier in snapshot.tiers}
    candidates: dict[str, TenantState] = {}
    any_waiting = False
    for tenant in snapshot.tenants:
        if tenant.head is None:
            continue
        any_waiting = True
        if not tenant.below_cap:
            continue
        clock = clocks.get(tenant.tier)
        if clock is None:
            continue  # a tier without settings admits nothing
        best = candidates.get(tenant.tier)
        if best is None or tenant_order(tenant, clock) < tenant_order(best, clock):
            candidates[tenant.tier] = tenant
    if not any_waiting:
        return Blocked.NOTHING_WAITS
    if not candidates:
        return Blocked.TENANTS_AT_CAP
    account_running = sum(tier.running for tier in snapshot.tiers)
    if account_running >= snapshot.account_cap:
        return Blocked.ACCOUNT_FULL
    open_tiers = [
        tier
        for tier in snapshot.tiers
        if tier.name in candidates and tier_can_admit(tier, account_running, snapshot.account_cap)
    ]
    if not open_tiers:
        return Blocked.TIERS_AT_LIMIT
    tier = min(open_tiers, key=tier_priority)
    chosen = candidates[tier.name]
    assert chosen.head is not None
    start = fair_key(chosen, tier.clock)
    borrowed = tier.running >= tier.guaranteed
    return Admit(
        tier=tier.name,
        tenant_id=chosen.tenant_id,
        job=chosen.head,
        borrowed=borrowed,
        tenant_usage=chosen.usage + chosen.head.cost,
        tenant_tag=start + chosen.head.cost / chosen.weight,
        tier_clock=start,
        lent_by=lender(tier.name, snapshot.tiers, snapshot.account_cap) if borrowed else None,
    )
