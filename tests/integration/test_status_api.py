"""The status API over HTTP on loopback (localcloud.api_gateway): the REQUEST authorizer and the API
function run as Lambda handlers in their own workers, exactly as deployed from template.yaml.

Onboard through the API with an operator key, upload as the new tenant, read the job's status through
the API with the tenant's key; other credentials see nothing.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest
import requests

from scripts.api_keys import create_operator_key
from scripts.sample_data import SampleTenant
from tests.integration.conftest import QUIET_SECONDS, Deployed, upload, valid_csv

pytestmark = pytest.mark.integration


def _url(deployed: Deployed) -> str:
    return str(deployed.cloud.api_url(deployed.stack, "ControlPlaneApi"))


def _call(deployed: Deployed, method: str, path: str, key: str | None, **kwargs: Any) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, _url(deployed) + path, headers=headers, timeout=QUIET_SECONDS, **kwargs)


def _onboard(deployed: Deployed, operator: str, tenant_id: str) -> str:
    response = _call(
        deployed,
        "POST",
        "/tenants",
        operator,
        json={
            "tenantId": tenant_id,
            "tier": "basic",
            "metricThreshold": 0.5,
            "contract": {
                "targetColumn": "label",
                "featureColumns": ["f1", "f2", "f3"],
                "problemType": "binary_classification",
                "minRows": 50,
            },
        },
    )
    assert response.status_code == 201, response.text
    return str(response.json()["apiKey"])


def test_onboard_upload_and_read_the_status_through_the_api(deployed: Deployed) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant_id = f"api-{uuid.uuid4().hex[:8]}"
    other_id = f"api-{uuid.uuid4().hex[:8]}"
    key = _onboard(deployed, operator, tenant_id)
    other_key = _onboard(deployed, operator, other_id)

    tenant = SampleTenant(
        tenant_id=tenant_id, tier="basic", target_column="label", feature_columns=("f1", "f2", "f3")
    )
    upload(deployed, tenant_id, "first.csv", valid_csv(tenant))

    deadline = time.monotonic() + 2 * QUIET_SECONDS
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        page = _call(deployed, "GET", "/jobs", key).json()
        if page["items"] and page["items"][0]["status"] in {"SUCCEEDED", "FAILED", "REJECTED"}:
            job = page["items"][0]
            break
        time.sleep(0.5)
    assert job.get("status") == "SUCCEEDED", job

    detail = _call(deployed, "GET", f"/jobs/{job['jobId']}", key)
    assert detail.status_code == 200
    body = detail.json()
    assert [entry["status"] for entry in body["timeline"]][-1] == "SUCCEEDED"
    assert body["executionArn"]
    assert body["pipelineExecutionArn"]
    # The build's results are what the (SIMULATED) runner reports through SageMaker's APIs, and its cost
    # is counted in the tenant's month: GET /usage with its key, and only its own.
    steps = deployed.client("sagemaker").list_pipeline_execution_steps(
        PipelineExecutionArn=body["pipelineExecutionArn"], SortOrder="Ascending"
    )["PipelineExecutionSteps"]
    assert [(s["name"], s["status"]) for s in body["results"]["steps"]] == [
        (step["StepName"], step["StepStatus"]) for step in steps
    ]
    assert body["results"]["steps"][0]["name"] == "Preprocess"
    assert body["billableSeconds"] > 0
    assert body["costUsd"] > 0
    (month,) = _call(deployed, "GET", "/usage", key).json()["items"]
    assert (month["jobs"], month["costUsd"], month["tenantId"]) == (1, body["costUsd"], tenant_id)
    assert _call(deployed, "GET", "/usage", other_key).json()["items"] == []
    operator_view = _call(deployed, "GET", "/usage", operator, params={"month": month["month"]}).json()
    assert {row["tenantId"]: row["costUsd"] for row in operator_view["items"]}[tenant_id] == body["costUsd"]

    # Another tenant: the job does not exist for it, and its listing is empty.
    assert _call(deployed, "GET", f"/jobs/{job['jobId']}", other_key).status_code == 404
    assert _call(deployed, "GET", "/jobs", other_key).json()["items"] == []
    # Tenant credentials on operator routes, no or a wrong key, an unknown route.
    assert _call(deployed, "GET", "/tiers", key).status_code == 403
    assert _call(deployed, "GET", "/jobs", None).status_code == 401
    assert _call(deployed, "GET", "/jobs", "mlaas_wrong").status_code == 401
    nowhere = _call(deployed, "GET", "/nowhere", key)
    assert nowhere.status_code == 404
    assert "no route GET /nowhere; the routes are: " in nowhere.json()["message"]
    assert "GET /jobs/{jobId}" in nowhere.json()["message"]
    wrong_method = _call(deployed, "DELETE", "/jobs", key)
    assert wrong_method.status_code == 404
    assert wrong_method.json()["message"].startswith("/jobs answers GET, not DELETE")

    tiers = _call(deployed, "GET", "/tiers", operator).json()["items"]
    assert {tier["tier"] for tier in tiers} == {"basic", "standard", "premium"}
    invalid = _call(deployed, "PATCH", f"/tenants/{tenant_id}", operator, json={"status": "GONE"})
    assert invalid.status_code == 422
    assert "status" in invalid.text
    suspended = _call(deployed, "PATCH", f"/tenants/{tenant_id}", operator, json={"status": "SUSPENDED"})
    assert suspended.json()["status"] == "SUSPENDED"


def test_every_request_leaves_an_access_log_line_naming_the_caller(deployed: Deployed) -> None:
    """The stage's AccessLogSetting (template.yaml): one JSON line per request in its log group, with the
    authorizer's role and tenant, so operator actions and tenant calls can be audited."""
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant_id = f"log-{uuid.uuid4().hex[:8]}"
    key = _onboard(deployed, operator, tenant_id)
    assert _call(deployed, "GET", "/jobs/job-nothing-here", key).status_code in {404, 422}
    assert _call(deployed, "GET", "/tiers", None).status_code == 401
    group = f"/aws/apigateway/{deployed.stack.name}-status-api/access"
    events = deployed.client("logs").filter_log_events(logGroupName=group)["events"]
    lines = [json.loads(event["message"]) for event in events]
    onboarding = [line for line in lines if line["httpMethod"] == "POST" and line["status"] == "201"]
    assert any(line["role"] == "operator" and line["resourcePath"] == "/tenants" for line in onboarding)
    mine = [line for line in lines if line["tenantId"] == tenant_id]
    assert mine, lines[-5:]
    assert mine[-1]["role"] == "tenant"
    assert mine[-1]["resourcePath"] == "/jobs/{jobId}"
    assert mine[-1]["error"] != "-"
    refused = [line for line in lines if line["status"] == "401" and line["path"].endswith("/tiers")]
    assert refused
    assert refused[-1]["role"] == "-"
    assert refused[-1]["error"] == "Unauthorized"
    assert all(line["requestId"] and line["responseLatency"] != "-" for line in lines)


