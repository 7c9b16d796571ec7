"""Bad input is rejected with a specific reason, recorded, never deleted, and costs no compute."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import (
    Deployed,
    pipeline_executions_for,
    set_tier,
    upload,
    valid_csv,
    wait_for_jobs,
)

pytestmark = pytest.mark.integration


def _rejected(deployed: Deployed, tenant_id: str, key_part: str, count: int = 1) -> dict[str, Any]:
    jobs = wait_for_jobs(deployed, tenant_id, count)
    (job,) = [j for j in jobs if key_part in j["key"]]
    assert job["status"] == "REJECTED", job
    assert job["reasons"], "a rejection always carries reasons"
    assert job["timeline"][-1]["status"] == "REJECTED"
    return job


def _assert_no_compute_and_upload_kept(deployed: Deployed, tenant_id: str, key: str) -> None:
    assert pipeline_executions_for(deployed, tenant_id) == []
    head = deployed.client("s3").head_object(Bucket=deployed.outputs["UploadsBucketName"], Key=key)
    assert head["ContentLength"] >= 0


@pytest.mark.parametrize(
    ("name", "body", "reason_fragment"),
    [
        ("text.csv", b"f1,f2,f3,label\n1,2,3,0\n" + b"1,abc,3,1\n" * 60, "not numeric"),
        ("ragged.csv", b"f1,f2,f3,label\n" + b"1,2,3,0\n" * 60 + b"1,2,0\n", "column"),
        ("nolabel.csv", b"f1,f2,f3\n" + b"1,2,3\n" * 60, "label"),
        ("short.csv", b"f1,f2,f3,label\n" + b"1,2,3,0\n" * 3, "rows"),
        ("binary.csv", b"f1,f2,f3,label\n" + b"1,2,3,0\n" * 60 + b"\xff\xfe,1,2,0\n", "UTF-8"),
        ("empty.csv", b"", "empty"),
        ("header-only.csv", b"f1,f2,f3,label\n", "rows"),
    ],
)
def test_an_invalid_dataset_is_rejected_with_a_specific_reason(
    deployed: Deployed, new_tenant: Any, name: str, body: bytes, reason_fragment: str
) -> None:
    tenant = new_tenant("basic")
    uploaded = upload(deployed, tenant.tenant_id, name, body)

    job = _rejected(deployed, tenant.tenant_id, name)

    assert any(reason_fragment.lower() in r.lower() for r in job["reasons"]), job["reasons"]
    assert "ADMITTED" not in [e["status"] for e in job["timeline"]]
    _assert_no_compute_and_upload_kept(deployed, tenant.tenant_id, uploaded["key"])


def test_a_dataset_over_the_tier_maximum_is_rejected_without_being_read_in_full(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("standard")
    body = valid_csv(tenant, rows=400)
    before = set_tier(deployed, "standard", maxDatasetBytes=len(body) - 1)
    try:
        upload(deployed, tenant.tenant_id, "big.csv", body)
        job = _rejected(deployed, tenant.tenant_id, "big.csv")
    finally:
        set_tier(deployed, "standard", **before)
    assert any("standard" in r and str(len(body) - 1) in r for r in job["reasons"]), job["reasons"]


def test_an_upload_for_an_unknown_tenant_is_recorded_as_rejected(deployed: Deployed) -> None:
    uploaded = upload(deployed, "nobody-we-know", "data.csv", b"a,b\n1,2\n")

    job = _rejected(deployed, "nobody-we-know", "data.csv")

    assert any("nobody-we-know" in r and "not onboarded" in r for r in job["reasons"]), job["reasons"]
    _assert_no_compute_and_upload_kept(deployed, "nobody-we-know", uploaded["key"])


def test_an_upload_by_a_suspended_tenant_is_rejected(deployed: Deployed, new_tenant: Any) -> None:
    tenant = new_tenant("premium")
    deployed.client("dynamodb").update_item(
        TableName=deployed.outputs["TenantsTableName"],
        Key={"tenantId": {"S": tenant.tenant_id}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "SUSPENDED"}},
    )
    uploaded = upload(deployed, tenant.tenant_id, "while-suspended.csv", valid_csv(tenant))

    job = _rejected(deployed, tenant.tenant_id, "while-suspended.csv")

    assert any("suspended" in r.lower() for r in job["reasons"]), job["reasons"]
    _assert_no_compute_and_upload_kept(deployed, tenant.tenant_id, uploaded["key"])


@pytest.mark.parametrize(
    ("suffix", "reason_fragment"),
    [
        ("uploads/notes.txt", ".csv"),
        ("elsewhere/data.csv", "uploads/"),
        ("uploads/deeper/data.csv", "uploads/"),
    ],
)
def test_an_odd_key_is_recorded_as_rejected_with_the_expected_layout(
    deployed: Deployed, new_tenant: Any, suffix: str, reason_fragment: str
) -> None:
    tenant = new_tenant("basic")
    key = f"tenants/{tenant.tenant_id}/{suffix}"
    deployed.client("s3").put_object(
        Bucket=deployed.outputs["UploadsBucketName"], Key=key, Body=b"a,b\n1,2\n"
    )

    job = _rejected(deployed, tenant.tenant_id, suffix)

    assert any(reason_fragment in r for r in job["reasons"]), job["reasons"]
    _assert_no_compute_and_upload_kept(deployed, tenant.tenant_id, key)


def test_folder_markers_start_no_job_and_binary_content_is_named(deployed: Deployed, new_tenant: Any) -> None:
    """The console's "Create folder" writes empty objects named .../: the upload rule drops them (no
    execution, no job), while an Excel workbook saved as .csv is rejected naming what it is."""
    tenant = new_tenant("basic")
    bucket = deployed.outputs["UploadsBucketName"]
    for folder in (f"tenants/{tenant.tenant_id}/uploads/", f"tenants/{tenant.tenant_id}/uploads/2026/"):
        deployed.client("s3").put_object(Bucket=bucket, Key=folder, Body=b"")
    upload(deployed, tenant.tenant_id, "workbook.csv", b"PK\x03\x04" + bytes(200))

    jobs = wait_for_jobs(deployed, tenant.tenant_id, 1)
    assert [job["key"] for job in jobs] == [f"tenants/{tenant.tenant_id}/uploads/workbook.csv"]
    (reason,) = jobs[0]["reasons"]
    assert reason.startswith("the file is a zip archive (an Excel .xlsx workbook is one)")
