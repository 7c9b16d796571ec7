"""mlaas job (model, metrics, steps, cost) and mlaas usage (tenant and operator views) on the API."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from controlplane.builds.results import BuildResults, StepView
from controlplane.usage import store as usage
from controlplane.usage.cost import job_cost
from tests.unit import test_api
from tests.unit.test_api import OPERATOR, put_job, tenant
from tests.unit.test_cli import run

api = test_api.api  # the status API fixture
pytestmark = pytest.mark.usefixtures("aws")
PACKAGE = "arn:aws:sagemaker:us-east-1:123456789012:model-package/acme-models/2"


def built(table: Callable[[str], Any], number: int, tenant_id: str, seconds: float) -> float:
    job_id = put_job(table, number, tenant_id, "2024-05-02T10:00:00.000Z")
    results = BuildResults(
        model_package_arn=PACKAGE,
        model_package_version=2,
        model_artifact_uri="s3://artifacts/model.tar.gz",
        metrics={"auc": 0.912, "accuracy": 0.85},
        steps=[
            StepView(
                name="Preprocess",
                status="Succeeded",
                instance_type="ml.m5.large",
                instance_count=1,
                billable_seconds=seconds,
                duration_seconds=seconds,
            ),
        ],
        billable_seconds=seconds,
        read_at="2024-05-02T10:10:00.000Z",
    )
    cost = job_cost(results, tier="basic", ended_at="2024-05-02T10:09:00.000Z")
    assert usage.record_job_cost(
        job_id, tenant_id=tenant_id, results=results.wire(), cost=cost, now="2024-05-02T10:10:00.000Z"
    )
    return cost.total_usd


def test_the_job_command_shows_the_model_its_metrics_and_the_cost(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    total = built(table, 1, "acme", 3600.0)
    code, text = run(api, tenant("acme"), "job", test_api.job_id_for(1))
    assert code == 0, text
    assert f"model: {PACKAGE} (version 2)" in text
    assert "metrics: accuracy=0.85, auc=0.912" in text
    assert "Preprocess" in text
    assert f"cost: ${total:.6f} = compute $0.115000 + control plane" in text  # an hour of ml.m5.large


def test_the_usage_command_has_a_tenant_view_and_an_operator_view(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    acme = built(table, 1, "acme", 3600.0) + built(table, 2, "acme", 1800.0)
    globex = built(table, 3, "globex", 7200.0)
    code, text = run(api, tenant("acme"), "usage")
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].split() == [
        "month",
        "jobs",
        "instance-hours",
        "compute",
        "USD",
        "control",
        "plane",
        "USD",
        "cost",
        "USD",
    ]
    assert lines[1].split()[:3] == ["2024-05", "2", "1.5"]
    assert lines[1].split()[-1] == str(round(acme, 8))
    assert "globex" not in text
    code, text = run(api, OPERATOR, "usage", "--operator", "--month", "2024-05")
    assert code == 0, text
    rows = [line.split() for line in text.splitlines()[1:-1]]
    assert [row[0] for row in rows] == ["globex", "acme"]  # costliest first
    assert text.splitlines()[-1] == f"2 tenants, 3 jobs, ${acme + globex:.6f} in 2024-05"
    code, text = run(api, OPERATOR, "usage", "--tenant", "globex")
    assert code == 0
    assert text.splitlines()[1].split()[:2] == ["2024-05", "1"]
    code, _ = run(api, tenant("acme"), "usage", "--tenant", "globex")
    assert code == 1  # operator only
