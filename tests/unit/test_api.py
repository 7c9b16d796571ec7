"""The status API (functions/api): every route, happy and error paths, and tenant isolation.

Events are API Gateway REST proxy events as the REQUEST authorizer leaves them: the caller's role and
tenant id are in requestContext.authorizer, never in the request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from tests.unit.conftest import ACCOUNT, ENVIRONMENT, LambdaContext, aws_client, job_id_for, queued_job

OPERATOR = {"role": "operator"}


def refused_fields(body: dict[str, Any]) -> set[str]:
    """Where and what a 422 refused (locations and field names), after checking its shape."""
    from controlplane.api.problems import ValidationProblem  # noqa: PLC0415 - see conftest.pytest_configure

    ValidationProblem.model_validate(body)  # the shape docs/openapi.json documents
    assert body["statusCode"] == 422
    assert body["message"].startswith("Invalid request: ")
    assert all(error["message"] for error in body["errors"])
    return {part for error in body["errors"] for part in (error["location"], *error["field"].split("."))}


def tenant(tenant_id: str) -> dict[str, str]:
    return {"role": "tenant", "tenantId": tenant_id}


@pytest.fixture
def api(aws: None, load_app: Callable[[str], ModuleType]) -> Callable[..., tuple[int, Any]]:
    aws_client("iam").create_policy(
        PolicyName="MLaaS-Test-tenant-role-boundary",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}],
            }
        ),
    )
    app = load_app("api")

    def call(
        method: str,
        path: str,
        *,
        caller: dict[str, str],
        query: dict[str, str] | None = None,
        body: Any = None,
        resource: str | None = None,
        path_parameters: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        event = {
            "resource": resource or path,
            "path": path,
            "httpMethod": method,
            "headers": {"Content-Type": "application/json"},
            "multiValueHeaders": {},
            "queryStringParameters": query,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} if query else None,
            "pathParameters": path_parameters,
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": "abc123",
                "httpMethod": method,
                "path": f"/v1{path}",
                "requestId": "r-1",
                "resourcePath": resource or path,
                "stage": "v1",
                "identity": {"sourceIp": "127.0.0.1"},
                "authorizer": dict(caller) | {"principalId": "p"},
            },
            "body": json.dumps(body) if body is not None else None,
            "isBase64Encoded": False,
        }
        response = app.lambda_handler(event, LambdaContext())
        return response["statusCode"], json.loads(response["body"]) if response.get("body") else None

    return call


def put_job(table: Callable[[str], Any], number: int, tenant_id: str, created_at: str, **extra: Any) -> str:
    job_id = job_id_for(number)
    item = {
        "jobId": job_id,
        "tenantId": tenant_id,
        "tier": "basic",
        "status": "SUCCEEDED",
        "createdAt": created_at,
        "key": f"tenants/{tenant_id}/uploads/{number}.csv",
        "reasons": [],
        "timeline": [{"status": "RECEIVED", "at": created_at, "state": "Register the upload as a job"}],
        "executionArn": f"arn:aws:states:us-east-1:{ACCOUNT}:execution:x:{job_id}",
    } | extra
    table("JOBS_TABLE_NAME").put_item(Item=item)
    return job_id


def get_job(api: Callable[..., tuple[int, Any]], job_id: str, caller: dict[str, str]) -> tuple[int, Any]:
    return api(
        "GET", f"/jobs/{job_id}", caller=caller, resource="/jobs/{jobId}", path_parameters={"jobId": job_id}
    )


# ------------------------------------------------------------------ GET /jobs


def test_my_jobs_newest_first_only_mine(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    older = put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z")
    newer = put_job(table, 2, "acme", "2024-05-02T00:00:00.000Z", status="FAILED", reasons=["bad"])
    put_job(table, 3, "globex", "2024-05-03T00:00:00.000Z")
    status, body = api("GET", "/jobs", caller=tenant("acme"))
    assert status == 200
    assert [job["jobId"] for job in body["items"]] == [newer, older]
    assert body["items"][0]["reasons"] == ["bad"]
    assert body["nextToken"] is None
    status, body = api("GET", "/jobs", caller=tenant("globex"))
    assert [job["jobId"] for job in body["items"]] == [job_id_for(3)]


def test_my_jobs_filter_by_status_and_time_range(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    for day in range(1, 6):
        put_job(
            table, day, "acme", f"2024-05-0{day}T00:00:00.000Z", status="FAILED" if day % 2 else "SUCCEEDED"
        )
    _, body = api("GET", "/jobs", caller=tenant("acme"), query={"status": "FAILED"})
    assert [job["jobId"] for job in body["items"]] == [job_id_for(5), job_id_for(3), job_id_for(1)]
    _, body = api(
        "GET",
        "/jobs",
        caller=tenant("acme"),
        query={"createdAfter": "2024-05-02T00:00:00.000Z", "createdBefore": "2024-05-04T00:00:00.000Z"},
    )
    assert [job["jobId"] for job in body["items"]] == [job_id_for(4), job_id_for(3), job_id_for(2)]


def test_my_jobs_paginate_with_an_opaque_token(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    for day in range(1, 6):
        put_job(table, day, "acme", f"2024-05-0{day}T00:00:00.000Z")
    seen: list[str] = []
    query: dict[str, str] = {"limit": "2"}
    for _ in range(5):
        status, body = api("GET", "/jobs", caller=tenant("acme"), query=query)
        assert status == 200
        seen += [job["jobId"] for job in body["items"]]
        if not body["nextToken"]:
            break
        assert "acme" not in body["nextToken"]  # opaque, not a readable key
        query = {"limit": "2", "nextToken": body["nextToken"]}
    assert seen == [job_id_for(n) for n in (5, 4, 3, 2, 1)]


def test_another_tenants_page_token_is_refused(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    for day in range(1, 4):
        put_job(table, day, "acme", f"2024-05-0{day}T00:00:00.000Z")
    _, body = api("GET", "/jobs", caller=tenant("acme"), query={"limit": "1"})
    status, refused = api("GET", "/jobs", caller=tenant("globex"), query={"nextToken": body["nextToken"]})
    assert status == 400
    assert "nextToken" in refused["message"]
    status, refused = api("GET", "/jobs", caller=tenant("acme"), query={"nextToken": "not-a-token!"})
    assert status == 400


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "101"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"status": "DONE"}, "status"),
        ({"createdAfter": "yesterday"}, "createdAfter"),
    ],
)
def test_invalid_job_queries_are_422_naming_the_field(
    api: Callable[..., tuple[int, Any]], query: dict[str, str], field: str
) -> None:
    status, body = api("GET", "/jobs", caller=tenant("acme"), query=query)
    assert status == 422
    assert field in refused_fields(body)


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ({"status": "DONE"}, "status (query) must be one of 'RECEIVED', 'VALIDATED'"),
        ({"limit": "101"}, "limit (query) must be at most 100"),
        ({"limit": "0"}, "limit (query) must be at least 1"),
        ({"limit": "many"}, "limit (query) must be a whole number"),
        ({"createdAfter": "yesterday"}, "createdAfter (query) must be an ISO 8601 UTC time such as"),
    ],
)
def test_a_422_says_what_each_field_allows(
    api: Callable[..., tuple[int, Any]], query: dict[str, str], says: str
) -> None:
    status, body = api("GET", "/jobs", caller=tenant("acme"), query=query)
    assert status == 422
    assert says in body["message"], body
    (error,) = body["errors"]
    assert f"{error['field']} ({error['location']}) {error['message']}" in body["message"]
    assert "input" not in json.dumps(body)  # nothing of pydantic's own text or the input itself


def test_a_422_names_a_misspelt_body_field_and_a_missing_one(api: Callable[..., tuple[int, Any]]) -> None:
    status, body = api(
        "POST",
        "/tenants",
        caller=OPERATOR,
        body={k: v for k, v in NEW_TENANT.items() if k != "tier"} | {"teir": "basic"},
    )
    assert status == 422
    messages = {(e["location"], e["field"]): e["message"] for e in body["errors"]}
    assert messages[("body", "teir")] == "is not a field of this request (check its spelling)"
    assert messages[("body", "tier")] == "is required"


def test_a_reversed_time_range_is_400(api: Callable[..., tuple[int, Any]]) -> None:
    status, body = api(
        "GET",
        "/jobs",
        caller=tenant("acme"),
        query={"createdAfter": "2024-05-04T00:00:00.000Z", "createdBefore": "2024-05-01T00:00:00.000Z"},
    )
    assert status == 400
    assert "createdAfter" in body["message"]


# ------------------------------------------------------------------ GET /jobs/{jobId}


def test_my_job_in_detail(api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]) -> None:
    job_id = put_job(
        table,
        7,
        "acme",
        "2024-05-01T00:00:00.000Z",
        stats={"rows": 120, "columns": 4},
        pipelineExecutionArn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e",
    )
    status, body = get_job(api, job_id, tenant("acme"))
    assert status == 200
    assert body["jobId"] == job_id
    assert body["status"] == "SUCCEEDED"
    assert body["stats"] == {"rows": 120, "columns": 4}
    assert body["timeline"][0]["state"] == "Register the upload as a job"
    assert body["executionArn"].endswith(job_id)
    assert body["pipelineExecutionArn"].endswith("/execution/e")
    assert "tenantId" not in body


def test_another_tenants_job_is_exactly_a_missing_job(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    job_id = put_job(table, 8, "acme", "2024-05-01T00:00:00.000Z")
    other = get_job(api, job_id, tenant("globex"))
    missing = get_job(api, job_id_for(999), tenant("globex"))
    malformed = get_job(api, "not-a-job-id", tenant("globex"))
    assert other == missing == malformed
    assert other[0] == 404


# ------------------------------------------------------------------ roles


TENANT_ROUTES = [("GET", "/jobs", None, None), ("GET", "/jobs/job-1", "/jobs/{jobId}", {"jobId": "job-1"})]
OPERATOR_ROUTES = [
    ("GET", "/tiers", None, None, None),
    ("PATCH", "/tiers/basic", "/tiers/{tier}", {"tier": "basic"}, {"concurrencyLimit": 3}),
    ("PATCH", "/account", None, None, {"accountCap": 99}),
    (
        "POST",
        "/tenants",
        None,
        None,
        {
            "tenantId": "evil",
            "tier": "basic",
            "metricThreshold": 0.5,
            "contract": {"targetColumn": "y", "problemType": "regression", "minRows": 3},
        },
    ),
    ("GET", "/tenants", None, None, None),
    ("GET", "/tenants/acme", "/tenants/{tenantId}", {"tenantId": "acme"}, None),
    ("PATCH", "/tenants/acme", "/tenants/{tenantId}", {"tenantId": "acme"}, {"status": "SUSPENDED"}),
]


@pytest.mark.parametrize(("method", "path", "resource", "parameters", "body"), OPERATOR_ROUTES)
def test_operator_routes_refuse_tenant_credentials(
    api: Callable[..., tuple[int, Any]],
    put_tenant: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    method: str,
    path: str,
    resource: str | None,
    parameters: dict[str, str] | None,
    body: Any,
) -> None:
    put_tenant("acme")
    before = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "acme"})["Item"]
    status, answer = api(
        method, path, caller=tenant("acme"), resource=resource, path_parameters=parameters, body=body
    )
    assert status == 403
    assert "operator" in answer["message"]
    assert table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "acme"})["Item"] == before
    assert "Item" not in table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "evil"})


@pytest.mark.parametrize(("method", "path", "resource", "parameters"), TENANT_ROUTES)
def test_tenant_routes_need_a_tenant_from_the_authorizer(
    api: Callable[..., tuple[int, Any]],
    method: str,
    path: str,
    resource: str | None,
    parameters: dict[str, str] | None,
) -> None:
    for caller in (OPERATOR, {"role": "tenant"}, {}):
        status, _ = api(method, path, caller=caller, resource=resource, path_parameters=parameters)
        assert status == 403


def test_a_tenant_id_in_the_request_is_ignored(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z")
    status, body = api("GET", "/jobs", caller=tenant("globex"), query={"tenantId": "acme"})
    assert status == 200
    assert body["items"] == []


# ------------------------------------------------------------------ tiers


def test_tiers_show_limit_running_and_queued(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    queued_job(table, job_id_for(1), tier="standard")
    queued_job(table, job_id_for(2), tier="standard")
    status, body = api("GET", "/tiers", caller=OPERATOR)
    assert status == 200
    tiers = {item["tier"]: item for item in body["items"]}
    assert set(tiers) == {"basic", "standard", "premium"}
    assert tiers["standard"]["queued"] == 2
    assert tiers["basic"]["queued"] == 0
    assert (tiers["basic"]["concurrencyLimit"], tiers["basic"]["running"]) == (2, 0)


def test_patch_tier_changes_tunables(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    status, body = api(
        "PATCH",
        "/tiers/basic",
        caller=OPERATOR,
        resource="/tiers/{tier}",
        path_parameters={"tier": "basic"},
        body={"concurrencyLimit": 4, "borrowingLimit": 0, "useSpotInstances": False},
    )
    assert status == 200
    assert (body["concurrencyLimit"], body["borrowingLimit"], body["useSpotInstances"]) == (4, 0, False)
    item = table("TIERS_TABLE_NAME").get_item(Key={"tier": "basic"})["Item"]
    assert (item["concurrencyLimit"], item["borrowingLimit"], item["running"]) == (4, 0, 0)


def test_a_tier_may_take_datasets_of_50_gib_and_more(api: Callable[..., tuple[int, Any]]) -> None:
    """Validated in ranges and copied in parts, a dataset is no longer bounded by one CopyObject (5 GiB)."""
    status, body = api(
        "PATCH",
        "/tiers/premium",
        caller=OPERATOR,
        resource="/tiers/{tier}",
        path_parameters={"tier": "premium"},
        body={"maxDatasetBytes": 200 * 1024**3},
    )
    assert (status, body["maxDatasetBytes"]) == (200, 200 * 1024**3)


def test_guarantees_never_exceed_the_account_cap(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    raise_basic = {"resource": "/tiers/{tier}", "path_parameters": {"tier": "basic"}}
    status, body = api("PATCH", "/tiers/basic", caller=OPERATOR, body={"concurrencyLimit": 5}, **raise_basic)
    assert status == 409
    assert "would add up to 17, above the account cap of 16" in body["message"]
    assert table("TIERS_TABLE_NAME").get_item(Key={"tier": "basic"})["Item"]["concurrencyLimit"] == 2

    status, body = api("PATCH", "/account", caller=OPERATOR, resource="/account", body={"accountCap": 13})
    assert status == 409
    assert "would add up to 14, above the account cap of 13" in body["message"]

    status, body = api("PATCH", "/account", caller=OPERATOR, resource="/account", body={"accountCap": 17})
    assert (status, body) == (200, {"accountCap": 17, "running": 0, "guaranteed": 14})
    status, body = api("PATCH", "/tiers/basic", caller=OPERATOR, body={"concurrencyLimit": 5}, **raise_basic)
    assert status == 200
    status, body = api("GET", "/tiers", caller=OPERATOR, resource="/tiers")
    assert body["account"] == {"accountCap": 17, "running": 0, "guaranteed": 17}
    assert [(tier["tier"], tier["borrowingLimit"]) for tier in body["items"]] == [
        ("basic", 2),
        ("standard", 4),
        ("premium", 4),
    ]


def test_an_invalid_account_cap_names_the_field(api: Callable[..., tuple[int, Any]]) -> None:
    status, body = api("PATCH", "/account", caller=OPERATOR, resource="/account", body={"accountCap": 0})
    assert status == 422
    assert "accountCap" in json.dumps(body)


@pytest.mark.parametrize(
    ("tier", "body", "field"),
    [
        ("basic", {"concurrencyLimit": -1}, "concurrencyLimit"),
        ("basic", {"concurrencyLimit": 2, "running": 0}, "running"),
        ("basic", {"trainingInstanceType": "m5.large"}, "trainingInstanceType"),
        ("premium", {"maxDatasetBytes": 5 * 1024**4 + 1}, "maxDatasetBytes"),  # above S3's largest object
        ("basic", {}, "body"),
        ("gold", {"concurrencyLimit": 1}, "tier"),
    ],
)
def test_invalid_tier_changes_are_422_naming_the_field(
    api: Callable[..., tuple[int, Any]], tier: str, body: dict[str, Any], field: str
) -> None:
    status, answer = api(
        "PATCH",
        f"/tiers/{tier}",
        caller=OPERATOR,
        resource="/tiers/{tier}",
        path_parameters={"tier": tier},
        body=body,
    )
    assert status == 422
    assert field in refused_fields(answer), answer


# ------------------------------------------------------------------ tenants


NEW_TENANT = {
    "tenantId": "initech",
    "tier": "standard",
    "metricThreshold": 0.7,
    "contract": {"targetColumn": "churned", "problemType": "binary_classification", "minRows": 10},
}


def test_onboarding_creates_role_group_record_and_a_hashed_key(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    from controlplane.api.keys import hash_key  # noqa: PLC0415

    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)
    assert status == 201, body
    key = body["apiKey"]
    assert key.startswith("mlaas_")
    assert len(key) >= 40
    assert body["tenant"]["tenantId"] == "initech"
    assert body["tenant"]["status"] == "ACTIVE"
    role = aws_client("iam").get_role(RoleName="mlaas-tenant-initech")["Role"]
    assert role["Path"] == "/mlaas-tenants/"
    assert role["PermissionsBoundary"]["PermissionsBoundaryArn"] == ENVIRONMENT["TENANT_ROLE_BOUNDARY_ARN"]
    assert body["tenant"]["roleArn"] == role["Arn"]
    policy = aws_client("iam").get_role_policy(RoleName="mlaas-tenant-initech", PolicyName="own-data-only")
    assert "tenants/initech/jobs/" in json.dumps(policy["PolicyDocument"])
    groups = aws_client("sagemaker").list_model_package_groups()["ModelPackageGroupSummaryList"]
    assert "initech-models" in [group["ModelPackageGroupName"] for group in groups]
    stored = table("API_KEYS_TABLE_NAME").get_item(Key={"keyHash": hash_key(key)})["Item"]
    assert (stored["role"], stored["tenantId"], stored["status"]) == ("tenant", "initech", "ACTIVE")
    assert key not in json.dumps(stored, default=str)
    tenant_item = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "initech"})["Item"]
    assert tenant_item["contract"]["targetColumn"] == "churned"


def test_onboarding_an_existing_tenant_is_409(
    api: Callable[..., tuple[int, Any]], put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("initech")
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)
    assert status == 409
    assert "initech" in body["message"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"tenantId": "Initech"}, "tenantId"),
        ({"tenantId": "a" * 41}, "tenantId"),
        ({"tenantId": "ends-with-"}, "tenantId"),
        ({"tier": "gold"}, "tier"),
        ({"metricThreshold": "high"}, "metricThreshold"),
        ({"contract": {"targetColumn": "y", "problemType": "ranking", "minRows": 3}}, "problemType"),
        ({"contract": {"targetColumn": "y", "problemType": "regression", "minRows": 0}}, "minRows"),
        ({"roleArn": "arn:aws:iam::123456789012:role/admin"}, "roleArn"),
    ],
)
def test_invalid_onboarding_is_422_naming_the_field(
    api: Callable[..., tuple[int, Any]], change: dict[str, Any], field: str
) -> None:
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT | change)
    assert status == 422
    assert field in refused_fields(body), body


def test_a_reserved_tenant_id_cannot_be_onboarded(api: Callable[..., tuple[int, Any]]) -> None:
    """Uploads whose key names no tenant become jobs of "unknown": a tenant with that id would see them."""
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT | {"tenantId": "unknown"})
    assert status == 422
    assert "tenantId" in refused_fields(body)
    assert "tenantId (body) 'unknown' is reserved: the control plane records uploads" in body["message"]


def test_tenants_list_paginates_and_one_tenant_reads(api: Callable[..., tuple[int, Any]]) -> None:
    for name in ("a1", "b2", "c3"):
        assert api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT | {"tenantId": name})[0] == 201
    status, body = api("GET", "/tenants", caller=OPERATOR, query={"limit": "2"})
    assert status == 200
    assert [t["tenantId"] for t in body["items"]] == ["a1", "b2"]
    _, rest = api("GET", "/tenants", caller=OPERATOR, query={"limit": "2", "nextToken": body["nextToken"]})
    assert [t["tenantId"] for t in rest["items"]] == ["c3"]
    status, one = api(
        "GET",
        "/tenants/b2",
        caller=OPERATOR,
        resource="/tenants/{tenantId}",
        path_parameters={"tenantId": "b2"},
    )
    assert (status, one["tenantId"]) == (200, "b2")
    status, _ = api(
        "GET",
        "/tenants/zz",
        caller=OPERATOR,
        resource="/tenants/{tenantId}",
        path_parameters={"tenantId": "zz"},
    )
    assert status == 404


def test_patch_tenant_changes_tier_suspends_and_resumes(
    api: Callable[..., tuple[int, Any]],
    put_tenant: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
) -> None:
    put_tenant("acme")

    def patch(body: Any, tenant_id: str = "acme") -> tuple[int, Any]:
        return api(
            "PATCH",
            f"/tenants/{tenant_id}",
            caller=OPERATOR,
            resource="/tenants/{tenantId}",
            path_parameters={"tenantId": tenant_id},
            body=body,
        )

    assert patch({"tier": "premium"})[1]["tier"] == "premium"
    assert patch({"status": "SUSPENDED"})[1]["status"] == "SUSPENDED"
    assert table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "acme"})["Item"]["status"] == "SUSPENDED"
    assert patch({"status": "ACTIVE"})[1]["status"] == "ACTIVE"
    assert patch({"status": "ACTIVE"}, "nobody")[0] == 404
    status, body = patch({"status": "DELETED"})
    assert status == 422
    assert "status" in refused_fields(body)
    status, body = patch({"roleArn": "arn:aws:iam::123456789012:role/admin"})
    assert status == 422


def _plans_of_usage_key(name: str) -> tuple[dict[str, Any], list[str]]:
    """The usage key called ``name`` (with its value) and the tiers whose usage plans hold it."""
    apigateway = aws_client("apigateway")
    (key,) = [k for k in apigateway.get_api_keys(includeValues=True)["items"] if k["name"] == name]
    plans = json.loads(os.environ["USAGE_PLAN_IDS"])
    tiers = [
        tier
        for tier, plan_id in sorted(plans.items())
        if any(k["id"] == key["id"] for k in apigateway.get_usage_plan_keys(usagePlanId=plan_id)["items"])
    ]
    return key, tiers


def test_onboarding_gives_each_tenant_a_usage_key_of_its_own_in_its_tiers_plan(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)
    assert status == 201, body
    key, tiers = _plans_of_usage_key("mlaas-tenant-initech")
    assert tiers == ["standard"]
    stored = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "initech"})["Item"]
    assert (stored["usageKeyId"], stored["usageKey"]) == (key["id"], key["value"])
    # The usage key is API Gateway's to count with, nobody's to see.
    assert key["value"] not in json.dumps(body)
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT | {"tenantId": "globex"})
    assert status == 201, body
    other, _ = _plans_of_usage_key("mlaas-tenant-globex")
    assert other["id"] != key["id"]


def test_a_retried_onboarding_reuses_the_usage_key_it_created(api: Callable[..., tuple[int, Any]]) -> None:
    from controlplane.api import usage_store  # noqa: PLC0415

    first = usage_store.ensure_tenant_usage_key("initech", "standard")  # a failed attempt got this far
    status, body = api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)
    assert status == 201, body
    key, tiers = _plans_of_usage_key("mlaas-tenant-initech")
    assert (key["id"], tiers) == (first.key_id, ["standard"])


def test_a_tier_change_moves_the_usage_key_to_the_new_tiers_plan_only(
    api: Callable[..., tuple[int, Any]], put_tenant: Callable[..., dict[str, Any]]
) -> None:
    assert api("POST", "/tenants", caller=OPERATOR, body=NEW_TENANT)[0] == 201

    def patch(body: Any, tenant_id: str) -> tuple[int, Any]:
        path = f"/tenants/{tenant_id}"
        parameters = {"tenantId": tenant_id}
        return api(
            "PATCH",
            path,
            caller=OPERATOR,
            resource="/tenants/{tenantId}",
            path_parameters=parameters,
            body=body,
        )

    for tier in ("premium", "basic", "basic"):
        assert patch({"tier": tier}, "initech")[0] == 200
        assert _plans_of_usage_key("mlaas-tenant-initech")[1] == [tier]
    # A tenant from before usage plans has none (its calls get 403): a tier change gives it one.
    put_tenant("acme")
    status, body = patch({"tier": "standard"}, "acme")
    assert status == 200, body
    assert _plans_of_usage_key("mlaas-tenant-acme")[1] == ["standard"]
    assert "usageKey" not in body
