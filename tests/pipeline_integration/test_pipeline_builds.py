"""Real builds: the pipeline's scripts preprocess, train, evaluate and register each tenant's model."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from controlplane.core.model import format_timestamp
from controlplane.usage import prices
from scripts.jobs import plain, registered_models
from scripts.sample_data import classification_csv, noise_csv
from tests.integration.conftest import Deployed, lease_count, pipeline_executions_for, upload, wait_for_jobs

pytestmark = pytest.mark.integration


def _s3_json(deployed: Deployed, uri: str) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return dict(json.loads(deployed.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


def _keys_under(deployed: Deployed, bucket: str, prefix: str) -> list[str]:
    pages = deployed.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


def _as_float(value: Any) -> float:
    return float(value) if isinstance(value, (int, float, Decimal)) else float("nan")


def assert_results_are_what_sagemaker_reports(deployed: Deployed, job: dict[str, Any]) -> dict[str, Any]:
    """The results recorded on the job equal what the emulator's SageMaker APIs answer about the real run:
    every step (ListPipelineExecutionSteps), each job's instances and billable seconds (Describe-
    ProcessingJob / DescribeTrainingJob); and the cost is those instance-seconds at the table's prices."""
    sagemaker = deployed.client("sagemaker")
    results = job["buildResults"]
    steps = sagemaker.list_pipeline_execution_steps(
        PipelineExecutionArn=job["pipelineExecutionArn"], SortOrder="Ascending"
    )["PipelineExecutionSteps"]
    assert sorted(step["name"] for step in results["steps"]) == sorted(step["StepName"] for step in steps)
    by_name = {step["name"]: step for step in results["steps"]}
    expected_seconds = 0.0
    for step in steps:
        recorded = by_name[step["StepName"]]
        assert recorded["status"] == step["StepStatus"]
        assert recorded["startedAt"] == format_timestamp(step["StartTime"])
        assert recorded["endedAt"] == format_timestamp(step["EndTime"])
        assert _as_float(recorded["durationSeconds"]) == pytest.approx(
            (step["EndTime"] - step["StartTime"]).total_seconds(), abs=1e-3
        )
        metadata = step.get("Metadata", {})
        if "TrainingJob" in metadata:
            name = metadata["TrainingJob"]["Arn"].rsplit("/", 1)[-1]
            described = sagemaker.describe_training_job(TrainingJobName=name)
            resources = described["ResourceConfig"]
            seconds = described["BillableTimeInSeconds"] * resources["InstanceCount"]
            assert described["TrainingTimeInSeconds"] >= (step["EndTime"] - step["StartTime"]).total_seconds()
        elif "ProcessingJob" in metadata:
            name = metadata["ProcessingJob"]["Arn"].rsplit("/", 1)[-1]
            described = sagemaker.describe_processing_job(ProcessingJobName=name)
            resources = described["ProcessingResources"]["ClusterConfig"]
            run = described["ProcessingEndTime"] - described["ProcessingStartTime"]
            seconds = run.total_seconds() * resources["InstanceCount"]
        else:
            assert "billableSeconds" not in recorded
            continue
        assert recorded["instanceType"] == resources["InstanceType"]
        assert int(recorded["instanceCount"]) == resources["InstanceCount"]
        assert _as_float(recorded["billableSeconds"]) == pytest.approx(seconds, abs=1e-3)
        expected_seconds += seconds
    assert _as_float(results["billableSeconds"]) == pytest.approx(expected_seconds, abs=1e-2)
    cost = job["cost"]
    lines = sum(
        _as_float(line["instanceSeconds"]) * _as_float(line["usdPerSecond"]) for line in cost["lines"]
    )
    assert _as_float(cost["computeUsd"]) == pytest.approx(lines, abs=1e-7)
    assert _as_float(cost["totalUsd"]) == pytest.approx(
        _as_float(cost["computeUsd"]) + prices.control_plane_usd(), abs=1e-7
    )
    assert _as_float(cost["totalUsd"]) > 0
    return dict(results)


def _tenant_month(deployed: Deployed, tenant_id: str, month: str) -> dict[str, Any]:
    item = deployed.client("dynamodb").get_item(
        TableName=deployed.outputs["UsageTableName"],
        Key={"scope": {"S": f"tenant#{tenant_id}"}, "month": {"S": month}},
    )["Item"]
    return plain(item)


