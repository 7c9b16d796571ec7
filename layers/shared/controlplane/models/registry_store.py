"""The SageMaker model registry and the evaluation reports: the only code of this feature touching AWS.

Access patterns (SageMaker, no table):
- a tenant's versions, newest first ..... ListModelPackages(ModelPackageGroupName=<tenant>-models,
                                          SortBy=CreationTime, SortOrder=Descending), paginated
- one version ............................ DescribeModelPackage(ModelPackageName=<version ARN>)
- approve or reject ...................... UpdateModelPackage(ModelPackageArn, ModelApprovalStatus,
                                          ApprovalDescription)
- its metrics ............................ s3:GetObject of ModelMetrics.ModelQuality.Statistics.S3Uri
- the hand-off .......................... events:PutEvents on the default bus
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from controlplane.core import dynamo
from controlplane.core.clients import client, translated
from controlplane.core.tags import JOB_TAG, TENANT_TAG, TIER_TAG
from controlplane.models.versions import (
    HANDOFF_DETAIL_TYPE,
    HANDOFF_SOURCE,
    HandoffDetail,
    HandoffNotSentError,
    Metrics,
    ModelVersion,
    in_bucket,
    metrics_of,
)
from controlplane.observability import logger


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return str(value) if value else None


def _missing(error: ClientError) -> bool:
    """SageMaker answers an unknown model package with a ValidationException ("... does not exist" or
    "... not found")."""
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return dynamo.error_code(error) in {"ValidationException", "ResourceNotFound"} and (
        "not exist" in message or "not found" in message
    )


def _version(package: dict[str, Any], metrics: Metrics) -> ModelVersion:
    metadata = package.get("CustomerMetadataProperties") or {}
    containers = (package.get("InferenceSpecification") or {}).get("Containers") or [{}]
    statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    return ModelVersion(
        model_package_arn=str(package["ModelPackageArn"]),
        group=str(package.get("ModelPackageGroupName") or ""),
        version=int(package.get("ModelPackageVersion") or 0),
        approval_status=str(package.get("ModelApprovalStatus") or "PendingManualApproval"),
        created_at=_iso(package.get("CreationTime")),
        modified_at=_iso(package.get("LastModifiedTime") or package.get("CreationTime")),
        tenant_id=metadata.get(TENANT_TAG),
        tier=metadata.get(TIER_TAG),
        job_id=metadata.get(JOB_TAG),
        artifact_uri=containers[0].get("ModelDataUrl"),
        image_uri=containers[0].get("Image"),
        evaluation_report_uri=statistics.get("S3Uri"),
        approval_description=package.get("ApprovalDescription"),
        metrics=metrics,
    )


def _metrics(uri: str | None) -> Metrics:
    """The report's metrics; none when it is gone or unreadable (a listing must not fail on one version)."""
    if not uri or not uri.startswith("s3://"):
        return Metrics()
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        report = json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    except (ClientError, ValueError) as error:
        logger.warning("Evaluation report unreadable", extra={"uri": uri, "error": str(error)})
        return Metrics()
    return metrics_of(report) if isinstance(report, dict) else Metrics()


@translated
def describe(model_package_arn: str, *, reports_bucket: str | None = None) -> ModelVersion | None:
    """The version with its metrics; None when it does not exist. ``reports_bucket``: read the evaluation
    report only from this bucket (another stack's report is not this function's to read)."""
    try:
        package = client("sagemaker").describe_model_package(ModelPackageName=model_package_arn)
    except ClientError as error:
        if _missing(error):
            return None
        raise
    statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    report = statistics.get("S3Uri")
    if reports_bucket is not None and not in_bucket(report, reports_bucket):
        return _version(package, Metrics())
    return _version(package, _metrics(report))


@translated
def page(group: str, *, limit: int, token: str | None) -> tuple[list[ModelVersion], str | None]:
    """A page of the group's versions, newest first, each described (metrics, job), and the next token.
    A group that does not exist (yet) has no versions."""
    sagemaker = client("sagemaker")
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelPackageType": "Versioned",
        "SortBy": "CreationTime",
        "SortOrder": "Descending",
        "MaxResults": limit,
    }
    if token:
        request["NextToken"] = token
    try:
        listed = sagemaker.list_model_packages(**request)
    except ClientError as error:
        if _missing(error):
            return [], None
        raise
    versions = [
        found
        for summary in listed.get("ModelPackageSummaryList", [])
        if (found := describe(str(summary["ModelPackageArn"]))) is not None
    ]
    return versions, listed.get("NextToken") or None


@translated
def set_approval(model_package_arn: str, status: str, description: str | None) -> None:
    request: dict[str, Any] = {"ModelPackageArn": model_package_arn, "ModelApprovalStatus": status}
    if description is not None:
        request["ApprovalDescription"] = description
    client("sagemaker").update_model_package(**request)


@translated
def publish(detail: HandoffDetail, *, resources: list[str]) -> str:
    """Put the hand-off event on the default bus; its event id. HandoffNotSentError when refused."""
    response = client("events").put_events(
        Entries=[
            {
                "Source": HANDOFF_SOURCE,
                "DetailType": HANDOFF_DETAIL_TYPE,
                "Detail": json.dumps(detail.wire(), sort_keys=True),
                "Resources": resources,
            }
        ]
    )
    entry = (response.get("Entries") or [{}])[0]
    if response.get("FailedEntryCount") or not entry.get("EventId"):
        raise HandoffNotSentError(
            f"PutEvents refused the hand-off of {detail.model_package_arn}: "
            f"{entry.get('ErrorCode')}: {entry.get('ErrorMessage')}"
        )
    return str(entry["EventId"])
