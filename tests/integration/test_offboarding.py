"""Offboarding a tenant through the API (DELETE /tenants/{tenantId}?immediate=true) in the emulator:
afterwards nothing of the tenant remains, and another tenant is untouched."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from scripts.api_keys import create_operator_key
from scripts.sample_data import SampleTenant
from tests.integration.conftest import Deployed, upload, valid_csv, wait_for_jobs
from tests.integration.test_status_api import _call, _onboard

pytestmark = pytest.mark.integration


def _versions(deployed: Deployed, bucket: str, tenant_id: str) -> int:
    listing = deployed.client("s3").list_object_versions(Bucket=bucket, Prefix=f"tenants/{tenant_id}/")
    return len(listing.get("Versions", [])) + len(listing.get("DeleteMarkers", []))


def _footprint(deployed: Deployed, tenant_id: str) -> dict[str, Any]:
    outputs = deployed.outputs
    groups = deployed.client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    roles = deployed.client("iam").list_roles()["Roles"]
    jobs = deployed.client("dynamodb").query(
        TableName=outputs["JobsTableName"],
        IndexName="tenant-jobs",
        KeyConditionExpression="tenantId = :t",
        ExpressionAttributeValues={":t": {"S": tenant_id}},
        Select="COUNT",
    )["Count"]
    tenant = deployed.client("dynamodb").get_item(
        TableName=outputs["TenantsTableName"], Key={"tenantId": {"S": tenant_id}}
    )
    return {
        "uploads": _versions(deployed, outputs["UploadsBucketName"], tenant_id),
        "artifacts": _versions(deployed, outputs["ArtifactsBucketName"], tenant_id),
        "group": f"{tenant_id}-models" in {g["ModelPackageGroupName"] for g in groups},
        "role": f"mlaas-tenant-{tenant_id}" in {r["RoleName"] for r in roles},
        "jobs": jobs,
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

    deadline = time.monotonic() + 60
    while True:
        response = _call(deployed, "DELETE", f"/tenants/{gone_id}?immediate=true", operator)
        if response.status_code != 409 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["deleted"] is True
    assert report["removed"]["uploadObjectVersions"] == 2
    assert report["removed"]["jobs"] == 2
    assert report["removed"]["roles"] == report["removed"]["tenants"] == report["removed"]["apiKeys"] == 1

    assert _footprint(deployed, gone_id) == {
        "uploads": 0,
        "artifacts": 0,
        "group": False,
        "role": False,
        "jobs": 0,
        "tenant": False,
    }
    assert _call(deployed, "GET", "/jobs", gone_key).status_code == 401  # its key is gone too
    assert _call(deployed, "GET", f"/tenants/{gone_id}", operator).status_code == 404
    assert _footprint(deployed, kept_id) == kept_before
    assert len(_call(deployed, "GET", "/jobs", kept_key).json()["items"]) == 2
