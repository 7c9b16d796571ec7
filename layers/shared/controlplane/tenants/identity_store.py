"""A tenant's IAM role and SageMaker model package group (created at onboarding).

Both calls are idempotent so that a retried onboarding continues where a failed one stopped.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from controlplane.core import dynamo
from controlplane.core.clients import client
from controlplane.tenants import access_policy as tenant_access


def ensure_tenant_role(tenant_id: str, *, path: str, boundary_arn: str | None, policy: dict[str, Any]) -> str:
    """Create (or find) the tenant's role under ``path`` with ``boundary_arn`` as its permissions boundary,
    and put its own-data-only inline policy. Returns the role ARN."""
    iam = client("iam")
    name = tenant_access.role_name(tenant_id)
    request: dict[str, Any] = {
        "RoleName": name,
        "Path": path,
        "AssumeRolePolicyDocument": json.dumps(tenant_access.trust_policy()),
        "Description": f"SageMaker jobs of tenant {tenant_id}: its own job data only",
        "Tags": [{"Key": tenant_access.TENANT_TAG, "Value": tenant_id}],
    }
    if boundary_arn:
        request["PermissionsBoundary"] = boundary_arn
    try:
        arn = str(iam.create_role(**request)["Role"]["Arn"])
    except ClientError as error:
        if dynamo.error_code(error) != "EntityAlreadyExists":
            raise
        arn = str(iam.get_role(RoleName=name)["Role"]["Arn"])
    iam.put_role_policy(
        RoleName=name, PolicyName=tenant_access.ROLE_POLICY_NAME, PolicyDocument=json.dumps(policy)
    )
    return arn


def ensure_model_package_group(tenant_id: str) -> str:
    name = tenant_access.model_package_group_name(tenant_id)
    try:
        client("sagemaker").create_model_package_group(
            ModelPackageGroupName=name,
            ModelPackageGroupDescription=f"Models built for tenant {tenant_id}",
            Tags=[{"Key": tenant_access.TENANT_TAG, "Value": tenant_id}],
        )
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", ""))
        if dynamo.error_code(error) != "ValidationException" or "already exists" not in message.lower():
            raise
    return name
