"""The deployed gate's fair-share admission on moto: the scheduling core's decisions carried out by the
take transaction (fairness inside a tier, weights, per-tenant caps, borrowing, the account cap, lenders
first), with jobs enqueued through the same path as the gate's queue messages."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import count
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
)

from controlplane.admission import gate as admission
from controlplane.admission import share_store as fair_share
from controlplane.admission import slot_store as slots
from controlplane.admission.fair_share import BACKLOG_SETTLE
from controlplane.core.model import format_timestamp
from controlplane.jobs import store as jobs

pytestmark = pytest.mark.usefixtures("aws")
_numbers = count(1)
EXECUTION_PREFIX = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MLaaS-Test-training-job"


def enqueue(table: Callable[[str], Any], tenant: str, tier: str = "basic", *, minute: int = 0) -> str:
    """A job as the state machine queues it, then its queue message handled as the gate does."""
    job_id = job_id_for(next(_numbers))
    queued_at = format_timestamp(datetime(2024, 5, 14, 9, tzinfo=UTC) + timedelta(minutes=minute))
    now = format_timestamp(datetime.now(UTC))  # when the gate stores the token: the share's lastEnqueuedAt
    enqueue_via_gate(table, job_id, tier=tier, tenant_id=tenant, queued_at=queued_at, now=now)
    return job_id


def tenant_of(table: Callable[[str], Any], job_id: str) -> str:
    return str(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]["tenantId"])


def finish(job_id: str, tier: str = "basic") -> None:
    assert slots.release(job_id, tier) is True


def running(table: Callable[[str], Any], tier: str) -> int:
    return int(table("TIERS_TABLE_NAME").get_item(Key={"tier": tier})["Item"]["running"])


def test_enqueue_marks_the_tenant_backlogged_in_the_same_write(table: Callable[[str], Any]) -> None:
    job_id = enqueue(table, "acme")
    item = table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]
    assert (item["queueTier"], item["queueShare"], item["queueTaskToken"]) == (
        "basic",
        "basic#acme",
        f"token-{job_id}",
    )
    [share] = fair_share.backlog("basic", limit=10)
    assert (share.tenant_id, share.tag, share.weight, share.cap, share.version) == ("acme", 0.0, 1.0, None, 1)


def test_a_light_tenant_is_not_stuck_behind_a_heavy_tenants_backlog(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    set_tier_limits(table, "basic", 2)
    heavy = [enqueue(table, "heavy", minute=number) for number in range(10)]
    light = enqueue(table, "light", minute=30)  # queued after all of heavy's jobs
    report = admission.admit()
    # Oldest-first would admit two of heavy's jobs; fair sharing admits one of each.
    assert sorted(tenant_of(table, job_id) for job_id in report.admitted) == ["heavy", "light"]
    assert report.admitted[0] == heavy[0]
    assert light in report.admitted
    assert report.stopped_because == "every tier with waiting jobs is at its limit"


def test_backlogged_tenants_share_a_tier_by_weight(
    table: Callable[[str], Any], put_tenant: Callable[..., Any]
) -> None:
    set_tier_limits(table, "basic", 1)
    put_tenant("gold", fairShareWeight=2)
    put_tenant("plain")
    for number in range(12):
        enqueue(table, "gold", minute=number)
        enqueue(table, "plain", minute=number)
    admitted: list[str] = []
    for _ in range(9):
        [job_id] = admission.admit().admitted
        admitted.append(tenant_of(table, job_id))
        finish(job_id)
    assert admitted.count("gold") == 6
    assert admitted.count("plain") == 3


def test_no_starvation_whatever_the_other_backlog(table: Callable[[str], Any]) -> None:
    set_tier_limits(table, "basic", 1)
    for number in range(40):
        enqueue(table, "heavy", minute=number)
    [first] = admission.admit().admitted  # heavy runs and builds up usage
    for _ in range(5):
        finish(first)
        [first] = admission.admit().admitted
    light = enqueue(table, "light", minute=50)
    admissions_before_light = 0
    while True:
        finish(first)
        [first] = admission.admit().admitted
        if first == light:
            break
        admissions_before_light += 1
    # scheduling.starvation_bound with the default policy: max(debt 2, cost/w 1) * 1 / 1 + 1 = 3.
    assert admissions_before_light <= 3


def test_a_tenant_cap_limits_its_running_jobs(
    table: Callable[[str], Any], put_tenant: Callable[..., Any]
) -> None:
    set_tier_limits(table, "basic", 4)
    put_tenant("capped", maxRunningJobs=1)
    for number in range(3):
        enqueue(table, "capped", minute=number)
    other = enqueue(table, "other", minute=9)
    report = admission.admit()
    assert [tenant_of(table, job_id) for job_id in report.admitted] == ["capped", "other"]
    assert report.stopped_because == "every tenant with waiting jobs is at its cap"
    finish(report.admitted[0])
    assert [tenant_of(table, job_id) for job_id in admission.admit().admitted] == ["capped"]
    assert other in report.admitted


def test_idle_guarantees_are_lent_and_a_lender_gets_its_slot_back_first(table: Callable[[str], Any]) -> None:
    set_account_cap(table, 4)
    set_tier_limits(table, "basic", 1, borrowing=3)
    set_tier_limits(table, "standard", 0)
    set_tier_limits(table, "premium", 3)
    basic = [enqueue(table, "acme", minute=number) for number in range(6)]
    report = admission.admit()
    assert report.admitted == basic[:4]  # 1 guaranteed + 3 borrowed from idle premium
    assert report.stopped_because == "the account cap is reached"
    leases = {item["jobId"]: item["borrowed"] for item in table("SLOT_LEASES_TABLE_NAME").scan()["Items"]}
    assert sorted(leases.values()) == [False, True, True, True]

    premium = enqueue(table, "globex", tier="premium")
    assert admission.admit().admitted == []  # no preemption: premium waits for a borrowed slot to end
    finish(basic[0])
    assert admission.admit().admitted == [premium]  # the lender first, though basic has older jobs waiting
    assert (running(table, "basic"), running(table, "premium"), running(table, "account")) == (3, 1, 4)


def test_an_admission_run_records_the_capacity_and_which_admissions_borrowed(
    table: Callable[[str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    set_account_cap(table, 4)
    set_tier_limits(table, "basic", 1, borrowing=3)
    set_tier_limits(table, "standard", 0)
    set_tier_limits(table, "premium", 3)
    for number in range(6):
        enqueue(table, "acme", minute=number)
    capsys.readouterr()

    assert len(admission.admit().admitted) == 4
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]

    def gauges(name: str) -> dict[str | None, list[float]]:
        found: dict[str | None, list[float]] = {}
        for blob in blobs:
            if name in blob:
                found.setdefault(blob.get("tier"), []).extend(blob[name])
        return found

    # Once per run, as the run left the capacity (after its own four admissions).
    assert gauges("TierRunning") == {"basic": [4.0], "standard": [0.0], "premium": [0.0]}
    assert gauges("TierGuaranteed") == {"basic": [1.0], "standard": [0.0], "premium": [3.0]}
    assert gauges("TierBorrowable") == {"basic": [3.0], "standard": [0.0], "premium": [0.0]}
    assert gauges("AccountRunning") == {None: [4.0]}
    assert gauges("AccountCap") == {None: [4.0]}
    admitted = sorted((blob["tier"], blob["borrowed"]) for blob in blobs if "JobsAdmitted" in blob)
    assert admitted == [("basic", "false")] + [("basic", "true")] * 3
    for blob in blobs:
        dimensions = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MLaaS/ControlPlane"
        assert "service" in dimensions


def test_a_tenant_whose_jobs_left_the_waiting_room_leaves_the_backlog_once_settled(
    table: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = enqueue(table, "acme")
    jobs.close_for_ended_execution(
        job_id,
        execution_arn=str(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]["executionArn"]),
        reason="the build's execution was aborted",
        state="test",
        now=format_timestamp(datetime.now(UTC)),
    )
    assert "queueShare" not in table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]
    # Enqueued a moment ago: the index may not show the job yet, so the share stays backlogged.
    assert admission.admit().admitted == []
    assert [share.tenant_id for share in fair_share.backlog("basic", limit=10)] == ["acme"]
    # Once the settle margin has passed, it leaves.
    later = datetime.now(UTC) + BACKLOG_SETTLE + timedelta(seconds=1)
    monkeypatch.setattr(admission, "datetime", _FrozenDatetime(later))
    assert admission.admit().stopped_because == "no job is waiting"
    assert fair_share.backlog("basic", limit=10) == []


def test_the_sweep_puts_a_tenant_with_a_live_waiting_job_back_in_the_backlog(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    job_id = enqueue(table, "acme")
    table("FAIR_SHARE_TABLE_NAME").update_item(
        Key={"shareId": "basic#acme"}, UpdateExpression="REMOVE backlogTier, backlogSince"
    )  # as if it had left the backlog on a stale read of the share-queue index
    assert admission.admit().admitted == []  # unreachable: it would wait until it expired
    stepfunctions.statuses[f"{EXECUTION_PREFIX}:{job_id}"] = "RUNNING"
    sweep = admission.sweep_waiting_room("basic")
    assert sweep.rejoined == ["basic#acme"]
    assert admission.admit().admitted == [job_id]
    assert admission.sweep_waiting_room("basic").rejoined == []


def test_slots_given_back_by_dead_admissions_are_offered_again_in_the_same_run(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    set_account_cap(table, 2)
    set_tier_limits(table, "basic", 0)
    set_tier_limits(table, "premium", 2)
    ended = [enqueue(table, "ann", tier="premium", minute=number) for number in range(2)]
    live = enqueue(table, "ann", tier="premium", minute=5)
    for job_id in ended:  # their executions were aborted while they waited: nothing takes the admission
        stepfunctions.statuses[f"{EXECUTION_PREFIX}:{job_id}"] = "ABORTED"
        stepfunctions.dead.add(f"token-{job_id}")
    report = admission.admit()
    assert report.dead_tokens == ended
    assert report.admitted == [live]  # not "the tier is full": both slots were given back
    assert running(table, "premium") == 1


class _FrozenDatetime:
    """Stands in for the datetime class in services.admission: now() is fixed."""

    def __init__(self, moment: datetime) -> None:
        self._moment = moment

    def now(self, tz: Any = None) -> datetime:
        return self._moment
