"""execution_events: an execution that ended without recording its outcome closes its job, frees its slot
for the next waiting job and stops its pipeline, exactly once however often the event arrives."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
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

from controlplane.admission import slot_store as slots
from controlplane.admission.decisions import queued_job_from
from controlplane.core.model import format_timestamp
from controlplane.jobs.lifecycle import Job
from controlplane.uploads.keys import derive_job_id

pytestmark = pytest.mark.usefixtures("aws")
SAMPLE = load_event("sfn_execution_aborted.json")
EXECUTION_ARN = SAMPLE["detail"]["executionArn"]
JOB_ID = derive_job_id(
    "test-uploads-bucket", "tenants/acme/uploads/churn-2024-05.csv", "Zq3fP8vK2mXoL0tRbY7wN5sHj1eDcA9u"
)
PIPELINE_ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlaas-test-tenant-training/execution/p1"
ABORT_REASON = "the build's execution was aborted (stopped by an operator) before it finished"


@pytest.fixture
def handle(
    load_app: Callable[[str], ModuleType], stepfunctions: FakeStepFunctions, sagemaker: FakePipelines
) -> Callable[..., dict[str, Any]]:
    app = load_app("execution_events")

    def invoke(event: dict[str, Any], request_id: str = "events-1") -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(event, LambdaContext(aws_request_id=request_id))
        json.dumps(result)
        return result

    return invoke


def status_event(
    status: str = "ABORTED",
    *,
    execution_arn: str = EXECUTION_ARN,
    error: str | None = None,
    cause: str | None = None,
    **detail: Any,
) -> dict[str, Any]:
    event = json.loads(json.dumps(SAMPLE))
    event["detail"] |= {"status": status, "executionArn": execution_arn, "error": error, "cause": cause}
    event["detail"] |= detail
    return event


def job(table: Callable[[str], Any], job_id: str = JOB_ID) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def running(table: Callable[[str], Any], tier: str = "basic") -> int:
    return int(table("TIERS_TABLE_NAME").get_item(Key={"tier": tier})["Item"]["running"])


def leases(table: Callable[[str], Any]) -> set[str]:
    return {item["jobId"] for item in table("SLOT_LEASES_TABLE_NAME").scan()["Items"]}


def waiting_job(table: Callable[[str], Any], job_id: str = JOB_ID, **overrides: Any) -> dict[str, Any]:
    """QUEUED with its token stored: in the tier's waiting room, owned by the sample's execution."""
    item = queued_job(table, job_id, **overrides)
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id},
        UpdateExpression="SET executionArn = :arn",
        ExpressionAttributeValues={":arn": EXECUTION_ARN},
    )
    return item | {"executionArn": EXECUTION_ARN}


def building_job(table: Callable[[str], Any], job_id: str = JOB_ID) -> None:
    """RUNNING: admitted (slot and lease taken), pipeline started, the await's task token parked."""
    holder = queued_job_from(Job.model_validate(waiting_job(table, job_id)))
    assert holder is not None
    take_slot(holder, now=format_timestamp(datetime.now(UTC)))
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id},
        UpdateExpression=(
            "SET #status = :running, pipelineExecutionArn = :p, pipelineTaskToken = :t REMOVE queueTaskToken"
        ),
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":running": "RUNNING", ":p": PIPELINE_ARN, ":t": "pipeline-token"},
    )


def test_aborted_build_is_failed_its_slot_released_its_pipeline_stopped_and_the_next_job_admitted(
    handle: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
) -> None:
    building_job(table)
    queued_job(table, job_id_for(7), queued_at="2024-05-14T10:00:00.000Z")  # waits for that slot
    assert running(table) == 1

    result = handle(status_event("ABORTED"))

    assert result == {
        "jobId": JOB_ID,
        "jobFound": True,
        "closed": True,
        "status": "FAILED",
        "released": True,
        "pipelineStopped": True,
        "admitted": [job_id_for(7)],
    }
    closed = job(table)
    assert closed["status"] == "FAILED"
    assert closed["reasons"] == [ABORT_REASON]
    assert closed["timeline"][-1] | {"at": "-"} == {
        "status": "FAILED",
        "at": "-",
        "state": "The execution was aborted",
        "reason": ABORT_REASON,
    }
    assert closed["finishedAt"] == closed["timeline"][-1]["at"]
    assert closed["admittedAt"] <= closed["slotReleasedAt"]
    assert not {"pipelineTaskToken", "queueTaskToken", "queueTier"} & set(closed)
    assert sagemaker.stops == [(PIPELINE_ARN, f"stop-{JOB_ID}")]
    assert leases(table) == {job_id_for(7)}
    assert running(table) == 1  # the freed slot went to the waiting job at once
    assert stepfunctions.outputs_for(f"token-{job_id_for(7)}")


