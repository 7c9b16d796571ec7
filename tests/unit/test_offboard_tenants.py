"""The offboarding sweep (functions/offboard_tenants): offboarded tenants whose grace period is over are found
through the sparse offboarding-due index (a Query, never a Scan) and deleted; tenants not due are untouched;
one tenant's failure neither stops the others nor goes unreported."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from conftest import LambdaContext, aws_client
from pydantic import ValidationError

from tests.unit import test_api
from tests.unit.test_api import put_job
from tests.unit.test_offboarding import BUCKETS, model_package_deletion, onboard, versions

api = test_api.api  # the status API fixture
_ = model_package_deletion  # autouse here too (moto lacks DeleteModelPackage(Group))
pytestmark = pytest.mark.usefixtures("aws", "stepfunctions")
LONG_AGO = datetime(2024, 1, 1, tzinfo=UTC)  # its grace period ended on 2024-01-31


@pytest.fixture
def handler(load_app: Callable[[str], ModuleType]) -> Callable[[dict[str, Any]], Any]:
    app = load_app("offboard_tenants")
    return lambda event: app.lambda_handler(event, LambdaContext(remaining_millis=900_000))


def _offboard_at(tenant_id: str, moment: datetime) -> None:
    from controlplane.tenants import offboarding  # noqa: PLC0415 - see conftest.pytest_configure

    offboarding.begin(tenant_id, now=moment)


def _exists(table: Callable[[str], Any], tenant_id: str) -> bool:
    return "Item" in table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": tenant_id})


def test_the_due_query_finds_only_offboarded_tenants_past_their_grace_period(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    from controlplane.tenants import store as tenants  # noqa: PLC0415

    for tenant_id in ("overdue", "due-later", "active", "overdue-2"):
        onboard(api, tenant_id)
    _offboard_at("overdue", LONG_AGO)
    _offboard_at("overdue-2", LONG_AGO + timedelta(days=1))
    _offboard_at("due-later", datetime.now(UTC))  # deleteAfter in 30 days
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")

    assert tenants.due_for_deletion(now) == ["overdue", "overdue-2"]  # the longest overdue first
    assert tenants.due_for_deletion(now, limit=1) == ["overdue"]
    assert tenants.due_for_deletion("2024-01-30T23:59:59.999Z") == []  # still in its grace period
    assert tenants.due_for_deletion("2024-01-31T00:00:00.000Z") == ["overdue"]  # deleteAfter itself is due
    in_a_year = (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert tenants.due_for_deletion(in_a_year) == ["overdue", "overdue-2", "due-later"]
    # The active tenant never enters the index (sparse): not even in a year.
    item = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "active"})["Item"]
    assert "offboardingDue" not in item
    assert "deleteAfter" not in item


def test_the_sweep_deletes_a_due_tenant_and_leaves_one_not_due_untouched(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any], handler: Callable[[dict[str, Any]], Any]
) -> None:
    onboard(api, "gone")
    onboard(api, "kept")  # offboarded too, but still in its grace period
    onboard(api, "go")  # a prefix of another tenant's id: the prefix must not match "gone"'s data
    _offboard_at("gone", LONG_AGO)
    _offboard_at("kept", datetime.now(UTC))

    result = handler({"trigger": "schedule"})

    assert result["deleted"]["gone"]["uploadObjectVersions"] == 4
    assert result["deleted"]["gone"]["tenants"] == 1
    assert set(result["deleted"]) == {"gone"}
    assert result["failed"] == result["waiting"] == {}
    assert not _exists(table, "gone")
    for bucket in BUCKETS:
        assert versions(bucket, "gone") == 0
        assert versions(bucket, "kept") == versions(bucket, "go") == 4
    assert _exists(table, "kept")
    assert _exists(table, "go")
    roles = {role["RoleName"] for role in aws_client("iam").list_roles()["Roles"]}
    assert {"mlaas-tenant-kept", "mlaas-tenant-go"} <= roles
    assert "mlaas-tenant-gone" not in roles
    # Nothing is due any more: a second run deletes nothing.
    assert handler({"trigger": "schedule"})["deleted"] == {}


def test_one_failing_tenant_does_not_stop_the_others_and_fails_the_invocation(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    handler: Callable[[dict[str, Any]], Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controlplane.tenants import removal_store as removal  # noqa: PLC0415

    for tenant_id in ("broken", "fine"):
        onboard(api, tenant_id)
    _offboard_at("broken", LONG_AGO)
    _offboard_at("fine", LONG_AGO + timedelta(days=1))  # after "broken" in the index
    delete_tenant_role = removal.delete_tenant_role

    def failing_for_broken(tenant_id: str) -> tuple[int, int]:
        if tenant_id == "broken":
            raise RuntimeError("IAM is having a bad day")
        return delete_tenant_role(tenant_id)

    monkeypatch.setattr(removal, "delete_tenant_role", failing_for_broken)

    with pytest.raises(RuntimeError, match=r"deleting 1 offboarded tenant\(s\) failed \(broken\)"):
        handler({"trigger": "schedule"})

    assert not _exists(table, "fine")  # deleted although "broken" (first in the index) failed
    assert _exists(table, "broken")  # still due: the next run tries again
    monkeypatch.setattr(removal, "delete_tenant_role", delete_tenant_role)
    assert set(handler({"trigger": "schedule"})["deleted"]) == {"broken"}
    assert not _exists(table, "broken")


def test_a_tenant_whose_jobs_are_still_ending_waits_for_the_next_run(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    handler: Callable[[dict[str, Any]], Any],
) -> None:
    onboard(api, "busy")
    _offboard_at("busy", LONG_AGO)
    job_id = put_job(
        table, 7, "busy", "2024-01-01T00:00:00.000Z", status="RUNNING"
    )  # its stop not landed yet

    result = handler({"trigger": "schedule"})  # does not raise: waiting is not a failure

    assert result["waiting"] == {"busy": [job_id]}
    assert result["deleted"] == {}
    assert _exists(table, "busy")
    assert versions(BUCKETS[0], "busy") == 4


def test_immediate_deletion_refuses_a_tenant_that_was_never_offboarded(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any], handler: Callable[[dict[str, Any]], Any]
) -> None:
    onboard(api, "active")
    assert handler({"trigger": "immediate", "tenantId": "active"}) == {
        "outcome": "not-offboarded",
        "tenantId": "active",
        "message": "the tenant is not being offboarded: nothing was deleted",
        "removed": {},
        "jobIds": [],
    }
    assert _exists(table, "active")
    assert versions(BUCKETS[0], "active") == 4
    assert handler({"trigger": "immediate", "tenantId": "nobody"})["outcome"] == "not-found"


@pytest.mark.parametrize(
    "event",
    [{}, {"trigger": "immediate"}, {"trigger": "sweep"}, {"trigger": "schedule", "tenantId": "acme"}],
)
def test_events_other_than_the_two_triggers_are_refused(
    handler: Callable[[dict[str, Any]], Any], event: dict[str, Any]
) -> None:
    with pytest.raises(ValidationError):
        handler(event)
