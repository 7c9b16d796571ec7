"""Every AWS call the functions and the state machine make is allowed by their roles (issue 12, item 5).

The emulator records each call as the IAM requests it needs and checks them against the roles deployed from
template.yaml (localcloud.permissions). This test runs a representative flow of its own (onboarding through
the API, a valid and an invalid upload built end to end, the API's reads, a running build cancelled,
offboarding at once) and then asserts that no call recorded in this emulator so far, by this test or any
other of this process, was denied or unmapped (the package's fixture checks the same once all its tests ran).
That a removed statement is caught: tests/permissions/.
"""

from __future__ import annotations

import time
import uuid

import pytest

from scripts.api_keys import create_operator_key
from scripts.sample_data import SampleTenant
from tests.integration.conftest import QUIET_SECONDS, Deployed, upload, valid_csv, wait_for_jobs
from tests.integration.test_offboarding import delete_at_once
from tests.integration.test_status_api import _call, _onboard

pytestmark = pytest.mark.integration

# Every principal the flow below makes calls as (the deploy's custom resources run first).
PRINCIPALS = {
    "SeedTiersFunction",
    "ProvisionPipelineFunction",
    "AuthorizerFunction",
    "ApiFunction",
    "RegisterUploadFunction",
    "ValidateDatasetFunction",
    "GateFunction",
    "AwaitPipelineFunction",
    "PipelineEventsFunction",
    "OffboardTenantsFunction",
    "TrainingJobStateMachine",
}


def _wait_for(deployed: Deployed, key: str, status: str) -> dict[str, str]:
    deadline = time.monotonic() + 2 * QUIET_SECONDS
    while time.monotonic() < deadline:
        items = _call(deployed, "GET", "/jobs", key).json()["items"]
        found = [item for item in items if item["status"] == status]
        if found:
            return dict(found[0])
        time.sleep(0.5)
    raise AssertionError(f"no job became {status}")


def test_every_call_of_a_representative_flow_is_allowed_by_its_role(deployed: Deployed) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant_id = f"perm-{uuid.uuid4().hex[:8]}"
    key = _onboard(deployed, operator, tenant_id)
    tenant = SampleTenant(
        tenant_id=tenant_id, tier="basic", target_column="label", feature_columns=("f1", "f2", "f3")
    )
    upload(deployed, tenant_id, "good.csv", valid_csv(tenant))
    upload(deployed, tenant_id, "bad.csv", b"label,f1\n1,x\n")
    jobs = wait_for_jobs(deployed, tenant_id, 2, timeout=90)
    assert sorted(job["status"] for job in jobs) == ["REJECTED", "SUCCEEDED"]

    # The API's reads, then a running build cancelled by its tenant (its pipeline is stopped).
    assert _call(deployed, "GET", f"/jobs/{jobs[0]['jobId']}", key).status_code == 200
    assert _call(deployed, "GET", "/tiers", operator).status_code == 200
    assert _call(deployed, "GET", f"/tenants/{tenant_id}", operator).status_code == 200
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=tenant_id, status="Executing")  # never ends
    upload(deployed, tenant_id, "forever.csv", valid_csv(tenant, seed=3))
    building = _wait_for(deployed, key, "RUNNING")
    assert _call(deployed, "POST", f"/jobs/{building['jobId']}/cancel", key).status_code == 202
    wait_for_jobs(deployed, tenant_id, 3, timeout=60)

    # Offboarding at once: the API suspends and cancels, then invokes offboard_tenants, which deletes.
    response = delete_at_once(deployed, tenant_id, operator)
    assert response.status_code == 200, response.text

    report = deployed.cloud.permission_report()
    summary = "\n".join(report.summary_lines())
    assert report.denied == (), summary
    assert report.unmapped == (), summary
    assert {p.principal for p in report.principals} >= PRINCIPALS, summary
    by_principal = {p.principal: p for p in report.principals}
    # The check saw the calls that matter: the API's role creation and the offboarding's deletions.
    assert {"iam:CreateRole", "iam:TagRole", "lambda:InvokeFunction"} <= set(
        by_principal["ApiFunction"].actions
    )
    assert {"s3:ListBucketVersions", "s3:DeleteObjectVersion", "iam:DeleteRole"} <= set(
        by_principal["OffboardTenantsFunction"].actions
    )
    assert "dynamodb:UpdateItem" in by_principal["TrainingJobStateMachine"].actions
    assert any("iam:PassRole" in statement for statement in report.conditional_statements), summary
