"""The operator's view of a tenant's jobs (functions/api/operator_jobs.py), on moto's tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.unit import test_api
from tests.unit.test_api import OPERATOR, put_job, tenant

api = test_api.api  # the status API handler on moto's tables (a fixture of test_api)

_Api = Callable[..., tuple[int, Any]]


def _jobs(api: _Api, tenant_id: str, caller: dict[str, str], **query: str) -> tuple[int, Any]:
    return api(
        "GET",
        f"/tenants/{tenant_id}/jobs",
        caller=caller,
        resource="/tenants/{tenantId}/jobs",
        path_parameters={"tenantId": tenant_id},
        query=query or None,
    )


def _job(api: _Api, tenant_id: str, job_id: str, suffix: str = "") -> tuple[int, Any]:
    return api(
        "GET",
        f"/tenants/{tenant_id}/jobs/{job_id}{suffix}",
        caller=OPERATOR,
        resource="/tenants/{tenantId}/jobs/{jobId}" + suffix,
        path_parameters={"tenantId": tenant_id, "jobId": job_id},
    )


def test_an_operator_lists_a_tenants_jobs_newest_first_by_status(
    api: _Api, table: Callable[[str], Any]
) -> None:
    older = put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z")
    newer = put_job(table, 2, "acme", "2024-05-02T00:00:00.000Z", status="FAILED", reasons=["bad"])
    put_job(table, 3, "globex", "2024-05-03T00:00:00.000Z")

    status, body = _jobs(api, "acme", OPERATOR)
    assert status == 200
    assert [item["jobId"] for item in body["items"]] == [newer, older]
    _, failed = _jobs(api, "acme", OPERATOR, status="FAILED")
    assert [item["jobId"] for item in failed["items"]] == [newer]
    _, page = _jobs(api, "acme", OPERATOR, limit="1")
    _, rest = _jobs(api, "acme", OPERATOR, limit="1", nextToken=page["nextToken"])
    assert [item["jobId"] for item in rest["items"]] == [older]
    # A token of one tenant's listing is refused for another's.
    status, problem = _jobs(api, "globex", OPERATOR, limit="1", nextToken=page["nextToken"])
    assert status == 400
    assert problem["message"].startswith("nextToken:")


def test_tenant_keys_are_refused(api: _Api, table: Callable[[str], Any]) -> None:
    put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z")
    status, body = _jobs(api, "acme", tenant("acme"))
    assert status == 403
    assert body["message"] == "this route is for operator credentials"


def test_another_tenants_job_is_a_404_exactly_like_a_missing_one(
    api: _Api, table: Callable[[str], Any]
) -> None:
    job_id = put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z")
    status, body = _job(api, "acme", job_id)
    assert status == 200
    assert body["jobId"] == job_id
    answers = [
        _job(api, "globex", job_id),
        _job(api, "acme", "job-" + "0" * 64),
        _job(api, "acme", "not-a-job-id"),
        _job(api, "globex", job_id, "/execution"),
    ]
    assert {(status, body["message"]) for status, body in answers} == {(404, "no such job")}


def test_a_job_without_an_execution_has_no_path_to_show(api: _Api, table: Callable[[str], Any]) -> None:
    job_id = put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z", executionArn=None)
    status, body = _job(api, "acme", job_id, "/execution")
    assert status == 404
    assert body["message"].startswith("the job has no execution to show")
