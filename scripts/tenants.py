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

from scripts.sample_data import SampleTenant

TENANT_ROLE_PATH = "/mlaas-tenants/"


def tenant_role_policy(tenant_id: str, uploads_bucket: str, artifacts_bucket: str) -> dict[str, Any]:
    """Least privilege for a tenant's SageMaker jobs: its own job folders, the shared step scripts.

    `uploads_bucket` is deliberately absent: jobs train on the validated copy in the artifacts
    bucket, never on the tenant's raw uploads.
    """
    del uploads_bucket
    jobs = f"arn:aws:s3:::{artifacts_bucket}/tenants/{tenant_id}/jobs/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadOwnJobInputsAndStepOutputs",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"{jobs}/input/*", f"{jobs}/model/*"],
            },
            {
                "Sid": "WriteOwnModels",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [f"{jobs}/model/*"],
            },
            {
                "Sid": "ReadSharedStepScripts",
                "Effect": "Allow",
                "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{artifacts_bucket}/pipeline-code/*"],
            },
            {
                "Sid": "ListOwnPrefixAndStepScriptsOnly",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [f"arn:aws:s3:::{artifacts_bucket}"],
                "Condition": {"StringLike": {"s3:prefix": [f"tenants/{tenant_id}/*", "pipeline-code/*"]}},
            },
            {
                "Sid": "WriteJobLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": ["arn:aws:logs:*:*:log-group:/aws/sagemaker/*"],
            },
        ],
    }


def onboard(clients: Any, outputs: dict[str, str], tenant: SampleTenant) -> dict[str, Any]:
    """Create the tenant's role, model package group and record; returns the record.

    `clients` is anything with `client(service)`: a boto3 Session, or the local emulator.
    """
    iam, sagemaker, dynamodb = clients.client("iam"), clients.client("sagemaker"), clients.client("dynamodb")
    role_name = f"mlaas-tenant-{tenant.tenant_id}"
    role = iam.create_role(
        RoleName=role_name,
        Path=TENANT_ROLE_PATH,
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
        Tags=[{"Key": "mlaas:tenant", "Value": tenant.tenant_id}],
    )["Role"]
    iam.put_role_policy(
        RoleName=role_name,
        PolicyName="own-data-only",
        PolicyDocument=json.dumps(
            tenant_role_policy(tenant.tenant_id, outputs["UploadsBucketName"], outputs["ArtifactsBucketName"])
        ),
    )
    group = f"{tenant.tenant_id}-models"
    sagemaker.create_model_package_group(
        ModelPackageGroupName=group,
        ModelPackageGroupDescription=f"Models built for tenant {tenant.tenant_id}",
        Tags=[{"Key": "mlaas:tenant", "Value": tenant.tenant_id}],
    )
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    item = {
        "tenantId": {"S": tenant.tenant_id},
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
