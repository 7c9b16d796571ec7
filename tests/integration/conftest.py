"""One emulator per test process, with template.yaml deployed into it once.

Each test onboards tenants with ids of its own, so tests never see each other's jobs; tests that
change a tier's settings restore them.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcloud import LocalCloud
from scripts.jobs import TERMINAL, tenant_jobs
from scripts.sample_data import SampleTenant, classification_csv
from scripts.tenants import onboard

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()


@dataclass
class Deployed:
    cloud: Any
    stack: Any

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.stack.outputs)

    def client(self, service: str) -> Any:
        return self.cloud.client(service)


@pytest.fixture(scope="package")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    state_dir = tmp_path_factory.mktemp("localcloud")
    # The schedule safety net is slowed down so that tests see event-driven admission only.
    with LocalCloud(
        port=0, state_dir=state_dir, pipeline_delay_seconds=1.0, schedule_interval_seconds=3600
    ) as cloud:
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-it")
        yield Deployed(cloud, stack)


@pytest.fixture
def new_tenant(deployed: Deployed) -> Callable[..., SampleTenant]:
    return make_tenant_factory(deployed)


def make_tenant_factory(deployed: Deployed) -> Callable[..., SampleTenant]:
    """Onboards tenants with ids of their own (so tests never see each other's jobs)."""

    def make(tier: str = "basic", **overrides: Any) -> SampleTenant:
        tenant = SampleTenant(
            tenant_id=f"t{next(_counter)}-{uuid.uuid4().hex[:8]}",
            tier=tier,
            target_column=overrides.pop("target_column", "label"),
            feature_columns=overrides.pop("feature_columns", ("f1", "f2", "f3")),
            **overrides,
        )
        onboard(deployed.cloud, deployed.outputs, tenant)
        return tenant

    return make


def upload(deployed: Deployed, tenant_id: str, name: str, body: bytes) -> dict[str, Any]:
    key = f"tenants/{tenant_id}/uploads/{name}"
    response = deployed.client("s3").put_object(
        Bucket=deployed.outputs["UploadsBucketName"], Key=key, Body=body
    )
    return {"key": key, "versionId": response["VersionId"]}


def valid_csv(tenant: SampleTenant, rows: int = 120, seed: int = 1) -> bytes:
    return classification_csv(tenant, rows=rows, seed=seed)


def wait_for_jobs(
    deployed: Deployed, tenant_id: str, count: int, timeout: float = 90.0, statuses: set[str] = TERMINAL
) -> list[dict[str, Any]]:
    """Poll the tenant's jobs (Query on tenant-jobs) until `count` of them are in `statuses`."""
    deadline = time.monotonic() + timeout
    jobs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        jobs = tenant_jobs(deployed.client("dynamodb"), deployed.outputs["JobsTableName"], tenant_id)
        if len(jobs) >= count and sum(j["status"] in statuses for j in jobs) >= count:
            return jobs
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {count} jobs of {tenant_id}: {[j['status'] for j in jobs]}")


def pipeline_executions_for(deployed: Deployed, tenant_id: str) -> list[dict[str, str]]:
    """Parameters of every pipeline execution started for a tenant."""
    sagemaker = deployed.client("sagemaker")
    found = []
    summaries = sagemaker.list_pipeline_executions(
        PipelineName=deployed.outputs["TrainingPipelineName"], MaxResults=100
    )["PipelineExecutionSummaries"]
    for summary in summaries:
        params = sagemaker.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=summary["PipelineExecutionArn"]
        )["PipelineParameters"]
        values = {p["Name"]: p["Value"] for p in params}
        if values.get("TenantId") == tenant_id:
            found.append(values | {"arn": summary["PipelineExecutionArn"]})
    return found


def tier_item(deployed: Deployed, tier: str) -> dict[str, Any]:
    item = deployed.client("dynamodb").get_item(
        TableName=deployed.outputs["TiersTableName"], Key={"tier": {"S": tier}}
    )
    return dict(item["Item"])


def set_tier(deployed: Deployed, tier: str, **numbers: int) -> dict[str, int]:
    """Change tier numbers at run time (as an operator would); returns the previous values."""
    before = tier_item(deployed, tier)
    names = {f"#{k}": k for k in numbers}
    values = {f":{k}": {"N": str(v)} for k, v in numbers.items()}
    deployed.client("dynamodb").update_item(
        TableName=deployed.outputs["TiersTableName"],
        Key={"tier": {"S": tier}},
        UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in numbers),
        ExpressionAttributeNames=names,
        ExpressionAttributeValues=values,
    )
    return {k: int(before[k]["N"]) for k in numbers}


def lease_count(deployed: Deployed, tier: str) -> int:
    page = deployed.client("dynamodb").query(
        TableName=deployed.outputs["SlotLeasesTableName"],
        IndexName="tier-leases",
        KeyConditionExpression="tier = :t",
        ExpressionAttributeValues={":t": {"S": tier}},
        Select="COUNT",
    )
    return int(page["Count"])
