"""The scheduling core against an in-memory model of the gate, over random interleavings of
enqueue / admit / finish / crash / reconcile / time passing (hypothesis stateful testing).

Checked after every step: never above a tier's effective limit or the account cap; a job is admitted at
most once; every slot is released exactly once (crashes leak until reconcile, double releases are
no-ops); work-conserving (after admitting, no admissible job waits); lenders first (a tier below its
guarantee with work is served before any tier borrows); the stated starvation bound.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from controlplane.admission.scheduling import (
    Admit,
    Blocked,
    FairSharePolicy,
    Snapshot,
    TenantState,
    TierState,
    WaitingJob,
    decay,
    decide,
    starvation_bound,
    tag_on_backlogged,
    validate_tiers,
)

COSTS = (1.0, 2.0)
MIN_COST, MAX_COST = min(COSTS), max(COSTS)


@dataclass
class TenantModel:
    tier: str
    weight: float
    cap: int | None
    usage: float = 0.0
    usage_as_of: float = 0.0
    tag: float = 0.0
    queue: deque[WaitingJob] = field(default_factory=deque)


@dataclass
class TierModel:
    guaranteed: int
    borrowing_limit: int
    clock: float = 0.0


class GateModel:
    """What the gate does, minus DynamoDB: leases are the slots, decide() picks, releases are
    conditional on the lease (exactly once)."""

    def __init__(
        self,
        account_cap: int,
        tiers: dict[str, TierModel],
        tenants: dict[str, TenantModel],
        policy: FairSharePolicy,
    ) -> None:
        self.account_cap, self.tiers, self.tenants, self.policy = account_cap, tiers, tenants, policy
        self.now = 0.0
        self.next_job = 0
        self.leases: dict[str, str] = {}  # job id -> tenant id, while the job holds a slot
        self.crashed: set[str] = set()  # holding a slot that nothing but reconcile will release
        self.admitted: Counter[str] = Counter()
        self.released: Counter[str] = Counter()
        # Starvation watch: for each tenant eligible with a waiting job, admissions of others meanwhile.
        self.watch: dict[str, Counter[str]] = {}
        self.lender_first_violations: list[str] = []

    # --- state read by the gate (one snapshot) ---
    def running_of_tier(self, tier: str) -> int:
        return sum(1 for tenant in self.leases.values() if self.tenants[tenant].tier == tier)

    def running_of_tenant(self, tenant_id: str) -> int:
        return sum(1 for tenant in self.leases.values() if tenant == tenant_id)

    def clock(self, name: str) -> float:
        return self.tiers[name].clock

    def usage(self, tenant_id: str) -> float:
        tenant = self.tenants[tenant_id]
        return decay(tenant.usage, self.now - tenant.usage_as_of, self.policy.half_life_seconds)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            account_cap=self.account_cap,
            tiers=[
                TierState(name, t.guaranteed, t.borrowing_limit, self.running_of_tier(name), self.clock(name))
                for name, t in self.tiers.items()
            ],
            tenants=[
                TenantState(
                    tenant_id=tid,
                    tier=t.tier,
                    running=self.running_of_tenant(tid),
                    usage=self.usage(tid),
                    tag=t.tag,
                    weight=t.weight,
                    cap=t.cap,
                    head=t.queue[0] if t.queue else None,
                )
                for tid, t in self.tenants.items()
                if t.queue
            ],
        )

    def eligible(self, tenant_id: str) -> bool:
        tenant = self.tenants[tenant_id]
        return bool(tenant.queue) and (tenant.cap is None or self.running_of_tenant(tenant_id) < tenant.cap)

    def refresh_watch(self) -> None:
        for tid in self.tenants:
            if not self.eligible(tid):
                self.watch.pop(tid, None)
            elif tid not in self.watch:
                self.watch[tid] = Counter()

    # --- operations ---
    def enqueue(self, tenant_id: str, cost: float) -> None:
        tenant = self.tenants[tenant_id]
        if not tenant.queue:  # becoming backlogged: placed behind the clock by its recent usage
            tenant.tag = tag_on_backlogged(
                self.usage(tenant_id), tenant.weight, self.clock(tenant.tier), self.policy, tag=tenant.tag
            )
        self.next_job += 1
        tenant.queue.append(WaitingJob(f"job-{self.next_job}", self.now, cost))
        self.refresh_watch()

    def admit_one(self) -> Admit | Blocked:
        snapshot = self.snapshot()
        decision = decide(snapshot)
        if isinstance(decision, Blocked):
            return decision
        tiers = {t.name: t for t in snapshot.tiers}
        candidates_below_guarantee = [
            t.name
            for t in snapshot.tiers
            if t.running < t.guaranteed
            and any(n.tier == t.name and n.head is not None and n.below_cap for n in snapshot.tenants)
        ]
        if candidates_below_guarantee and tiers[decision.tier].running >= tiers[decision.tier].guaranteed:
            self.lender_first_violations.append(decision.tier)
        tenant = self.tenants[decision.tenant_id]
        assert tenant.queue[0] == decision.job
        tenant.queue.popleft()
        assert decision.job.job_id not in self.leases
        self.leases[decision.job.job_id] = decision.tenant_id
        self.admitted[decision.job.job_id] += 1
        tenant.usage, tenant.usage_as_of, tenant.tag = decision.tenant_usage, self.now, decision.tenant_tag
        assert decision.tier_clock >= self.tiers[decision.tier].clock, "the clock never goes back"
        self.tiers[decision.tier].clock = decision.tier_clock
        # Count this admission against every other eligible tenant of the tier that is waiting.
        self.watch.pop(decision.tenant_id, None)
        for waiting_id, others in self.watch.items():
            waiting = self.tenants[waiting_id]
            if waiting.tier != decision.tier:
                continue
            others[decision.tenant_id] += 1
            bound = starvation_bound(self.policy, waiting.weight, tenant.weight, MIN_COST, MAX_COST)
            assert others[decision.tenant_id] <= bound, (
                f"{waiting_id} waited through {others[decision.tenant_id]} admissions of "
                f"{decision.tenant_id} (bound {bound})"
            )
        self.refresh_watch()
        return decision

    def admit_all(self) -> Blocked:
        while True:
            decision = self.admit_one()
            if isinstance(decision, Blocked):
                return decision

    def release(self, job_id: str) -> bool:
        """The conditional release: only while the lease exists (a second one is cancelled)."""
        if job_id not in self.leases:
            return False
        del self.leases[job_id]
        self.released[job_id] += 1
        self.refresh_watch()
        return True

    def crash(self, job_id: str) -> None:
        self.crashed.add(job_id)

    def reconcile(self) -> None:
        for job_id in sorted(self.crashed):
            self.release(job_id)
        self.crashed.clear()

    def admissible_waiting(self) -> list[str]:
        total = len(self.leases)
        found = []
        for tid, tenant in self.tenants.items():
            tier = self.tiers[tenant.tier]
            if (
                self.eligible(tid)
                and total < self.account_cap
                and self.running_of_tier(tenant.tier) < tier.guaranteed + tier.borrowing_limit
            ):
                found.append(tid)
        return found


tier_limits = st.tuples(st.integers(0, 3), st.integers(0, 3))


class SchedulingMachine(RuleBasedStateMachine):
    model: GateModel

    @initialize(
        limits=st.lists(tier_limits, min_size=1, max_size=3),
        spare=st.integers(0, 3),
        tenants=st.lists(
            st.tuples(st.integers(0, 2), st.sampled_from([1.0, 2.0, 3.0]), st.none() | st.integers(1, 3)),
            min_size=1,
            max_size=6,
        ),
        half_life=st.sampled_from([60.0, 3600.0]),
        max_debt=st.sampled_from([0.0, 1.0, 3.0]),
    )
    def setup(
        self,
        limits: list[tuple[int, int]],
        spare: int,
        tenants: list[tuple[int, float, int | None]],
        half_life: float,
        max_debt: float,
    ) -> None:
        tiers = {f"tier{i}": TierModel(g, b) for i, (g, b) in enumerate(limits)}
        account_cap = sum(g for g, _ in limits) + spare
        names = list(tiers)
        models = {
            f"tenant{i}": TenantModel(names[tier % len(names)], weight, cap)
            for i, (tier, weight, cap) in enumerate(tenants)
        }
        policy = FairSharePolicy(half_life_seconds=half_life, max_usage_debt=max_debt)
        validate_tiers(
            account_cap, [TierState(n, t.guaranteed, t.borrowing_limit, 0) for n, t in tiers.items()]
        )
        self.model = GateModel(account_cap, tiers, models, policy)

    @rule(data=st.data(), count=st.integers(1, 4), cost=st.sampled_from(COSTS))
    def enqueue(self, data: st.DataObject, count: int, cost: float) -> None:
        tenant = data.draw(st.sampled_from(sorted(self.model.tenants)))
        for _ in range(count):
            self.model.enqueue(tenant, cost)

    @rule()
    def admit_one(self) -> None:
        self.model.admit_one()

    @rule()
    def admit_all(self) -> None:
        self.model.admit_all()
        assert self.model.admissible_waiting() == [], "an admissible job waits after admitting"

    @precondition(lambda self: bool(set(self.model.leases) - self.model.crashed))
    @rule(data=st.data())
    def finish(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(set(self.model.leases) - self.model.crashed)))
        assert self.model.release(job)

    @precondition(lambda self: bool(set(self.model.leases) - self.model.crashed))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        self.model.crash(data.draw(st.sampled_from(sorted(set(self.model.leases) - self.model.crashed))))

    @rule()
    def reconcile(self) -> None:
        self.model.reconcile()

    @precondition(lambda self: bool(self.model.released))
    @rule(data=st.data())
    def release_again(self, data: st.DataObject) -> None:
        job = data.draw(st.sampled_from(sorted(self.model.released)))
        assert not self.model.release(job), "a second release must be cancelled"

    @rule(seconds=st.sampled_from([1.0, 30.0, 600.0, 7200.0]))
    def time_passes(self, seconds: float) -> None:
        self.model.now += seconds

    @invariant()
    def never_above_a_limit(self) -> None:
        model = self.model
        assert len(model.leases) <= model.account_cap
        for name, tier in model.tiers.items():
            assert model.running_of_tier(name) <= tier.guaranteed + tier.borrowing_limit
        for tid, tenant in model.tenants.items():
            assert tenant.cap is None or model.running_of_tenant(tid) <= tenant.cap

    @invariant()
    def admitted_once_released_at_most_once(self) -> None:
        assert all(count == 1 for count in self.model.admitted.values())
        assert all(count == 1 for count in self.model.released.values())
        assert set(self.model.released) <= set(self.model.admitted)
        assert set(self.model.leases) == set(self.model.admitted) - set(self.model.released)

    @invariant()
    def lenders_first(self) -> None:
        assert self.model.lender_first_violations == []

    def teardown(self) -> None:
        if not hasattr(self, "model"):
            return
        model = self.model
        for job in sorted(set(model.leases) - model.crashed):
            model.release(job)
        model.reconcile()
        assert set(model.released) == set(model.admitted), "every admitted job's slot is released"
        assert all(count == 1 for count in model.released.values())


SchedulingMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestScheduling = SchedulingMachine.TestCase


# --- stated bounds on concrete scenarios ------------------------------------------------------------


def one_tier_model(policy: FairSharePolicy, slots: int = 2) -> GateModel:
    return GateModel(
        account_cap=slots,
        tiers={"basic": TierModel(slots, 0)},
        tenants={"busy": TenantModel("basic", 1.0, None), "small": TenantModel("basic", 1.0, None)},
        policy=policy,
    )


@pytest.mark.parametrize("backlog", [10, 1_000, 10_000])
@pytest.mark.parametrize("max_debt", [0.0, 2.0, 5.0])
def test_one_job_is_admitted_within_the_bound_whatever_the_other_backlog(
    backlog: int, max_debt: float
) -> None:
    policy = FairSharePolicy(max_usage_debt=max_debt)
    model = one_tier_model(policy)
    # The busy tenant has used the tier heavily, and the small one too (the worst case for small).
    for _ in range(50):
        model.enqueue("small", 1.0)
    for _ in range(backlog):
        model.enqueue("busy", 1.0)
    bound = starvation_bound(policy, 1.0, 1.0, 1.0, 1.0)
    admissions_of_busy = 0
    while model.tenants["small"].queue:
        model.admit_all()
        for job, tenant in list(model.leases.items()):
            model.release(job)
            admissions_of_busy += tenant == "busy"
    # Now small is idle with heavy past usage; it comes back with one job behind a huge backlog.
    model.enqueue("small", 1.0)
    admissions_before_small = 0
    while model.tenants["small"].queue:
        decision = model.admit_one()
        if isinstance(decision, Blocked):
            model.release(next(iter(model.leases)))
            continue
        if decision.tenant_id == "busy":
            admissions_before_small += 1
    assert admissions_before_small <= bound == int(max(max_debt, 1.0)) + 1


def test_a_lender_reclaims_the_first_borrowed_slot_that_frees() -> None:
    model = GateModel(
        account_cap=4,
        tiers={"basic": TierModel(2, 2), "premium": TierModel(2, 2)},
        tenants={"b": TenantModel("basic", 1.0, None), "p": TenantModel("premium", 1.0, None)},
        policy=FairSharePolicy(),
    )
    for _ in range(10):
        model.enqueue("b", 1.0)
    model.admit_all()
    assert model.running_of_tier("basic") == 4  # premium idle: basic borrows both of its slots
    model.enqueue("p", 1.0)
    model.enqueue("p", 1.0)
    assert model.admit_all() is Blocked.ACCOUNT_FULL  # no preemption
    first, second = list(model.leases)[:2]
    model.release(first)
    decision = model.admit_one()
    assert isinstance(decision, Admit)
    assert decision.tier == "premium"
    assert not decision.borrowed
    model.release(second)
    decision = model.admit_one()
    assert isinstance(decision, Admit)
    assert decision.tier == "premium"


def test_guarantees_must_fit_in_the_account_cap() -> None:
    with pytest.raises(ValueError, match="exceed"):
        validate_tiers(3, [TierState("a", 2, 0, 0), TierState("b", 2, 0, 0)])


def test_usage_halves_per_half_life() -> None:
    assert decay(8.0, 7200.0, 3600.0) == pytest.approx(2.0)
    assert decay(8.0, -5.0, 3600.0) == 8.0


def test_decide_explains_why_nothing_is_admitted() -> None:
    tier = TierState("basic", 1, 0, 0)
    job = WaitingJob("j", 0.0)
    assert decide(Snapshot(1, [tier], [])) is Blocked.NOTHING_WAITS
    capped = TenantState("t", "basic", running=1, usage=0.0, cap=1, head=job)
    assert decide(Snapshot(2, [tier], [capped])) is Blocked.TENANTS_AT_CAP
    waiting = TenantState("t", "basic", running=0, usage=0.0, head=job)
    assert decide(Snapshot(1, [TierState("basic", 1, 0, 1)], [waiting])) is Blocked.ACCOUNT_FULL
    assert decide(Snapshot(2, [TierState("basic", 1, 0, 1)], [waiting])) is Blocked.TIERS_AT_LIMIT


def test_a_tenant_that_comes_and_goes_one_job_at_a_time_cannot_starve_a_waiting_one() -> None:
    """The case the state machine above once found: with no usage debt, a tenant that went idle after each
    admission rejoined at the clock, ahead of a heavier tenant waiting one job ahead of it, every time."""
    policy = FairSharePolicy(max_usage_debt=0.0)
    tag_before = 5.0 / 3.0  # the light tenant's tag after its last admission, ahead of the clock
    assert tag_on_backlogged(1.0, 1.0, 2.0 / 3.0, policy, tag=tag_before) == tag_before
    assert tag_on_backlogged(1.0, 1.0, 2.0, policy, tag=tag_before) == 2.0  # behind the clock: at the clock
