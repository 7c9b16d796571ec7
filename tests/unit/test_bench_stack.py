"""The pure figures of the stack benchmark (bench.stack): percentiles, pairing slot releases with the next
pipeline starts, DynamoDB request units, and the cost arithmetic. No emulator runs here."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from bench import prices
from bench.stack import (
    Admission,
    bench_tenants,
    cost_per_1000_jobs,
    dynamodb_request_units,
    make_uploads,
    max_concurrent,
    percentile,
    running_at,
    shares,
    slot_free_to_start,
    stage_seconds,
    tier_admissions,
)


@pytest.mark.parametrize("q", [0, 1, 50, 90, 99, 100])
def test_percentile_matches_numpy_linear_interpolation(q: float) -> None:
    values = [5.0, 1.0, 9.5, 3.25, 7.0, 2.0, 8.0]
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_nothing_is_nan_and_of_one_value_is_that_value() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([4.0], 99) == 4.0


def test_each_release_is_taken_once_in_the_order_slots_freed() -> None:
    # Two slots free at 10 and 11; jobs queued at 0 and 1 are admitted at 10.2 and 11.5, start 0.3 s later.
    admissions = [Admission(0.0, 10.2, 10.5), Admission(1.0, 11.5, 11.8)]
    assert slot_free_to_start([11.0, 10.0], admissions) == pytest.approx([0.5, 0.8])


def test_initial_slots_and_jobs_that_arrived_after_the_release_are_not_measured() -> None:
    admissions = [
        Admission(0.0, 0.1, 0.4),  # took a never-used slot: no release before it
        Admission(0.0, 0.2, 0.5),  # the same
        Admission(6.0, 6.1, 6.3),  # took the slot freed at 5, but was not waiting then
        Admission(1.0, 8.0, 8.4),  # was waiting when the slot freed at 7.5
    ]
    assert slot_free_to_start([5.0, 7.5], admissions) == pytest.approx([0.9])


def test_an_admission_whose_pipeline_never_started_takes_the_release_without_a_figure() -> None:
    admissions = [Admission(0.0, 3.0, None), Admission(0.0, 4.0, 4.5)]
    assert slot_free_to_start([2.0, 3.5], admissions) == pytest.approx([1.0])


def test_a_release_after_every_admission_is_left_unpaired() -> None:
    assert slot_free_to_start([9.0], [Admission(0.0, 1.0, 1.5)]) == []


def test_job_items_become_releases_admissions_and_stages() -> None:
    job = {
        "key": "k",
        "queuedAt": "2026-01-01T00:00:01.000Z",
        "admittedAt": "2026-01-01T00:00:03.000Z",
        "slotReleasedAt": "2026-01-01T00:00:09.000+00:00",
        "timeline": [
            {"status": "RECEIVED", "at": "2026-01-01T00:00:00.500Z"},
            {"status": "RUNNING", "at": "2026-01-01T00:00:04.000Z"},
        ],
    }
    base = running_at(job)
    assert base is not None
    releases, admissions = tier_admissions([job, {"key": "rejected"}])
    assert [r - base for r in releases] == pytest.approx([5.0])
    assert len(admissions) == 1
    assert admissions[0].started == base
    assert admissions[0].admitted - admissions[0].queued == pytest.approx(2.0)
    stages = stage_seconds({"k": base - 4.0}, [job])
    assert stages == {"upload → RECEIVED": pytest.approx([0.5]), "RECEIVED → RUNNING": pytest.approx([3.5])}


@pytest.mark.parametrize(
    ("action", "body", "units"),
    [
        ("PutItem", {}, (0.0, 1.0)),
        ("UpdateItem", {}, (0.0, 1.0)),
        ("TransactWriteItems", {"TransactItems": [{}, {}, {}]}, (0.0, 6.0)),
        ("BatchWriteItem", {"RequestItems": {"a": [{}, {}], "b": [{}]}}, (0.0, 3.0)),
        ("GetItem", {}, (0.5, 0.0)),
        ("GetItem", {"ConsistentRead": True}, (1.0, 0.0)),
        ("Query", {}, (0.5, 0.0)),
        ("TransactGetItems", {"TransactItems": [{}, {}]}, (4.0, 0.0)),
        ("BatchGetItem", {"RequestItems": {"a": {"Keys": [{}, {}], "ConsistentRead": True}}}, (2.0, 0.0)),
        ("DescribeTable", {}, (0.0, 0.0)),
    ],
)
def test_dynamodb_request_units(action: str, body: dict[str, object], units: tuple[float, float]) -> None:
    assert dynamodb_request_units(action, body) == units


def test_cost_per_1000_jobs_is_the_sum_of_priced_line_items() -> None:
    per_job = {
        "state_transitions": 13.0,
        "dynamodb_rru": 4.0,
        "dynamodb_wru": 24.0,
        "sqs_requests": 2.0,
        "eventbridge_custom_events": 0.0,
        "s3_put_requests": 2.0,
        "s3_get_requests": 1.0,
    }
    invocations = {"Small": 2.0, "Big": 1.0}
    memory = {"Small": 256, "Big": 2048}
    cost = cost_per_1000_jobs(per_job, invocations, memory, assumed_duration_ms=lambda f: 1000.0)
    assert cost["step_functions"] == pytest.approx(13 * 0.025)  # $0.025 per 1,000 transitions
    assert cost["lambda_requests"] == pytest.approx(3 * 0.20 / 1000)
    # 2 × 0.25 GB × 1 s + 1 × 2 GB × 1 s = 2.5 GB-s per job
    assert cost["lambda_compute"] == pytest.approx(2.5 * 1000 * prices.LAMBDA_GB_SECOND.usd)
    assert cost["dynamodb_reads"] == pytest.approx(4 * 0.125 / 1000)
    assert cost["dynamodb_writes"] == pytest.approx(24 * 0.625 / 1000)
    assert cost["sqs"] == pytest.approx(2 * 0.40 / 1000)
    assert cost["eventbridge"] == 0.0
    assert cost["s3_requests"] == pytest.approx(2 * 0.005 + 1 * 0.0004)
    assert cost["total"] == pytest.approx(sum(v for k, v in cost.items() if k != "total"))


def test_cost_uses_the_stated_duration_assumptions_by_default() -> None:
    cost = cost_per_1000_jobs({}, {"ValidateDatasetFunction": 1.0}, {"ValidateDatasetFunction": 1024})
    assumed = prices.ASSUMED_DURATION_MS["ValidateDatasetFunction"] / 1000
    assert cost["lambda_compute"] == pytest.approx(1000 * assumed * prices.LAMBDA_GB_SECOND.usd)
    assert cost["total"] == pytest.approx(cost["lambda_compute"] + cost["lambda_requests"])


def test_shares_split_in_proportion_to_weights_and_add_up() -> None:
    assert shares({"basic": 2, "standard": 4, "premium": 8}, 300) == {
        "basic": 43,
        "standard": 86,
        "premium": 171,
    }
    assert sum(shares({"a": 1, "b": 1, "c": 1}, 10).values()) == 10


def test_uploads_follow_tier_limits_and_interleave_tiers() -> None:
    uploads = make_uploads(bench_tenants(), 28, "t", seed=1, limits={"basic": 2, "standard": 4, "premium": 8})
    tiers = Counter(u.tenant.tier for u in uploads)
    assert tiers == {"basic": 4, "standard": 8, "premium": 16}
    assert {u.tenant.tier for u in uploads[:7]} == {"basic", "standard", "premium"}
    assert len({u.key for u in uploads}) == 28


def test_max_concurrent_counts_slots_held_at_once_and_frees_before_taking_at_the_same_instant() -> None:
    jobs = [
        {"admittedAt": "2024-05-01T00:00:00Z", "slotReleasedAt": "2024-05-01T00:00:10Z"},
        {"admittedAt": "2024-05-01T00:00:05Z", "slotReleasedAt": "2024-05-01T00:00:20Z"},
        # Takes the slot freed at the same instant:
        {"admittedAt": "2024-05-01T00:00:10Z", "slotReleasedAt": "2024-05-01T00:00:15Z"},
        {"admittedAt": "2024-05-01T00:00:12Z"},  # still holds its slot
        {"status": "REJECTED"},  # never admitted
    ]
    assert max_concurrent(jobs) == 3
    assert max_concurrent([]) == 0
