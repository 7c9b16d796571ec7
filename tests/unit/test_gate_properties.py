"""The deployed gate's invariants under random interleavings, on the real tables (moto), not a model.

Hypothesis drives the real code paths: enqueue (services.admission.enqueue, as the gate's queue messages),
admit (services.admission.admit), finish (slots.release, as the state machine's release state), crash
mid-admission (a slot taken whose admission is never delivered), executions aborted while holding a slot
or while waiting, and reconcile (the scheduled sweep: reclaim + waiting-room sweep). After every step:

- each tier's counter equals its leases and never exceeds concurrencyLimit + borrowingLimit; the account
  counter equals all leases and never exceeds accountCap; each tenant's share counts its leases, within
  its cap (DESIGN.md invariant 2, the account cap, per-tenant caps);
- no admission is delivered twice and no job holds two slots (exactly-once admission);
- after an admission run, no waiting job could still have been admitted (work conservation);
- every live waiting job's tenant is in its tier's backlog (nothing waits unreachable).

At the end, reconciling and finishing everything leaves no lease and every counter at zero, and every
job whose execution was not aborted was admitted exactly once (invariant 3: nothing leaks).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import (
    ACCOUNT,
    REGION,
    FakeStepFunctions,
    enqueue_via_gate,
    job_id_for,
    set_account_cap,
    set_tier_limits,
    take_slot,
)
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from controlplane.admission import gate as admission
from controlplane.admission import share_store as fair_share
from controlplane.admission import slot_store as slots
from controlplane.admission.decisions import queued_job_from
from controlplane.core.model import format_timestamp
from controlplane.jobs.lifecycle import Job

pytestmark = pytest.mark.usefixtures("aws")
TIERS = ("basic", "premium")
TENANTS = ("ann", "bob", "cy")  # cy has a cap of one running job
EXECUTION_PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MLaaS-Test-training-job"


def _items(table: Callable[[str], Any], name: str) -> list[dict[str, Any]]:
    return list(table(name).scan(ConsistentRead=True)["Items"])


def test_gate_invariants_hold_in_every_interleaving(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, put_tenant: Callable[..., Any]
) -> None:
    put_tenant("ann")
    put_tenant("bob", fairShareWeight=2)
    put_tenant("cy", maxRunningJobs=1)

    class GateMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            for name, key in (
                ("JOBS_TABLE_NAME", "jobId"),
                ("SLOT_LEASES_TABLE_NAME", "jobId"),
                ("FAIR_SHARE_TABLE_NAME", "shareId"),
            ):
                for item in _items(table, name):
                    table(name).delete_item(Key={key: item[key]})
            for tier in ("basic", "standard", "premium", "account"):
                table("TIERS_TABLE_NAME").update_item(
                    Key={"tier": tier},
                    UpdateExpression="SET running = :z, fairClock = :z",
                    ExpressionAttributeValues={":z": 0},
                )
            # Job ids repeat across examples: forget every token and status of the previous one.
            stepfunctions.sent.clear()
            stepfunctions.failures.clear()
            stepfunctions.dead.clear()
            stepfunctions.statuses.clear()
            self.number = 0
            self.jobs: dict[str, tuple[str, str]] = {}  # job id -> (tier, tenant)
            self.aborted: set[str] = set()
            self.limits: dict[str, int] = {}
            self.cap = 0

        @initialize(
            basic=st.tuples(st.integers(0, 2), st.integers(0, 2)),
            premium=st.tuples(st.integers(0, 2), st.integers(0, 2)),
            spare=st.integers(0, 2),
        )
        def limits_of_the_run(self, basic: tuple[int, int], premium: tuple[int, int], spare: int) -> None:
            set_tier_limits(table, "standard", 0)
            for tier, (guaranteed, borrowing) in (("basic", basic), ("premium", premium)):
                set_tier_limits(table, tier, guaranteed, borrowing)
                self.limits[tier] = guaranteed + borrowing
            self.cap = max(1, basic[0] + premium[0] + spare)
            set_account_cap(table, self.cap)

        # ------------------------------------------------------------------ steps

        @rule(tier=st.sampled_from(TIERS), tenant=st.sampled_from(TENANTS))
        def enqueue(self, tier: str, tenant: str) -> None:
            self.number += 1
            job_id = job_id_for(self.number)
            queued_at = format_timestamp(datetime(2024, 5, 14, tzinfo=UTC) + timedelta(seconds=self.number))
            enqueue_via_gate(table, job_id, tier=tier, tenant_id=tenant, queued_at=queued_at)
            self.jobs[job_id] = (tier, tenant)

        @rule()
        def admit(self) -> None:
            admission.admit()
            self._nothing_admissible_is_left_waiting()

        @precondition(lambda self: bool(self._running()))
        @rule(data=st.data())
        def finish(self, data: st.DataObject) -> None:
            """The state machine's release state, reached only by an execution its admission resumed."""
            job_id = data.draw(st.sampled_from(self._running()))
            assert slots.release(job_id, self.jobs[job_id][0]) is True

        @precondition(lambda self: bool(self._waiting()))
        @rule(data=st.data())
        def crash_mid_admission(self, data: st.DataObject) -> None:
            """A gate takes a slot and dies before SendTaskSuccess: the token stays on the job."""
            job_id = data.draw(st.sampled_from(self._waiting()))
            item = table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]
            job = queued_job_from(Job.model_validate(item))
            assert job is not None
            take_slot(job, now="2024-05-14T00:00:00.000Z")  # may find the tier full: then nothing happens

        @precondition(lambda self: bool(self._holding() + self._waiting()))
        @rule(data=st.data())
        def abort_execution(self, data: st.DataObject) -> None:
            job_id = data.draw(st.sampled_from(self._holding() + self._waiting()))
            stepfunctions.statuses[f"{EXECUTION_PREFIX}:{job_id}"] = "ABORTED"
            stepfunctions.dead.add(f"token-{job_id}")  # nothing waits on its tokens any more
            self.aborted.add(job_id)

        @rule()
        def reconcile(self) -> None:
            later = datetime.now(UTC) + timedelta(hours=1)  # past the redelivery delay
            for tier in TIERS:
                admission.reclaim(tier, now=later)
                admission.sweep_waiting_room(tier)

        # ------------------------------------------------------------------ invariants

        @invariant()
        def counters_equal_leases_and_stay_within_limits(self) -> None:
            leases = _items(table, "SLOT_LEASES_TABLE_NAME")
            tiers = {item["tier"]: item for item in _items(table, "TIERS_TABLE_NAME")}
            assert int(tiers["account"]["running"]) == len(leases) <= self.cap
            for tier in TIERS:
                held = [lease for lease in leases if lease["tier"] == tier]
                assert int(tiers[tier]["running"]) == len(held) <= self.limits.get(tier, 0)
            shares = {item["shareId"]: item for item in _items(table, "FAIR_SHARE_TABLE_NAME")}
            for share_id, share in shares.items():
                tier, _, tenant = share_id.partition("#")
                held = [lease for lease in leases if lease["tier"] == tier and lease["tenantId"] == tenant]
                assert int(share.get("running", 0)) == len(held)
                if tenant == "cy":
                    assert len(held) <= 1

        @invariant()
        def admissions_are_delivered_once(self) -> None:
            tokens = [token for token, _ in stepfunctions.sent]
            assert len(tokens) == len(set(tokens))

        @invariant()
        def every_live_waiting_job_is_reachable(self) -> None:
            backlogged = {
                (share.tier, share.tenant_id)
                for tier in TIERS
                for share in fair_share.backlog(tier, limit=50)
            }
            for job_id in self._waiting():
                if job_id not in self.aborted:
                    assert self.jobs[job_id] in backlogged, job_id

        def teardown(self) -> None:
            # Reconcile, then finish and admit until nothing waits: nothing may be left holding a slot.
            for _ in range(len(self.jobs) + 2):
                self.reconcile()
                for job_id in self._running():
                    slots.release(job_id, self.jobs[job_id][0])
                admission.admit()
            for job_id in self._running():
                slots.release(job_id, self.jobs[job_id][0])
            assert _items(table, "SLOT_LEASES_TABLE_NAME") == []
            assert all(int(item["running"]) == 0 for item in _items(table, "TIERS_TABLE_NAME"))
            assert all(int(item.get("running", 0)) == 0 for item in _items(table, "FAIR_SHARE_TABLE_NAME"))
            delivered = {token.removeprefix("token-") for token, _ in stepfunctions.sent}
            admissible = {job_id for job_id, (tier, _) in self.jobs.items() if self.limits[tier] > 0}
            assert admissible - self.aborted <= delivered  # every live job got its slot, once

        # ------------------------------------------------------------------ helpers

        def _running(self) -> list[str]:
            delivered = {token.removeprefix("token-") for token, _ in stepfunctions.sent}
            return [
                job_id for job_id in self._holding() if job_id in delivered and job_id not in self.aborted
            ]

        def _holding(self) -> list[str]:
            return sorted(lease["jobId"] for lease in _items(table, "SLOT_LEASES_TABLE_NAME"))

        def _waiting(self) -> list[str]:
            return sorted(
                item["jobId"]
                for item in _items(table, "JOBS_TABLE_NAME")
                if item["status"] == "QUEUED" and item.get("queueTaskToken")
            )

        def _nothing_admissible_is_left_waiting(self) -> None:
            leases = _items(table, "SLOT_LEASES_TABLE_NAME")
            if len(leases) >= self.cap:
                return
            for job_id in self._waiting():
                if job_id in self.aborted:
                    continue
                tier, tenant = self.jobs[job_id]
                in_tier = sum(1 for lease in leases if lease["tier"] == tier)
                of_tenant = sum(
                    1 for lease in leases if lease["tier"] == tier and lease["tenantId"] == tenant
                )
                tenant_full = tenant == "cy" and of_tenant >= 1
                assert in_tier >= self.limits[tier] or tenant_full, f"{job_id} could have been admitted"

    run_state_machine_as_test(
        GateMachine,
        settings=settings(
            max_examples=10,
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
