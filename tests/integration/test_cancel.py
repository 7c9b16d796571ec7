"""Cancelling jobs through the API (POST /jobs/{jobId}/cancel) against the deployed state machine.

A queued job ends CANCELLED without a pipeline execution or a slot; a running build is stopped and ends
STOPPED ("cancelled by the tenant"), its slot released.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from scripts.api_keys import create_operator_key
from scripts.sample_data import SampleTenant
from tests.integration.conftest import (
    Deployed,
    lease_count,
    pipeline_executions_for,
    set_tier,
    upload,
    valid_csv,
    wait_for_jobs,
)
from tests.integration.test_execution_ends import (
    holds_lease,
    in_waiting_room,
    pipeline_status,
    running,
    wait_for_job,
    waiting_room,
)
from tests.integration.test_status_api import _call, _onboard

pytestmark = pytest.mark.integration


def _tenant(deployed: Deployed) -> tuple[SampleTenant, str]:
    tenant_id = f"cx-{uuid.uuid4().hex[:8]}"
    key = _onboard(deployed, create_operator_key(deployed.cloud, deployed.outputs), tenant_id)
    return SampleTenant(
        tenant_id=tenant_id, tier="basic", target_column="label", feature_columns=("f1", "f2", "f3")
    ), key


def _cancel(deployed: Deployed, key: str, job_id: str) -> Any:
    return _call(deployed, "POST", f"/jobs/{job_id}/cancel", key)


def test_a_queued_job_is_cancelled_and_never_starts(deployed: Deployed) -> None:
    tenant, key = _tenant(deployed)
    before = set_tier(deployed, "basic", concurrencyLimit=0, borrowingLimit=0)  # nobody is admitted
    try:
        upload(deployed, tenant.tenant_id, "queued.csv", valid_csv(tenant))
        queued = wait_for_job(deployed, tenant.tenant_id, in_waiting_room, "waiting for a slot")
        running_before = running(deployed, "basic")
        response = _cancel(deployed, key, queued["jobId"])
        assert response.status_code == 202, response.text
        assert response.json()["cancelRequestedAt"]
        (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=30)
    finally:
        set_tier(deployed, "basic", **before)

    assert job["status"] == "CANCELLED", (job["reasons"], job["timeline"])
    assert job["reasons"] == ["cancelled by the tenant"]
    assert [entry["status"] for entry in job["timeline"]] == ["RECEIVED", "VALIDATED", "QUEUED", "CANCELLED"]
    assert job["timeline"][-1]["state"] == "Record that the build was cancelled"
    assert not {"queueTier", "queueTaskToken", "admittedAt", "slotReleasedAt"} & set(job)
    assert job["jobId"] not in waiting_room(deployed, "basic")
    assert not holds_lease(deployed, job["jobId"])
    assert running(deployed, "basic") == running_before
    assert pipeline_executions_for(deployed, tenant.tenant_id) == []
    # Terminal now: a second cancel is a 409 naming the status.
    again = _cancel(deployed, key, job["jobId"])
    assert again.status_code == 409
    assert "CANCELLED" in again.text


def test_a_running_build_is_stopped_and_its_slot_released(deployed: Deployed) -> None:
    tenant, key = _tenant(deployed)
    other, other_key = _tenant(deployed)
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=tenant.tenant_id, status="Executing")  # never ends
    running_before = running(deployed, "basic")
    upload(deployed, tenant.tenant_id, "forever.csv", valid_csv(tenant))
    building = wait_for_job(deployed, tenant.tenant_id, lambda j: j["status"] == "RUNNING", "RUNNING")

    assert _cancel(deployed, other_key, building["jobId"]).status_code == 404  # not its job
    response = _cancel(deployed, key, building["jobId"])
    assert response.status_code == 202, response.text
    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=30)

    assert job["status"] == "STOPPED"
    assert "cancelled by the tenant" in job["reasons"][0]
    assert job["timeline"][-1]["state"] == "Record that the build was stopped"
    assert job["admittedAt"] <= job["slotReleasedAt"]
    assert not holds_lease(deployed, job["jobId"])
    assert pipeline_status(deployed, job["pipelineExecutionArn"]) == "Stopped"
    assert running(deployed, "basic") == running_before
    assert lease_count(deployed, "basic") == running_before
    assert other.tenant_id != tenant.tenant_id
