"""Operator helper: onboard a tenant into a deployed stack (local emulator or AWS).

Onboarding creates what a tenant's builds need: the tenant record (tier, dataset contract,
metric threshold), its model package group and its own SageMaker execution role under the
tenant role path. The status API's onboarding route supersedes this for operators; the demo and
the integration tests use it to set tenants up the same way.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from controlplane.tenants import access_policy as tenant_access
from scripts.sample_data import SampleTenant

TENANT_ROLE_PATH = "/mlaas-tenants/"


def tenant_role_policy(tenant_id: str, uploads_bucket: str, artifacts_bucket: str) -> dict[str, Any]:
    """The tenant role's policy, built by the layer's domain (the API's onboarding uses the same).

    `uploads_bucket` is deliberately unused: jobs train on the validated copy in the artifacts bucket.
    """
    del uploads_bucket
    return tenant_access.tenant_role_policy(tenant_id, artifacts_bucket)


def onboard(clients: Any, outputs: dict[str, str], tenant: SampleTenant) -> dict[str, Any]:
    """Create the tenant's role, model package group and record; returns the record.

    `clients` is anything with `client(service)`: a boto3 Session, or the local emulator.
    """
    if (refusal := tenant_access.onboarding_refusal(tenant.tenant_id)) is not None:
        raise ValueError(f"cannot onboard tenant {tenant.tenant_id!r}: {refusal}")
    iam, sagemaker, dynamodb = clients.client("iam"), clients.client("sagemaker"), clients.client("dynamodb")
    role_name = tenant_access.role_name(tenant.tenant_id)
    # The account and partition of the caller, the region of the SageMaker client: the trust policy's source.
    caller = clients.client("sts").get_caller_identity()["Arn"].split(":")
    sagemaker_arn_prefix = f"arn:{caller[1]}:sagemaker:{sagemaker.meta.region_name}:{caller[4]}"
    role = iam.create_role(
        **tenant_access.create_role_request(
            tenant.tenant_id,
            path=TENANT_ROLE_PATH,
            boundary_arn=outputs.get("TenantRoleBoundaryArn"),
            sagemaker_arn_prefix=sagemaker_arn_prefix,
        )
    )["Role"]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName=tenant_access.ROLE_POLICY_NAME,
        PolicyDocument=json.dumps(
            tenant_role_policy(tenant.tenant_id, outputs["UploadsBucketName"], outputs["ArtifactsBucketName"])
        ),
    )
    group = tenant_access.model_package_group_name(tenant.tenant_id)
    sagemaker.create_model_package_group(
        ModelPackageGroupName=group,
        ModelPackageGroupDescription=f"Models built for tenant {tenant.tenant_id}",
        Tags=[{"Key": tenant_access.TENANT_TAG, "Value": tenant.tenant_id}],
    )
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    item = {
        "tenantId": {"S": tenant.tenant_id},
        "listing": {"S": "TENANT"},  # the tenants-by-id index (controlplane.tenants.store)
        "tier": {"S": tenant.tier},
        "status": {"S": "ACTIVE"},
        "roleArn": {"S": role["Arn"]},
        "modelPackageGroupName": {"S": group},
        "metricThreshold": {"N": str(tenant.metric_threshold)},
        "contract": {
            "M": {
                "targetColumn": {"S": tenant.target_column},
                "featureColumns": {"L": [{"S": c} for c in tenant.feature_columns]},
                "problemType": {"S": tenant.problem_type},
                "minRows": {"N": str(tenant.min_rows)},
            }
        },
        "createdAt": {"S": now},
        "updatedAt": {"S": now},
    }
    dynamodb.put_item(
        TableName=outputs["TenantsTableName"], Item=item, ConditionExpression="attribute_not_exists(tenantId)"
    )
    return {
        "tenantId": tenant.tenant_id,
        "tier": tenant.tier,
        "roleArn": role["Arn"],
        "modelPackageGroupName": group,
    }