@pytest.mark.parametrize(
    ("status", "reason"),
    [("ABORTED", "ExecutionAborted"), ("TIMED_OUT", "ExecutionTimedOut"), ("FAILED", "ExecutionFailed")],
)
def test_a_closed_build_counts_one_failure_with_a_bounded_reason(
    handle: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    capsys: pytest.CaptureFixture[str],
    status: str,
    reason: str,
) -> None:
    building_job(table)
    capsys.readouterr()
    handle(status_event(status, error="States.TaskFailed", cause="a free-text cause"))
    handle(status_event(status, error="States.TaskFailed", cause="a free-text cause"), request_id="again")
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    failed = [blob for blob in blobs if "JobsFailed" in blob]
    assert len(failed) == 1  # the redelivered event closes nothing and counts nothing
    assert (failed[0]["tier"], failed[0]["reason"], failed[0]["JobsFailed"]) == ("basic", reason, [1.0])
    assert [set(names) for names in failed[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"]] == [
        {"service", "tier", "reason"}
    ]


def test_a_redelivered_event_changes_nothing_twice(
    handle: Callable[..., dict[str, Any]], table: Callable[[str], Any], sagemaker: FakePipelines
) -> None:
    building_job(table)
    handle(status_event("ABORTED"))
    timeline = job(table)["timeline"]

    again = handle(status_event("ABORTED"), request_id="events-2")

    assert (again["closed"], again["released"], again["pipelineStopped"]) == (False, False, False)
    assert again["status"] == "FAILED"
    assert job(table)["timeline"] == timeline
    assert running(table) == 0
    assert len(sagemaker.stops) == 1


def test_a_job_aborted_while_queued_leaves_the_waiting_room_without_touching_slots(
    handle: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    waiting_job(table)
    result = handle(status_event("ABORTED"))

    assert (result["closed"], result["released"], result["admitted"]) == (True, False, [])
    closed = job(table)
    assert closed["status"] == "FAILED"
    assert "queueTier" not in closed  # out of the sparse tier-queue index
    assert "queueTaskToken" not in closed
    assert "slotReleasedAt" not in closed
    assert running(table) == 0
    assert stepfunctions.sent == []


@pytest.mark.parametrize(
    ("status", "error", "cause", "reason", "state"),
    [
        (
            "TIMED_OUT",
            None,
            None,
            "the build's execution timed out after 7 days before it finished",
            "The execution timed out",
        ),
        (
            "FAILED",
            "States.Runtime",
            "An error occurred while executing the state 'Start the tenant's pipeline build'",
            "the build's execution failed: States.Runtime: "
            "An error occurred while executing the state 'Start the tenant's pipeline build'",
            "The execution failed",
        ),
        (
            "FAILED",
            None,
            None,
            "the build's execution failed (Step Functions reported no error)",
            "The execution failed",
        ),
    ],
)
def test_each_ending_has_its_reason(
    handle: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    status: str,
    error: str | None,
    cause: str | None,
    reason: str,
    state: str,
) -> None:
    building_job(table)
    assert handle(status_event(status, error=error, cause=cause))["closed"] is True
    closed = job(table)
    assert closed["reasons"] == [reason]
    assert closed["timeline"][-1]["state"] == state
    assert running(table) == 0


def test_a_failure_the_state_machine_recorded_itself_is_left_as_it_is(
    handle: Callable[..., dict[str, Any]], table: Callable[[str], Any], sagemaker: FakePipelines
) -> None:
    building_job(table)
    # As the state machine leaves it before "The build failed": slot released, FAILED recorded.
    slots.release(JOB_ID, "basic")
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": JOB_ID},
        UpdateExpression="SET #status = :failed, reasons = :r, pipelineOutcome = :o REMOVE pipelineTaskToken",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":failed": "FAILED",
            ":r": ["the pipeline failed: x"],
            ":o": {
                "status": "FAILED",
                "reason": "the pipeline failed: x",
                "at": "2024-05-01T00:00:00.000Z",
                "pipelineExecutionArn": PIPELINE_ARN,
            },
        },
    )
    before = job(table)

    result = handle(status_event("FAILED", error="BuildFailed", cause="the pipeline failed: x"))

    assert (result["closed"], result["released"], result["pipelineStopped"]) == (False, False, False)
    assert result["status"] == "FAILED"
    assert job(table) == before
    assert sagemaker.stops == []


