"""A tenant's own AWS identity: the names of its role and model package group, and the IAM policy that
confines its SageMaker jobs to its own job folders.

Plain data (no AWS calls): the onboarding service (and scripts/tenants.py) create what these describe,
and tests evaluate the policy statements against other tenants' ARNs.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final
from urllib.parse import unquote

from controlplane.core import tags
from controlplane.uploads.keys import UNKNOWN_TENANT

# Narrower than uploads.TENANT_ID_PATTERN: the id becomes part of an IAM role name (64 characters at most)
# and of a SageMaker model package group name (no trailing hyphen).
ONBOARDING_TENANT_ID_PATTERN: Final = r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$"
_ONBOARDING_TENANT_ID: Final = re.compile(ONBOARDING_TENANT_ID_PATTERN)
ROLE_NAME_PREFIX: Final = "mlaas-tenant-"
ROLE_POLICY_NAME: Final = "own-data-only"
TENANT_TAG: Final = tags.TENANT_TAG  # the boundary's ABAC key (controlplane.core.tags)


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


# The only principal a tenant role trusts, and the job types it is passed to (pipeline/definition.json:
# processing and training steps; the register step runs as the pipeline's own role).
TRUSTED_SERVICE: Final = "sagemaker.amazonaws.com"
TRUSTED_JOB_TYPES: Final = ("processing-job", "training-job")
_SAGEMAKER_ARN_PREFIX: Final = re.compile(
    r"^arn:(?P<partition>[a-z-]+):sagemaker:[a-z0-9-]+:(?P<account>\d{12})$"
)


def trust_policy(sagemaker_arn_prefix: str) -> dict[str, Any]:
    """The one trust policy of every tenant role: SageMaker only, on behalf of this account's jobs only.

    ``sagemaker_arn_prefix`` is ``arn:<partition>:sagemaker:<region>:<account>`` (the API function's
    SAGEMAKER_ARN_PREFIX). ``aws:SourceAccount`` and ``aws:SourceArn`` are the keys SageMaker's
    cross-service confused deputy guide names for execution roles of processing and training jobs: SageMaker
    assumes the role for a job of this account, in this region, or not at all.

    IAM has no condition key on a trust policy's content, so this is enforced by code and tests, not by
    permissions: every role is created from ``create_role_request`` (the only CreateRole calls build
    their request with it); an existing role whose trust policy differs is refused, not reused
    (``role_drift``); and nothing in the stack may call iam:UpdateAssumeRolePolicy (tests/template).
    """
    match = _SAGEMAKER_ARN_PREFIX.fullmatch(sagemaker_arn_prefix)
    if match is None:
        raise ValueError(f"not arn:<partition>:sagemaker:<region>:<account>: {sagemaker_arn_prefix!r}")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SageMakerJobsOfThisAccountOnly",
                "Effect": "Allow",
                "Principal": {"Service": TRUSTED_SERVICE},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": match["account"]},
                    "ArnLike": {
                        "aws:SourceArn": [f"{sagemaker_arn_prefix}:{kind}/*" for kind in TRUSTED_JOB_TYPES]
                    },
                },
            }
        ],
    }


def create_role_request(
    tenant_id: str, *, path: str, boundary_arn: str | None, sagemaker_arn_prefix: str
) -> dict[str, Any]:
    """The iam:CreateRole parameters of a tenant's role: the fixed trust policy, the boundary and the one
    tenant tag (the boundary's ABAC key; the API function may tag only at creation, only with this key,
    only with the value its role name carries)."""
    request: dict[str, Any] = {
        "RoleName": role_name(tenant_id),
        "Path": path,
        "AssumeRolePolicyDocument": json.dumps(trust_policy(sagemaker_arn_prefix), sort_keys=True),
        "Description": f"SageMaker jobs of tenant {tenant_id}: its own job data only",
        "Tags": [{"Key": TENANT_TAG, "Value": tenant_id}],
    }
    if boundary_arn:
        request["PermissionsBoundary"] = boundary_arn
    return request


def role_drift(role: dict[str, Any], request: dict[str, Any]) -> list[str]:
    """How an existing role (iam:GetRole's ``Role``) differs from what ``request`` would create: its
    trust policy, path, boundary and tenant tag. Empty when it is the role onboarding creates."""
    drift = []
    trust = role.get("AssumeRolePolicyDocument")
    if isinstance(trust, str):  # IAM returns it URL-encoded JSON; boto3 decodes it to a dict
        trust = json.loads(unquote(trust))
    if trust != json.loads(request["AssumeRolePolicyDocument"]):
        drift.append("its trust policy is not the tenant roles' fixed trust policy")
    if role.get("Path") != request["Path"]:
        drift.append(f"its path is {role.get('Path')!r}, not {request['Path']!r}")
    boundary = (role.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
    if boundary != request.get("PermissionsBoundary"):
        drift.append(f"its permissions boundary is {boundary!r}, not {request.get('PermissionsBoundary')!r}")
    tags = {tag["Key"]: tag["Value"] for tag in role.get("Tags", [])}
    wanted = {tag["Key"]: tag["Value"] for tag in request["Tags"]}
    if {key: tags.get(key) for key in wanted} != wanted:
        drift.append(f"its {TENANT_TAG} tag is {tags.get(TENANT_TAG)!r}, not {wanted[TENANT_TAG]!r}")
    return drift


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
