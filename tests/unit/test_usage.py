"""Build results and cost recorded once per job, and usage per tenant per month (moto DynamoDB).

SageMaker's side is a fake of the results store's calls (ListPipelineExecutionSteps, Describe*, the report):
in-process moto has none of them; the emulator's answers are checked in tests/integration and, with real
training, tests/pipeline_integration.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import FakeStepFunctions, LambdaContext, load_event

from controlplane.builds import pipeline_store as pipelines
from controlplane.builds import reconciling, results_store
from controlplane.builds.lost_completions import PipelineExecutionState
from controlplane.builds.results import ComputeJob, ExecutionStep, ModelPackage
from controlplane.usage import prices
from controlplane.usage import store as usage
from controlplane.usage.cost import JobCost
from tests.unit.test_api import (
    api,  # noqa: F401 - the route fixture
    get_job,
    put_job,
    tenant,
)

SUCCEEDED = load_event("sagemaker_pipeline_succeeded.json")
JOB_ID = SUCCEEDED["detail"]["pipelineExecutionDisplayName"]
EXECUTION = SUCCEEDED["detail"]["pipelineExecutionArn"]
TOKEN = "pipeline-token-1"
SM = "arn:aws:sagemaker:us-east-1:123456789012"
PRE, TRAIN = f"{SM}:processing-job/pipelines-k3-preprocess-1", f"{SM}:training-job/pipelines-k3-train-2"
PACKAGE = f"{SM}:model-package/acme-models/1"
T0 = datetime(2024, 5, 14, 9, 31, tzinfo=UTC)
MONTH = "2024-05"  # the event's time: 2024-05-14T10:02:41Z


@dataclass
class FakeResults:
    """The results store's SageMaker and S3 calls for EXECUTION; ``failing`` names calls that fail."""

    failing: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.failing:
            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, name)

    def execution_steps(self, arn: str) -> list[ExecutionStep]:
        self._call("ListPipelineExecutionSteps")
        assert arn == EXECUTION
        return [
            ExecutionStep(
                "Preprocess", "Succeeded", T0, T0 + timedelta(seconds=90), None, "ProcessingJob", PRE
            ),
            ExecutionStep(
                "Train",
                "Succeeded",
                T0 + timedelta(seconds=90),
                T0 + timedelta(seconds=390),
                None,
                "TrainingJob",
                TRAIN,
            ),
            ExecutionStep(
                "Register",
                "Succeeded",
                T0 + timedelta(seconds=400),
                T0 + timedelta(seconds=401),
                None,
                "RegisterModel",
                PACKAGE,
            ),
        ]

    def processing_job(self, arn: str) -> ComputeJob:
        self._call("DescribeProcessingJob")
        return ComputeJob(arn, "ml.m5.large", 1, T0, T0 + timedelta(seconds=90))

    def training_job(self, arn: str) -> ComputeJob:
        self._call("DescribeTrainingJob")
        return ComputeJob(
            arn, "ml.m5.xlarge", 2, T0, T0, billable_time_seconds=300, training_time_seconds=300
        )

    def model_package(self, arn: str) -> ModelPackage:
        self._call("DescribeModelPackage")
        return ModelPackage(
            arn, 1, "s3://artifacts/model.tar.gz", "s3://artifacts/evaluation.json", "PendingManualApproval"
        )

    def json_document(self, uri: str) -> dict[str, Any]:
        self._call("GetObject")
        return {
            "binary_classification_metrics": {"auc": {"value": 0.88}},
            "validation_metric": {"name": "auc", "value": 0.88},
        }


# 90 s of ml.m5.large + 2 x 300 s of ml.m5.xlarge, plus the control plane.
EXPECTED_COST = round(
    round(round(90 * 0.115 / 3600, 8) + round(600 * 0.23 / 3600, 8), 8)
    + round(prices.control_plane_usd(), 8),
    8,
)


@pytest.fixture
def results(monkeypatch: pytest.MonkeyPatch) -> FakeResults:
    fake = FakeResults()
    for name in ("execution_steps", "processing_job", "training_job", "model_package", "json_document"):
        monkeypatch.setattr(results_store, name, getattr(fake, name))
    return fake


