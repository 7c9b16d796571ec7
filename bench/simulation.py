"""Discrete-event simulation of the tier gate: the fair-share scheduler against a plain FIFO per tier.

The fair gate is the scheduling core's policy (controlplane.admission.scheduling) kept incrementally: one
heap of eligible tenants per tier keyed by (fair tag, head queued at, tenant), a deque of waiting jobs
per tenant, usage decayed only when read. Each decision is O(tiers + log tenants), where decide() on a
full snapshot is O(tenants); ``verify=True`` checks every decision against decide() (small runs only).
"""

from __future__ import annotations

import heapq
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

from controlplane.admission.scheduling import (
    Admit,
    FairSharePolicy,
    Snapshot,
    TenantState,
    TierState,
    WaitingJob,
    decay,
    decide,
    tag_on_backlogged,
    validate_tiers,
)

FAIRNESS_WINDOW_SECONDS: Final = 3600.0


@dataclass(frozen=True, slots=True)
class TierConfig:
    name: str
    guaranteed: int
    borrowing_limit: int
    tenant_share: float  # share of the tenants in this tier (the heavy tenant aside)


@dataclass(frozen=True, slots=True)
class Workload:
    """Seeded and pre-drawn, so both gates see exactly the same jobs."""

    tier_names: tuple[str, ...]
    tenant_tier: npt.NDArray[np.int64]  # per tenant
    tenant_weight: npt.NDArray[np.float64]  # per tenant
    arrival: npt.NDArray[np.float64]  # per job, sorted
    tenant: npt.NDArray[np.int64]  # per job
    duration: npt.NDArray[np.float64]  # per job, seconds
    cost: npt.NDArray[np.float64]  # per job: the slot-units charged, estimated before it runs


@dataclass(frozen=True, slots=True)
class Scenario:
    tenants: int = 10_000
    jobs: int = 1_000_000
    account_cap: int = 120
    tiers: tuple[TierConfig, ...] = (
        TierConfig("basic", 24, 72, 0.5),
        TierConfig("standard", 36, 72, 0.3),
        TierConfig("premium", 60, 60, 0.2),
    )
    heavy_tenant_share: float = 0.5  # one tenant uploads this share of all jobs (in the standard tier)
    zipf_exponent: float = 1.0  # how the other uploads spread over the other tenants
    mean_duration_seconds: float = 1200.0
    duration_sigma: float = 0.6  # lognormal shape
    load: float = 0.97  # mean offered load / account capacity; a daily swing of ±50% around it
    # Uploads come in batches (a tenant retraining many models at once): most are single, some large.
    batch_share: float = 0.1
    batch_mean_jobs: float = 30.0
    # The cost charged at admission is the run time predicted from the dataset (size, instance type):
    # the true duration times lognormal noise of this shape, in units of the mean duration, clamped.
    cost_estimate_sigma: float = 0.3
    cost_bounds: tuple[float, float] = (0.25, 4.0)
    double_weight_share: float = 0.1  # tenants with weight 2 (the rest 1)
    seed: int = 20240501


def draw_workload(scenario: Scenario) -> Workload:
    rng = np.random.default_rng(scenario.seed)
    tiers = scenario.tiers
    shares = np.array([t.tenant_share for t in tiers])
    tenant_tier = rng.choice(len(tiers), size=scenario.tenants, p=shares / shares.sum()).astype(np.int64)
    tenant_tier[0] = 1  # the heavy tenant is a standard tenant
    tenant_weight = np.where(rng.random(scenario.tenants) < scenario.double_weight_share, 2.0, 1.0)
    tenant_weight[0] = 1.0
    ranks = np.arange(1, scenario.tenants, dtype=np.float64)
    others = ranks**-scenario.zipf_exponent
    others = others / others.sum() * (1.0 - scenario.heavy_tenant_share)
    probabilities = np.concatenate([[scenario.heavy_tenant_share], rng.permutation(others)])

    # Upload events: each is one job, or a batch; the tenant's share of jobs stays its probability.
    jobs_per_event = 1.0 - scenario.batch_share + scenario.batch_share * scenario.batch_mean_jobs
    events = int(scenario.jobs / jobs_per_event * 1.2) + 10
    batch = rng.random(events) < scenario.batch_share
    sizes = np.where(batch, 1 + rng.poisson(scenario.batch_mean_jobs - 1, size=events), 1)
    mean_rate = scenario.load * scenario.account_cap / scenario.mean_duration_seconds / jobs_per_event
    peak_rate = 1.5 * mean_rate
    times = np.empty(0)
    while times.size < events:  # thinning: a Poisson process whose rate swings daily
        candidates = np.cumsum(rng.exponential(1.0 / peak_rate, size=int(events * 1.6)))
        candidates += times[-1] if times.size else 0.0
        rate = mean_rate * (1.0 + 0.5 * np.sin(2 * np.pi * candidates / 86_400.0))
        times = np.concatenate([times, candidates[rng.random(candidates.size) < rate / peak_rate]])
    event_tenant = rng.choice(scenario.tenants, size=events, p=probabilities).astype(np.int64)
    arrival = np.repeat(times[:events], sizes)[: scenario.jobs]
    tenant = np.repeat(event_tenant, sizes)[: scenario.jobs]
    sigma = scenario.duration_sigma
    mu = math.log(scenario.mean_duration_seconds) - sigma**2 / 2
    duration = rng.lognormal(mu, sigma, size=arrival.size)
    noise = rng.lognormal(0.0, scenario.cost_estimate_sigma, size=arrival.size)
    cost = np.clip(duration / scenario.mean_duration_seconds * noise, *scenario.cost_bounds)
    return Workload(tuple(t.name for t in tiers), tenant_tier, tenant_weight, arrival, tenant, duration, cost)


