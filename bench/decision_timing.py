"""How long one admission decision takes as tenants grow from 10 to 10,000 (part c of the benchmark).

Three ways to decide, all the same policy:
* ``decide()`` on the snapshot the gate reads: the tier items, the account item and the first
  ``TENANTS_READ_PER_TIER`` eligible tenants of each tier by fair tag (one Query per tier on a sparse
  index): constant size, so the time stays flat however many tenants there are.
* ``decide()`` on every backlogged tenant: what reading the whole backlog would cost (O(tenants)).
* the indexed scheduler the simulation runs (heaps): O(log tenants).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial
from typing import Final

import numpy as np

from bench.simulation import FairGate, Scenario, Workload
from controlplane.admission.scheduling import (
    FairSharePolicy,
    Snapshot,
    TenantState,
    TierState,
    WaitingJob,
    decide,
)

TENANTS_READ_PER_TIER: Final = 25
TIER_NAMES: Final = ("basic", "standard", "premium")


def _snapshot(tenants: int, per_tier: int | None, rng: random.Random) -> Snapshot:
    tiers = [TierState(name, 20, 40, 19, clock=100.0) for name in TIER_NAMES]
    states = []
    for index in range(tenants):
        tier = TIER_NAMES[index % len(TIER_NAMES)]
        if per_tier is not None and index // len(TIER_NAMES) >= per_tier:
            break
        states.append(
            TenantState(
                tenant_id=f"tenant-{index}",
                tier=tier,
                running=rng.randrange(3),
                usage=rng.random() * 10,
                tag=100.0 + rng.random() * 5,
                weight=rng.choice((1.0, 2.0)),
                cap=None,
                head=WaitingJob(f"job-{index}", rng.random() * 1e6),
            )
        )
    return Snapshot(account_cap=120, tiers=tiers, tenants=states)


def _per_call_microseconds(call: Callable[[], object], budget_seconds: float = 0.4) -> float:
    """Median over batches of the time per call."""
    started = time.perf_counter()
    samples: list[float] = []
    while time.perf_counter() - started < budget_seconds or len(samples) < 5:
        batch_start = time.perf_counter()
        batch = 0
        while time.perf_counter() - batch_start < 0.01:
            call()
            batch += 1
        samples.append((time.perf_counter() - batch_start) / batch)
    return float(np.median(samples)) * 1e6


def _indexed_gate(tenants: int) -> FairGate:
    scenario = Scenario(tenants=tenants, jobs=0, account_cap=120)
    jobs_per_tenant = 4
    workload = Workload(
        tier_names=TIER_NAMES,
        tenant_tier=np.arange(tenants, dtype=np.int64) % len(TIER_NAMES),
        tenant_weight=np.ones(tenants),
        arrival=np.arange(tenants * jobs_per_tenant, dtype=np.float64),
        tenant=np.repeat(np.arange(tenants, dtype=np.int64), jobs_per_tenant),
        duration=np.ones(tenants * jobs_per_tenant),
        cost=np.ones(tenants * jobs_per_tenant),
    )
    gate = FairGate(scenario, workload, FairSharePolicy())
    for job, tenant in enumerate(workload.tenant.tolist()):
        gate.enqueue(job, tenant, 0.0)
    return gate


def measure(sizes: tuple[int, ...] = (10, 100, 1_000, 10_000)) -> list[dict[str, float]]:
    rng = random.Random(7)
    rows = []
    for tenants in sizes:
        bounded = _snapshot(tenants, TENANTS_READ_PER_TIER, rng)
        full = _snapshot(tenants, None, rng)
        gate = _indexed_gate(tenants)
        now = [1.0]

        def indexed_admit_and_release(gate: FairGate = gate, now: list[float] = now) -> None:
            # One admission, then its slot back, so the gate never runs out of room or work.
            admitted = gate.next_admission(now[0])
            assert admitted is not None
            job, tenant, _ = admitted
            gate.release(tenant)
            gate.enqueue(job, tenant, now[0])  # requeue so the backlog never drains
            now[0] += 1.0

        rows.append(
            {
                "tenants": tenants,
                "snapshot_tenants": len(bounded.tenants),
                "decide_bounded_snapshot_us": _per_call_microseconds(partial(decide, bounded)),
                "decide_full_snapshot_us": _per_call_microseconds(partial(decide, full)),
                "indexed_admit_release_us": _per_call_microseconds(indexed_admit_and_release),
            }
        )
    return rows
