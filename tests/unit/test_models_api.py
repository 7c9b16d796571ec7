"""Model versions and approval (functions/api/model_routes.py, controlplane/models) and the hand-off
(functions/model_handoff) on moto: listing with metrics and the building job, isolation (another
tenant's version is a 404 exactly like a missing one), idempotent approval, and one hand-off event per
approval read back from the default bus through a rule to a queue.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.unit.conftest import ACCOUNT, ENVIRONMENT, REGION, LambdaContext, aws_client, job_id_for
from tests.unit.test_api import OPERATOR, api, tenant

__all__ = ["api"]  # the status API fixture, shared with test_api

IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


@pytest.fixture(autouse=True)
def sagemaker_updates_like_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto's UpdateModelPackage sets what a request leaves out to None; SageMaker keeps it (the
    emulator's seam 22 does the same, with the same function)."""
    from moto.sagemaker.models import SageMakerModelBackend  # noqa: PLC0415

    from localcloud.model_package_events import keeping_unset_fields  # noqa: PLC0415

    original = SageMakerModelBackend.update_model_package

    def update(self: Any, model_package_arn: str, **kwargs: Any) -> str:
        package = self.describe_model_package(model_package_arn)
        return original(self, model_package_arn, **keeping_unset_fields(package, kwargs))

    monkeypatch.setattr(SageMakerModelBackend, "update_model_package", update)


def register(
    tenant_id: str, number: int, *, auc: float = 0.86, tier: str = "basic", bucket: str | None = None
) -> str:
    """A version as the pipeline's register step creates it: artifact, evaluation report, metadata
    (``bucket``: the artifacts bucket of the stack that built it; this stack's by default)."""
    job_id = job_id_for(number)
    prefix = f"tenants/{tenant_id}/jobs/{job_id}/model"
    bucket = bucket or ENVIRONMENT["ARTIFACTS_BUCKET_NAME"]
    report = {
        "binary_classification_metrics": {"auc": {"value": auc}, "accuracy": {"value": 0.8}},
        "validation_metric": {"name": "auc", "value": auc},
    }
    aws_client("s3").put_object(
        Bucket=bucket, Key=f"{prefix}/evaluation/evaluation.json", Body=json.dumps(report).encode()
    )
    group = f"{tenant_id}-models"
    sagemaker = aws_client("sagemaker")
    with contextlib.suppress(sagemaker.exceptions.ClientError):  # the tenant's group exists already
        sagemaker.create_model_package_group(
            ModelPackageGroupName=group, Tags=[{"Key": "mlaas:tenant", "Value": tenant_id}]
        )
    return str(
        sagemaker.create_model_package(
            ModelPackageGroupName=group,
            ModelApprovalStatus="PendingManualApproval",
            InferenceSpecification={
                "Containers": [
                    {"Image": IMAGE, "ModelDataUrl": f"s3://{bucket}/{prefix}/training/t/output/model.tar.gz"}
                ],
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
            CustomerMetadataProperties={"mlaas:tenant": tenant_id, "mlaas:tier": tier, "mlaas:job": job_id},
        )["ModelPackageArn"]
    )


def model(api: Callable[..., tuple[int, Any]], version: int, caller: dict[str, str]) -> tuple[int, Any]:
    return api(
        "GET",
        f"/models/{version}",
        caller=caller,
        resource="/models/{version}",
        path_parameters={"version": str(version)},
    )


def decide(
    api: Callable[..., tuple[int, Any]],
    version: int,
    status: str,
    caller: dict[str, str],
    *,
    tenant_id: str | None = None,
    description: str | None = None,
) -> tuple[int, Any]:
    body: dict[str, Any] = {"approvalStatus": status}
    if description is not None:
        body["description"] = description
    if tenant_id is None:
        path, resource, parameters = f"/models/{version}/approval", "/models/{version}/approval", {}
    else:
        path = f"/tenants/{tenant_id}/models/{version}/approval"
        resource, parameters = "/tenants/{tenantId}/models/{version}/approval", {"tenantId": tenant_id}
    return api(
        "POST",
        path,
        caller=caller,
        body=body,
        resource=resource,
        path_parameters=parameters | {"version": str(version)},
    )


@pytest.fixture
def handoffs(aws: None) -> Callable[[], list[dict[str, Any]]]:
    """Hand-off events on the default bus, read through a rule to a queue (moto delivers to SQS)."""
    sqs, events = aws_client("sqs"), aws_client("events")
    url = sqs.create_queue(QueueName="handoffs")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name="handoffs",
        EventPattern=json.dumps(
            {"source": ["mlaas.controlplane"], "detail-type": ["Model Version Approved"]}
        ),
    )
    events.put_targets(Rule="handoffs", Targets=[{"Id": "q", "Arn": arn}])

    def received() -> list[dict[str, Any]]:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        return [json.loads(message["Body"]) for message in messages]

    return received


