"""The lifecycle sweep closes every open job whose execution is over, whatever status it was left in,
resumes a build whose outcome was recorded but never delivered, and counts jobs open too long."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import ACCOUNT, REGION, FakePipelines, FakeStepFunctions, job_id_for

from controlplane.core.model import format_timestamp
from controlplane.jobs.lifecycle import NON_TERMINAL_STATUSES, Job, JobStatus
from controlplane.jobs.sweep import sweep_open_jobs
from controlplane.jobs.sweeping import Action, decide, open_job_from

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
LONG_AGO = format_timestamp(NOW - timedelta(hours=1))
A_MINUTE_AGO = format_timestamp(NOW - timedelta(minutes=1))
GRACE = timedelta(minutes=5)
OUTCOME = {
    "status": "SUCCEEDED",
    "reason": "",
    "at": LONG_AGO,
    "pipelineExecutionArn": "arn:pipeline-execution",
}
TIERS = ("basic", "standard", "premium")


def execution_arn(job_id: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MLaaS-Test-training-job:{job_id}"


def open_job(table: Callable[[str], Any], number: int, status: JobStatus, **extra: Any) -> str:
    """A job as its last writer left it: on the open-jobs index since ``LONG_AGO``."""
    job_id = job_id_for(number)
    item = {
        "jobId": job_id,
        "tenantId": "acme",
        "tier": "basic",
        "status": status.value,
        "openStatus": status.value,
        "sweepAt": LONG_AGO,
        "createdAt": LONG_AGO,
        "updatedAt": LONG_AGO,
        "executionArn": execution_arn(job_id),
        "timeline": [],
    } | extra
    table("JOBS_TABLE_NAME").put_item(Item=item)
    return job_id


def sweep(limit: int = 50, allowance: int | None = 86400) -> Any:
    return sweep_open_jobs(now=NOW, grace=GRACE, limit=limit, allowance=lambda tier: allowance, tiers=TIERS)


def stored(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


@pytest.mark.parametrize("status", sorted(NON_TERMINAL_STATUSES, key=list(JobStatus).index), ids=str)
def test_a_job_whose_execution_ended_is_closed_whatever_its_status(
    status: JobStatus,
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
) -> None:
    job_id = open_job(table, 1, status)
    stepfunctions.statuses[execution_arn(job_id)] = "ABORTED"
    result = sweep()
    assert result.closed == [job_id]
    job = stored(table, job_id)
    assert job["status"] == "FAILED"
    assert "aborted" in job["reasons"][0]
    assert "openStatus" not in job  # off the sweep's index for good


def test_a_running_pipeline_of_a_closed_job_is_stopped(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, sagemaker: FakePipelines
) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc"
    job_id = open_job(table, 1, JobStatus.RUNNING, pipelineExecutionArn=arn)
    stepfunctions.statuses[execution_arn(job_id)] = "FAILED"
    sweep()
    assert [stop[0] for stop in sagemaker.stops] == [arn]


def test_an_item_that_does_not_parse_is_left_out_and_does_not_stop_the_sweep(
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Written by hand: no tenant, an unknown tier. The store cannot make a Job of it.
    table("JOBS_TABLE_NAME").put_item(
        Item={"jobId": job_id_for(1), "tier": "gold", "openStatus": "RECEIVED", "sweepAt": LONG_AGO}
    )
    dead = open_job(table, 2, JobStatus.RECEIVED)
    stepfunctions.statuses[execution_arn(dead)] = "ABORTED"
    result = sweep()
    assert (result.looked_at, result.closed, result.errors) == (1, [dead], 0)
    assert [record.levelname for record in caplog.records if "does not parse" in record.getMessage()] == [
        "ERROR"
    ]
    assert stored(table, job_id_for(1))["sweepAt"] == LONG_AGO  # left exactly as it was


def test_live_jobs_go_to_the_back_of_the_line(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, sagemaker: FakePipelines
) -> None:
    first = open_job(table, 1, JobStatus.QUEUED, sweepAt=format_timestamp(NOW - timedelta(hours=2)))
    second = open_job(table, 2, JobStatus.QUEUED)
    assert sweep(limit=1).looked_at == 1
    assert stored(table, first)["sweepAt"] == format_timestamp(NOW)  # looked at, moved back
    assert stored(table, second)["sweepAt"] == LONG_AGO
    # The next run (same moment) looks at the other one: no job starves behind long waits.
    sweep(limit=1)
    assert stored(table, second)["sweepAt"] == format_timestamp(NOW)
    assert stored(table, first)["status"] == stored(table, second)["status"] == "QUEUED"


def test_recently_written_jobs_are_left_alone(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, sagemaker: FakePipelines
) -> None:
    job_id = open_job(table, 1, JobStatus.RECEIVED, sweepAt=format_timestamp(NOW - timedelta(minutes=1)))
    stepfunctions.statuses[execution_arn(job_id)] = "ABORTED"
    assert sweep().looked_at == 0
    assert stored(table, job_id)["status"] == "RECEIVED"


def test_an_outcome_recorded_but_never_delivered_is_resumed(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, sagemaker: FakePipelines
) -> None:
    outcome = {"status": "SUCCEEDED", "reason": "ok", "at": LONG_AGO, "pipelineExecutionArn": "arn:p"}
    job_id = open_job(
        table, 1, JobStatus.RUNNING, pipelineTaskToken="pipeline-token", pipelineOutcome=outcome
    )
    result = sweep()
    assert result.resumed == [job_id]
    assert [token for token, _ in stepfunctions.sent] == ["pipeline-token"]
    assert stored(table, job_id)["resumedBy"] == "lifecycle-sweep"
    # Exactly once: the next run finds it resumed and leaves it to the state machine.
    assert sweep().resumed == []
    assert len(stepfunctions.sent) == 1


def test_overdue_jobs_are_counted_per_tier(
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
    capsys: pytest.CaptureFixture[str],
) -> None:
    open_job(table, 1, JobStatus.QUEUED)
    open_job(table, 2, JobStatus.QUEUED, createdAt=format_timestamp(NOW - timedelta(minutes=10)))
    result = sweep(allowance=1800)  # the first has been open an hour, the second ten minutes
    assert result.overdue == {"basic": 1}
    metrics = capsys.readouterr().out
    assert '"JobsOverdue"' in metrics


def test_a_describe_error_is_counted_and_does_not_stop_the_run(
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    sagemaker: FakePipelines,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from controlplane.core.errors import AwsServiceError  # noqa: PLC0415
    from controlplane.jobs import execution_store  # noqa: PLC0415

    broken = open_job(table, 1, JobStatus.RECEIVED)
    dead = open_job(table, 2, JobStatus.VALIDATED)
    stepfunctions.statuses[execution_arn(dead)] = "TIMED_OUT"

    def describe(arn: str) -> Any:
        if arn == execution_arn(broken):
            raise AwsServiceError("DescribeExecution", "ThrottlingException", "slow down")
        return stepfunctions.execution_end(arn)

    monkeypatch.setattr(execution_store, "execution_end", describe)
    result = sweep()
    assert result.errors == 1
    assert result.closed == [dead]


@pytest.mark.parametrize(
    ("status", "execution", "extra", "action"),
    [
        (JobStatus.QUEUED, "RUNNING", {}, Action.LOOK_AGAIN),
        (JobStatus.QUEUED, None, {}, Action.CLOSE),  # the execution does not exist
        (JobStatus.RUNNING, "SUCCEEDED", {}, Action.CLOSE),
        (JobStatus.RUNNING, "RUNNING", {"pipelineOutcome": OUTCOME}, Action.LOOK_AGAIN),
        (
            JobStatus.RUNNING,
            "RUNNING",
            {"pipelineOutcome": OUTCOME, "pipelineTaskToken": "t"},
            Action.RESUME,
        ),
        (
            JobStatus.RUNNING,
            "RUNNING",
            {
                "pipelineOutcome": OUTCOME,
                "pipelineTaskToken": "t",
                "resumedAt": LONG_AGO[:11] + "11:59:00.000Z",
            },
            Action.LOOK_AGAIN,  # resumed a minute ago: the state machine is finishing it
        ),
        (
            JobStatus.RUNNING,
            "RUNNING",
            {"pipelineOutcome": OUTCOME, "pipelineTaskToken": "t", "resumedAt": LONG_AGO},
            Action.RESUME,  # a claim an hour old was abandoned (its claimant died before sending)
        ),
    ],
)
def test_decisions(status: JobStatus, execution: str | None, extra: dict[str, Any], action: Action) -> None:
    item = {"jobId": "j", "tenantId": "acme", "status": status.value, "openStatus": status.value} | extra
    job = open_job_from(Job.model_validate(item))
    assert job is not None
    assert decide(job, execution, now=NOW) is action


def test_a_pipeline_started_but_never_recorded_is_found_and_stopped(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invariant 6: the execution ended between StartPipelineExecution and "Record that the pipeline
    started"; the pipeline is found by its display name (the job id) in moto's SageMaker and stopped."""
    from conftest import ENVIRONMENT, aws_client  # noqa: PLC0415

    from controlplane.builds import pipeline_store  # noqa: PLC0415

    sagemaker = aws_client("sagemaker")
    name = ENVIRONMENT["PIPELINE_NAME"]
    sagemaker.create_pipeline(
        PipelineName=name,
        PipelineDefinition='{"Version": "2020-12-01", "Steps": []}',
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/p",
    )
    job_id = open_job(table, 1, JobStatus.ADMITTED, admittedAt=LONG_AGO)
    sagemaker.start_pipeline_execution(PipelineName=name, PipelineExecutionDisplayName="someone-else")
    started = sagemaker.start_pipeline_execution(PipelineName=name, PipelineExecutionDisplayName=job_id)
    stops: list[str] = []
    monkeypatch.setattr(pipeline_store, "status", lambda arn: "Executing")
    monkeypatch.setattr(pipeline_store, "stop", lambda arn, client_request_token: stops.append(arn))
    stepfunctions.statuses[execution_arn(job_id)] = "ABORTED"
    sweep()
    assert stops == [started["PipelineExecutionArn"]]
    assert stored(table, job_id)["status"] == "FAILED"
