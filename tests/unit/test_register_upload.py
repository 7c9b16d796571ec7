from __future__ import annotations

import io
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from conftest import LambdaContext, load_event

from controlplane.observability import logger
from controlplane.uploads.keys import derive_job_id

pytestmark = pytest.mark.usefixtures("aws")
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:MLaaS-Test-training-job:first"


def request(
    key: str | None = None,
    *,
    version: str | None = None,
    bucket: str | None = None,
    execution: str = EXECUTION,
) -> dict[str, Any]:
    payload = load_event("register_upload_input.json")
    detail = payload["event"]["detail"]
    if key is not None:
        detail["object"]["key"] = key
    if version is not None:
        detail["object"]["version-id"] = version
    if bucket is not None:
        detail["bucket"]["name"] = bucket
    payload["executionArn"] = execution
    return payload


@pytest.fixture
def register(
    load_app: Callable[[str], ModuleType], context: LambdaContext
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    app = load_app("register_upload")

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(payload, context)
        json.dumps(result)  # what Lambda returns must be JSON
        return result

    return invoke


def job(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def test_accepted_upload(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any], table: Callable[[str], Any]
) -> None:
    put_tenant()
    result = register(request())
    job_id = derive_job_id(
        "test-uploads-bucket", "tenants/acme/uploads/churn-2024-05.csv", "Zq3fP8vK2mXoL0tRbY7wN5sHj1eDcA9u"
    )
    assert result["outcome"] == "ACCEPTED"
    assert result["reasons"] == []
    assert result["job"] == {
        "jobId": job_id,
        "tenantId": "acme",
        "bucket": "test-uploads-bucket",
        "key": "tenants/acme/uploads/churn-2024-05.csv",
        "versionId": "Zq3fP8vK2mXoL0tRbY7wN5sHj1eDcA9u",
        "sizeBytes": 18342,
        "etag": "2f6a4e4c1f3b5d7a9e8c0b1a2d3e4f50",
    }
    assert result["tenant"] == {
        "tenantId": "acme",
        "tier": "basic",
        "roleArn": "arn:aws:iam::123456789012:role/mlaas-tenants/acme-sagemaker",
        "modelPackageGroupName": "acme-models",
        "metricThreshold": 0.75,
        "contract": {"targetColumn": "churned", "problemType": "binary_classification", "minRows": 3},
    }
    plan = result["plan"]
    assert plan["queueUrl"] == "https://sqs.us-east-1.amazonaws.com/123456789012/test-basic-queue"
    assert (
        plan["trainingDataUri"] == f"s3://test-artifacts-bucket/tenants/acme/jobs/{job_id}/input/dataset.csv"
    )
    assert plan["modelOutputUri"] == f"s3://test-artifacts-bucket/tenants/acme/jobs/{job_id}/model/"
    assert plan["pipelineWaitSeconds"] == 17100
    assert plan["useSpotInstances"] is True
    item = job(table, job_id)
    assert item["status"] == "RECEIVED"
    assert item["tier"] == "basic"
    assert item["executionArn"] == EXECUTION
    assert [entry["status"] for entry in item["timeline"]] == ["RECEIVED"]


def test_redelivery_is_a_duplicate_and_changes_nothing(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any], table: Callable[[str], Any]
) -> None:
    put_tenant()
    first = register(request())
    before = job(table, first["job"]["jobId"])
    again = register(request(execution=EXECUTION.replace("first", "second")))
    assert again["outcome"] == "DUPLICATE"
    assert again["plan"] is None
    assert first["job"]["jobId"] in again["reasons"][0]
    assert job(table, first["job"]["jobId"]) == before
    assert len(table("JOBS_TABLE_NAME").scan()["Items"]) == 1


def test_a_retried_invocation_of_the_same_execution_replays_its_outcome(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any]
) -> None:
    put_tenant()
    first = register(request())
    assert register(request()) == first


