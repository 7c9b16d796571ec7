"""await_pipeline and pipeline_events meet on the job item; the execution resumes exactly once, whichever
comes first."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

import pytest
from conftest import FakeStepFunctions, LambdaContext, load_event

from controlplane.builds import pipeline_store as pipelines
from controlplane.core.errors import (
    AwsServiceError,
    JobClosedError,
    JobNotFoundError,
    TransitionNotAllowedError,
)
from controlplane.jobs import execution_store as executions
from controlplane.jobs.lifecycle import Job, JobStatus

pytestmark = pytest.mark.usefixtures("aws")
AWAIT = load_event("await_pipeline_input.json")
JOB_ID = AWAIT["jobId"]
TOKEN = AWAIT["taskToken"]
SUCCEEDED = load_event("sagemaker_pipeline_succeeded.json")
FAILED = load_event("sagemaker_pipeline_failed.json")
EXECUTION_ARN = SUCCEEDED["detail"]["pipelineExecutionArn"]


@pytest.fixture(autouse=True)
def admitted_job(aws: None, table: Callable[[str], Any]) -> None:
    table("JOBS_TABLE_NAME").put_item(
        Item={
            "jobId": JOB_ID,
            "tenantId": "acme",
            "tier": "basic",
            "status": "ADMITTED",
            "admittedAt": "2024-05-14T09:30:00.000Z",
            "timeline": [{"status": "ADMITTED", "at": "2024-05-14T09:30:00.000Z", "state": "x"}],
        }
    )


@pytest.fixture
def await_pipeline(load_app: Callable[[str], ModuleType]) -> Callable[..., dict[str, Any]]:
    app = load_app("await_pipeline")

    def invoke(payload: dict[str, Any] | None = None, request_id: str = "await-1") -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(
            payload or AWAIT, LambdaContext(aws_request_id=request_id)
        )
        json.dumps(result)
        return result

    return invoke


@pytest.fixture
def pipeline_events(load_app: Callable[[str], ModuleType]) -> Callable[..., dict[str, Any]]:
    app = load_app("pipeline_events")

    def invoke(event: dict[str, Any], request_id: str = "events-1") -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(event, LambdaContext(aws_request_id=request_id))
        json.dumps(result)
        return result

    return invoke


def job(table: Callable[[str], Any]) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": JOB_ID})["Item"])


EXPECTED_SUCCESS = {"status": "SUCCEEDED", "reason": "", "pipelineExecutionArn": EXECUTION_ARN}


def test_await_then_event(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
) -> None:
    assert await_pipeline() == {"jobId": JOB_ID, "status": "RUNNING", "resumed": False}
    item = job(table)
    assert item["status"] == "RUNNING"
    assert item["pipelineTaskToken"] == TOKEN
    assert item["pipelineExecutionArn"] == AWAIT["pipelineExecutionArn"]
    assert item["timeline"][-1]["state"] == "Wait for the pipeline to finish"
    assert stepfunctions.sent == []

    assert pipeline_events(SUCCEEDED)["resumed"] is True
    assert stepfunctions.sent == [(TOKEN, EXPECTED_SUCCESS)]
    finished = Job.model_validate(job(table))
    assert finished.pipeline_outcome is not None
    assert finished.pipeline_outcome.status is JobStatus.SUCCEEDED
    assert finished.resumed_at is not None
    # A redelivered event resumes nothing again.
    assert pipeline_events(SUCCEEDED, request_id="events-2")["resumed"] is False
    assert len(stepfunctions.sent) == 1


def test_event_then_await(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
) -> None:
    assert pipeline_events(SUCCEEDED)["resumed"] is False  # nobody waits yet
    assert job(table)["status"] == "ADMITTED"  # the status is the state machine's to record
    assert await_pipeline()["resumed"] is True
    assert stepfunctions.sent == [(TOKEN, EXPECTED_SUCCESS)]
    assert pipeline_events(SUCCEEDED, request_id="events-2")["resumed"] is False
    assert len(stepfunctions.sent) == 1


def test_concurrent_sides_resume_exactly_once(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    serialized_dynamodb: None,
) -> None:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(await_pipeline, AWAIT, "await-1")] + [
            pool.submit(pipeline_events, SUCCEEDED, f"events-{n}") for n in range(3)
        ]
        resumed = [future.result()["resumed"] for future in futures]
    assert resumed.count(True) == 1
    assert stepfunctions.sent == [(TOKEN, EXPECTED_SUCCESS)]


def test_failed_pipeline_resumes_with_its_failure_reason(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []

    def failure_reason(arn: str) -> str:
        asked.append(arn)
        return "Step TrainTenantModel failed: AlgorithmError: label column contains NaN"

    monkeypatch.setattr(pipelines, "failure_reason", failure_reason)
    await_pipeline()
    assert pipeline_events(FAILED)["outcome"] == "FAILED"
    assert asked == [EXECUTION_ARN]
    assert stepfunctions.sent == [
        (
            TOKEN,
            {
                "status": "FAILED",
                "reason": "the pipeline failed: "
                "Step TrainTenantModel failed: AlgorithmError: label column contains NaN",
                "pipelineExecutionArn": EXECUTION_ARN,
            },
        )
    ]


def test_a_failed_pipeline_counts_one_job_failure_when_its_execution_resumes(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipelines, "failure_reason", lambda arn: "AlgorithmError: free text")
    pipeline_events(FAILED)  # recorded; nothing to resume yet
    await_pipeline()  # resumes the execution: the failure is counted here, once
    pipeline_events(FAILED, request_id="events-2")  # a redelivered event: no second count
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    failed = [(blob["tier"], blob["reason"], blob["JobsFailed"]) for blob in blobs if "JobsFailed" in blob]
    assert failed == [("basic", "PipelineFailed", [1.0])]


def test_stopped_pipeline(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
) -> None:
    stopped = json.loads(json.dumps(SUCCEEDED))
    stopped["detail"]["currentPipelineExecutionStatus"] = "Stopped"
    await_pipeline()
    pipeline_events(stopped)
    assert stepfunctions.sent[0][1]["status"] == "STOPPED"


def test_first_outcome_wins(
    pipeline_events: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    table: Callable[[str], Any],
) -> None:
    monkeypatch.setattr(pipelines, "failure_reason", lambda arn: "boom")
    pipeline_events(SUCCEEDED)
    pipeline_events(FAILED)
    assert job(table)["pipelineOutcome"]["status"] == "SUCCEEDED"


@pytest.mark.parametrize(
    ("change", "ignored"),
    [
        ({"currentPipelineExecutionStatus": "Executing"}, "non-terminal status Executing"),
        (
            {"pipelineArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/another-pipeline"},
            "another pipeline",
        ),
        ({"pipelineExecutionDisplayName": "manual-run-1"}, "not a control plane execution"),
        (
            {"pipelineExecutionDisplayName": "job-" + "0" * 64},
            "no such job",
        ),
    ],
)
def test_events_that_are_not_ours_are_ignored(
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
    change: dict[str, str],
    ignored: str,
) -> None:
    event = json.loads(json.dumps(SUCCEEDED))
    event["detail"] |= change
    assert pipeline_events(event) == {"ignored": ignored}
    assert "pipelineOutcome" not in job(table)
    assert len(table("JOBS_TABLE_NAME").scan()["Items"]) == 1  # no junk item for unknown jobs


def test_dead_pipeline_token_is_tolerated(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
) -> None:
    await_pipeline()
    stepfunctions.dead.add(TOKEN)  # the wait timed out and the state machine stopped the pipeline
    assert pipeline_events(SUCCEEDED)["resumed"] is False


def test_a_retried_await_with_a_new_token_is_resumed(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
) -> None:
    await_pipeline()
    stepfunctions.dead.add(TOKEN)
    pipeline_events(SUCCEEDED)  # claims the resume but the first attempt's token is dead
    retry = AWAIT | {"taskToken": "second-attempt-token"}
    assert await_pipeline(retry, request_id="await-2")["resumed"] is True
    assert stepfunctions.outputs_for("second-attempt-token") == [EXPECTED_SUCCESS]
    assert [entry["status"] for entry in job(table)["timeline"]] == ["ADMITTED", "RUNNING"]


def test_same_await_twice_does_not_duplicate_the_timeline(
    await_pipeline: Callable[..., dict[str, Any]], table: Callable[[str], Any]
) -> None:
    await_pipeline()
    await_pipeline(request_id="await-2")
    assert [entry["status"] for entry in job(table)["timeline"]] == ["ADMITTED", "RUNNING"]


def test_transient_send_failure_gives_the_claim_back(
    await_pipeline: Callable[..., dict[str, Any]],
    pipeline_events: Callable[..., dict[str, Any]],
    stepfunctions: FakeStepFunctions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await_pipeline()

    def throttled(token: str, output: dict[str, Any]) -> None:
        raise AwsServiceError("SendTaskSuccess", "ThrottlingException", "slow down")

    monkeypatch.setattr(executions, "send_task_success", throttled)
    with pytest.raises(AwsServiceError):
        pipeline_events(SUCCEEDED)
    monkeypatch.setattr(executions, "send_task_success", stepfunctions.send_task_success)
    assert pipeline_events(SUCCEEDED, request_id="events-retry")["resumed"] is True  # EventBridge's retry
    assert stepfunctions.sent == [(TOKEN, EXPECTED_SUCCESS)]


@pytest.mark.parametrize(
    ("status", "error"),
    [("CANCELLED", JobClosedError), ("QUEUED", TransitionNotAllowedError)],
)
def test_await_refuses_jobs_not_admitted(
    await_pipeline: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    status: str,
    error: type[Exception],
) -> None:
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": JOB_ID},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": status},
    )
    with pytest.raises(error):
        await_pipeline()


def test_await_for_a_missing_job(await_pipeline: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(JobNotFoundError):
        await_pipeline(AWAIT | {"jobId": "job-" + "f" * 64})
