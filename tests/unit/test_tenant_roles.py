"""Tenant roles get one fixed trust policy (SageMaker, this account's jobs), and nothing else can.

IAM has no condition key on a trust policy's content, so this is the code's guarantee, held here: the
document itself, the only CreateRole calls (built by ``create_role_request``), the refusal of a role
that exists with another trust policy, boundary or tag, and no call that could change it afterwards (the
template side, that no statement may, is tests/template/test_template.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit import test_api
from tests.unit.conftest import ACCOUNT, ENVIRONMENT, REGION, aws_client
from tests.unit.test_api import NEW_TENANT, OPERATOR

ROOT = Path(__file__).resolve().parents[2]
PREFIX = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
api = test_api.api  # the status API fixture


def test_the_trust_policy_is_sagemaker_for_this_accounts_jobs_only() -> None:
    from controlplane.tenants.access_policy import trust_policy  # noqa: PLC0415

    assert trust_policy(PREFIX) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SageMakerJobsOfThisAccountOnly",
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
                "Condition": {
                    "StringEquals": {"aws:SourceAccount": ACCOUNT},
                    "ArnLike": {
                        "aws:SourceArn": [
                            f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:processing-job/*",
                            f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/*",
                        ]
                    },
                },
            }
        ],
    }
    for malformed in ("", "arn:aws:sagemaker:us-east-1:12345", f"arn:aws:iam::{ACCOUNT}", f"{PREFIX}:*"):
        with pytest.raises(ValueError, match="not arn"):
            trust_policy(malformed)


def test_onboarding_creates_the_role_with_the_fixed_trust_policy_and_its_tenant_tag(
    api: Callable[..., tuple[int, Any]],
) -> None:
    from controlplane.tenants.access_policy import trust_policy  # noqa: PLC0415

    assert ENVIRONMENT["SAGEMAKER_ARN_PREFIX"] == PREFIX
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)
    assert status == 201, body
    role = aws_client("iam").get_role(RoleName="mlaas-tenant-initech")["Role"]
    assert role["AssumeRolePolicyDocument"] == trust_policy(PREFIX)
    assert role["Tags"] == [{"Key": "mlaas:tenant", "Value": "initech"}]


WIDER_TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::210987654321:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"AssumeRolePolicyDocument": json.dumps(WIDER_TRUST)}, "trust policy"),
        ({"Tags": [{"Key": "mlaas:tenant", "Value": "globex"}]}, "mlaas:tenant tag"),
        ({"PermissionsBoundary": None}, "permissions boundary"),
    ],
)
def test_a_role_that_exists_but_is_not_the_one_onboarding_creates_is_refused_not_reused(
    api: Callable[..., tuple[int, Any]], change: dict[str, Any], named: str
) -> None:
    """A retried onboarding reuses its own role; any other role under the name is a 409 and is left as it
    is (the API function could not fix it: it may not change a trust policy, a boundary or a tag)."""
    from controlplane.tenants.access_policy import create_role_request  # noqa: PLC0415

    request = create_role_request(
        "initech",
        path="/mlaas-tenants/",
        boundary_arn=ENVIRONMENT["TENANT_ROLE_BOUNDARY_ARN"],
        sagemaker_arn_prefix=PREFIX,
    )
    request.update(change)
    aws_client("iam").create_role(**{k: v for k, v in request.items() if v is not None})
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)
    assert status == 409, body
    assert "mlaas-tenant-initech" in body["message"]
    assert named in body["message"]
    iam = aws_client("iam")
    assert iam.list_role_policies(RoleName="mlaas-tenant-initech")["PolicyNames"] == []


def test_a_retried_onboarding_reuses_the_role_it_created(aws: None) -> None:
    from controlplane.tenants import identity_store  # noqa: PLC0415
    from controlplane.tenants.access_policy import tenant_role_policy  # noqa: PLC0415

    arguments = {
        "path": "/mlaas-tenants/",
        "boundary_arn": ENVIRONMENT["TENANT_ROLE_BOUNDARY_ARN"],
        "sagemaker_arn_prefix": PREFIX,
        "policy": tenant_role_policy("initech", ENVIRONMENT["ARTIFACTS_BUCKET_NAME"]),
    }
    first = identity_store.ensure_tenant_role("initech", **arguments)
    assert identity_store.ensure_tenant_role("initech", **arguments) == first


_CODE = ("layers", "functions", "scripts", "bench", "pipeline")


def _sources() -> dict[Path, str]:
    return {path: path.read_text() for top in _CODE for path in sorted((ROOT / top).rglob("*.py"))}


def test_every_role_the_code_creates_is_built_by_create_role_request() -> None:
    """The trust policy guard in code: every create_role call passes create_role_request's parameters."""
    calls = {
        path.relative_to(ROOT).as_posix(): text[match.end() :].lstrip()[:60]
        for path, text in _sources().items()
        for match in re.finditer(r"\.create_role\(", text)
    }
    assert set(calls) == {"layers/shared/controlplane/tenants/identity_store.py", "scripts/tenants.py"}, calls
    for path, argument in calls.items():
        assert re.match(r"\*\*(tenant_access\.create_role_request\(|request\))", argument), (path, argument)
    store = (ROOT / "layers/shared/controlplane/tenants/identity_store.py").read_text()
    assert "request = tenant_access.create_role_request(" in store
    assert "AssumeRolePolicyDocument" not in store
    assert "AssumeRolePolicyDocument" not in (ROOT / "scripts/tenants.py").read_text()


def test_no_code_changes_a_roles_trust_policy_boundary_or_tags() -> None:
    changing = re.compile(
        r"\.(update_assume_role_policy|put_role_permissions_boundary|delete_role_permissions_boundary|"
        r"tag_role|untag_role|attach_role_policy)\("
    )
    found = [
        (path.relative_to(ROOT).as_posix(), match.group(1))
        for path, text in _sources().items()
        for match in changing.finditer(text)
    ]
    assert found == []