def test_a_duplicate_deliverys_execution_never_touches_the_job_another_execution_builds(
    handle: Callable[..., dict[str, Any]], table: Callable[[str], Any], sagemaker: FakePipelines
) -> None:
    building_job(table)
    before = job(table)
    duplicate = EXECUTION_ARN.rsplit(":", 1)[0] + ":redelivery-1"

    result = handle(status_event("FAILED", execution_arn=duplicate, error="RegistrationFailed", cause="boom"))

    assert (result["jobFound"], result["closed"], result["released"]) == (True, False, False)
    assert job(table) == before
    assert leases(table) == {JOB_ID}
    assert sagemaker.stops == []


def test_an_execution_that_failed_before_registering_has_no_job(
    handle: Callable[..., dict[str, Any]],
) -> None:
    result = handle(status_event("FAILED", error="RegistrationFailed", cause="boom"))
    assert (result["jobFound"], result["closed"], result["released"]) == (False, False, False)


def test_a_pipeline_that_already_ended_is_not_stopped(
    handle: Callable[..., dict[str, Any]], table: Callable[[str], Any], sagemaker: FakePipelines
) -> None:
    building_job(table)
    sagemaker.statuses[PIPELINE_ARN] = "Succeeded"  # its event is still on the way
    result = handle(status_event("ABORTED"))
    assert (result["closed"], result["released"], result["pipelineStopped"]) == (True, True, False)
    assert sagemaker.stops == []


def test_a_pipeline_that_cannot_be_stopped_does_not_keep_the_job_open(
    handle: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    sagemaker: FakePipelines,
    capsys: pytest.CaptureFixture[str],
) -> None:
    building_job(table)
    sagemaker.fail_with = "ThrottlingException"
    capsys.readouterr()

    result = handle(status_event("TIMED_OUT"))

    assert (result["closed"], result["released"], result["pipelineStopped"]) == (True, True, False)
    assert job(table)["status"] == "FAILED"
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any(blob.get("PipelineStopErrors") == [1.0] and blob["tier"] == "basic" for blob in metrics)


@pytest.mark.parametrize(
    ("detail", "ignored"),
    [
        ({"status": "SUCCEEDED"}, "status SUCCEEDED"),
        (
            {"stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:other"},
            "another state machine",
        ),
        ({"input": None, "inputDetails": {"included": False}}, "the event carries no execution input"),
        ({"input": '{"hello": "world"}'}, "the execution's input is not an upload event"),
    ],
)
def test_events_it_cannot_act_on_are_ignored(
    handle: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    detail: dict[str, Any],
    ignored: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    building_job(table)
    before = job(table)
    event = status_event("ABORTED")
    event["detail"] |= detail
    capsys.readouterr()

    assert handle(event) == {"ignored": ignored}

    assert job(table) == before
    if detail.get("input", "") is None:
        metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
        assert any(blob.get("ExecutionEventsWithoutInput") == [1.0] for blob in metrics)


def test_a_malformed_event_is_refused(handle: Callable[..., dict[str, Any]]) -> None:
    event = status_event("ABORTED")
    del event["detail"]["executionArn"]
    with pytest.raises(Exception, match="executionArn"):
        handle(event)
