"""A pipeline whose completion event is lost (issue 5, item 3). Invariants 3 and 4: the gate's scheduled sweep
finds the ended pipeline, records its outcome as pipeline_events would, and the execution resumes, records
SUCCEEDED and releases the slot through its normal path.

Real flows in the emulator; the simulated runner drops the job's terminal status-change event
(``pipeline_runner.drop_completion_events``) while DescribePipelineExecution reports the real status.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.conftest import (
    QUIET_SECONDS,
    Deployed,
    lease_count,
    tier_item,
    until_settled,
    upload,
    valid_csv,
    wait_for_jobs,
)
from tests.integration.test_execution_ends import holds_lease, pipeline_status, wait_for_job

pytestmark = pytest.mark.integration


def running(deployed: Deployed, tier: str) -> int:
    return int(tier_item(deployed, tier)["running"]["N"])


def test_a_lost_completion_event_is_recovered_by_the_scheduled_sweep(
    deployed: Deployed, new_tenant: Any
) -> None:
    tenant = new_tenant("premium")
    running_before = running(deployed, "premium")
    deployed.cloud.pipeline_runner.drop_completion_events(tenant_id=tenant.tenant_id)
    upload(deployed, tenant.tenant_id, "lost.csv", valid_csv(tenant))
    building = wait_for_job(deployed, tenant.tenant_id, lambda j: j["status"] == "RUNNING", "RUNNING")
    pipeline_arn = building["pipelineExecutionArn"]
    until_settled(
        lambda: pipeline_status(deployed, pipeline_arn),
        lambda status: status == "Succeeded",
        quiet_seconds=QUIET_SECONDS,
        what="the simulated pipeline to end",
        interval=0.2,
    )
    time.sleep(1.5)  # an event, had one been put, would have been handled by now

    stuck = wait_for_job(deployed, tenant.tenant_id, lambda j: True, "read")
    assert stuck["status"] == "RUNNING"
    assert "pipelineOutcome" not in stuck
    assert holds_lease(deployed, stuck["jobId"])

    gate = deployed.stack.ref("GateFunction")
    # Within the grace period the sweep leaves it to the (possibly late) event.
    early = json.loads(
        deployed.client("lambda")
        .invoke(FunctionName=gate, Payload=json.dumps({"trigger": "schedule"}))["Payload"]
        .read()
    )
    assert early["tiers"]["premium"]["recoveredCompletions"] == [], early
    # Ten minutes later, as far as the job is concerned: it has been quiet since it started running.
    deployed.client("dynamodb").update_item(
        TableName=deployed.outputs["JobsTableName"],
        Key={"jobId": {"S": stuck["jobId"]}},
        UpdateExpression="SET updatedAt = :then",
        ExpressionAttributeValues={
            ":then": {"S": (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        },
    )
    response = deployed.client("lambda").invoke(
        FunctionName=gate, Payload=json.dumps({"trigger": "schedule"})
    )
    swept = json.loads(response["Payload"].read())

    assert "FunctionError" not in response, swept
    assert swept["tiers"]["premium"]["recoveredCompletions"] == [stuck["jobId"]]
    (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=30)
    assert job["status"] == "SUCCEEDED", job.get("reasons")
    assert job["pipelineOutcome"]["status"] == "SUCCEEDED"
    assert job["resumedBy"] == "gate:lost-completion-sweep"
    assert job["admittedAt"] <= job["slotReleasedAt"]
    assert not holds_lease(deployed, job["jobId"])
    assert lease_count(deployed, "premium") == 0
    assert running(deployed, "premium") == running_before == 0
