"""The API key authorizer, and the tenant role policy evaluated against other tenants' ARNs."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.unit.conftest import LambdaContext

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/GET/jobs"


@pytest.fixture
def authorize(aws: None, load_app: Callable[[str], ModuleType]) -> Callable[[str | None], dict[str, Any]]:
    app = load_app("authorizer")

    def call(header: str | None, method_arn: str = METHOD_ARN) -> dict[str, Any]:
        headers = {"Authorization": header} if header is not None else {}
        result: dict[str, Any] = app.lambda_handler(
            {"type": "REQUEST", "methodArn": method_arn, "headers": headers}, LambdaContext()
        )
        return result

    return call


def _store(
    role: str,
    tenant_id: str | None = None,
    status: str = "ACTIVE",
    *,
    now: str | None = None,
    lifetime: timedelta = timedelta(days=30),
) -> str:
    """Store a key created at ``now`` (default: just now) and return its secret."""
    from controlplane.api import key_store  # noqa: PLC0415
    from controlplane.api.keys import KeyOwner, KeyStatus, Role, issue  # noqa: PLC0415
    from controlplane.core.model import utc_now  # noqa: PLC0415

    owner = KeyOwner(Role(role), tenant_id)
    secret, key = issue(owner, now=now or utc_now(), lifetime=lifetime, created_by="test")
    key_store.create(key.model_copy(update={"status": KeyStatus(status)}))
    return secret


def _allowed(policy: dict[str, Any], arn: str) -> bool:
    return any(
        statement["Effect"] == "Allow" and any(fnmatch.fnmatchcase(arn, r) for r in statement["Resource"])
        for statement in policy["policyDocument"]["Statement"]
    )


def test_a_tenant_key_yields_its_tenant_and_only_the_tenant_routes(
    authorize: Callable[..., Any], put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    key = _store("tenant", "acme")
    result = authorize(f"Bearer {key}")
    assert result["context"] == {"role": "tenant", "tenantId": "acme", "keyId": result["principalId"]}
    assert result["principalId"].startswith("key-")
    prefix = "arn:aws:execute-api:us-east-1:123456789012:abc123/v1"
    assert _allowed(result, f"{prefix}/GET/jobs")
    assert _allowed(result, f"{prefix}/GET/jobs/job-1")
    for route in ("GET/tiers", "PATCH/tiers/basic", "POST/tenants", "GET/tenants", "PATCH/tenants/acme"):
        assert not _allowed(result, f"{prefix}/{route}"), route
    assert key not in str(result)


def test_an_operator_key_may_call_every_route(authorize: Callable[..., Any]) -> None:
    result = authorize(f"Bearer {_store('operator')}")
    assert result["context"] == {"role": "operator", "keyId": result["principalId"]}
    assert _allowed(result, "arn:aws:execute-api:us-east-1:123456789012:abc123/v1/POST/tenants")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Basic dXNlcjpwYXNz", "Bearer mlaas_unknownkey", "Bearer " + "mlaas_" + "x" * 500],
)
def test_missing_malformed_and_unknown_keys_are_unauthorized(
    authorize: Callable[..., Any], header: str | None
) -> None:
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(header)


def test_a_revoked_key_is_unauthorized(
    authorize: Callable[..., Any], put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")  # an active tenant: the key alone is why it is refused
    key = _store("tenant", "acme", status="REVOKED")
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(f"Bearer {key}")


def test_an_expired_key_is_unauthorized(
    authorize: Callable[..., Any], put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    expired = _store("tenant", "acme", now="2024-05-01T00:00:00.000Z", lifetime=timedelta(days=1))
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(f"Bearer {expired}")
    assert authorize(f"Bearer {_store('tenant', 'acme')}")["context"]["tenantId"] == "acme"


@pytest.mark.parametrize("status", ["SUSPENDED", None])
def test_a_suspended_or_offboarded_tenants_key_stops_working_and_works_again_once_resumed(
    authorize: Callable[..., Any],
    put_tenant: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    status: str | None,
) -> None:
    """None: the tenant item is gone (offboarded and deleted) while a key is somehow left."""
    put_tenant("acme")
    key = _store("tenant", "acme")
    assert authorize(f"Bearer {key}")["context"]["tenantId"] == "acme"
    if status is None:
        table("TENANTS_TABLE_NAME").delete_item(Key={"tenantId": "acme"})
    else:
        table("TENANTS_TABLE_NAME").update_item(
            Key={"tenantId": "acme"},
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": status},
        )
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(f"Bearer {key}")
    put_tenant("acme")  # resumed (ACTIVE again): the same key works
    assert authorize(f"Bearer {key}")["context"]["tenantId"] == "acme"


# ------------------------------------------------------------------ the tenant role policy


def _matches(pattern: str, value: str) -> bool:
    # IAM wildcards: * any run of characters (including /), ? one character.
    return fnmatch.fnmatchcase(value, pattern)


def _grants(
    policy: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None
) -> bool:
    """A small IAM evaluator for Allow statements with Action, Resource and StringLike conditions."""
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        if statement["Effect"] != "Allow" or not any(_matches(a, action) for a in actions):
            continue
        if not any(_matches(r, resource) for r in resources):
            continue
        condition = statement.get("Condition", {}).get("StringLike", {})
        if all(
            any(_matches(p, (context or {}).get(key, "")) for p in patterns)
            for key, patterns in condition.items()
        ):
            return True
    return False


BUCKET = "test-artifacts-bucket"


def _own_folders_only(policy: dict[str, Any]) -> None:
    """``policy`` (acme's) grants acme's job folders and denies every look-alike tenant's."""
    own = f"arn:aws:s3:::{BUCKET}/tenants/acme/jobs/job-1"
    assert _grants(policy, "s3:GetObject", f"{own}/input/train.csv")
    assert _grants(policy, "s3:PutObject", f"{own}/model/model.tar.gz")
    assert _grants(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": "tenants/acme/jobs/"})
    for other in ("globex", "acme2", "acm", "acme-retail"):
        theirs = f"arn:aws:s3:::{BUCKET}/tenants/{other}/jobs/job-1"
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            for suffix in ("/input/train.csv", "/model/model.tar.gz", "/model/evaluation/evaluation.json"):
                assert not _grants(policy, action, theirs + suffix), (other, action, suffix)
        assert not _grants(
            policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"tenants/{other}/"}
        )


def test_a_tenant_role_grants_nothing_outside_its_own_prefixes() -> None:
    from controlplane.tenants.access_policy import tenant_role_policy  # noqa: PLC0415

    policy = tenant_role_policy("acme", BUCKET)
    _own_folders_only(policy)
    # Raw uploads (its own too), the bucket root and other buckets are out of reach.
    for resource in (
        "arn:aws:s3:::test-uploads-bucket/tenants/acme/uploads/x.csv",
        f"arn:aws:s3:::{BUCKET}/tenants/acme/uploads/x.csv",
        f"arn:aws:s3:::{BUCKET}/pipeline-code-evil/x",
        "arn:aws:s3:::another-bucket/tenants/acme/jobs/job-1/input/x.csv",
    ):
        for action in ("s3:GetObject", "s3:PutObject"):
            assert not _grants(policy, action, resource), (action, resource)
    assert not _grants(policy, "s3:PutObject", f"arn:aws:s3:::{BUCKET}/pipeline-code/steps/train.py")
    assert not _grants(policy, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""})
    # Nothing but S3 and job logs.
    actions = {a for s in policy["Statement"] for a in s["Action"]}
    assert {a.split(":")[0] for a in actions} == {"s3", "logs"}