@dataclass(slots=True)
class Meter:
    """Everything measured during one run, gate-independent."""

    tiers: int
    tenants: int
    wait: npt.NDArray[np.float64]
    max_running: list[int]
    max_total: int = 0
    # Integrals over time while a tier has waiting jobs: its running slots, the slots it could reach
    # (its limit, or fewer when the account is full), and the account's busy slots.
    backlogged_time: list[float] = field(default_factory=list)
    tier_busy: list[float] = field(default_factory=list)
    tier_reachable: list[float] = field(default_factory=list)
    account_busy: list[float] = field(default_factory=list)
    any_backlog_time: float = 0.0
    any_backlog_busy: float = 0.0
    borrowed_admissions: int = 0
    admissions: int = 0
    # Fairness: slot-seconds granted per (window, tenant), and the windows a tenant waited through.
    slot_seconds: dict[int, float] = field(default_factory=dict)
    backlogged_since: dict[int, float] = field(default_factory=dict)
    full_windows: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        zeros = [0.0] * self.tiers
        self.backlogged_time, self.tier_busy = list(zeros), list(zeros)
        self.tier_reachable, self.account_busy = list(zeros), list(zeros)

    def interval(
        self, seconds: float, waiting: list[int], running: list[int], limits: list[int], cap: int
    ) -> None:
        if seconds <= 0:
            return
        total = sum(running)
        idle = cap - total
        backlog = False
        for tier, count in enumerate(waiting):
            if count:
                backlog = True
                self.backlogged_time[tier] += seconds
                self.tier_busy[tier] += running[tier] * seconds
                self.tier_reachable[tier] += min(limits[tier], running[tier] + idle) * seconds
                self.account_busy[tier] += total * seconds
        if backlog:
            self.any_backlog_time += seconds
            self.any_backlog_busy += total * seconds

    def granted(self, tenant: int, now: float, seconds: float) -> None:
        """Slot-seconds the gate granted (the job's duration), counted in the window it was admitted: the
        gate's share decisions, not slots held, which lag by one job's duration (no preemption)."""
        key = int(now // FAIRNESS_WINDOW_SECONDS) * self.tenants + tenant
        self.slot_seconds[key] = self.slot_seconds.get(key, 0.0) + seconds

    def backlog_started(self, tenant: int, now: float) -> None:
        self.backlogged_since[tenant] = now

    def backlog_ended(self, tenant: int, now: float) -> None:
        since = self.backlogged_since.pop(tenant)
        first = math.ceil(since / FAIRNESS_WINDOW_SECONDS)
        last = math.floor(now / FAIRNESS_WINDOW_SECONDS)  # windows [k, k+1) within [since, now]
        self.full_windows.extend((window, tenant) for window in range(first, last))


class FairGate:
    """The scheduling core's policy, indexed: heaps of eligible tenants per tier."""

    def __init__(
        self,
        scenario: Scenario,
        workload: Workload,
        policy: FairSharePolicy,
        tenant_cap: int | None = None,
        verify: bool = False,
    ) -> None:
        self.cap = scenario.account_cap
        self.guaranteed = [t.guaranteed for t in scenario.tiers]
        self.limits = [t.guaranteed + t.borrowing_limit for t in scenario.tiers]
        validate_tiers(
            self.cap, [TierState(t.name, t.guaranteed, t.borrowing_limit, 0) for t in scenario.tiers]
        )
        self.names = workload.tier_names
        self.policy, self.tenant_cap, self.verify = policy, tenant_cap, verify
        self.workload = workload
        self.tier_of: list[int] = workload.tenant_tier.tolist()
        self.weight: list[float] = workload.tenant_weight.tolist()
        tenants = len(self.tier_of)
        self.queue: list[deque[int]] = [deque() for _ in range(tenants)]
        self.tenant_running = [0] * tenants
        self.usage = [0.0] * tenants
        self.usage_as_of = [0.0] * tenants
        self.tag = [0.0] * tenants
        self.in_heap = [False] * tenants
        self.heaps: list[list[tuple[float, float, int]]] = [[] for _ in self.names]
        self.clock = [0.0] * len(self.names)
        self.running = [0] * len(self.names)
        self.waiting = [0] * len(self.names)
        self.arrival: list[float] = workload.arrival.tolist()
        self.cost: list[float] = workload.cost.tolist()

    def _below_cap(self, tenant: int) -> bool:
        return self.tenant_cap is None or self.tenant_running[tenant] < self.tenant_cap

    def _push(self, tenant: int) -> None:
        tier = self.tier_of[tenant]
        key = max(self.tag[tenant], self.clock[tier])
        heapq.heappush(self.heaps[tier], (key, self.arrival[self.queue[tenant][0]], tenant))
        self.in_heap[tenant] = True

    def enqueue(self, job: int, tenant: int, now: float) -> bool:
        """Returns True when the tenant became backlogged."""
        queue = self.queue[tenant]
        tier = self.tier_of[tenant]
        self.waiting[tier] += 1
        queue.append(job)
        if len(queue) > 1:
            return False
        usage = decay(self.usage[tenant], now - self.usage_as_of[tenant], self.policy.half_life_seconds)
        self.tag[tenant] = tag_on_backlogged(
            usage, self.weight[tenant], self.clock[tier], self.policy, tag=self.tag[tenant]
        )
        if self._below_cap(tenant):
            self._push(tenant)
        return True

    def release(self, tenant: int) -> None:
        self.running[self.tier_of[tenant]] -= 1
        self.tenant_running[tenant] -= 1
        if self.queue[tenant] and not self.in_heap[tenant] and self._below_cap(tenant):
            self._push(tenant)

    def next_admission(self, now: float) -> tuple[int, int, bool] | None:
        """(job, tenant, borrowed) admitted now, or None when nothing may be admitted."""
        if sum(self.running) >= self.cap:
            return None
        best_tier = -1
        best_priority: tuple[int, float, str] | None = None
        for tier, heap in enumerate(self.heaps):
            if heap and self.running[tier] < self.limits[tier]:
                running, guaranteed = self.running[tier], self.guaranteed[tier]
                # scheduling.tier_priority, inlined (verify checks they agree).
                priority = (0 if running < guaranteed else 1, (running + 1) / max(guaranteed, 1e-9), "")
                if best_priority is None or priority < best_priority:
                    best_tier, best_priority = tier, priority
        expected = self._decide(now) if self.verify else None
        if best_tier < 0:
            assert expected is None or not isinstance(expected, Admit), expected
            return None
        start, _, tenant = heapq.heappop(self.heaps[best_tier])
        self.in_heap[tenant] = False
        job = self.queue[tenant].popleft()
        weight = self.weight[tenant]
        usage = decay(self.usage[tenant], now - self.usage_as_of[tenant], self.policy.half_life_seconds)
        self.usage[tenant], self.usage_as_of[tenant] = usage + self.cost[job], now
        self.tag[tenant] = start + self.cost[job] / weight
        self.clock[best_tier] = start
        borrowed = self.running[best_tier] >= self.guaranteed[best_tier]
        self.running[best_tier] += 1
        self.waiting[best_tier] -= 1
        self.tenant_running[tenant] += 1
        if self.queue[tenant] and self._below_cap(tenant):
            self._push(tenant)
        if expected is not None:
            assert isinstance(expected, Admit), expected
            assert (expected.tier, expected.tenant_id, expected.job.job_id) == (
                self.names[best_tier],
                str(tenant),
                str(job),
            ), (expected, best_tier, tenant, job)
            assert math.isclose(expected.tenant_tag, self.tag[tenant], rel_tol=1e-9, abs_tol=1e-9)
        return job, tenant, borrowed

    def _decide(self, now: float) -> object:
        """decide() over the full snapshot, for verification."""
        tiers = [
            TierState(
                name, self.guaranteed[i], self.limits[i] - self.guaranteed[i], self.running[i], self.clock[i]
            )
            for i, name in enumerate(self.names)
        ]
        tenants = [
            TenantState(
                tenant_id=str(tenant),
                tier=self.names[self.tier_of[tenant]],
                running=self.tenant_running[tenant],
                usage=decay(
                    self.usage[tenant], now - self.usage_as_of[tenant], self.policy.half_life_seconds
                ),
                tag=self.tag[tenant],
                weight=self.weight[tenant],
                cap=self.tenant_cap,
                head=WaitingJob(str(queue[0]), self.arrival[queue[0]], self.cost[queue[0]]),
            )
            for tenant, queue in enumerate(self.queue)
            if queue
        ]
        return decide(Snapshot(self.cap, tiers, tenants))


class FifoGate:
    """Today's gate: a counter per tier (limit = the tier's guarantee), oldest job first, no borrowing."""

    def __init__(self, scenario: Scenario, workload: Workload) -> None:
        self.cap = scenario.account_cap
        self.limits = [t.guaranteed for t in scenario.tiers]
        self.tier_of: list[int] = workload.tenant_tier.tolist()
        self.queues: list[deque[tuple[int, int]]] = [deque() for _ in scenario.tiers]
        self.running = [0] * len(scenario.tiers)
        self.tenant_waiting = [0] * len(self.tier_of)

    @property
    def waiting(self) -> list[int]:
        return [len(queue) for queue in self.queues]

    def enqueue(self, job: int, tenant: int, now: float) -> bool:
        self.queues[self.tier_of[tenant]].append((job, tenant))
        self.tenant_waiting[tenant] += 1
        return self.tenant_waiting[tenant] == 1

    def release(self, tenant: int) -> None:
        self.running[self.tier_of[tenant]] -= 1

    def next_admission(self, now: float) -> tuple[int, int, bool] | None:
        for tier, queue in enumerate(self.queues):
            if queue and self.running[tier] < self.limits[tier]:
                job, tenant = queue.popleft()
                self.running[tier] += 1
                self.tenant_waiting[tenant] -= 1
                return job, tenant, False
        return None

    def tenant_backlogged(self, tenant: int) -> bool:
        return self.tenant_waiting[tenant] > 0


Gate = FairGate | FifoGate


def simulate(
    gate: Gate, workload: Workload, limits: list[int], cap: int, progress: Callable[[int], None] | None = None
) -> Meter:
    arrival = workload.arrival.tolist()
    tenant_of: list[int] = workload.tenant.tolist()
    duration: list[float] = workload.duration.tolist()
    tier_of: list[int] = workload.tenant_tier.tolist()
    tiers = len(limits)
    meter = Meter(tiers, len(tier_of), np.full(len(arrival), np.nan), [0] * tiers)
    running_jobs: list[tuple[float, int]] = []  # (finish time, job)
    next_arrival, jobs = 0, len(arrival)
    now = 0.0
    while next_arrival < jobs or running_jobs:
        arriving = next_arrival < jobs and (not running_jobs or arrival[next_arrival] <= running_jobs[0][0])
        moment = arrival[next_arrival] if arriving else running_jobs[0][0]
        meter.interval(moment - now, gate.waiting, gate.running, limits, cap)
        now = moment
        if arriving:
            job = next_arrival
            next_arrival += 1
            tenant = tenant_of[job]
            if gate.enqueue(job, tenant, now):
                meter.backlog_started(tenant, now)
            if progress is not None and next_arrival % 100_000 == 0:
                progress(next_arrival)
        else:
            _, job = heapq.heappop(running_jobs)
            gate.release(tenant_of[job])
        while (admitted := gate.next_admission(now)) is not None:
            job, tenant, borrowed = admitted
            meter.admissions += 1
            meter.borrowed_admissions += borrowed
            meter.wait[job] = now - arrival[job]
            end = now + duration[job]
            heapq.heappush(running_jobs, (end, job))
            meter.granted(tenant, now, duration[job])
            tier = tier_of[tenant]
            meter.max_running[tier] = max(meter.max_running[tier], gate.running[tier])
            still_backlogged = (
                bool(gate.queue[tenant]) if isinstance(gate, FairGate) else gate.tenant_backlogged(tenant)
            )
            if not still_backlogged:
                meter.backlog_ended(tenant, now)
        meter.max_total = max(meter.max_total, sum(gate.running))
    for tenant in list(meter.backlogged_since):
        meter.backlog_ended(tenant, now)
    return meter
