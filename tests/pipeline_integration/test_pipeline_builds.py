"""Real builds: the pipeline's scripts preprocess, train, evaluate and register each tenant's model."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scripts.jobs import registered_models
from scripts.sample_data import classification_csv, noise_csv
from tests.integration.conftest import Deployed, lease_count, pipeline_executions_for, upload, wait_for_jobs

pytestmark = pytest.mark.integration


def _s3_json(deployed: Deployed, uri: str) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return dict(json.loads(deployed.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()))


def _keys_under(deployed: Deployed, bucket: str, prefix: str) -> list[str]:
    pages = deployed.client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [obj["Key"] for page in pages for obj in page.get("Contents", [])]


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
