"""Offboarding a tenant in the emulator, through the API (DELETE /tenants/{tenantId}?immediate=true, which the
API delegates to the offboard_tenants function with a synchronous invoke) and through the hourly sweep once
the grace period is over: afterwards nothing of the tenant remains, and another tenant is untouched."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Final

import pytest
import requests

from scripts.api_keys import create_operator_key
from scripts.sample_data import SampleTenant
from tests.integration.conftest import QUIET_SECONDS, Deployed, upload, valid_csv, wait_for_jobs
from tests.integration.test_status_api import _call, _onboard

pytestmark = pytest.mark.integration


def _versions(deployed: Deployed, bucket: str, tenant_id: str) -> int:
    listing = deployed.client("s3").list_object_versions(Bucket=bucket, Prefix=f"tenants/{tenant_id}/")
    return len(listing.get("Versions", [])) + len(listing.get("DeleteMarkers", []))


# What _footprint finds of a tenant that was deleted.
NOTHING_LEFT: Final = {
    "uploads": 0,
    "artifacts": 0,
    "group": False,
    "role": False,
    "jobs": 0,
    "fairShares": 0,
    "tenant": False,
}


def delete_at_once(deployed: Deployed, tenant_id: str, operator: str) -> requests.Response:
    """DELETE /tenants/{id}?immediate=true, again while it answers 409 (the tenant's builds still ending)."""
    deadline = time.monotonic() + QUIET_SECONDS
    while True:
        response = _call(deployed, "DELETE", f"/tenants/{tenant_id}?immediate=true", operator)
        if response.status_code != 409 or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def _footprint(deployed: Deployed, tenant_id: str) -> dict[str, Any]:
    outputs = deployed.outputs
    groups = deployed.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    roles = deployed.client("iam").list_roles()["Roles"]

    def count(table: str, index: str) -> int:
        return int(
            deployed.client("dynamodb").query(
                TableName=outputs[table],
                IndexName=index,
                KeyConditionExpression="tenantId = :t",
                ExpressionAttributeValues={":t": {"S": tenant_id}},
                Select="COUNT",
            )["Count"]
        )

    jobs = count("JobsTableName", "tenant-jobs")
    shares = count("FairShareTableName", "tenant-shares")
    tenant = deployed.client("dynamodb").get_item(
        TableName=outputs["TenantsTableName"], Key={"tenantId": {"S": tenant_id}}
    )
    return {
        "uploads": _versions(deployed, outputs["UploadsBucketName"], tenant_id),
        "artifacts": _versions(deployed, outputs["ArtifactsBucketName"], tenant_id),
        "group": f"{tenant_id}-models" in {g["ModelPackageGroupName"] for g in groups},
        "role": f"mlaas-tenant-{tenant_id}" in {r["RoleName"] for r in roles},
        "jobs": jobs,
        "fairShares": shares,
        "tenant": "Item" in tenant,
    }


def test_offboarding_removes_everything_of_the_tenant_and_nothing_else(deployed: Deployed) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    gone_id, kept_id = f"off-{uuid.uuid4().hex[:8]}", f"off-{uuid.uuid4().hex[:8]}"
    gone_key, kept_key = _onboard(deployed, operator, gone_id), _onboard(deployed, operator, kept_id)
    for tenant_id in (gone_id, kept_id):
        tenant = SampleTenant(
            tenant_id=tenant_id, tier="basic", target_column="label", feature_columns=("f1", "f2", "f3")
        )
        upload(deployed, tenant_id, "a.csv", valid_csv(tenant))
        upload(deployed, tenant_id, "a.csv", valid_csv(tenant, seed=2))  # a second version of the object
        wait_for_jobs(deployed, tenant_id, 2, timeout=90)
    kept_before = _footprint(deployed, kept_id)
    gone_before = _footprint(deployed, gone_id)
    assert gone_before["uploads"] == 2
    assert gone_before["artifacts"] > 0
    assert gone_before["group"]
    assert gone_before["role"]
    assert gone_before["fairShares"] == 1  # its share of the basic tier

    response = delete_at_once(deployed, gone_id, operator)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["deleted"] is True
    assert report["removed"]["uploadObjectVersions"] == 2
    assert report["removed"]["jobs"] == 2
    assert report["removed"]["roles"] == report["removed"]["tenants"] == report["removed"]["apiKeys"] == 1

    assert _footprint(deployed, gone_id) == NOTHING_LEFT
    assert _call(deployed, "GET", "/jobs", gone_key).status_code == 401  # its key is gone too
    assert _call(deployed, "GET", f"/tenants/{gone_id}", operator).status_code == 404
    assert _footprint(deployed, kept_id) == kept_before
    assert len(_call(deployed, "GET", "/jobs", kept_key).json()["items"]) == 2


def test_the_hourly_sweep_deletes_a_tenant_whose_grace_period_is_over_and_nothing_else(
    deployed: Deployed,
) -> None:
    """Default offboarding keeps the data; once deleteAfter has passed, the offboard_tenants sweep (the
    function its schedule invokes, with the schedule's input) deletes everything of that tenant."""
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    gone_id, kept_id = f"swp-{uuid.uuid4().hex[:8]}", f"swp-{uuid.uuid4().hex[:8]}"
    gone_key = _onboard(deployed, operator, gone_id)
    _onboard(deployed, operator, kept_id)
    for tenant_id in (gone_id, kept_id):
        tenant = SampleTenant(
            tenant_id=tenant_id, tier="basic", target_column="label", feature_columns=("f1", "f2", "f3")
        )
        upload(deployed, tenant_id, "a.csv", valid_csv(tenant))
        wait_for_jobs(deployed, tenant_id, 1, timeout=90)
    # The other tenant is offboarded too, but still within its grace period.
    for tenant_id in (gone_id, kept_id):
        response = _call(deployed, "DELETE", f"/tenants/{tenant_id}", operator)
        assert response.status_code == 202, response.text
        assert response.json()["deleted"] is False
    kept_before = _footprint(deployed, kept_id)
    assert _footprint(deployed, gone_id)["uploads"] == 1  # kept for the grace period
    sweep = _sweep(deployed)
    assert gone_id not in sweep["deleted"]
    assert kept_id not in sweep["deleted"]

    # The grace period is over (as if 30 days had passed): deleteAfter in the past.
    past = "2020-01-01T00:00:00.000Z"
    deployed.client("dynamodb").update_item(
        TableName=deployed.outputs["TenantsTableName"],
        Key={"tenantId": {"S": gone_id}},
        UpdateExpression="SET deleteAfter = :past, offboarding.deleteAfter = :past",
        ExpressionAttributeValues={":past": {"S": past}},
    )
    sweep = _sweep(deployed)
    assert sweep["failed"] == {}
    removed = sweep["deleted"][gone_id]
    assert removed["uploadObjectVersions"] == 1
    assert removed["jobs"] == 1
    assert removed["roles"] == removed["tenants"] == removed["apiKeys"] == removed["modelPackageGroups"] == 1

    assert _footprint(deployed, gone_id) == NOTHING_LEFT
    assert _call(deployed, "GET", "/jobs", gone_key).status_code == 401
    assert _footprint(deployed, kept_id) == kept_before
    assert _call(deployed, "GET", f"/tenants/{kept_id}", operator).json()["status"] == "SUSPENDED"
    assert gone_id not in _sweep(deployed)["deleted"]  # nothing left to delete


def _sweep(deployed: Deployed) -> dict[str, Any]:
    """Invoke offboard_tenants as its hourly schedule does (the template's Input)."""
    response = deployed.client("lambda").invoke(
        FunctionName=deployed.stack.ref("OffboardTenantsFunction"),
        Payload=json.dumps({"trigger": "schedule"}).encode(),
    )
    body = response["Payload"].read()
    assert "FunctionError" not in response, body
    return dict(json.loads(body))
