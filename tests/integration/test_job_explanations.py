"""Every job explains itself, through the status API of the deployed stack (the real template, state machine,
gate and API function on the emulator).

A tier with no slot holds a job QUEUED: its view gives its position and the limit holding it. Given one
borrowable slot the job runs on a borrowed slot, and its view says so while the next job waits behind it. A
stopped job and a failed one name the step they ended in and where their logs are (the emulator's per-function
log files).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from scripts.api_keys import create_operator_key
from scripts.sample_data import SampleTenant
from tests.integration.conftest import QUIET_SECONDS, Deployed, set_tier, upload, valid_csv, wait_for_jobs
from tests.integration.test_status_api import _call, _onboard

pytestmark = pytest.mark.integration
TIER = "basic"


def _tenant(deployed: Deployed, operator: str) -> tuple[SampleTenant, str]:
    tenant_id = f"ex-{uuid.uuid4().hex[:8]}"
    key = _onboard(deployed, operator, tenant_id)
    return SampleTenant(
        tenant_id=tenant_id, tier=TIER, target_column="label", feature_columns=("f1", "f2", "f3")
    ), key


def _view(deployed: Deployed, key: str, job_id: str) -> dict[str, Any]:
    response = _call(deployed, "GET", f"/jobs/{job_id}", key)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _view_until(deployed: Deployed, key: str, job_id: str, done: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + 2 * QUIET_SECONDS
    view = _view(deployed, key, job_id)
    while not done(view):
        assert time.monotonic() < deadline, f"waited for {what}: {view}"
        time.sleep(0.25)
        view = _view(deployed, key, job_id)
    return view


def _holds(view: dict[str, Any]) -> list[str]:
    return [holding["hold"] for holding in view["explanation"]["waiting"]["holding"]]


def test_a_waiting_job_explains_the_limit_holding_it_then_its_borrowed_slot(deployed: Deployed) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant, key = _tenant(deployed, operator)
    other, _ = _tenant(deployed, operator)
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=tenant.tenant_id, status="Executing")  # never ends
    before = set_tier(deployed, TIER, concurrencyLimit=0, borrowingLimit=0)
    try:
        upload(deployed, tenant.tenant_id, "first.csv", valid_csv(tenant))
        (first,) = wait_for_jobs(deployed, tenant.tenant_id, 1, statuses={"QUEUED"})
        view = _view_until(
            deployed,
            key,
            first["jobId"],
            lambda v: v.get("explanation") and "TIER_LIMIT" in _holds(v),
            "the tier limit to hold the job",
        )
        waiting = view["explanation"]["waiting"]
        assert waiting["tenantPosition"] == {"place": 1, "of": 1, "atLeast": False}
        assert waiting["tierPosition"]["place"] >= 1
        assert waiting["tierSlots"] == {"running": 0, "guaranteed": 0, "borrowable": 0, "limit": 0}
        assert waiting["tenant"] == {"running": 0, "cap": None}
        assert waiting["account"]["cap"] >= waiting["account"]["running"]
        assert "tier basic runs 0 of its 0 guaranteed + 0 borrowable slots" in view["explanation"]["summary"]
        assert waiting["fairShare"]["ahead"] == []  # a tenant never sees who
        assert "moving average" in waiting["estimate"]["method"]

        # The operator's view of the same job; another tenant's path to it is a 404.
        as_operator = _call(deployed, "GET", f"/tenants/{tenant.tenant_id}/jobs/{first['jobId']}", operator)
        assert as_operator.status_code == 200, as_operator.text
        assert "TIER_LIMIT" in _holds(as_operator.json())
        assert (
            _call(deployed, "GET", f"/tenants/{other.tenant_id}/jobs/{first['jobId']}", operator).status_code
            == 404
        )
        assert (
            _call(deployed, "GET", f"/tenants/{tenant.tenant_id}/jobs/{first['jobId']}", key).status_code
            == 403
        )

        # One borrowable slot: the next queue message's admission run gives it to the waiting job.
        set_tier(deployed, TIER, borrowingLimit=1)
        upload(deployed, tenant.tenant_id, "second.csv", valid_csv(tenant, seed=2))
        running = _view_until(
            deployed, key, first["jobId"], lambda v: v["status"] == "RUNNING", "the first job to run"
        )
        slot = running["explanation"]["slot"]
        assert slot["borrowed"] is True
        assert slot["lentBy"]
        assert "borrowed" in running["explanation"]["summary"]

        jobs = wait_for_jobs(deployed, tenant.tenant_id, 2, statuses={"QUEUED", "RUNNING"})
        (second,) = [job for job in jobs if job["jobId"] != first["jobId"]]
        behind = _view_until(
            deployed,
            key,
            second["jobId"],
            lambda v: v.get("explanation") and "TIER_LIMIT" in _holds(v),
            "the borrowed slot's limit to hold the second job",
        )
        assert behind["explanation"]["waiting"]["tierSlots"]["limit"] == 1
        assert behind["explanation"]["waiting"]["tenantPosition"]["place"] == 1

        # Stopped: it names the step it was in and where its logs are.
        for job in (second, first):
            assert _call(deployed, "POST", f"/jobs/{job['jobId']}/cancel", key).status_code == 202
        stopped = _view_until(
            deployed, key, first["jobId"], lambda v: v["status"] == "STOPPED", "the first job to stop"
        )
        failure = stopped["explanation"]["failure"]
        assert failure["status"] == "STOPPED"
        assert failure["failedStep"] == "Wait for the pipeline to finish"
        assert failure["recordedBy"] == "Record that the build was stopped"
        assert failure["executionArn"] == stopped["executionArn"]
    finally:
        set_tier(deployed, TIER, **before)
    wait_for_jobs(deployed, tenant.tenant_id, 2, timeout=30)


def test_a_failed_job_names_its_failing_step_and_its_log_files(deployed: Deployed) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant, key = _tenant(deployed, operator)
    reason = "AlgorithmError: training diverged"
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=tenant.tenant_id, status="Failed", reason=reason)
    upload(deployed, tenant.tenant_id, "diverges.csv", valid_csv(tenant))
    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1)
    assert job["status"] == "FAILED"

    view = _view(deployed, key, job["jobId"])
    failure = view["explanation"]["failure"]
    assert failure["failedStep"] == "Wait for the pipeline to finish"
    assert failure["recordedBy"] == "Record that the build failed"
    assert reason in failure["reason"]
    assert failure["pipelineExecutionArn"] == view["pipelineExecutionArn"]
    files = [Path(log["file"]) for log in failure["logs"] if log.get("file")]
    assert {path.name for path in files} == {"AwaitPipelineFunction.log", "PipelineEventsFunction.log"}
    assert all(path.is_file() for path in files)
    assert job["jobId"] in files[0].read_text()  # its lines carry the job id
    assert any(log.get("logStream") == view["executionArn"] for log in failure["logs"])
