"""Reading jobs back from the jobs table, and the figures the demo and tests report.

Reads go through the `tenant-jobs` index (a Query per tenant), never a Scan.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED", "REJECTED", "EXPIRED", "CANCELLED"}
_deserializer = TypeDeserializer()


def plain(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item in plain Python values."""
    return {k: _deserializer.deserialize(v) for k, v in item.items()}


def tenant_jobs(
    dynamodb: Any, table: str, tenant_id: str, *, attributes: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Every job of the tenant; only ``attributes`` of each when given (a cheap poll)."""
    jobs: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {
        "TableName": table,
        "IndexName": "tenant-jobs",
        "KeyConditionExpression": "tenantId = :t",
        "ExpressionAttributeValues": {":t": {"S": tenant_id}},
    }
    if attributes:
        kwargs["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(attributes)))
        kwargs["ExpressionAttributeNames"] = {f"#a{i}": name for i, name in enumerate(attributes)}
    while True:
        page = dynamodb.query(**kwargs)
        jobs.extend(plain(item) for item in page["Items"])
        if "LastEvaluatedKey" not in page:
            return jobs
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _instant(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def max_concurrent_slots(jobs: Iterable[dict[str, Any]]) -> int:
    """Most jobs holding a slot at the same instant, from [admittedAt, slotReleasedAt] intervals.

    A job still holding its slot counts as open-ended. Releases sort before admissions at the same
    instant: the slot was free for the next job.
    """
    events: list[tuple[datetime, int]] = []
    for job in jobs:
        if not job.get("admittedAt"):
            continue
        events.append((_instant(job["admittedAt"]), +1))
        if job.get("slotReleasedAt"):
            events.append((_instant(job["slotReleasedAt"]), -1))
    running = peak = 0
    for _, delta in sorted(events, key=lambda e: (e[0], e[1])):
        running += delta
        peak = max(peak, running)
    return peak


def status_counts(jobs: Iterable[dict[str, Any]]) -> Counter[str]:
    return Counter(job["status"] for job in jobs)


def registered_models(clients: Any, group: str) -> list[dict[str, Any]]:
    """Model versions registered in a tenant's package group, with the metric the pipeline gated on.

    The metric comes from the evaluation report the package's ModelQuality statistics point to,
    i.e. what the pipeline's evaluate step really wrote.
    """
    sagemaker, s3 = clients.client("sagemaker"), clients.client("s3")
    models = []
    summaries = sagemaker.list_model_packages(ModelPackageGroupName=group, MaxResults=100)[
        "ModelPackageSummaryList"
    ]
    for summary in summaries:
        package = sagemaker.describe_model_package(ModelPackageName=summary["ModelPackageArn"])
        metadata = package.get("CustomerMetadataProperties", {})
        statistics = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
        metric: dict[str, Any] = {}
        if uri := statistics.get("S3Uri"):
            bucket, _, key = uri.removeprefix("s3://").partition("/")
            report = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            metric = dict(report.get("validation_metric", {}))
        models.append(
            {
                "modelPackageArn": package["ModelPackageArn"],
                "version": package.get("ModelPackageVersion"),
                "approvalStatus": package.get("ModelApprovalStatus"),
                "jobId": metadata.get("mlaas:job"),
                "metric": metric,
            }
        )
    return sorted(models, key=lambda m: m["version"] or 0)