@pytest.fixture
def running(aws: None, table: Callable[[str], Any]) -> dict[str, Any]:
    """A RUNNING build waiting for its pipeline, holding a lease, quiet for long enough to be swept."""
    old = "2024-05-14T09:00:00.000Z"
    item = {
        "jobId": JOB_ID,
        "tenantId": "acme",
        "tier": "basic",
        "status": "RUNNING",
        "createdAt": old,
        "pipelineExecutionArn": EXECUTION,
        "pipelineTaskToken": TOKEN,
        "executionArn": f"arn:aws:states:us-east-1:123456789012:execution:MLaaS-Test-training-job:{JOB_ID}",
        "admittedAt": old,
        "updatedAt": old,
        "timeline": [],
    }
    table("JOBS_TABLE_NAME").put_item(Item=item)
    table("SLOT_LEASES_TABLE_NAME").put_item(
        Item={
            "jobId": JOB_ID,
            "tier": "basic",
            "tenantId": "acme",
            "executionArn": item["executionArn"],
            "acquiredAt": old,
        }
    )
    return item


@pytest.fixture
def pipeline_events(load_app: Callable[[str], ModuleType]) -> Callable[[str], dict[str, Any]]:
    app = load_app("pipeline_events")

    def deliver(request_id: str) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(SUCCEEDED, LambdaContext(aws_request_id=request_id))
        return result

    return deliver


def stored_job(table: Callable[[str], Any]) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": JOB_ID})["Item"])


def tenant_month(tenant_id: str = "acme") -> Any:
    months, _ = usage.tenant_months(tenant_id, limit=10)
    return months


def test_the_build_results_and_cost_are_recorded_before_the_execution_resumes(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    pipeline_events: Callable[[str], dict[str, Any]],
    table: Callable[[str], Any],
) -> None:
    assert pipeline_events("events-1")["resumed"] is True
    job = stored_job(table)
    recorded = job["buildResults"]
    assert recorded["modelPackageArn"] == PACKAGE
    assert recorded["modelPackageVersion"] == 1
    assert recorded["modelArtifactUri"] == "s3://artifacts/model.tar.gz"
    assert {name: float(value) for name, value in recorded["metrics"].items()} == {"auc": 0.88}
    assert [
        (s["name"], float(s["billableSeconds"])) for s in recorded["steps"] if "billableSeconds" in s
    ] == [
        ("Preprocess", 90.0),
        ("Train", 600.0),
    ]
    assert float(recorded["billableSeconds"]) == 690.0
    assert float(job["cost"]["totalUsd"]) == pytest.approx(EXPECTED_COST, abs=1e-12)
    assert job["cost"]["month"] == MONTH
    assert job["costRecordedAt"]
    (month,) = tenant_month()
    assert (month.month, month.jobs, month.tier) == (MONTH, 1, "basic")
    assert month.cost_usd == pytest.approx(EXPECTED_COST, abs=1e-12)
    assert month.billable_seconds == 690.0
    (tier_month,) = usage.tier_months("basic", limit=10)[0]
    assert (tier_month.jobs, tier_month.cost_usd) == (1, month.cost_usd)
    assert [token for token, _ in stepfunctions.sent] == [TOKEN]


def test_a_status_event_delivered_twice_counts_the_build_once(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    pipeline_events: Callable[[str], dict[str, Any]],
) -> None:
    pipeline_events("events-1")
    read_once = list(results.calls)
    pipeline_events("events-2")  # EventBridge delivers at least once
    pipeline_events("events-1")  # and Lambda retries an invocation
    (month,) = tenant_month()
    assert month.jobs == 1
    assert month.cost_usd == pytest.approx(EXPECTED_COST, abs=1e-12)
    assert results.calls == read_once  # a recorded build is not even read again
    assert len(stepfunctions.sent) == 1