# ------------------------------------------------------------------ the boundary, by the role's tenant tag

_ROOT = Path(__file__).resolve().parents[2]
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


def _boundary(tag: str | None) -> dict[str, Any]:
    """TenantRoleBoundary as IAM evaluates it for a role tagged mlaas:tenant=``tag`` (None: untagged).

    Intrinsics are resolved for the test bucket; ${aws:PrincipalTag/mlaas:tenant} is replaced by the tag,
    and a value that names it on an untagged role is dropped (IAM: an unresolved variable matches nothing).
    """
    from cfnlint.decode import decode  # noqa: PLC0415

    from controlplane.tenants.access_policy import TENANT_TAG  # noqa: PLC0415

    template, problems = decode(str(_ROOT / "template.yaml"))
    assert not problems
    assert template is not None
    references = {
        "ArtifactsBucket.Arn": f"arn:aws:s3:::{BUCKET}",
        "AWS::Partition": "aws",
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
    }

    def sub(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            return "${" + name[1:] + "}" if name.startswith("!") else references[name]

        return _VARIABLE.sub(one, text)

    def resolve(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
            return resolve(sub(value["Fn::Sub"]))
        if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
            return references[".".join(value["Fn::GetAtt"])]
        if isinstance(value, dict):
            return {key: resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [item for item in (resolve(item) for item in value) if item is not None]
        principal_tag = "${aws:PrincipalTag/" + TENANT_TAG + "}"
        if isinstance(value, str) and principal_tag in value:
            return None if tag is None else value.replace(principal_tag, tag)
        return value

    document = template["Resources"]["TenantRoleBoundary"]["Properties"]["PolicyDocument"]
    statements = [resolve(statement) for statement in document["Statement"]]
    for statement in statements:  # a lone string value that named the variable is gone: the statement too
        if statement.get("Resource") is None:
            statement["Resource"] = []
        statement["Resource"] = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
    return {"Version": document["Version"], "Statement": statements}


def test_the_boundary_alone_confines_a_tenant_role_to_its_own_tenants_prefixes() -> None:
    from controlplane.tenants.access_policy import tenant_role_policy  # noqa: PLC0415

    boundary = _boundary("acme")
    _own_folders_only(boundary)
    assert _grants(boundary, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/pipeline-code/preprocess.py")
    assert not _grants(boundary, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": ""})
    assert not _grants(boundary, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/tenants/acme/uploads/x.csv")
    # Everything the role's own policy grants on its own folders, the boundary grants too (the effective
    # permission is both): a build is not starved by its boundary.
    policy = tenant_role_policy("acme", BUCKET)
    for statement in policy["Statement"]:
        for action in statement["Action"]:
            for resource in statement["Resource"]:
                example = resource.replace(":*:*:", ":us-east-1:123456789012:").replace("*", "x")
                context = {"s3:prefix": "tenants/acme/jobs/"} if action == "s3:ListBucket" else None
                assert _grants(boundary, action, example, context), (action, example)


def test_an_untagged_role_gets_nothing_under_tenants_from_the_boundary() -> None:
    boundary = _boundary(None)
    for tenant in ("acme", "globex", "*"):
        resource = f"arn:aws:s3:::{BUCKET}/tenants/{tenant}/jobs/job-1/input/train.csv"
        assert not _grants(boundary, "s3:GetObject", resource)
        assert not _grants(
            boundary, "s3:ListBucket", f"arn:aws:s3:::{BUCKET}", {"s3:prefix": f"tenants/{tenant}/"}
        )
    assert _grants(boundary, "s3:GetObject", f"arn:aws:s3:::{BUCKET}/pipeline-code/preprocess.py")


def test_the_onboarding_helper_uses_the_layers_policy() -> None:
    from controlplane.tenants.access_policy import tenant_role_policy  # noqa: PLC0415
    from scripts import tenants  # noqa: PLC0415

    assert tenants.tenant_role_policy("acme", "up", BUCKET) == tenant_role_policy("acme", BUCKET)


def test_each_caller_is_counted_against_its_own_usage_key(
    authorize: Callable[..., Any], put_tenant: Callable[..., dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """API Gateway throttles by the usage key the authorizer names (ApiKeySourceType AUTHORIZER): a
    tenant's own, an operator's the operators' shared one, and none for a tenant without one (a 403)."""
    from controlplane.settings import get_api_settings  # noqa: PLC0415

    put_tenant("acme", usageKeyId="k1", usageKey="acme-usage-identifier-0001")
    put_tenant("globex", usageKeyId="k2", usageKey="globex-usage-identifier-02")
    put_tenant("initech")
    assert (
        authorize(f"Bearer {_store('tenant', 'acme')}")["usageIdentifierKey"] == "acme-usage-identifier-0001"
    )
    assert (
        authorize(f"Bearer {_store('tenant', 'globex')}")["usageIdentifierKey"]
        == "globex-usage-identifier-02"
    )
    assert "usageIdentifierKey" not in authorize(f"Bearer {_store('tenant', 'initech')}")
    monkeypatch.setenv("OPERATOR_USAGE_KEY", "stack-operators-usage-identifier")
    get_api_settings.cache_clear()
    try:
        result = authorize(f"Bearer {_store('operator')}")
    finally:
        monkeypatch.delenv("OPERATOR_USAGE_KEY")
        get_api_settings.cache_clear()
    assert result["usageIdentifierKey"] == "stack-operators-usage-identifier"
