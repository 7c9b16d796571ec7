"""Real flows: S3 PUT → EventBridge → the state machine → Lambda handlers → DynamoDB, in the emulator.

Only the SageMaker pipeline runner is simulated (moto cannot run pipelines).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from scripts.jobs import max_concurrent_slots
from tests.integration.conftest import (
    Deployed,
    lease_count,
    pipeline_executions_for,
    set_tier,
    tier_item,
    until_settled,
    upload,
    valid_csv,
    wait_for_jobs,
)

pytestmark = pytest.mark.integration

HAPPY_TIMELINE = ["RECEIVED", "VALIDATED", "QUEUED", "ADMITTED", "RUNNING", "SUCCEEDED"]


@pytest.mark.parametrize("tier", ["basic", "standard", "premium"])
def test_an_upload_becomes_a_tagged_tracked_build_of_the_tenants_model(
    deployed: Deployed, new_tenant: Any, tier: str
) -> None:
    tenant = new_tenant(tier)
    body = valid_csv(tenant)
    uploaded = upload(deployed, tenant.tenant_id, "first.csv", body)

    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1)

    assert job["status"] == "SUCCEEDED", job.get("reasons")
    assert [entry["status"] for entry in job["timeline"]] == HAPPY_TIMELINE
    assert job["versionId"] == uploaded["versionId"]
    assert job["executionArn"].startswith("arn:aws:states:")
    assert job["pipelineExecutionArn"].startswith("arn:aws:sagemaker:")
    assert job["admittedAt"] <= job["slotReleasedAt"]

    (params,) = pipeline_executions_for(deployed, tenant.tenant_id)
    tiers = tier_item(deployed, tier)
    assert params["arn"] == job["pipelineExecutionArn"]
    assert params["JobId"] == job["jobId"]
    assert params["Tier"] == tier
    assert params["TrainingInstanceType"] == tiers["trainingInstanceType"]["S"]
    assert params["TrainingInstanceCount"] == tiers["trainingInstanceCount"]["N"]
    assert params["TenantRoleArn"].endswith(f"/mlaas-tenant-{tenant.tenant_id}")
    assert params["ModelPackageGroupName"] == f"{tenant.tenant_id}-models"
    assert params["TargetColumn"] == tenant.target_column
    artifacts = deployed.outputs["ArtifactsBucketName"]
    assert (
        params["TrainingDataUri"]
        == f"s3://{artifacts}/tenants/{tenant.tenant_id}/jobs/{job['jobId']}/input/dataset.csv"
    )
    assert params["ModelOutputUri"].startswith(
        f"s3://{artifacts}/tenants/{tenant.tenant_id}/jobs/{job['jobId']}/"
    )

    # The pipeline trains on an immutable copy of exactly the validated version.
    copy = deployed.client("s3").get_object(
        Bucket=artifacts, Key=f"tenants/{tenant.tenant_id}/jobs/{job['jobId']}/input/dataset.csv"
    )
    assert copy["Body"].read() == body
    assert lease_count(deployed, tier) == 0


def test_a_later_overwrite_cannot_change_what_an_earlier_job_trains_on(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("standard")
    first, second = valid_csv(tenant, seed=11), valid_csv(tenant, seed=12)
    upload(deployed, tenant.tenant_id, "same-name.csv", first)
    upload(deployed, tenant.tenant_id, "same-name.csv", second)

    jobs = wait_for_jobs(deployed, tenant.tenant_id, 2)

    assert {j["status"] for j in jobs} == {"SUCCEEDED"}
    assert len({j["versionId"] for j in jobs}) == 2, "each object version is its own job"
    s3, artifacts = deployed.client("s3"), deployed.outputs["ArtifactsBucketName"]
    copies = {
        s3.get_object(Bucket=artifacts, Key=j["trainingDataUri"].split(f"{artifacts}/", 1)[1])["Body"].read()
        for j in jobs
    }
    assert copies == {first, second}
    # Nothing the tenant uploaded was deleted.
    versions = s3.list_object_versions(
        Bucket=deployed.outputs["UploadsBucketName"], Prefix=f"tenants/{tenant.tenant_id}/"
    )["Versions"]
    assert len(versions) == 2


def test_the_same_event_delivered_three_times_makes_one_job_and_one_pipeline_execution(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("premium")
    uploaded = upload(deployed, tenant.tenant_id, "once.csv", valid_csv(tenant))
    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1)
    sfn = deployed.client("stepfunctions")
    first = sfn.describe_execution(executionArn=job["executionArn"])
    event = json.loads(first["input"])
    assert event["detail"]["object"]["version-id"] == uploaded["versionId"]

    # EventBridge and S3 deliver at least once: replay the identical event, concurrently.
    def redeliver(n: int) -> str:
        name = f"redelivery-{n}-{job['jobId'][-8:]}"
        arn = sfn.start_execution(
            stateMachineArn=deployed.outputs["TrainingJobStateMachineArn"], name=name, input=json.dumps(event)
        )["executionArn"]
        return str(arn)

    with ThreadPoolExecutor(3) as pool:
        arns = list(pool.map(redeliver, range(3)))
    for arn in arns:
        assert _wait_execution(deployed, arn) == "SUCCEEDED"
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        entered = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        assert "Ignore the duplicate delivery" in entered
        assert "Start the tenant's pipeline build" not in entered

    jobs = wait_for_jobs(deployed, tenant.tenant_id, 1)
    assert len(jobs) == 1
    assert len(pipeline_executions_for(deployed, tenant.tenant_id)) == 1


def _wait_execution(deployed: Deployed, arn: str, timeout: float = 60.0) -> str:
    """The execution's status once it has ended; gives up only once its history stopped growing for a while
    (``until_settled``: progress, not wall time)."""
    sfn = deployed.client("stepfunctions")

    def read() -> tuple[str, int]:
        history = sfn.get_execution_history(executionArn=arn, maxResults=1000)["events"]
        return str(sfn.describe_execution(executionArn=arn)["status"]), len(history)

    status, _ = until_settled(
        read, lambda seen: seen[0] != "RUNNING", quiet_seconds=timeout, what=f"{arn} to end", interval=0.5
    )
    return status


def test_three_times_more_uploads_than_slots_never_exceed_the_limit_and_all_finish(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("basic")
    settings = tier_item(deployed, "basic")
    guaranteed = int(settings["concurrencyLimit"]["N"])
    # The tier's limit: its guaranteed slots plus what it may borrow from other tiers' idle guarantees.
    limit = guaranteed + int(settings["borrowingLimit"]["N"])
    for n in range(3 * limit):
        upload(deployed, tenant.tenant_id, f"burst-{n}.csv", valid_csv(tenant, seed=n))

    jobs = wait_for_jobs(deployed, tenant.tenant_id, 3 * limit, timeout=120)

    assert {j["status"] for j in jobs} == {"SUCCEEDED"}
    assert max_concurrent_slots(jobs) <= limit
    assert len(pipeline_executions_for(deployed, tenant.tenant_id)) == 3 * limit
    assert lease_count(deployed, "basic") == 0
    assert tier_item(deployed, "basic")["running"]["N"] == "0"


def test_a_tier_limit_change_takes_effect_without_redeploy(deployed: Deployed, new_tenant: Any) -> None:
    tenant = new_tenant("standard")
    before = set_tier(deployed, "standard", concurrencyLimit=1, borrowingLimit=0)
    try:
        for n in range(3):
            upload(deployed, tenant.tenant_id, f"narrow-{n}.csv", valid_csv(tenant, seed=n))
        narrow = wait_for_jobs(deployed, tenant.tenant_id, 3, timeout=120)
        assert {j["status"] for j in narrow} == {"SUCCEEDED"}
        assert max_concurrent_slots(narrow) == 1
    finally:
        set_tier(deployed, "standard", **before)


def test_a_pipeline_failure_fails_the_job_with_its_reason_and_releases_the_slot(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("premium")
    reason = "AlgorithmError: training diverged (loss became NaN at epoch 3)"
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=tenant.tenant_id, status="Failed", reason=reason)
    upload(deployed, tenant.tenant_id, "diverges.csv", valid_csv(tenant))

    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1)

    assert job["status"] == "FAILED"
    assert any(reason in r for r in job["reasons"]), job["reasons"]
    assert job["timeline"][-1]["status"] == "FAILED"
    assert job.get("slotReleasedAt")
    assert lease_count(deployed, "premium") == 0
    assert tier_item(deployed, "premium")["running"]["N"] == "0"


def test_a_stopped_pipeline_ends_the_job_stopped_and_releases_the_slot(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("standard")
    deployed.cloud.pipeline_runner.set_outcome(
        tenant_id=tenant.tenant_id, status="Stopped", reason="stopped by operator"
    )
    upload(deployed, tenant.tenant_id, "stopped.csv", valid_csv(tenant))

    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1)

    assert job["status"] == "STOPPED"
    assert lease_count(deployed, "standard") == 0


def test_a_job_that_waits_longer_than_its_tier_allows_expires_and_never_starts(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("premium")
    before = set_tier(deployed, "premium", concurrencyLimit=0, borrowingLimit=0, queueWaitSeconds=2)
    try:
        upload(deployed, tenant.tenant_id, "waits.csv", valid_csv(tenant))
        (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=60)
    finally:
        set_tier(deployed, "premium", **before)

    assert job["status"] == "EXPIRED"
    assert "premium" in job["reasons"][0]
    assert "2 seconds" in job["reasons"][0]
    assert not job.get("admittedAt")
    assert pipeline_executions_for(deployed, tenant.tenant_id) == []
    assert lease_count(deployed, "premium") == 0
