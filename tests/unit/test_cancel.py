"""Cancelling a job (POST /jobs/{jobId}/cancel): with the state machine, never around it.

A waiting job's wait is failed with JobCancelled (the state machine records CANCELLED); a running build's
pipeline is stopped (its Stopped event ends it STOPPED, "cancelled by the tenant"); the request is durable
first, so a racing admission or token store refuses the job; terminal jobs are a 409.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from conftest import (
    FakePipelines,
    FakeStepFunctions,
    LambdaContext,
    job_id_for,
    load_event,
    queued_job,
    take_slot,
)

from controlplane.admission.decisions import TakeOutcome, queued_job_from
from controlplane.builds.outcome import CANCELLED_BY_TENANT
from controlplane.jobs import store as jobs
from controlplane.jobs.cancelling import CANCEL_ERROR, CANCEL_REASON
from controlplane.jobs.lifecycle import Job
from tests.unit import test_api
from tests.unit.test_api import put_job, tenant

api = test_api.api  # the status API fixture (an API Gateway proxy event per call)

pytestmark = pytest.mark.usefixtures("aws")
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlaas-test-tenant-training/execution/p1"


def cancel(api: Callable[..., tuple[int, Any]], job_id: str, caller: dict[str, str]) -> tuple[int, Any]:
    return api(
        "POST",
        f"/jobs/{job_id}/cancel",
        caller=caller,
        resource="/jobs/{jobId}/cancel",
        path_parameters={"jobId": job_id},
    )


def item(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def test_a_queued_job_has_its_wait_failed_with_job_cancelled_and_is_never_admitted(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
) -> None:
    queued = queued_job(table, job_id_for(1))
    status, body = cancel(api, job_id_for(1), tenant("acme"))
    assert status == 202
    assert body["status"] == "QUEUED"
    assert body["cancelRequestedAt"]
    assert stepfunctions.failures == [(queued["queueTaskToken"], CANCEL_ERROR, CANCEL_REASON)]
    # A racing admission (the gate read the waiting room before the cancel) cannot take a slot for it.
    candidate = queued_job_from(Job.model_validate(item(table, job_id_for(1))))
    assert candidate is not None
    assert take_slot(candidate, now="2024-05-01T00:00:01.000Z") is TakeOutcome.NOT_QUEUED
    assert int(table("TIERS_TABLE_NAME").get_item(Key={"tier": "basic"})["Item"]["running"]) == 0
    assert sagemaker.stops == []
    # Asking again is harmless (same cancelRequestedAt).
    again_status, again = cancel(api, job_id_for(1), tenant("acme"))
    assert again_status == 202
    assert again["cancelRequestedAt"] == body["cancelRequestedAt"]


def test_a_job_cancelled_before_its_token_reached_the_gate_has_its_wait_failed_by_the_gate(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    load_app: Callable[[str], ModuleType],
) -> None:
    queued_job(table, job_id_for(2))
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id_for(2)}, UpdateExpression="REMOVE queueTier, queueTaskToken"
    )
    assert cancel(api, job_id_for(2), tenant("acme"))[0] == 202
    assert stepfunctions.failures == []  # no token yet: the gate fails the wait when it gets one
    record = json.loads(json.dumps(load_event("gate_sqs_batch.json")["Records"][0]))
    record["body"] = json.dumps(
        {
            "taskToken": "late-token",
            "jobId": job_id_for(2),
            "tenantId": "acme",
            "tier": "basic",
            "executionArn": "arn:aws:states:us-east-1:123456789012:execution:x:y",
        }
    )
    result = load_app("gate").lambda_handler({"Records": [record]}, LambdaContext())
    assert result == {"batchItemFailures": []}
    assert stepfunctions.failures == [("late-token", CANCEL_ERROR, CANCEL_REASON)]
    assert stepfunctions.sent == []
    assert "queueTaskToken" not in item(table, job_id_for(2))


@pytest.mark.parametrize("status", ["RECEIVED", "VALIDATED"])
def test_a_job_not_yet_queued_is_cancelled_at_once(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    status: str,
) -> None:
    job_id = put_job(table, 3, "acme", "2024-05-01T00:00:00.000Z", status=status)
    code, body = cancel(api, job_id, tenant("acme"))
    assert code == 202
    assert body["status"] == "CANCELLED"
    assert body["reasons"] == [CANCEL_REASON]
    assert body["timeline"][-1]["status"] == "CANCELLED"
    assert body["finishedAt"]
    assert stepfunctions.failures == []
    # Validation that finishes afterwards finds the job closed and never overwrites it.
    with pytest.raises(Exception, match="already CANCELLED"):
        jobs.record_validation(
            job_id,
            valid=True,
            reasons=[],
            stats={},
            training_data_uri="s3://a/b",
            model_output_uri="s3://a/c/",
            now="2024-05-01T00:00:02.000Z",
        )


def test_a_running_job_has_its_pipeline_stopped(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
) -> None:
    job_id = put_job(
        table, 4, "acme", "2024-05-01T00:00:00.000Z", status="RUNNING", pipelineExecutionArn=PIPELINE_ARN
    )
    code, body = cancel(api, job_id, tenant("acme"))
    assert code == 202
    assert body["status"] == "RUNNING"
    assert sagemaker.stops == [(PIPELINE_ARN, f"cancel-{job_id}")]
    assert stepfunctions.failures == []


def test_an_admitted_job_whose_pipeline_is_not_recorded_yet_is_stopped_by_await_pipeline(
    api: Callable[..., tuple[int, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
    load_app: Callable[[str], ModuleType],
) -> None:
    job_id = put_job(table, 5, "acme", "2024-05-01T00:00:00.000Z", status="ADMITTED")
    assert cancel(api, job_id, tenant("acme"))[0] == 202
    assert sagemaker.stops == []
    load_app("await_pipeline").lambda_handler(
        {"taskToken": "t", "jobId": job_id, "tenantId": "acme", "pipelineExecutionArn": PIPELINE_ARN},
        LambdaContext(),
    )
    assert sagemaker.stops == [(PIPELINE_ARN, f"cancel-{job_id}")]
    # Its Stopped event then says the tenant cancelled it.
    stopped = json.loads(json.dumps(load_event("sagemaker_pipeline_succeeded.json")))
    stopped["detail"]["currentPipelineExecutionStatus"] = "Stopped"
    stopped["detail"]["pipelineExecutionDisplayName"] = job_id
    stopped["detail"]["pipelineExecutionArn"] = PIPELINE_ARN
    load_app("pipeline_events").lambda_handler(stopped, LambdaContext())
    assert stepfunctions.sent == [
        ("t", {"status": "STOPPED", "reason": CANCELLED_BY_TENANT, "pipelineExecutionArn": PIPELINE_ARN})
    ]
    assert "cancelled by the tenant" in CANCELLED_BY_TENANT


@pytest.mark.parametrize("status", ["SUCCEEDED", "FAILED", "STOPPED", "REJECTED", "EXPIRED", "CANCELLED"])
def test_a_terminal_job_is_409_with_its_status(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any], status: str
) -> None:
    job_id = put_job(table, 6, "acme", "2024-05-01T00:00:00.000Z", status=status)
    code, body = cancel(api, job_id, tenant("acme"))
    assert code == 409
    assert status in body["message"]
    assert "cancelRequestedAt" not in item(table, job_id)


def test_another_tenants_job_is_a_404_like_a_missing_one(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    queued_job(table, job_id_for(7), tenant_id="globex")
    other = cancel(api, job_id_for(7), tenant("acme"))
    missing = cancel(api, job_id_for(8), tenant("acme"))
    malformed = cancel(api, "nope", tenant("acme"))
    assert other == missing == malformed
    assert other[0] == 404
    assert stepfunctions.failures == []
    assert "cancelRequestedAt" not in item(table, job_id_for(7))
    # Operators use tenant routes no more than tenants use operator routes.
    assert cancel(api, job_id_for(7), {"role": "operator"})[0] == 403


def test_the_state_machine_catches_job_cancelled_at_the_queue_wait_and_records_cancelled() -> None:
    from pathlib import Path  # noqa: PLC0415 - only this test reads the definition

    states = json.loads(
        (Path(__file__).resolve().parents[2] / "statemachines/training_job.asl.json").read_text()
    )["States"]
    catches = states["Wait in the tier's queue for a free slot"]["Catch"]
    names = [catch["ErrorEquals"] for catch in catches]
    assert names.index([CANCEL_ERROR]) < names.index(["States.ALL"])
    describe = states[next(c["Next"] for c in catches if c["ErrorEquals"] == [CANCEL_ERROR])]
    assert describe["Parameters"] == {"status": "CANCELLED", "reason": CANCEL_REASON}
    assert describe["Next"] == "Release the job's slot"
    choice = states["How did the build end?"]["Choices"]
    record = next(c["Next"] for c in choice if c.get("StringEquals") == "CANCELLED")
    values = states[record]["Parameters"]["ExpressionAttributeValues"]
    assert values[":status"] == {"S": "CANCELLED"}
    assert states[states[record]["Next"]]["Type"] == "Succeed"
