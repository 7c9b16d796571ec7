"""Executions that end without recording their job's outcome: stopped by an operator (StopExecution), timed
out, or failed outside the definition's Catch paths. Invariants 3 and 4: the slot is released exactly once,
and the job reaches a terminal status the tenant can read, with a reason.

Real flows in the emulator: StopExecution → the `Step Functions Execution Status Change` event → the
ExecutionEvents rule → execution_events (or, with that rule disabled, the gate's scheduled sweep).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from scripts.jobs import tenant_jobs
from tests.integration.conftest import (
    QUIET_SECONDS,
    Deployed,
    lease_count,
    pipeline_executions_for,
    set_tier,
    tier_item,
    until_settled,
    upload,
    valid_csv,
    wait_for_jobs,
)

pytestmark = pytest.mark.integration

ABORTED = "the build's execution was aborted (stopped by an operator) before it finished"


def wait_for_job(
    deployed: Deployed,
    tenant_id: str,
    ready: Callable[[dict[str, Any]], bool],
    what: str,
    timeout: float = 60,
) -> dict[str, Any]:
    """The tenant's only job, once ``ready`` holds for it (gives up once nothing changed for ``timeout``)."""
    jobs = until_settled(
        lambda: tenant_jobs(deployed.client("dynamodb"), deployed.outputs["JobsTableName"], tenant_id),
        lambda jobs: len(jobs) == 1 and ready(jobs[0]),
        quiet_seconds=timeout,
        what=f"{tenant_id}'s job to be {what}",
        interval=0.2,
    )
    return jobs[0]


def in_waiting_room(job: dict[str, Any]) -> bool:
    return job["status"] == "QUEUED" and "queueTier" in job and "queueTaskToken" in job


def holds_lease(deployed: Deployed, job_id: str) -> bool:
    item = deployed.client("dynamodb").get_item(
        TableName=deployed.outputs["SlotLeasesTableName"], Key={"jobId": {"S": job_id}}
    )
    return "Item" in item


def waiting_room(deployed: Deployed, tier: str) -> set[str]:
    page = deployed.client("dynamodb").query(
        TableName=deployed.outputs["JobsTableName"],
        IndexName="tier-queue",
        KeyConditionExpression="queueTier = :t",
        ExpressionAttributeValues={":t": {"S": tier}},
    )
    return {item["jobId"]["S"] for item in page["Items"]}


def running(deployed: Deployed, tier: str) -> int:
    return int(tier_item(deployed, tier)["running"]["N"])


def stop(deployed: Deployed, execution_arn: str) -> None:
    sfn = deployed.client("stepfunctions")
    sfn.stop_execution(executionArn=execution_arn, error="OperatorStop", cause="stopped from the console")
    until_settled(
        lambda: sfn.describe_execution(executionArn=execution_arn)["status"],
        lambda status: status != "RUNNING",
        quiet_seconds=QUIET_SECONDS,
        what=f"{execution_arn} to stop",
        interval=0.1,
    )


def pipeline_status(deployed: Deployed, pipeline_execution_arn: str) -> str:
    return str(
        deployed.client("sagemaker").describe_pipeline_execution(PipelineExecutionArn=pipeline_execution_arn)[
            "PipelineExecutionStatus"
        ]
    )


@contextmanager
def one_slot(deployed: Deployed, tier: str) -> Iterator[int]:
    """The tier limited to a single slot (restored afterwards); yields how many it ran before."""
    before = set_tier(deployed, tier, concurrencyLimit=1, borrowingLimit=0)
    try:
        yield running(deployed, tier)
    finally:
        set_tier(deployed, tier, **before)


def test_stopping_a_running_build_fails_its_job_frees_its_slot_and_admits_the_next(
    deployed: Deployed, new_tenant: Any
) -> None:
    holder, follower = new_tenant("standard"), new_tenant("standard")
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=holder.tenant_id, status="Executing")  # never ends
    with one_slot(deployed, "standard") as running_before:
        assert running_before == 0
        upload(deployed, holder.tenant_id, "forever.csv", valid_csv(holder))
        building = wait_for_job(deployed, holder.tenant_id, lambda j: j["status"] == "RUNNING", "RUNNING")
        upload(deployed, follower.tenant_id, "next.csv", valid_csv(follower))
        wait_for_job(deployed, follower.tenant_id, in_waiting_room, "waiting for the slot")

        stop(deployed, building["executionArn"])

        (job,) = wait_for_jobs(deployed, holder.tenant_id, 1, timeout=30)
        (admitted,) = wait_for_jobs(deployed, follower.tenant_id, 1, timeout=60)

    assert job["status"] == "FAILED"
    assert job["reasons"] == [ABORTED]
    assert job["timeline"][-1]["status"] == "FAILED"
    assert job["timeline"][-1]["reason"] == ABORTED
    assert [entry["status"] for entry in job["timeline"]][-2] == "RUNNING"
    assert job["admittedAt"] <= job["slotReleasedAt"]
    assert not holds_lease(deployed, job["jobId"])
    # The freed slot went to the waiting job, which then built normally.
    assert admitted["status"] == "SUCCEEDED", admitted.get("reasons")
    assert job["slotReleasedAt"] <= admitted["admittedAt"]
    # Nothing waits for the stopped build's pipeline any more: it is stopped too.
    assert pipeline_status(deployed, job["pipelineExecutionArn"]) in {"Stopping", "Stopped"}
    assert running(deployed, "standard") == running_before
    assert lease_count(deployed, "standard") == 0


