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


class TenantRoleDriftError(Exception):
    """The tenant's role exists but is not the role onboarding creates (trust policy, path, boundary, tag).

    The API function may not change a role's trust policy, boundary or tags, so it refuses the role
    instead of reusing it: an operator deletes it (or offboards the tenant) and onboarding is retried."""

    def __init__(self, role_name: str, drift: list[str]) -> None:
        super().__init__(f"role {role_name} already exists and cannot be reused: {'; '.join(drift)}")
        self.drift = drift


def ensure_tenant_role(
    tenant_id: str,
    *,
    path: str,
    boundary_arn: str | None,
    sagemaker_arn_prefix: str,
    policy: dict[str, Any],
) -> str:
    """Create (or find) the tenant's role under ``path`` with ``boundary_arn`` as its permissions boundary
    and the fixed trust policy, and put its own-data-only inline policy. Returns the role ARN.

    A role found under the name must be exactly what this would create, or TenantRoleDriftError."""
    iam = client("iam")
    request = tenant_access.create_role_request(
        tenant_id, path=path, boundary_arn=boundary_arn, sagemaker_arn_prefix=sagemaker_arn_prefix
    )
    name = request["RoleName"]
    try:
        arn = str(iam.create_role(**request)["Role"]["Arn"])
    except ClientError as error:
        if dynamo.error_code(error) != "EntityAlreadyExists":
            raise
        role = iam.get_role(RoleName=name)["Role"]
        if drift := tenant_access.role_drift(role, request):
            raise TenantRoleDriftError(name, drift) from None
        arn = str(role["Arn"])
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
