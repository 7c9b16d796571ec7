"""A tenant's own AWS identity: the names of its role and model package group, and the IAM policy that
confines its SageMaker jobs to its own job folders.

Plain data (no AWS calls): the onboarding service (and scripts/tenants.py) create what these describe,
and tests evaluate the policy statements against other tenants' ARNs.
"""

from __future__ import annotations

import re
from typing import Any, Final

from controlplane.uploads.keys import UNKNOWN_TENANT

# Narrower than uploads.TENANT_ID_PATTERN: the id becomes part of an IAM role name (64 characters at most)
# and of a SageMaker model package group name (no trailing hyphen).
ONBOARDING_TENANT_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$"
_ONBOARDING_TENANT_ID: Final = re.compile(ONBOARDING_TENANT_ID_PATTERN)
ROLE_NAME_PREFIX: Final = "mlaas-tenant-"
ROLE_POLICY_NAME: Final = "own-data-only"
TENANT_TAG: Final = "mlaas:tenant"


# Ids the system itself files things under; a tenant onboarded with one would see what is not its own.
RESERVED_TENANT_IDS: Final = {
    UNKNOWN_TENANT: "the control plane records uploads whose key names no tenant under it",
}


def onboarding_refusal(tenant_id: str) -> str | None:
    """Why ``tenant_id`` cannot be onboarded, or None when it can."""
    if tenant_id in RESERVED_TENANT_IDS:
        return f"'{tenant_id}' is reserved: {RESERVED_TENANT_IDS[tenant_id]}"
    if _ONBOARDING_TENANT_ID.fullmatch(tenant_id) is None:
        return "must be 2-40 of a-z, 0-9 and -, beginning and ending with a letter or digit"
    return None


def role_name(tenant_id: str) -> str:
    return f"{ROLE_NAME_PREFIX}{tenant_id}"


def model_package_group_name(tenant_id: str) -> str:
    return f"{tenant_id}-models"


def trust_policy() -> dict[str, Any]:
    """Only SageMaker may assume a tenant role (the pipeline passes it to the tenant's jobs)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def tenant_role_policy(tenant_id: str, artifacts_bucket: str, *, partition: str = "aws") -> dict[str, Any]:
    """Least privilege for a tenant's SageMaker jobs: its own job folders, the shared step scripts.

    The uploads bucket is deliberately absent: jobs train on the validated copy in the artifacts
    bucket, never on the tenant's raw uploads. The role is also created under the template's
    permissions boundary (TenantRoleBoundary), which caps it whatever this document says.
    """
    bucket = f"arn:{partition}:s3:::{artifacts_bucket}"
    jobs = f"{bucket}/tenants/{tenant_id}/jobs/*"
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
                "Resource": [f"{bucket}/pipeline-code/*"],
            },
            {
                "Sid": "ListOwnPrefixAndStepScriptsOnly",
                "Effect": "Allow",
                "Action": ["s3:ListBucket"],
                "Resource": [bucket],
                "Condition": {"StringLike": {"s3:prefix": [f"tenants/{tenant_id}/*", "pipeline-code/*"]}},
            },
            {
                "Sid": "WriteJobLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [f"arn:{partition}:logs:*:*:log-group:/aws/sagemaker/*"],
            },
        ],
    }
