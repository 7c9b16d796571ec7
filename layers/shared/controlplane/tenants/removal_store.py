"""Removing what belongs to one tenant (offboarding only): S3 object versions under its prefix, its model
package group and versions, its IAM role and inline policies, its API keys, its job and tenant items.

Access patterns (never a Scan):
- a tenant's objects ........ ListObjectVersions Prefix = tenants/<tenantId>/ (trailing slash: a tenant id
                               that is a prefix of another never matches the other's objects)
- a tenant's API keys ....... ApiKeys index tenant-keys: tenantId = :t (keys only)
- a tenant's jobs ........... Jobs index tenant-jobs: tenantId = :t
Every call is idempotent: a missing thing counts as removed already (0).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.tenants import access_policy as tenant_access

TENANT_KEYS_INDEX: Final = "tenant-keys"
_S3_DELETE_BATCH: Final = 1000
_MISSING: Final = frozenset({"NoSuchEntity", "ResourceNotFound", "ValidationException", "NoSuchBucket"})


def tenant_prefix(tenant_id: str) -> str:
    return f"tenants/{tenant_id}/"


def _versions(bucket: str, prefix: str) -> Iterator[dict[str, str]]:
    paginator = client("s3").get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            if str(entry["Key"]).startswith(prefix):
                yield {"Key": str(entry["Key"]), "VersionId": str(entry["VersionId"])}


def delete_object_versions(bucket: str, prefix: str) -> int:
    """Delete every object version and delete marker under ``prefix``; returns how many were deleted."""
    deleted = 0
    batch: list[dict[str, str]] = []

    def flush() -> int:
        if not batch:
            return 0
        response = client("s3").delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
        errors = response.get("Errors") or []
        if errors:
            raise RuntimeError(f"could not delete {len(errors)} object versions in {bucket}: {errors[:3]}")
        return len(batch)

    for version in list(_versions(bucket, prefix)):
        batch.append(version)
        if len(batch) == _S3_DELETE_BATCH:
            deleted += flush()
            batch = []
    deleted += flush()
    return deleted


def delete_model_packages(group: str) -> tuple[int, int]:
    """Delete every model version in the group, then the group. Returns (versions, groups) deleted."""
    sagemaker = client("sagemaker")
    versions = 0
    try:
        paginator = sagemaker.get_paginator("list_model_packages")
        arns = [
            str(summary["ModelPackageArn"])
            for page in paginator.paginate(ModelPackageGroupName=group)
            for summary in page.get("ModelPackageSummaryList", [])
        ]
    except ClientError as error:
        if dynamo.error_code(error) not in _MISSING:
            raise
        arns = []
    for arn in arns:
        sagemaker.delete_model_package(ModelPackageName=arn)
        versions += 1
    try:
        sagemaker.delete_model_package_group(ModelPackageGroupName=group)
    except ClientError as error:
        if dynamo.error_code(error) not in _MISSING:
            raise
        return versions, 0
    return versions, 1


def delete_tenant_role(tenant_id: str) -> tuple[int, int]:
    """Delete the tenant role's inline policies, then the role. Returns (policies, roles) deleted."""
    iam = client("iam")
    name = tenant_access.role_name(tenant_id)
    try:
        policies = [
            str(policy)
            for page in iam.get_paginator("list_role_policies").paginate(RoleName=name)
            for policy in page.get("PolicyNames", [])
        ]
    except ClientError as error:
        if dynamo.error_code(error) not in _MISSING:
            raise
        return 0, 0
    for policy in policies:
        iam.delete_role_policy(RoleName=name, PolicyName=policy)
    try:
        iam.delete_role(RoleName=name)
    except ClientError as error:
        if dynamo.error_code(error) not in _MISSING:
            raise
        return len(policies), 0
    return len(policies), 1


def _query_keys(table: str, index: str, name: str, value: str, key: str) -> list[str]:
    found: list[str] = []
    request: dict[str, Any] = {
        "TableName": table,
        "IndexName": index,
        "KeyConditionExpression": f"#{name} = :value",
        "ExpressionAttributeNames": {f"#{name}": name},
        "ExpressionAttributeValues": dynamo.values({":value": value}),
    }
    while True:
        response = client("dynamodb").query(**request)
        found += [str(item[key]["S"]) for item in response.get("Items", [])]
        if not response.get("LastEvaluatedKey"):
            return found
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def delete_items(table: str, key: str, values: list[str]) -> int:
    for value in values:
        client("dynamodb").delete_item(TableName=table, Key=dynamo.to_item({key: value}))
    return len(values)


def tenant_key_hashes(table: str, tenant_id: str) -> list[str]:
    return _query_keys(table, TENANT_KEYS_INDEX, "tenantId", tenant_id, "keyHash")


def tenant_job_ids(table: str, index: str, tenant_id: str) -> list[str]:
    return _query_keys(table, index, "tenantId", tenant_id, "jobId")
