"""One emulator per test process, with template.yaml deployed into it once.

Each test onboards tenants with ids of its own, so tests never see each other's jobs; tests that
change a tier's settings restore them.

No test here depends on the machine's speed: Lambda Timeouts are scaled (no test here is about them), and a
wait fails when nothing has moved for a while (``until_settled``), not after a fixed time.
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from localcloud import LocalCloud
from scripts.jobs import TERMINAL, tenant_jobs
from scripts.sample_data import SampleTenant, classification_csv
from scripts.tenants import onboard

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count()
# Every function's Timeout (and Lambda's Init limit) times this: a busy machine must not kill a handler that
# would finish on an idle one; a hung handler still fails its invocation.
TIMEOUT_SCALE = 5.0
# The least time without any progress after which a wait gives up (a cold start under load can take 30 s).
QUIET_SECONDS = 120.0
T = TypeVar("T")


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
        port=0,
        state_dir=state_dir,
        pipeline_delay_seconds=1.0,
        schedule_interval_seconds=3600,
        lambda_timeout_scale=TIMEOUT_SCALE,
    ) as cloud:
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-it")
        yield Deployed(cloud, stack)
        # Every call any of these tests made the functions and the state machine make is allowed by their
        # roles (localcloud.permissions); a denial fails the teardown of the package's last test.
        report = cloud.permission_report()
        assert report.ok, "\n".join(report.summary_lines())


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


def until_settled(
    read: Callable[[], T],
    done: Callable[[T], bool],
    *,
    quiet_seconds: float,
    what: str,
    interval: float = 0.25,
) -> T:
    """read() until done(value) holds, and return that value.

    Gives up only when read() has returned the same value for max(quiet_seconds, QUIET_SECONDS): the deadline
    follows progress, so a slow machine gets as long as it keeps moving, and a stuck flow still fails.
    """
    quiet = max(quiet_seconds, QUIET_SECONDS)
    value = read()
    changed_at = time.monotonic()
    while not done(value):
        if time.monotonic() - changed_at > quiet:
            raise AssertionError(f"nothing moved for {quiet:.0f} s waiting for {what}: {value}")
        time.sleep(interval)
        latest = read()
        if latest != value:
            value, changed_at = latest, time.monotonic()
    return value


def wait_for_jobs(
    deployed: Deployed, tenant_id: str, count: int, timeout: float = 90.0, statuses: set[str] = TERMINAL
) -> list[dict[str, Any]]:
    """Poll the tenant's jobs (Query on tenant-jobs) until `count` of them are in `statuses`; fails once
    they have not changed at all for `timeout` seconds (at least QUIET_SECONDS)."""

    def read() -> list[dict[str, Any]]:
        return tenant_jobs(deployed.client("dynamodb"), deployed.outputs["JobsTableName"], tenant_id)

    return until_settled(
        read,
        lambda jobs: len(jobs) >= count and sum(j["status"] in statuses for j in jobs) >= count,
        quiet_seconds=timeout,
        what=f"{count} jobs of {tenant_id} in {sorted(statuses)}",
    )


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