def _register_version(deployed: Deployed, tenant_id: str, job_id: str) -> str:
    """A model version as the pipeline's register step creates one (the simulated runner registers none)."""
    bucket = deployed.outputs["ArtifactsBucketName"]
    prefix = f"tenants/{tenant_id}/jobs/{job_id}/model"
    report = {"validation_metric": {"name": "auc", "value": 0.83}, "binary_classification_metrics": {}}
    deployed.client("s3").put_object(
        Bucket=bucket, Key=f"{prefix}/evaluation/evaluation.json", Body=json.dumps(report).encode()
    )
    return str(
        deployed.client("sagemaker").create_model_package(
            ModelPackageGroupName=f"{tenant_id}-models",
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [{"Image": "sklearn", "ModelDataUrl": f"s3://{bucket}/{prefix}/model.tar.gz"}],
                "SupportedContentTypes": ["text/csv"],
                "SupportedResponseMIMETypes": ["text/csv"],
            },
            ModelMetrics={
                "ModelQuality": {
                    "Statistics": {
                        "ContentType": "application/json",
                        "S3Uri": f"s3://{bucket}/{prefix}/evaluation/evaluation.json",
                    }
                }
            },
            CustomerMetadataProperties={
                "mlaas:tenant": tenant_id,
                "mlaas:tier": "basic",
                "mlaas:job": job_id,
            },
        )["ModelPackageArn"]
    )


