"""Build results from SageMaker's answers, and what a job costs (controlplane.builds.results, usage.cost)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bench.stack import cost_per_1000_jobs
from controlplane.builds.results import (
    BuildResults,
    ComputeJob,
    ExecutionStep,
    ModelPackage,
    StepView,
    build_results,
    metrics_of,
)
from controlplane.usage import prices
from controlplane.usage.cost import job_cost, month_of

T0 = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
REGION_ACCOUNT = "arn:aws:sagemaker:us-east-1:123456789012"
PRE = f"{REGION_ACCOUNT}:processing-job/pipelines-x-preprocess-1"
TRAIN = f"{REGION_ACCOUNT}:training-job/pipelines-x-trainspot-2"
EVAL = f"{REGION_ACCOUNT}:processing-job/pipelines-x-evaluatespot-3"
PACKAGE = f"{REGION_ACCOUNT}:model-package/acme-models/3"
REPORT = {
    "binary_classification_metrics": {"auc": {"value": 0.91}, "accuracy": {"value": 0.87}},
    "validation_metric": {"name": "auc", "value": 0.91},
    "problem_type": "binary_classification",
    "test_rows": 40,
}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def steps(*, register: bool = True) -> list[ExecutionStep]:
    found = [
        # Deliberately out of order: the results list steps in the order they started.
        ExecutionStep("TrainSpot", "Succeeded", at(100), at(400), None, "TrainingJob", TRAIN),
        ExecutionStep("Preprocess", "Succeeded", at(0), at(100), None, "ProcessingJob", PRE),
        ExecutionStep("UseSpotCapacity", "Succeeded", at(100), at(100), None, "Condition", None),
        ExecutionStep("EvaluateSpot", "Succeeded", at(400), at(460), None, "ProcessingJob", EVAL),
    ]
    if register:
        found.append(
            ExecutionStep(
                "RegisterSpot-RegisterModel", "Succeeded", at(461), at(462), None, "RegisterModel", PACKAGE
            )
        )
    return found


JOBS = {
    PRE: ComputeJob(PRE, "ml.m5.large", 1, at(0), at(100)),
    TRAIN: ComputeJob(
        TRAIN,
        "ml.m5.xlarge",
        2,
        at(100),
        at(400),
        billable_time_seconds=120,
        training_time_seconds=300,
        spot=True,
    ),
    EVAL: ComputeJob(EVAL, "ml.m5.large", 1, at(400), at(460)),
}
MODEL = ModelPackage(PACKAGE, 3, "s3://artifacts/model.tar.gz", "s3://artifacts/evaluation.json")


def test_results_are_what_sagemaker_reported() -> None:
    results = build_results(steps(), JOBS, MODEL, REPORT, unreadable=[], read_at="2026-12-02T14:08:00.000Z")

    assert results.model_package_arn == PACKAGE
    assert results.model_package_version == 3
    assert results.model_artifact_uri == "s3://artifacts/model.tar.gz"
    assert results.metrics == {"auc": 0.91, "accuracy": 0.87}
    assert results.validation_metric is not None
    assert results.validation_metric.value == 0.91
    assert [step.name for step in results.steps] == [
        "Preprocess",
        "TrainSpot",
        "UseSpotCapacity",
        "EvaluateSpot",
        "RegisterSpot-RegisterModel",
    ]
    train = results.steps[1]
    assert train == StepView(
        name="TrainSpot",
        status="Succeeded",
        started_at="2026-12-02T14:01:40.000Z",
        ended_at="2026-12-02T14:06:40.000Z",
        duration_seconds=300.0,
        job_arn=TRAIN,
        instance_type="ml.m5.xlarge",
        instance_count=2,
        # BillableTimeInSeconds (already net of spot) x InstanceCount, not the 300 s it ran.
        billable_seconds=240.0,
        spot=True,
        spot_savings_percent=60.0,  # (1 - 120 / 300) x 100, SageMaker's formula
    )
    assert results.steps[0].billable_seconds == 100.0  # processing: its run time x 1 instance
    assert results.steps[2].billable_seconds is None  # a condition runs no instance
    assert results.billable_seconds == 100.0 + 240.0 + 60.0
    assert results.instance_seconds_by_type() == {"ml.m5.large": 160.0, "ml.m5.xlarge": 240.0}
    assert results.failed_step is None


def test_a_failed_build_names_the_failing_step_and_its_reason() -> None:
    failed = [
        *steps(register=False)[:2],
        ExecutionStep(
            "MetricBelowThresholdSpot",
            "Failed",
            at(461),
            at(461),
            "Model not registered: auc 0.5",
            "Fail",
            None,
        ),
    ]
    results = build_results(failed, JOBS, None, None, unreadable=[], read_at="x", pipeline_failure_reason="p")
    assert results.failed_step == "MetricBelowThresholdSpot"
    assert results.failure_reason == "Model not registered: auc 0.5"
    assert results.model_package_arn is None
    assert results.metrics == {}
    # Without a failing step (e.g. nothing could be listed), the pipeline's own reason stands.
    bare = build_results(
        [],
        {},
        None,
        None,
        unreadable=["ListPipelineExecutionSteps: X"],
        read_at="x",
        pipeline_failure_reason="the pipeline failed: boom",
    )
    assert (bare.failed_step, bare.failure_reason) == (None, "the pipeline failed: boom")
    assert bare.unreadable == ["ListPipelineExecutionSteps: X"]


def test_metrics_are_the_reports_metric_sections() -> None:
    metrics, gated = metrics_of(
        {
            "regression_metrics": {"r2": {"value": 0.7}, "rmse": {"value": 3}},
            "validation_metric": {"name": "r2", "value": 0.7},
        }
    )
    assert metrics == {"r2": 0.7, "rmse": 3.0}
    assert gated is not None
    assert gated.name == "r2"
    assert metrics_of(None) == ({}, None)


def test_a_jobs_cost_is_its_instance_seconds_at_the_published_prices_plus_the_control_plane() -> None:
    results = build_results(steps(), JOBS, MODEL, REPORT, unreadable=[], read_at="x")
    cost = job_cost(results, tier="basic", ended_at="2026-12-02T14:07:42.000Z")

    large = 160.0 * 0.115 / 3600
    xlarge = 240.0 * 0.23 / 3600
    assert cost.compute_usd == pytest.approx(large + xlarge, abs=1e-8)
    assert cost.control_plane_usd == pytest.approx(prices.control_plane_usd(), abs=1e-8)
    assert cost.total_usd == pytest.approx(cost.compute_usd + cost.control_plane_usd, abs=1e-8)
    assert [(line.instance_type, line.instance_seconds) for line in cost.lines] == [
        ("ml.m5.large", 160.0),
        ("ml.m5.xlarge", 240.0),
    ]
    assert cost.month == "2026-12"
    assert cost.tier == "basic"
    assert cost.billable_seconds == 400.0
    assert cost.unpriced == []
    # Each amount is rounded once; the total is the sum of the rounded parts, so counters add up exactly.
    assert cost.total_usd == round(round(sum(line.usd for line in cost.lines), 8) + cost.control_plane_usd, 8)


def test_an_instance_type_without_a_price_is_named_and_not_guessed() -> None:
    odd = {PRE: ComputeJob(PRE, "ml.p5.48xlarge", 1, at(0), at(10))}
    results = build_results(steps()[1:2], odd, None, None, unreadable=[], read_at="x")
    cost = job_cost(results, tier="premium", ended_at="2026-01-31T23:59:59.999Z")
    assert cost.unpriced == ["ml.p5.48xlarge"]
    assert cost.compute_usd == 0.0
    assert cost.total_usd == cost.control_plane_usd > 0
    assert cost.month == "2026-01"


def test_a_build_that_ran_nothing_costs_only_the_control_plane() -> None:
    cost = job_cost(BuildResults(read_at="x"), tier="basic", ended_at="2026-12-02T00:00:00.000Z")
    assert cost.compute_usd == 0.0
    assert cost.total_usd == round(prices.control_plane_usd(), 8)


def test_every_tier_instance_type_has_a_price() -> None:
    from tests.unit.conftest import load_template  # noqa: PLC0415

    tiers = load_template()["Mappings"]["TierDefaults"]
    used = {
        tier[key] for tier in tiers.values() for key in ("TrainingInstanceType", "ProcessingInstanceType")
    }
    assert used <= set(prices.INSTANCE_USD_PER_HOUR)
    for name in used:
        price = prices.instance_price(name)
        assert price is not None
        assert price.source == prices.SAGEMAKER_PRICING


def test_the_control_plane_share_is_the_bench_price_of_the_bench_figures() -> None:
    """One price table: the bench prices the same figures at 1,000 times the per-job share."""
    figures = prices.CONTROL_PLANE_PER_JOB
    memory = {"ValidateDatasetFunction": 1769, "Other": 256}
    bench = cost_per_1000_jobs(figures, {"ValidateDatasetFunction": 1.0, "Other": 4.0}, memory)
    assert bench["total"] / 1000 == pytest.approx(prices.control_plane_usd(), rel=1e-9)
    assert 0 < prices.control_plane_usd() < 0.01


def test_month_of_a_timestamp() -> None:
    assert month_of("2026-12-02T14:17:48.123Z") == "2026-12"