def test_a_new_version_is_a_new_job(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any]
) -> None:
    put_tenant()
    first = register(request(version="v1"))
    second = register(request(version="v2", execution=EXECUTION + "-2"))
    assert second["outcome"] == "ACCEPTED"
    assert second["job"]["jobId"] != first["job"]["jobId"]


def test_unknown_tenant_is_rejected_and_recorded(
    register: Callable[..., dict[str, Any]], table: Callable[[str], Any]
) -> None:
    result = register(request())
    assert result["outcome"] == "REJECTED"
    assert result["reasons"] == ["tenant 'acme' is not onboarded"]
    assert result["tenant"] is None
    item = job(table, result["job"]["jobId"])
    assert item["status"] == "REJECTED"
    assert item["reasons"] == ["tenant 'acme' is not onboarded"]
    assert item["timeline"][0]["reason"] == "tenant 'acme' is not onboarded"


def test_suspended_tenant_is_rejected(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any]
) -> None:
    put_tenant(status="SUSPENDED")
    result = register(request())
    assert (result["outcome"], result["reasons"]) == ("REJECTED", ["tenant 'acme' is suspended"])


@pytest.mark.parametrize(
    ("key", "tenant", "fragment"),
    [
        ("tenants/acme/uploads/2024/data.csv", "acme", "sub-folder"),
        ("tenants//uploads/data.csv", "unknown", "names no tenant"),
        ("tenants/ACME/uploads/data.csv", "unknown", "lowercase"),
        ("tenants/acme/uploads/data.xlsx", "acme", "does not end in '.csv'"),
    ],
)
def test_odd_keys_become_rejected_jobs(
    register: Callable[..., dict[str, Any]],
    put_tenant: Callable[..., Any],
    table: Callable[[str], Any],
    key: str,
    tenant: str,
    fragment: str,
) -> None:
    put_tenant()
    result = register(request(key))
    assert result["outcome"] == "REJECTED"
    assert fragment in result["reasons"][0]
    item = job(table, result["job"]["jobId"])
    assert (item["tenantId"], item["status"]) == (tenant, "REJECTED")


def test_url_encoded_key_is_stored_decoded(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any]
) -> None:
    put_tenant()
    result = register(request("tenants/acme/uploads/donn%C3%A9es+mai.csv"))
    assert result["outcome"] == "ACCEPTED"
    assert result["job"]["key"] == "tenants/acme/uploads/données mai.csv"
    # The id hashes the key as the event carries it, as the state machine's States.Hash does.
    assert result["job"]["jobId"] == derive_job_id(
        "test-uploads-bucket", "tenants/acme/uploads/donn%C3%A9es+mai.csv", "Zq3fP8vK2mXoL0tRbY7wN5sHj1eDcA9u"
    )


def test_unversioned_object_uses_the_null_version(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any]
) -> None:
    put_tenant()
    payload = request()
    del payload["event"]["detail"]["object"]["version-id"]
    assert register(payload)["job"]["versionId"] == "null"


def test_event_from_another_bucket_is_rejected(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any]
) -> None:
    put_tenant()
    result = register(request(bucket="someone-elses-bucket"))
    assert result["outcome"] == "REJECTED"
    assert result["reasons"] == ["bucket 'someone-elses-bucket' is not the uploads bucket"]


def test_malformed_event_fails_loudly(register: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="executionArn"):
        register({"event": load_event("s3_object_created.json")})


def test_log_lines_carry_the_tenant_and_the_job(
    register: Callable[..., dict[str, Any]], put_tenant: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    put_tenant()
    stream = io.StringIO()
    monkeypatch.setattr(
        logger.registered_handler, "stream", stream
    )  # the handler keeps the stdout of its creation
    result = register(request())
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    [registered] = [line for line in lines if line["message"] == "Upload registered"]
    assert registered["jobId"] == result["job"]["jobId"]
    assert registered["tenantId"] == "acme"
    assert registered["tier"] == "basic"
    assert registered["function_request_id"] == "c6af9ac6-7b61-11e6-9a41-93e812345678"