def test_a_lost_completion_recovered_by_the_sweep_is_counted_once_even_when_the_event_comes_late(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    pipeline_events: Callable[[str], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ended = datetime(2024, 5, 14, 10, 2, 40, tzinfo=UTC)
    monkeypatch.setattr(pipelines, "describe", lambda arn: PipelineExecutionState("Succeeded", None, ended))
    sweep = reconciling.recover_lost_completions("basic", now=ended + timedelta(minutes=30))
    assert sweep.recovered == [JOB_ID]
    pipeline_events("events-late")
    assert reconciling.recover_lost_completions("basic", now=ended + timedelta(minutes=31)).recovered == []
    (month,) = tenant_month()
    assert month.jobs == 1
    assert month.cost_usd == pytest.approx(EXPECTED_COST, abs=1e-12)


def test_the_sweep_records_what_a_cut_short_event_left_unrecorded(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
) -> None:
    """pipeline_events stored the outcome and died before recording or resuming: the sweep does both."""
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": JOB_ID},
        UpdateExpression="SET pipelineOutcome = :o",
        ExpressionAttributeValues={
            ":o": {
                "status": "SUCCEEDED",
                "reason": "",
                "at": "2024-05-14T10:02:40.000Z",
                "pipelineExecutionArn": EXECUTION,
            }
        },
    )
    now = datetime(2024, 5, 14, 11, 0, tzinfo=UTC)
    assert reconciling.recover_lost_completions("basic", now=now).recovered == [JOB_ID]
    assert reconciling.recover_lost_completions("basic", now=now).recovered == []
    (month,) = tenant_month()
    assert month.jobs == 1
    assert stored_job(table)["buildResults"]["modelPackageArn"] == PACKAGE
    assert len(stepfunctions.sent) == 1


def test_results_that_cannot_be_read_never_hold_the_outcome_back(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    pipeline_events: Callable[[str], dict[str, Any]],
    table: Callable[[str], Any],
) -> None:
    results.failing = {"DescribeTrainingJob", "GetObject"}
    assert pipeline_events("events-1")["resumed"] is True
    recorded = stored_job(table)["buildResults"]
    assert recorded["unreadable"] == [
        "DescribeTrainingJob pipelines-k3-train-2: ThrottlingException",
        "GetObject s3://artifacts/evaluation.json: ThrottlingException",
    ]
    assert recorded["modelPackageArn"] == PACKAGE  # everything else was read
    assert recorded["metrics"] == {}
    assert float(recorded["billableSeconds"]) == 90.0
    (month,) = tenant_month()
    assert month.jobs == 1


def test_a_failure_to_record_is_logged_and_the_execution_still_resumes(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    pipeline_events: Callable[[str], dict[str, Any]],
    table: Callable[[str], Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def broken(*args: Any, **kwargs: Any) -> bool:
        raise ClientError({"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems")

    monkeypatch.setattr(usage, "record_job_cost", broken)
    assert pipeline_events("events-1")["resumed"] is True
    assert "costRecordedAt" not in stored_job(table)
    assert tenant_month() == []
    assert "BuildResultsErrors" in capsys.readouterr().out


# ------------------------------------------------------------------ the routes


def record(
    table: Callable[[str], Any], number: int, tenant_id: str, month: str, total: float, tier: str
) -> None:
    job_id = put_job(table, number, tenant_id, f"{month}-02T10:00:00.000Z")
    cost = JobCost(
        month=month,
        tier=tier,
        billable_seconds=total * 1000,
        compute_usd=total,
        control_plane_usd=0.0,
        total_usd=total,
    )
    assert usage.record_job_cost(job_id, tenant_id=tenant_id, results={"readAt": "x"}, cost=cost, now="x")
    # Once only: the job's marker refuses a second count.
    assert not usage.record_job_cost(job_id, tenant_id=tenant_id, results={"readAt": "x"}, cost=cost, now="y")


@pytest.fixture
def recorded(aws: None, table: Callable[[str], Any]) -> None:
    record(table, 1, "acme", "2024-05", 0.25, "basic")
    record(table, 2, "acme", "2024-05", 0.5, "basic")
    record(table, 3, "acme", "2024-04", 1.0, "basic")
    record(table, 4, "globex", "2024-05", 2.0, "premium")
    record(table, 5, "initech", "2024-05", 0.1, "standard")


def test_a_tenant_sees_its_own_months_only(
    recorded: None,
    api: Callable[..., tuple[int, Any]],  # noqa: F811 - the fixture imported above
) -> None:
    status, body = api("GET", "/usage", caller=tenant("acme"))
    assert status == 200
    assert [(m["month"], m["jobs"], m["costUsd"]) for m in body["items"]] == [
        ("2024-05", 2, 0.75),
        ("2024-04", 1, 1.0),
    ]
    assert {m["tenantId"] for m in body["items"]} == {"acme"}
    assert body["items"][0]["instanceHours"] == pytest.approx(750 / 3600, abs=1e-6)
    status, body = api("GET", "/usage", caller=tenant("globex"), query={"month": "2024-05"})
    assert (status, [(m["tenantId"], m["costUsd"]) for m in body["items"]]) == (200, [("globex", 2.0)])
    status, body = api("GET", "/usage", caller=tenant("nobody"))
    assert (status, body["items"]) == (200, [])
    # A page token of another tenant's listing is refused, not followed.
    _, first = api("GET", "/usage", caller=tenant("acme"), query={"limit": "1"})
    status, _ = api("GET", "/usage", caller=tenant("globex"), query={"nextToken": first["nextToken"]})
    assert status == 400


def test_operators_see_every_tenant_of_a_month_costliest_first_page_by_page(
    recorded: None,
    api: Callable[..., tuple[int, Any]],  # noqa: F811 - the fixture imported above
) -> None:
    operator = {"role": "operator"}
    seen: list[tuple[str, float]] = []
    token: str | None = None
    while True:
        query = {"month": "2024-05", "limit": "2"} | ({"nextToken": token} if token else {})
        status, body = api("GET", "/usage", caller=operator, query=query)
        assert status == 200
        seen += [(m["tenantId"], m["costUsd"]) for m in body["items"]]
        token = body.get("nextToken")
        if not token:
            break
    assert seen == [("globex", 2.0), ("acme", 0.75), ("initech", 0.1)]
    status, _ = api("GET", "/usage", caller=operator)
    assert status == 400  # which month?
    status, body = api(
        "GET",
        "/tenants/acme/usage",
        caller=operator,
        resource="/tenants/{tenantId}/usage",
        path_parameters={"tenantId": "acme"},
    )
    assert (status, [m["month"] for m in body["items"]]) == (200, ["2024-05", "2024-04"])


def test_the_operator_routes_refuse_tenants_and_unknown_tenants(
    recorded: None,
    api: Callable[..., tuple[int, Any]],  # noqa: F811 - the fixture imported above
    put_tenant: Callable[..., dict[str, Any]],
) -> None:
    def tenant_usage(tenant_id: str, caller: dict[str, str]) -> int:
        status, _ = api(
            "GET",
            f"/tenants/{tenant_id}/usage",
            caller=caller,
            resource="/tenants/{tenantId}/usage",
            path_parameters={"tenantId": tenant_id},
        )
        return status

    assert tenant_usage("globex", tenant("acme")) == 403
    assert tenant_usage("ghost", {"role": "operator"}) == 404
    put_tenant("quiet")
    assert tenant_usage("quiet", {"role": "operator"}) == 200
    status, _ = api("GET", "/usage", caller={"role": "operator"}, query={"month": "2024-13"})
    assert status == 422


def test_the_job_view_shows_its_model_metrics_and_cost(
    running: dict[str, Any],
    results: FakeResults,
    stepfunctions: FakeStepFunctions,
    pipeline_events: Callable[[str], dict[str, Any]],
    api: Callable[..., tuple[int, Any]],  # noqa: F811 - the fixture imported above
) -> None:
    pipeline_events("events-1")
    status, view = get_job(api, JOB_ID, tenant("acme"))
    assert status == 200
    assert view["modelPackageArn"] == PACKAGE
    assert view["modelPackageVersion"] == 1
    assert view["metrics"] == {"auc": 0.88}
    assert view["billableSeconds"] == 690.0
    assert view["costUsd"] == pytest.approx(EXPECTED_COST, abs=1e-12)
    assert [line["instanceType"] for line in view["cost"]["lines"]] == ["ml.m5.large", "ml.m5.xlarge"]
    assert view["results"]["steps"][1]["instanceCount"] == 2
    status, _ = get_job(api, JOB_ID, tenant("globex"))
    assert status == 404


def test_a_transaction_conflict_is_tried_again_and_counts_once(
    aws: None, table: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from controlplane.core.clients import client  # noqa: PLC0415 - see conftest.pytest_configure

    dynamodb = client("dynamodb")
    real = dynamodb.transact_write_items
    conflicts = [1]

    def conflicting(**request: Any) -> Any:
        if conflicts:
            conflicts.pop()
            raise ClientError(
                {
                    "Error": {"Code": "TransactionCanceledException", "Message": "conflict"},
                    "CancellationReasons": [
                        {"Code": "TransactionConflict"},
                        {"Code": "None"},
                        {"Code": "None"},
                    ],
                },
                "TransactWriteItems",
            )
        return real(**request)

    monkeypatch.setattr(dynamodb, "transact_write_items", conflicting)
    record(table, 1, "acme", "2024-05", 0.25, "basic")
    (month,) = tenant_month()
    assert (month.jobs, month.cost_usd) == (1, 0.25)
    assert conflicts == []