def _handoff_queue(deployed: Deployed, name: str) -> str:
    sqs, events = deployed.client("sqs"), deployed.client("events")
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": ["mlaas.controlplane"], "detail-type": ["Model Version Approved"]}
    events.put_rule(Name=name, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=name, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def _handoffs(deployed: Deployed, url: str, *, seconds: float, until_first: bool) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not (found and until_first):
        sqs = deployed.client("sqs")
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        time.sleep(0.2)
    return found


def test_a_tenant_approves_its_model_and_one_handoff_event_follows(deployed: Deployed) -> None:
    """Over HTTP, through the authorizer: GET /models, the approval, another tenant's 404, and the hand-off
    (SageMaker's state change event in the emulator -> model_handoff -> the default bus) exactly once."""
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant_id, other_id = f"mdl-{uuid.uuid4().hex[:8]}", f"mdl-{uuid.uuid4().hex[:8]}"
    key, other_key = _onboard(deployed, operator, tenant_id), _onboard(deployed, operator, other_id)
    queue = _handoff_queue(deployed, f"handoffs-{tenant_id}")
    job_id = "job-" + uuid.uuid4().hex * 2
    arn = _register_version(deployed, tenant_id, job_id)

    listed_response = _call(deployed, "GET", "/models", key)
    assert listed_response.status_code == 200, listed_response.text
    listed = listed_response.json()["items"]
    assert [(m["version"], m["jobId"], m["approvalStatus"]) for m in listed] == [
        (1, job_id, "PendingManualApproval")
    ]
    assert listed[0]["metrics"]["value"] == 0.83
    assert _call(deployed, "GET", "/models", other_key).json()["items"] == []
    # Another tenant's version 1 answers exactly as its own missing version 2 does.
    approve = {"approvalStatus": "Approved"}
    theirs = _call(deployed, "POST", "/models/1/approval", other_key, json=approve)
    missing = _call(deployed, "POST", "/models/2/approval", key, json=approve)
    assert (
        (theirs.status_code, theirs.json())
        == (missing.status_code, missing.json())
        == (
            404,
            {"statusCode": 404, "message": "no such model version"},
        )
    )
    assert _call(deployed, "GET", "/models/1", other_key).json() == missing.json()

    first = _call(deployed, "POST", "/models/1/approval", key, json=approve | {"description": "ok"})
    assert (first.status_code, first.json()["changed"]) == (200, True)
    events = _handoffs(deployed, queue, seconds=QUIET_SECONDS, until_first=True)
    again = _call(deployed, "POST", "/models/1/approval", key, json=approve)
    assert again.json()["changed"] is False
    events += _handoffs(deployed, queue, seconds=5.0, until_first=False)  # a duplicate would show by then
    assert len(events) == 1, events
    detail = events[0]["detail"]
    assert (detail["tenantId"], detail["jobId"], detail["modelPackageArn"]) == (tenant_id, job_id, arn)
    assert detail["tags"] == {"mlaas:tenant": tenant_id, "mlaas:tier": "basic", "mlaas:job": job_id}
    # The group carries the tenant tag (ListTags), the version its tags as metadata.
    group_arn = arn.rsplit("/", 1)[0].replace(":model-package/", ":model-package-group/")
    tags = deployed.client("sagemaker").list_tags(ResourceArn=group_arn)["Tags"]
    assert {"Key": "mlaas:tenant", "Value": tenant_id} in tags