def test_a_valid_upload_registers_a_model_whose_metrics_are_the_evaluation_output(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("premium", metric_threshold=0.6)
    upload(deployed, tenant.tenant_id, "learnable.csv", classification_csv(tenant, rows=400, seed=3))

    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=180)

    assert job["status"] == "SUCCEEDED", job.get("reasons")
    (model,) = registered_models(deployed.cloud, f"{tenant.tenant_id}-models")
    assert model["jobId"] == job["jobId"]
    assert model["approvalStatus"] == "PendingManualApproval"
    (params,) = pipeline_executions_for(deployed, tenant.tenant_id)
    evaluation = _s3_json(deployed, params["ModelOutputUri"] + "evaluation/evaluation.json")
    assert model["metric"] == evaluation["validation_metric"]
    assert model["metric"]["value"] >= 0.6
    results = assert_results_are_what_sagemaker_reports(deployed, job)
    assert results["modelPackageArn"] == model["modelPackageArn"]
    assert int(results["modelPackageVersion"]) == model["version"]
    assert {k: _as_float(v) for k, v in results["metrics"].items()} == {
        name: entry["value"] for name, entry in evaluation["binary_classification_metrics"].items()
    }
    assert results["modelArtifactUri"].endswith("/output/model.tar.gz")
    # premium trains on ml.m5.4xlarge on demand, processes on ml.m5.xlarge (template.yaml TierDefaults)
    assert {(s["name"], s.get("instanceType")) for s in results["steps"]} >= {
        ("Preprocess", "ml.m5.xlarge"),
        ("TrainOnDemand", "ml.m5.4xlarge"),
    }
    month = _tenant_month(deployed, tenant.tenant_id, job["cost"]["month"])
    assert (month["jobs"], month["costUsd"]) == (1, job["cost"]["totalUsd"])
    artifacts = deployed.outputs["ArtifactsBucketName"]
    model_keys = _keys_under(deployed, artifacts, f"tenants/{tenant.tenant_id}/jobs/{job['jobId']}/model/")
    assert any(key.endswith("model.tar.gz") for key in model_keys), model_keys


def test_a_weak_dataset_fails_the_build_with_the_threshold_reason_and_registers_nothing(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("standard", metric_threshold=0.75)
    upload(deployed, tenant.tenant_id, "noise.csv", noise_csv(tenant, rows=400, seed=99))

    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=180)

    assert job["status"] == "FAILED"
    reason = " ".join(job["reasons"])
    assert "threshold" in reason
    assert "0.75" in reason
    assert registered_models(deployed.cloud, f"{tenant.tenant_id}-models") == []
    assert lease_count(deployed, "standard") == 0
    results = assert_results_are_what_sagemaker_reports(deployed, job)
    assert results["failedStep"] == "MetricBelowThresholdSpot"
    assert "threshold" in results["failureReason"]
    assert "modelPackageArn" not in results
    # A failed build still ran (and billed) its jobs: its cost is counted once in the tenant's month.
    assert _tenant_month(deployed, tenant.tenant_id, job["cost"]["month"])["jobs"] == 1


def test_a_failing_step_script_fails_the_build_with_the_scripts_error_and_releases_the_slot(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("basic")
    # Valid for the contract (numeric, enough rows) but nothing to learn from: every feature is constant.
    body = b"f1,f2,f3,label\n" + b"1,2,3,0\n1,2,3,1\n" * 100
    upload(deployed, tenant.tenant_id, "constant.csv", body)

    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=180)

    assert job["status"] == "FAILED"
    assert "no usable feature column" in " ".join(job["reasons"]), job["reasons"]
    results = assert_results_are_what_sagemaker_reports(deployed, job)
    assert results["failedStep"] == "Preprocess"
    assert "no usable feature column" in results["failureReason"]
    assert job.get("slotReleasedAt")
    assert lease_count(deployed, "basic") == 0


def test_two_tenants_never_see_each_others_artifacts_or_models(deployed: Deployed, new_tenant: Any) -> None:
    first, second = new_tenant("standard"), new_tenant("standard")
    for tenant in (first, second):
        upload(deployed, tenant.tenant_id, "mine.csv", classification_csv(tenant, rows=300, seed=5))
    jobs = {t.tenant_id: wait_for_jobs(deployed, t.tenant_id, 1, timeout=180)[0] for t in (first, second)}

    artifacts = deployed.outputs["ArtifactsBucketName"]
    for tenant, other in ((first, second), (second, first)):
        job = jobs[tenant.tenant_id]
        assert job["status"] == "SUCCEEDED", job.get("reasons")
        (params,) = pipeline_executions_for(deployed, tenant.tenant_id)
        values = " ".join(v for k, v in params.items() if k != "arn")
        assert other.tenant_id not in values, "a parameter of one tenant's build names the other tenant"
        for uri_name in ("TrainingDataUri", "ModelOutputUri"):
            assert params[uri_name].startswith(f"s3://{artifacts}/tenants/{tenant.tenant_id}/jobs/")
        assert params["TenantRoleArn"].endswith(f"/mlaas-tenant-{tenant.tenant_id}")
        (model,) = registered_models(deployed.cloud, f"{tenant.tenant_id}-models")
        assert model["jobId"] == job["jobId"]
        # Everything the build wrote is under its own tenant's job folder.
        written = _keys_under(deployed, artifacts, f"tenants/{tenant.tenant_id}/")
        assert written
        assert all(key.startswith(f"tenants/{tenant.tenant_id}/jobs/{job['jobId']}/") for key in written)
