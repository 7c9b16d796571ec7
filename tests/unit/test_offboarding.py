"""Offboarding (DELETE /tenants/{tenantId}): suspend, cancel open jobs, then (immediate=true, through the
offboard_tenants function) nothing of the tenant remains (object versions in both buckets, model versions
and group, role and its policies, API keys, job and tenant records) while another tenant is untouched."""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from conftest import ENVIRONMENT, FakeStepFunctions, aws_client, job_id_for, queued_job

from tests.unit import test_api
from tests.unit.test_api import NEW_TENANT, OPERATOR, put_job

api = test_api.api  # the status API fixture
pytestmark = pytest.mark.usefixtures("aws")
BUCKETS = (ENVIRONMENT["UPLOADS_BUCKET_NAME"], ENVIRONMENT["ARTIFACTS_BUCKET_NAME"])


@pytest.fixture(autouse=True)
def model_package_deletion(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto lacks DeleteModelPackage(Group): the emulator's own additions stand in (localcloud.patches)."""
    from moto.sagemaker.responses import SageMakerResponse  # noqa: PLC0415 - moto internals, this test only

    from localcloud import patches  # noqa: PLC0415

    monkeypatch.setattr(
        SageMakerResponse, "delete_model_package", patches.delete_model_package, raising=False
    )
    monkeypatch.setattr(
        SageMakerResponse, "delete_model_package_group", patches.delete_model_package_group, raising=False
    )


@pytest.fixture(autouse=True)
def offboard_function(
    monkeypatch: pytest.MonkeyPatch, load_app: Callable[[str], ModuleType], context: Any
) -> list[tuple[str, Any]]:
    """The API's synchronous Lambda invoke, answered by the offboard_tenants handler in this process (as
    JSON, as Lambda would); records each (function name, payload)."""
    from controlplane.core import functions  # noqa: PLC0415 - see conftest.pytest_configure

    calls: list[tuple[str, Any]] = []

    def invoke(function_name: str, payload: Any) -> Any:
        calls.append((function_name, payload))
        handler = load_app("offboard_tenants").lambda_handler
        return json.loads(json.dumps(handler(json.loads(json.dumps(payload)), context)))

    monkeypatch.setattr(functions, "invoke", invoke)
    return calls


def onboard(api: Callable[..., tuple[int, Any]], tenant_id: str) -> None:
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT | {"tenantId": tenant_id})
    assert status == 201, body
    s3 = aws_client("s3")
    for bucket in BUCKETS:
        for version in ("v1", "v2"):  # two versions of one object, then a delete marker
            s3.put_object(Bucket=bucket, Key=f"tenants/{tenant_id}/uploads/a.csv", Body=version.encode())
        s3.delete_object(Bucket=bucket, Key=f"tenants/{tenant_id}/uploads/a.csv")
        s3.put_object(Bucket=bucket, Key=f"tenants/{tenant_id}/jobs/j/model.tar.gz", Body=b"m")
    aws_client("sagemaker").create_model_package(
        ModelPackageGroupName=f"{tenant_id}-models",
        InferenceSpecification={
            "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/x:1"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    )


def offboard(api: Callable[..., tuple[int, Any]], tenant_id: str, **query: str) -> tuple[int, Any]:
    return api(
        "DELETE",
        f"/tenants/{tenant_id}",
        caller=OPERATOR,
        query=query or None,
        resource="/tenants/{tenantId}",
        path_parameters={"tenantId": tenant_id},
    )


def versions(bucket: str, tenant_id: str) -> int:
    listing = aws_client("s3").list_object_versions(Bucket=bucket, Prefix=f"tenants/{tenant_id}/")
    return len(listing.get("Versions", [])) + len(listing.get("DeleteMarkers", []))


def test_offboarding_suspends_cancels_then_deletes_everything_of_that_tenant_only(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    offboard_function: list[tuple[str, Any]],
) -> None:
    onboard(api, "initech")
    onboard(api, "initech-2")  # a tenant id that starts with the other: its prefix must not match
    put_job(table, 1, "initech", "2024-05-01T00:00:00.000Z")
    waiting = queued_job(table, job_id_for(2), tenant_id="initech")
    other_job = put_job(table, 3, "initech-2", "2024-05-01T00:00:00.000Z")

    status, body = offboard(api, "initech")
    assert status == 202, body
    assert body["deleted"] is False
    assert body["deleteAfter"] > "2024"
    assert body["cancelledJobs"] == [job_id_for(2)]
    assert stepfunctions.failures == [(waiting["queueTaskToken"], "JobCancelled", "cancelled by the tenant")]
    tenant = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "initech"})["Item"]
    assert tenant["status"] == "SUSPENDED"
    assert tenant["offboarding"]["deleteAfter"] == body["deleteAfter"]
    # In the sparse index the hourly sweep queries (offboard_tenants).
    assert (tenant["offboardingDue"], tenant["deleteAfter"]) == ("due", body["deleteAfter"])
    assert offboard_function == []  # nothing is deleted by default
    assert versions(BUCKETS[0], "initech") == 4  # kept for the grace period
    resume = api(
        "PATCH",
        "/tenants/initech",
        caller=OPERATOR,
        body={"status": "ACTIVE"},
        resource="/tenants/{tenantId}",
        path_parameters={"tenantId": "initech"},
    )
    assert resume[0] == 409

    # Immediate deletion waits for cancelled jobs to end (the state machine records them).
    status, body = offboard(api, "initech", immediate="true")
    assert status == 409, body
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id_for(2)},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": "CANCELLED"},
    )
    # CANCELLED, but its execution still runs (a validation could still copy the dataset): still ending.
    status, body = offboard(api, "initech", immediate="true")
    assert status == 409, body
    assert "still ending" in body["message"]
    stepfunctions.statuses[waiting["executionArn"]] = "SUCCEEDED"
    status, body = offboard(api, "initech", immediate="true")
    assert status == 200, body
    assert offboard_function[-1] == (
        "MLaaS-Test-OffboardTenantsFunction",
        {"trigger": "immediate", "tenantId": "initech"},
    )
    assert body["deleted"] is True
    assert body["removed"] == {
        "uploadObjectVersions": 4,
        "artifactObjectVersions": 4,
        "modelPackages": 1,
        "modelPackageGroups": 1,
        "rolePolicies": 1,
        "roles": 1,
        "usageKeys": 1,
        "apiKeys": 1,
        "jobs": 2,
        "fairShares": 1,
        "tenants": 1,
    }
    for bucket in BUCKETS:
        assert versions(bucket, "initech") == 0
        assert versions(bucket, "initech-2") == 4
    groups = aws_client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert [group["ModelPackageGroupName"] for group in groups] == ["initech-2-models"]
    usage_keys = [key["name"] for key in aws_client("apigateway").get_api_keys()["items"]]
    assert usage_keys == ["mlaas-tenant-initech-2"]  # the other tenant's rate limits stay
    roles = [role["RoleName"] for role in aws_client("iam").list_roles()["Roles"]]
    assert "mlaas-tenant-initech" not in roles
    assert "mlaas-tenant-initech-2" in roles
    assert "Item" not in table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "initech"})
    assert "Item" not in table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id_for(1)})
    assert "Item" in table("JOBS_TABLE_NAME").get_item(Key={"jobId": other_job})
    keys = table("API_KEYS_TABLE_NAME").scan()["Items"]
    assert [key["tenantId"] for key in keys] == ["initech-2"]
    # Gone: a second request is a 404; the other tenant still reads.
    assert offboard(api, "initech", immediate="true")[0] == 404
    assert (
        api(
            "GET",
            "/tenants/initech-2",
            caller=OPERATOR,
            resource="/tenants/{tenantId}",
            path_parameters={"tenantId": "initech-2"},
        )[0]
        == 200
    )


def test_offboarding_is_for_operators_only(api: Callable[..., tuple[int, Any]]) -> None:
    status, _ = api(
        "DELETE",
        "/tenants/acme",
        caller={"role": "tenant", "tenantId": "acme"},
        resource="/tenants/{tenantId}",
        path_parameters={"tenantId": "acme"},
    )
    assert status == 403