def state_change(model_package_arn: str, status: str = "Approved") -> dict[str, Any]:
    """SageMaker's own event (the shape of events/sagemaker_model_package_approved.json)."""
    group, version = model_package_arn.split("model-package/", 1)[1].split("/")
    return {
        "version": "0",
        "id": "844e2571-85d4-695f-b930-0153b71dcb42",
        "detail-type": "SageMaker Model Package State Change",
        "source": "aws.sagemaker",
        "account": ACCOUNT,
        "time": "2024-05-01T12:00:00Z",
        "region": REGION,
        "resources": [model_package_arn],
        "detail": {
            "ModelPackageGroupName": group,
            "ModelPackageVersion": int(version),
            "ModelPackageArn": model_package_arn,
            "ModelApprovalStatus": status,
        },
    }


# ------------------------------------------------------------------ listing and reading


def test_my_models_newest_first_with_metrics_job_and_status(api: Callable[..., tuple[int, Any]]) -> None:
    first = register("acme", 1, auc=0.81)
    second = register("acme", 2, auc=0.9)
    register("globex", 3)
    status, body = api("GET", "/models", caller=tenant("acme"))
    assert status == 200
    assert [item["modelPackageArn"] for item in body["items"]] == [second, first]
    newest = body["items"][0]
    assert newest["version"] == 2
    assert newest["jobId"] == job_id_for(2)
    assert newest["approvalStatus"] == "PendingManualApproval"
    assert newest["metrics"] == {"name": "auc", "value": 0.9, "values": {"auc": 0.9, "accuracy": 0.8}}
    assert newest["artifactUri"].endswith(
        f"/tenants/acme/jobs/{job_id_for(2)}/model/training/t/output/model.tar.gz"
    )
    status, body = api("GET", "/models", caller=tenant("globex"))
    assert [item["jobId"] for item in body["items"]] == [job_id_for(3)]


def test_my_models_are_paginated(api: Callable[..., tuple[int, Any]]) -> None:
    arns = [register("acme", number) for number in range(1, 4)]
    seen: list[str] = []
    token: str | None = None
    while True:
        query = {"limit": "2"} | ({"nextToken": token} if token else {})
        status, body = api("GET", "/models", caller=tenant("acme"), query=query)
        assert status == 200
        assert len(body["items"]) <= 2
        seen += [item["modelPackageArn"] for item in body["items"]]
        token = body["nextToken"]
        if token is None:
            break
    assert seen == arns[::-1]
    # A token is bound to its tenant's listing.
    status, body = api("GET", "/models", caller=tenant("acme"), query={"limit": "1"})
    status, _ = api("GET", "/models", caller=tenant("globex"), query={"nextToken": body["nextToken"]})
    assert status == 400


def test_a_tenant_without_versions_has_an_empty_list(api: Callable[..., tuple[int, Any]]) -> None:
    status, body = api("GET", "/models", caller=tenant("initech"))
    assert (status, body["items"], body["nextToken"]) == (200, [], None)


def test_another_tenants_version_is_a_404_exactly_like_a_missing_one(
    api: Callable[..., tuple[int, Any]], handoffs: Callable[[], list[dict[str, Any]]]
) -> None:
    register("globex", 1)  # globex's version 1
    register("acme", 2)  # acme's version 1
    register("globex", 3)  # globex's version 2: acme has no version 2
    other = model(api, 2, tenant("acme"))
    missing = model(api, 7, tenant("acme"))
    assert other == missing
    assert other[0] == 404
    assert other[1]["message"] == "no such model version"
    assert decide(api, 2, "Approved", tenant("acme")) == missing
    # globex's version 2 is untouched, and nothing was handed off.
    status, body = model(api, 2, tenant("globex"))
    assert (status, body["approvalStatus"]) == (200, "PendingManualApproval")
    assert handoffs() == []


