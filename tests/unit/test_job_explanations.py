"""A job explains itself (controlplane.jobs.explaining and its use case): the pure rules first, then the
use case on moto against what the gate actually does (who it admits first, whose slot it lends, how it
averages run times)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import enqueue_via_gate, job_id_for, load_template, set_account_cap, set_tier_limits

from controlplane.admission import gate as admission
from controlplane.admission import share_store as fair_share
from controlplane.admission import slot_store as slots
from controlplane.admission import tier_store as tiers
from controlplane.admission.decisions import TakeOutcome, queued_job_from
from controlplane.admission.fair_share import Share, capacity_from_items
from controlplane.admission.run_times import NEWEST_RUN_WEIGHT, RunTimes, folded, run_times_from_item
from controlplane.admission.scheduling import ACCOUNT_LENDER, Admit, TierState, WaitingJob, lender
from controlplane.core.model import BoundedCount, format_timestamp, utc_now
from controlplane.jobs import explanations
from controlplane.jobs import store as jobs
from controlplane.jobs.explaining import (
    FAILED_STEPS,
    STATE_MACHINE,
    SWEEP_FUNCTION,
    Audience,
    Hold,
    LogPlaces,
    QueueFacts,
    estimate_start,
    explain_ending,
    explain_slot,
    explain_waiting,
    holdings,
    jobs_ahead,
)
from controlplane.jobs.lifecycle import Job, JobStatus

ASL = Path(__file__).resolve().parents[2] / "statemachines" / "training_job.asl.json"
NOW = datetime(2024, 5, 14, 9, tzinfo=UTC)


def count(value: int, at_least: bool = False) -> BoundedCount:
    return BoundedCount(value=value, at_least=at_least)


def facts(**overrides: Any) -> QueueFacts:
    values: dict[str, Any] = {
        "tier": TierState(name="basic", guaranteed=2, borrowing_limit=1, running=1, clock=3.0),
        "account_cap": 10,
        "account_running": 4,
        "share": Share(tier="basic", tenant_id="acme", running=0, tag=3.0, backlogged=True),
        "tenant_ahead": count(0),
        "tenant_waiting": count(1),
        "tier_ahead": count(0),
        "tier_waiting": count(1),
        "tenants_ahead": count(0),
        "backlogged_tenants": count(1),
        "next_in_line": [],
        "run_times": RunTimes(average_seconds=60.0, measured=4),
        "usage": 0.5,
    }
    return QueueFacts(**(values | overrides))


def holds(queue: QueueFacts) -> list[Hold]:
    return [holding.hold for holding in holdings(queue)]


# --------------------------------------------------------------------------- the rules


def test_a_job_with_a_free_slot_and_nobody_ahead_is_held_by_nothing_and_starts_at_the_next_run() -> None:
    queue = facts()
    assert holds(queue) == [Hold.NOTHING]
    assert estimate_start(queue, holdings(queue), NOW).seconds == 0


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"tier": TierState("basic", guaranteed=2, borrowing_limit=1, running=3)}, Hold.TIER_LIMIT),
        ({"tier": TierState("basic", guaranteed=2, borrowing_limit=1, running=2)}, Hold.BORROWING),
        ({"account_running": 10}, Hold.ACCOUNT_CAP),
        ({"share": Share(tier="basic", tenant_id="acme", running=2, cap=2)}, Hold.TENANT_CAP),
        ({"tenants_ahead": count(1)}, Hold.FAIR_SHARE),
        ({"tenant_ahead": count(2)}, Hold.FAIR_SHARE),
    ],
)
def test_each_limit_that_holds_the_job_is_named(overrides: dict[str, Any], expected: Hold) -> None:
    found = holds(facts(**overrides))
    assert expected in found
    assert Hold.NOTHING not in found


def test_the_tier_limit_detail_gives_running_guaranteed_and_borrowable() -> None:
    (holding,) = holdings(facts(tier=TierState("basic", guaranteed=2, borrowing_limit=1, running=3)))
    assert holding.detail == "tier basic runs 3 of its 2 guaranteed + 1 borrowable slots"


def test_jobs_ahead_count_one_round_per_backlogged_tenant_capped_by_the_other_waiting_jobs() -> None:
    # Two of its own jobs before it, 4 backlogged tenants, 1 tenant ahead in this round: 2 * 4 + 1.
    queue = facts(
        tenant_ahead=count(2), backlogged_tenants=count(4), tenants_ahead=count(1), tier_waiting=count(20)
    )
    assert jobs_ahead(queue) == 9
    assert jobs_ahead(replace(queue, tier_waiting=count(5))) == 4  # only 4 others wait


def test_the_estimate_is_the_average_run_times_the_slot_turnovers_before_its_turn() -> None:
    full = TierState("basic", guaranteed=2, borrowing_limit=1, running=3)
    queue = facts(tier=full, tenant_ahead=count(1), backlogged_tenants=count(3), tier_waiting=count(10))
    estimate = estimate_start(queue, holdings(queue), NOW)
    # 1 * 3 + 0 = 3 jobs ahead, 3 slots: ceil(4 / 3) = 2 turnovers of 60 s.
    assert (estimate.jobs_ahead, estimate.slots, estimate.seconds) == (3, 3, 120.0)
    assert estimate.starts_at == format_timestamp(NOW + timedelta(seconds=120))
    assert "moving average" in estimate.method
    unmeasured = estimate_start(facts(tier=full, run_times=RunTimes()), holdings(queue), NOW)
    assert unmeasured.seconds is None


def test_the_account_cap_bounds_the_slots_of_the_estimate() -> None:
    full = TierState("basic", guaranteed=2, borrowing_limit=4, running=6)
    queue = facts(tier=full, account_cap=3, account_running=3)
    assert estimate_start(queue, holdings(queue), NOW).slots == 3


def test_a_tenant_sees_how_many_tenants_are_ahead_but_never_who() -> None:
    rival = Share(tier="basic", tenant_id="initech", tag=1.0, backlogged=True, backlog_since="T0")
    mine = Share(tier="basic", tenant_id="acme", tag=4.0, backlogged=True, backlog_since="T1")
    queue = facts(share=mine, next_in_line=[rival, mine], tenants_ahead=count(1))
    tenant = explain_waiting(queue, audience=Audience.TENANT, now=NOW)
    operator = explain_waiting(queue, audience=Audience.OPERATOR, now=NOW)
    assert tenant.waiting is not None
    assert operator.waiting is not None
    assert tenant.waiting.fair_share.ahead == []
    assert "initech" not in json.dumps(tenant.summary)
    assert [other.tenant_id for other in operator.waiting.fair_share.ahead] == ["initech"]
    assert "fewer slot-units" in operator.waiting.fair_share.ahead[0].why
    assert tenant.waiting.fair_share.tenants_ahead.value == 1


def test_the_operator_sees_a_tenant_at_its_cap_as_skipped() -> None:
    capped = Share(tier="basic", tenant_id="initech", tag=1.0, running=2, cap=2, backlogged=True)
    queue = facts(
        share=Share(tier="basic", tenant_id="acme", tag=4.0, backlogged=True), next_in_line=[capped]
    )
    explained = explain_waiting(queue, audience=Audience.OPERATOR, now=NOW)
    assert explained.waiting is not None
    assert explained.waiting.fair_share.ahead[0].why.startswith("at its cap (2 of 2)")


def test_a_borrowing_tier_takes_the_unguaranteed_remainder_first_then_the_idlest_tier() -> None:
    tiers_now = [
        TierState("basic", guaranteed=2, borrowing_limit=2, running=2),
        TierState("standard", guaranteed=3, borrowing_limit=0, running=1),
        TierState("premium", guaranteed=4, borrowing_limit=0, running=0),
    ]
    assert lender("basic", tiers_now, account_cap=10) == ACCOUNT_LENDER  # 1 unguaranteed slot, none lent
    assert lender("basic", tiers_now, account_cap=9) == "premium"  # no remainder: premium idles 4
    borrowing = [TierState("basic", guaranteed=2, borrowing_limit=2, running=3), *tiers_now[1:]]
    assert lender("basic", borrowing, account_cap=10) == "premium"  # the remainder is lent already


def test_an_admitted_job_says_whose_slot_it_holds() -> None:
    base = Job(job_id="j", tenant_id="acme", status=JobStatus.RUNNING, tier="basic")
    own = explain_slot(base.model_copy(update={"slot_borrowed": False}))
    lent = explain_slot(base.model_copy(update={"slot_borrowed": True, "slot_lent_by": "premium"}))
    spare = explain_slot(base.model_copy(update={"slot_borrowed": True, "slot_lent_by": ACCOUNT_LENDER}))
    old = explain_slot(base)
    assert own.slot is not None
    assert (own.slot.borrowed, own.slot.lent_by) == (False, None)
    assert lent.slot is not None
    assert (lent.slot.borrowed, lent.slot.lent_by) == (True, "premium")
    assert "premium" in lent.summary
    assert spare.slot is not None
    assert "unguaranteed" in spare.slot.detail
    assert old.slot is not None
    assert old.slot.borrowed is None


def failed_job(*statuses: str, **extra: Any) -> Job:
    timeline = [
        {"status": status, "at": f"2024-05-14T09:0{n}:00.000Z", "state": "s"}
        for n, status in enumerate(statuses)
    ]
    timeline[-1]["state"] = "Record that the build failed"
    return Job.model_validate(
        {
            "jobId": "job-1",
            "tenantId": "acme",
            "status": statuses[-1],
            "timeline": timeline,
            "reasons": ["the pipeline failed: AlgorithmError"],
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:sm:job-1",
        }
        | extra
    )


def test_a_failed_job_names_the_step_it_was_in_and_the_state_that_recorded_it() -> None:
    places = LogPlaces(
        log_groups={"TrainingJobStateMachine": "/sm", "AwaitPipelineFunction": "/aws/lambda/await"}
    )
    job = failed_job(
        "RECEIVED", "VALIDATED", "QUEUED", "ADMITTED", "RUNNING", "FAILED", pipelineExecutionArn="arn:p"
    )
    explained = explain_ending(job, places)
    assert explained.failure is not None
    assert explained.failure.failed_step == "Wait for the pipeline to finish"
    assert explained.failure.recorded_by == "Record that the build failed"
    assert explained.failure.reason == "the pipeline failed: AlgorithmError"
    groups = [log.log_group for log in explained.failure.logs]
    assert groups[:2] == ["/sm", "/aws/lambda/await"]
    assert any(log.log_stream == "arn:p" for log in explained.failure.logs)
    assert all(log.query and "job-1" in log.query for log in explained.failure.logs[1:2])


def test_in_the_emulator_the_logs_are_the_functions_log_files() -> None:
    explained = explain_ending(failed_job("RECEIVED", "FAILED"), LogPlaces(local_log_dir="/state/logs"))
    assert explained.failure is not None
    assert explained.failure.failed_step == "Validate the dataset against the tenant's contract"
    assert [log.file for log in explained.failure.logs if log.file] == [
        "/state/logs/ValidateDatasetFunction.log"
    ]


def test_every_failed_step_is_a_state_of_the_state_machine_and_its_functions_are_in_the_template() -> None:
    definition = ASL.read_text()
    states = set(json.loads(definition)["States"])
    template = (ASL.parents[1] / "template.yaml").read_text()
    for step, functions in FAILED_STEPS.values():
        assert step in states
        for logical_id in functions:
            assert f"\n  {logical_id}:\n" in template


def test_the_api_knows_the_log_group_of_everything_a_failed_job_points_at() -> None:
    resources = load_template()["Resources"]
    variable = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]["JOB_LOG_GROUPS"]["Sub"]
    named = json.loads(variable.replace("${", "").replace('}"', '"'))  # {"Function": "<its log group>"}
    wanted = {STATE_MACHINE, SWEEP_FUNCTION} | {
        name for _, functions in FAILED_STEPS.values() for name in functions
    }
    assert set(named) == wanted
    for logical_id, log_group in named.items():
        properties = resources[logical_id]["Properties"]
        configured = properties["LoggingConfig"]["LogGroup"]["Ref"] if "LoggingConfig" in properties else None
        if logical_id == STATE_MACHINE:
            destination = properties["Logging"]["Destinations"][0]["CloudWatchLogsLogGroup"]["LogGroupArn"]
            configured = destination["GetAtt"].split(".")[0]
        assert configured == log_group, logical_id


def test_the_run_time_average_weights_the_newest_run() -> None:
    first = folded(RunTimes(), 100.0)
    assert first == RunTimes(average_seconds=100.0, measured=1)
    second = folded(first, 200.0)
    assert second.average_seconds == pytest.approx(100 + NEWEST_RUN_WEIGHT * 100)
    assert second.measured == 2


# --------------------------------------------------------------------------- the use case, on moto

pytestmark_moto = pytest.mark.usefixtures("aws")


def enqueue(table: Callable[[str], Any], number: int, tenant: str, minute: int, tier: str = "basic") -> str:
    job_id = job_id_for(number)
    queued_at = format_timestamp(NOW + timedelta(minutes=minute))
    enqueue_via_gate(
        table,
        job_id,
        tier=tier,
        tenant_id=tenant,
        queued_at=queued_at,
        now=format_timestamp(datetime.now(UTC)),
    )
    return job_id


def explain(job_id: str, audience: Audience = Audience.OPERATOR) -> Any:
    job = jobs.get(job_id)
    assert job is not None
    return explanations.explain(job, audience=audience)


@pytestmark_moto
def test_the_positions_and_tenants_ahead_match_the_order_the_gate_admits(
    table: Callable[[str], Any], stepfunctions: Any
) -> None:
    set_tier_limits(table, "basic", 0)
    a = enqueue(table, 1, "alpha", minute=0)
    b = enqueue(table, 2, "bravo", minute=1)
    c1 = enqueue(table, 3, "charlie", minute=2)
    c2 = enqueue(table, 4, "charlie", minute=3)

    first, second = explain(c1), explain(c2)

    assert first.waiting.tenant_position.place == 1
    assert first.waiting.tenant_position.of == 2
    assert second.waiting.tenant_position.place == 2
    assert (first.waiting.tier_position.place, first.waiting.tier_position.of) == (3, 4)
    assert [h.hold for h in first.waiting.holding] == [Hold.TIER_LIMIT, Hold.FAIR_SHARE]
    assert first.waiting.fair_share.tenants_ahead.value == 2
    assert [other.tenant_id for other in first.waiting.fair_share.ahead] == ["alpha", "bravo"]
    assert first.waiting.estimate.seconds is None  # no run of the tier measured yet

    set_tier_limits(table, "basic", 3)
    report = admission.admit()
    assert report.admitted == [a, b, c1]  # the two tenants counted ahead of c1 went first, then c1


@pytestmark_moto
def test_a_borrowed_admission_records_its_lender_on_the_job(
    table: Callable[[str], Any], stepfunctions: Any
) -> None:
    account, items = tiers.capacity_items()
    assert account is not None
    guarantees = {name: int(item["concurrencyLimit"]) for name, item in items.items()}
    set_tier_limits(table, "basic", 1, borrowing=1)
    set_account_cap(table, 1 + guarantees["standard"] + guarantees["premium"])  # nothing unguaranteed
    own = enqueue(table, 1, "alpha", minute=0)
    lent = enqueue(table, 2, "bravo", minute=1)
    assert admission.admit().admitted == [own, lent]
    own_view, lent_view = explain(own), explain(lent)
    assert (own_view.slot.borrowed, own_view.slot.lent_by) == (False, None)
    idlest = "premium" if guarantees["premium"] >= guarantees["standard"] else "standard"
    assert (lent_view.slot.borrowed, lent_view.slot.lent_by) == (True, idlest)


@pytestmark_moto
def test_a_released_slot_folds_its_run_time_into_the_tier_average_once(
    table: Callable[[str], Any], stepfunctions: Any
) -> None:
    job_id = enqueue(table, 1, "alpha", minute=0)
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id},
        UpdateExpression="SET admittedAt = :a, slotReleasedAt = :r, pipelineExecutionArn = :p",
        ExpressionAttributeValues={
            ":a": "2024-05-14T09:00:00.000Z",
            ":r": "2024-05-14T09:01:30.000Z",
            ":p": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/x",
        },
    )
    admission.slot_released("basic", job_id)
    admission.slot_released("basic", job_id)  # a redelivered trigger counts nothing twice
    assert run_times_from_item(tiers.get("basic")) == RunTimes(average_seconds=90.0, measured=1)


@pytestmark_moto
def test_a_take_decided_on_a_stale_count_never_records_the_wrong_borrowed_flag(
    table: Callable[[str], Any], stepfunctions: Any
) -> None:
    set_tier_limits(table, "basic", 1, borrowing=1)
    job_id = enqueue(table, 1, "alpha", minute=0)
    account, items = tiers.capacity_items()
    capacity = capacity_from_items(account, items)
    assert capacity is not None
    share = fair_share.get("basic", "alpha")
    (waiting,) = [job for job in map(queued_job_from, jobs.share_waiting(share.share_id, limit=5)) if job]
    # A snapshot from before a release: it believes the tier runs its guarantee (the slot would be borrowed).
    stale = Admit(
        tier="basic",
        tenant_id="alpha",
        job=WaitingJob(job_id, 0.0),
        borrowed=True,
        tenant_usage=1.0,
        tenant_tag=1.0,
        tier_clock=0.0,
        lent_by=ACCOUNT_LENDER,
    )
    assert (
        slots.take(waiting, decision=stale, share=share, capacity=capacity, now=utc_now())
        is TakeOutcome.STALE
    )
    assert admission.admit().admitted == [job_id]
    assert explain(job_id).slot.borrowed is False