def test_stopping_a_queued_build_fails_its_job_and_takes_it_out_of_the_waiting_room(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("premium")
    before = set_tier(deployed, "premium", concurrencyLimit=0, borrowingLimit=0)  # nobody is admitted
    try:
        upload(deployed, tenant.tenant_id, "queued.csv", valid_csv(tenant))
        queued = wait_for_job(deployed, tenant.tenant_id, in_waiting_room, "waiting for a slot")
        running_before = running(deployed, "premium")
        assert queued["jobId"] in waiting_room(deployed, "premium")

        stop(deployed, queued["executionArn"])
        (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=30)
    finally:
        set_tier(deployed, "premium", **before)

    assert job["status"] == "FAILED"
    assert job["reasons"] == [ABORTED]
    assert [entry["status"] for entry in job["timeline"]] == ["RECEIVED", "VALIDATED", "QUEUED", "FAILED"]
    assert not {"queueTier", "queueTaskToken", "admittedAt", "slotReleasedAt"} & set(job)
    assert job["jobId"] not in waiting_room(deployed, "premium")
    assert not holds_lease(deployed, job["jobId"])
    assert running(deployed, "premium") == running_before
    assert pipeline_executions_for(deployed, tenant.tenant_id) == []


def test_without_the_event_the_scheduled_sweep_closes_both_kinds_of_stranded_jobs(
    deployed: Deployed, new_tenant: Any
) -> None:
    holder, follower = new_tenant("basic"), new_tenant("basic")
    deployed.cloud.pipeline_runner.set_outcome(tenant_id=holder.tenant_id, status="Executing")
    events, rule = deployed.client("events"), f"{deployed.stack.name}-execution-ended"
    with one_slot(deployed, "basic") as running_before:
        upload(deployed, holder.tenant_id, "forever.csv", valid_csv(holder))
        building = wait_for_job(deployed, holder.tenant_id, lambda j: j["status"] == "RUNNING", "RUNNING")
        upload(deployed, follower.tenant_id, "next.csv", valid_csv(follower))
        queued = wait_for_job(deployed, follower.tenant_id, in_waiting_room, "waiting for the slot")
        events.disable_rule(Name=rule)  # the status-change events are lost
        try:
            stop(deployed, building["executionArn"])
            stop(deployed, queued["executionArn"])
            time.sleep(1)
            assert wait_for_job(deployed, holder.tenant_id, lambda j: True, "read")["status"] == "RUNNING"
            assert holds_lease(deployed, building["jobId"])

            response = deployed.client("lambda").invoke(
                FunctionName=deployed.stack.ref("GateFunction"), Payload=json.dumps({"trigger": "schedule"})
            )
            swept = json.loads(response["Payload"].read())
        finally:
            events.enable_rule(Name=rule)

    assert "FunctionError" not in response, swept
    assert swept["tiers"]["basic"]["reclaimed"] == [building["jobId"]]
    assert swept["tiers"]["basic"]["closedWaiting"] == [queued["jobId"]]
    holder_job = wait_for_job(deployed, holder.tenant_id, lambda j: True, "read")
    follower_job = wait_for_job(deployed, follower.tenant_id, lambda j: True, "read")
    for job in (holder_job, follower_job):
        assert job["status"] == "FAILED"
        assert job["reasons"] == [ABORTED]
        assert not holds_lease(deployed, job["jobId"])
    assert holder_job["admittedAt"] <= holder_job["slotReleasedAt"]
    assert "admittedAt" not in follower_job
    assert follower_job["jobId"] not in waiting_room(deployed, "basic")
    assert pipeline_status(deployed, holder_job["pipelineExecutionArn"]) in {"Stopping", "Stopped"}
    assert running(deployed, "basic") == running_before == 0