def test_tenant_routes_refuse_operator_keys_and_operator_routes_refuse_tenant_keys(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    register("acme", 1)
    table("TENANTS_TABLE_NAME").put_item(Item={"tenantId": "acme", "tier": "basic", "status": "ACTIVE"})
    assert api("GET", "/models", caller=OPERATOR)[0] == 403
    tenant_models = {"resource": "/tenants/{tenantId}/models", "path_parameters": {"tenantId": "acme"}}
    assert api("GET", "/tenants/acme/models", caller=tenant("acme"), **tenant_models)[0] == 403
    status, body = api("GET", "/tenants/acme/models", caller=OPERATOR, **tenant_models)
    assert (status, [item["version"] for item in body["items"]]) == (200, [1])
    unknown = {"resource": "/tenants/{tenantId}/models", "path_parameters": {"tenantId": "nobody"}}
    assert api("GET", "/tenants/nobody/models", caller=OPERATOR, **unknown) == (
        404,
        {"statusCode": 404, "message": "no such tenant"},
    )


# ------------------------------------------------------------------ approval


def test_approving_sets_the_status_and_is_idempotent(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    arn = register("acme", 1)
    status, body = decide(api, 1, "Approved", tenant("acme"), description="good enough")
    assert status == 200
    assert (body["changed"], body["previousStatus"]) == (True, "PendingManualApproval")
    assert body["model"]["approvalStatus"] == "Approved"
    package = aws_client("sagemaker").describe_model_package(ModelPackageName=arn)
    assert (package["ModelApprovalStatus"], package["ApprovalDescription"]) == ("Approved", "good enough")
    assert package["CustomerMetadataProperties"]["mlaas:job"] == job_id_for(1)  # kept
    status, body = decide(api, 1, "Approved", tenant("acme"))
    assert (status, body["changed"], body["previousStatus"]) == (200, False, "Approved")
    # The decision is in the audit trail, once.
    trail = table("AUDIT_TABLE_NAME").scan()["Items"]
    decided = [item for item in trail if item["action"] == "model.approval"]
    assert [item["target"] for item in decided] == [arn]


def test_an_operator_rejects_a_tenants_version(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    register("acme", 1)
    table("TENANTS_TABLE_NAME").put_item(Item={"tenantId": "acme", "tier": "basic", "status": "ACTIVE"})
    status, body = decide(api, 1, "Rejected", OPERATOR, tenant_id="acme", description="drift")
    assert (status, body["model"]["approvalStatus"], body["changed"]) == (200, "Rejected", True)
    assert decide(api, 1, "Rejected", tenant("acme"), tenant_id="acme")[0] == 403


def test_a_decision_must_be_approved_or_rejected(api: Callable[..., tuple[int, Any]]) -> None:
    register("acme", 1)
    status, body = decide(api, 1, "PendingManualApproval", tenant("acme"))
    assert status == 422
    assert "approvalStatus" in json.dumps(body["errors"])
    status, _ = decide(api, 1, "Approved", tenant("acme"), description="x" * 1025)
    assert status == 422


# ------------------------------------------------------------------ the hand-off


def test_one_handoff_event_per_approval(
    api: Callable[..., tuple[int, Any]],
    load_app: Callable[[str], ModuleType],
    handoffs: Callable[[], list[dict[str, Any]]],
) -> None:
    arn = register("acme", 1, auc=0.91, tier="standard")
    handoff = load_app("model_handoff")
    # Pending: SageMaker's creation event is not an approval.
    assert handoff.lambda_handler(state_change(arn, "PendingManualApproval"), LambdaContext()) == {
        "handedOff": False,
        "modelPackageArn": arn,
    }
    decide(api, 1, "Approved", tenant("acme"))
    result = handoff.lambda_handler(state_change(arn), LambdaContext())
    assert result["handedOff"] is True
    (event,) = handoffs()
    assert (event["source"], event["detail-type"], event["resources"]) == (
        "mlaas.controlplane",
        "Model Version Approved",
        [arn],
    )
    detail = event["detail"]
    assert detail["tenantId"] == "acme"
    assert detail["tier"] == "standard"
    assert detail["jobId"] == job_id_for(1)
    assert detail["modelPackageArn"] == arn
    assert detail["version"] == 1
    assert detail["metrics"]["name"] == "auc"
    assert detail["metrics"]["value"] == 0.91
    assert detail["artifactUri"].endswith("/output/model.tar.gz")
    assert detail["tags"] == {"mlaas:tenant": "acme", "mlaas:tier": "standard", "mlaas:job": job_id_for(1)}
    assert detail["handoffId"] == result["handoffId"]
    # A replayed event of that approval carries the same handoffId (consumers deduplicate on it).
    again = handoff.lambda_handler(state_change(arn), LambdaContext())
    assert again["handoffId"] == detail["handoffId"]


def test_a_stale_approval_event_of_a_rejected_version_hands_nothing_off(
    api: Callable[..., tuple[int, Any]],
    load_app: Callable[[str], ModuleType],
    handoffs: Callable[[], list[dict[str, Any]]],
) -> None:
    arn = register("acme", 1)
    decide(api, 1, "Approved", tenant("acme"))
    decide(api, 1, "Rejected", tenant("acme"))
    result = load_app("model_handoff").lambda_handler(state_change(arn), LambdaContext())
    assert result == {"handedOff": False, "modelPackageArn": arn}
    assert handoffs() == []


def test_a_refused_put_events_fails_the_invocation_so_it_is_retried(
    api: Callable[..., tuple[int, Any]],
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controlplane.core.clients import client  # noqa: PLC0415
    from controlplane.models.versions import HandoffNotSentError  # noqa: PLC0415

    arn = register("acme", 1)
    decide(api, 1, "Approved", tenant("acme"))
    events = client("events")
    monkeypatch.setattr(
        events,
        "put_events",
        lambda **_: {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "x"}],
        },
    )
    with pytest.raises(HandoffNotSentError, match="InternalFailure"):
        load_app("model_handoff").lambda_handler(state_change(arn), LambdaContext())


def test_an_approved_version_without_its_build_metadata_fails_the_handoff_loudly(
    api: Callable[..., tuple[int, Any]],
    load_app: Callable[[str], ModuleType],
    handoffs: Callable[[], list[dict[str, Any]]],
) -> None:
    """Approved by hand in the console, say, with its job metadata removed: nothing a deployment could
    use, so the invocation fails (retried, then kept in the alarmed DLQ) rather than announce half of it."""
    from controlplane.models.versions import IncompleteVersionError  # noqa: PLC0415

    arn = register("acme", 1)
    sagemaker = aws_client("sagemaker")
    sagemaker.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", CustomerMetadataPropertiesToRemove=["mlaas:job"]
    )
    with pytest.raises(IncompleteVersionError, match="mlaas:job"):
        load_app("model_handoff").lambda_handler(state_change(arn), LambdaContext())
    assert handoffs() == []


def test_an_approved_version_outside_a_tenant_group_is_not_handed_off(
    load_app: Callable[[str], ModuleType], handoffs: Callable[[], list[dict[str, Any]]]
) -> None:
    arn = register("acme", 1)
    sagemaker = aws_client("sagemaker")
    # Its metadata names another tenant than the group's: not a build of this group's tenant.
    sagemaker.update_model_package(
        ModelPackageArn=arn,
        ModelApprovalStatus="Approved",
        CustomerMetadataProperties={"mlaas:tenant": "globex"},
    )
    result = load_app("model_handoff").lambda_handler(state_change(arn), LambdaContext())
    assert result == {"handedOff": False, "modelPackageArn": arn}
    assert handoffs() == []


def test_another_stacks_approved_version_is_left_to_that_stack(
    load_app: Callable[[str], ModuleType],
    handoffs: Callable[[], list[dict[str, Any]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Group names are per tenant and SageMaker's events reach every stack of the account: a version built
    by another stack (its model in that stack's artifacts bucket) is neither announced nor read here."""
    other_bucket = "other-stack-artifacts"
    aws_client("s3").create_bucket(Bucket=other_bucket)
    arn = register("acme", 1, bucket=other_bucket)
    aws_client("sagemaker").update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    from controlplane.core.clients import client  # noqa: PLC0415

    s3 = client("s3")
    read: list[str] = []
    original = s3.get_object
    monkeypatch.setattr(s3, "get_object", lambda **kw: read.append(kw["Bucket"]) or original(**kw))
    result = load_app("model_handoff").lambda_handler(state_change(arn), LambdaContext())
    assert result == {"handedOff": False, "modelPackageArn": arn}
    assert handoffs() == []
    assert other_bucket not in read
