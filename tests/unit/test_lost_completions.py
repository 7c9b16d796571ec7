"""Lost pipeline completion events: the gate's sweep asks SageMaker about quiet running jobs and records an
ended pipeline's outcome as pipeline_events would, so the execution resumes and releases its slot."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from conftest import ACCOUNT, REGION, FakeStepFunctions, LambdaContext, job_id_for

from controlplane.builds import pipeline_store as pipelines
from controlplane.builds import reconciling
from controlplane.builds.lost_completions import (
    LOST_COMPLETION_CHECKS_PER_RUN,
    LOST_COMPLETION_GRACE,
    PipelineExecutionState,
    Suspect,
    is_lost_completion,
    select_for_run,
    suspect_from_job,
)
from controlplane.core.model import format_timestamp
from controlplane.jobs.lifecycle import Job

NOW = datetime(2024, 5, 14, 12, 0, tzinfo=UTC)
OLD = format_timestamp(NOW - timedelta(minutes=30))
RECENT = format_timestamp(NOW - timedelta(minutes=1))
PIPELINE = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:pipeline/mlaas-test-tenant-training/execution"


def running_item(job_id: str = job_id_for(1), **overrides: Any) -> dict[str, Any]:
    return {
        "jobId": job_id,
        "tenantId": "acme",
        "tier": "basic",
        "status": "RUNNING",
        "pipelineExecutionArn": f"{PIPELINE}/{job_id[-8:]}",
        "pipelineTaskToken": f"pipeline-token-{job_id}",
        "executionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MLaaS-Test-training-job:{job_id}",
        "admittedAt": OLD,
        "updatedAt": OLD,
        "timeline": [],
    } | overrides


def running_job(job_id: str = job_id_for(1), **overrides: Any) -> Job:
    return Job.model_validate(running_item(job_id, **overrides))


# ------------------------------------------------------------------ the pure decision


def test_a_quiet_running_job_with_a_pipeline_is_a_suspect() -> None:
    suspect = suspect_from_job(running_job(), now=NOW, grace=LOST_COMPLETION_GRACE)
    assert suspect == Suspect(
        job_id=job_id_for(1),
        tier="basic",
        pipeline_execution_arn=running_item()["pipelineExecutionArn"],
        updated_at=OLD,
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"updatedAt": RECENT},  # within the grace period: the event path may still deliver
        {"status": "ADMITTED"},
        {"status": "SUCCEEDED"},
        {"pipelineExecutionArn": ""},
        {"resumedAt": RECENT},  # just resumed: the state machine is finishing it
        {"updatedAt": "not a time"},
    ],
)
def test_not_a_suspect(overrides: dict[str, Any]) -> None:
    assert suspect_from_job(running_job(**overrides), now=NOW, grace=LOST_COMPLETION_GRACE) is None
    assert suspect_from_job(None, now=NOW, grace=LOST_COMPLETION_GRACE) is None


def test_the_grace_period_is_a_boundary() -> None:
    grace = timedelta(minutes=5)
    at_boundary = running_job(updatedAt=format_timestamp(NOW - grace))
    just_inside = running_job(updatedAt=format_timestamp(NOW - grace + timedelta(seconds=1)))
    assert suspect_from_job(at_boundary, now=NOW, grace=grace) is not None
    assert suspect_from_job(just_inside, now=NOW, grace=grace) is None


def test_a_recorded_but_undelivered_outcome_is_flagged() -> None:
    outcome = {"status": "SUCCEEDED", "reason": "", "at": OLD, "pipelineExecutionArn": f"{PIPELINE}/x"}
    suspect = suspect_from_job(running_job(pipelineOutcome=outcome), now=NOW, grace=LOST_COMPLETION_GRACE)
    assert suspect is not None
    assert suspect.outcome_recorded


@pytest.mark.parametrize(
    ("status", "lost"),
    [("Succeeded", True), ("Failed", True), ("Stopped", True), ("Executing", False), ("Stopping", False)],
)
def test_only_ended_pipelines_are_lost_completions(status: str, lost: bool) -> None:
    assert is_lost_completion(PipelineExecutionState(status=status)) is lost


def test_selection_is_bounded_and_rotates_over_every_suspect() -> None:
    suspects = [
        Suspect(job_id=job_id_for(n), tier="basic", pipeline_execution_arn="arn", updated_at=OLD)
        for n in range(7)
    ]
    assert select_for_run(suspects[:2], now=NOW, limit=3) == sorted(suspects[:2], key=lambda s: s.job_id)
    seen: set[str] = set()
    for minute in range(3):
        chosen = select_for_run(reversed(suspects), now=NOW + timedelta(minutes=minute), limit=3)
        assert len(chosen) == 3
        assert len({s.job_id for s in chosen}) == 3
        seen |= {s.job_id for s in chosen}
    assert seen == {s.job_id for s in suspects}  # ceil(7 / 3) runs cover all
    assert select_for_run(suspects, now=NOW, limit=0) == []
    assert LOST_COMPLETION_CHECKS_PER_RUN > 0


# ------------------------------------------------------------------ the service (moto DynamoDB, fakes)


class FakeSageMaker:
    def __init__(self) -> None:
        self.states: dict[str, PipelineExecutionState] = {}
        self.failing: set[str] = set()
        self.described: list[str] = []

    def describe(self, arn: str) -> PipelineExecutionState:
        self.described.append(arn)
        if arn in self.failing:
            raise RuntimeError("ThrottlingException")
        return self.states.get(arn, PipelineExecutionState(status="Executing"))


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> FakeSageMaker:
    fake = FakeSageMaker()
    monkeypatch.setattr(pipelines, "describe", fake.describe)
    return fake


@pytest.fixture
def put_running(aws: None, table: Callable[[str], Any]) -> Callable[..., dict[str, Any]]:
    """A RUNNING job holding a lease of its tier, as await_pipeline leaves it."""

    def put(job_id: str, **overrides: Any) -> dict[str, Any]:
        item = running_item(job_id, **overrides)
        table("JOBS_TABLE_NAME").put_item(Item=item)
        table("SLOT_LEASES_TABLE_NAME").put_item(
            Item={
                "jobId": job_id,
                "tier": item["tier"],
                "tenantId": item["tenantId"],
                "executionArn": item["executionArn"],
                "acquiredAt": OLD,
            }
        )
        return item

    return put


def job(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def test_an_ended_pipeline_whose_event_was_lost_resumes_its_execution(
    put_running: Callable[..., dict[str, Any]],
    sagemaker: FakeSageMaker,
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
) -> None:
    item = put_running(job_id_for(1))
    ended = NOW - timedelta(minutes=10)
    sagemaker.states[item["pipelineExecutionArn"]] = PipelineExecutionState("Succeeded", None, ended)

    sweep = reconciling.recover_lost_completions("basic", now=NOW)

    assert sweep.recovered == [job_id_for(1)]
    assert sweep.errors == 0
    assert stepfunctions.sent == [
        (
            item["pipelineTaskToken"],
            {"status": "SUCCEEDED", "reason": "", "pipelineExecutionArn": item["pipelineExecutionArn"]},
        )
    ]
    stored = job(table, job_id_for(1))
    assert stored["pipelineOutcome"]["at"] == format_timestamp(ended)
    assert stored["resumedBy"] == reconciling.CLAIMANT
    # The next run finds it resumed: nothing is described or sent again.
    assert reconciling.recover_lost_completions("basic", now=NOW).recovered == []
    assert len(stepfunctions.sent) == 1
    assert sagemaker.described == [item["pipelineExecutionArn"]]


def test_a_failed_pipeline_is_recorded_with_its_failure_reason(
    put_running: Callable[..., dict[str, Any]], sagemaker: FakeSageMaker, stepfunctions: FakeStepFunctions
) -> None:
    item = put_running(job_id_for(1))
    sagemaker.states[item["pipelineExecutionArn"]] = PipelineExecutionState(
        "Failed", "Step TrainTenantModel failed: AlgorithmError"
    )
    assert reconciling.recover_lost_completions("basic", now=NOW).recovered == [job_id_for(1)]
    ((_, payload),) = stepfunctions.sent
    assert payload["status"] == "FAILED"
    assert payload["reason"] == "the pipeline failed: Step TrainTenantModel failed: AlgorithmError"


def test_running_pipelines_and_recent_jobs_are_left_alone(
    put_running: Callable[..., dict[str, Any]],
    sagemaker: FakeSageMaker,
    stepfunctions: FakeStepFunctions,
    table: Callable[[str], Any],
) -> None:
    executing = put_running(job_id_for(1))
    recent = put_running(job_id_for(2), updatedAt=RECENT)
    sagemaker.states[recent["pipelineExecutionArn"]] = PipelineExecutionState("Succeeded")

    sweep = reconciling.recover_lost_completions("basic", now=NOW)

    assert sweep.recovered == []
    assert sweep.checked == 1
    assert sweep.errors == 0
    assert sagemaker.described == [executing["pipelineExecutionArn"]]  # the recent one is not even asked
    assert stepfunctions.sent == []
    assert "pipelineOutcome" not in job(table, job_id_for(1))
    assert "pipelineOutcome" not in job(table, job_id_for(2))


def test_one_jobs_error_does_not_stop_the_others(
    put_running: Callable[..., dict[str, Any]],
    sagemaker: FakeSageMaker,
    stepfunctions: FakeStepFunctions,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broken, fine = put_running(job_id_for(1)), put_running(job_id_for(2))
    sagemaker.failing.add(broken["pipelineExecutionArn"])
    sagemaker.states[fine["pipelineExecutionArn"]] = PipelineExecutionState("Succeeded")
    capsys.readouterr()

    sweep = reconciling.recover_lost_completions("basic", now=NOW)

    assert sweep.recovered == [job_id_for(2)]
    assert sweep.errors == 1
    assert [token for token, _ in stepfunctions.sent] == [fine["pipelineTaskToken"]]
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert [blob["LostCompletionSweepErrors"] for blob in metrics if "LostCompletionSweepErrors" in blob] == [
        [1.0]
    ]
    recovered = [blob for blob in metrics if "LostCompletionsRecovered" in blob]
    assert len(recovered) == 1
    assert recovered[0]["tier"] == "basic"


def test_work_per_run_is_bounded(
    put_running: Callable[..., dict[str, Any]], sagemaker: FakeSageMaker, stepfunctions: FakeStepFunctions
) -> None:
    for number in range(5):
        put_running(job_id_for(number))
    sweep = reconciling.recover_lost_completions("basic", now=NOW, limit=2)
    assert sweep.checked == 2
    assert len(sagemaker.described) == 2


def test_an_outcome_recorded_but_never_delivered_is_resumed_without_asking_sagemaker(
    put_running: Callable[..., dict[str, Any]], sagemaker: FakeSageMaker, stepfunctions: FakeStepFunctions
) -> None:
    item = put_running(
        job_id_for(1),
        pipelineOutcome={
            "status": "STOPPED",
            "reason": "the pipeline execution was stopped",
            "at": OLD,
            "pipelineExecutionArn": f"{PIPELINE}/x",
        },
    )
    assert reconciling.recover_lost_completions("basic", now=NOW).recovered == [job_id_for(1)]
    assert sagemaker.described == []
    assert [(token, out["status"]) for token, out in stepfunctions.sent] == [
        (item["pipelineTaskToken"], "STOPPED")
    ]


def test_the_event_path_winning_meanwhile_is_not_counted_as_recovered(
    put_running: Callable[..., dict[str, Any]],
    sagemaker: FakeSageMaker,
    stepfunctions: FakeStepFunctions,
    load_app: Callable[[str], ModuleType],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pipeline_events records and resumes between the sweep's read and its write: exactly one resume."""
    item = put_running(job_id_for(1))
    arn = item["pipelineExecutionArn"]
    sagemaker.states[arn] = PipelineExecutionState("Succeeded")
    events = load_app("pipeline_events")
    real_describe = sagemaker.describe

    def describe_while_the_event_arrives(pipeline_execution_arn: str) -> PipelineExecutionState:
        event = {
            "version": "0",
            "id": "e1",
            "detail-type": "SageMaker Model Building Pipeline Execution Status Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": "2024-05-14T11:59:00Z",
            "region": REGION,
            "resources": [],
            "detail": {
                "pipelineArn": arn.rsplit("/execution", 1)[0].replace("mlaas-test", "MLaaS-Test"),
                "pipelineExecutionArn": arn,
                "pipelineExecutionDisplayName": job_id_for(1),
                "currentPipelineExecutionStatus": "Succeeded",
            },
        }
        assert events.lambda_handler(event, LambdaContext(aws_request_id="late-event"))["resumed"] is True
        return real_describe(pipeline_execution_arn)

    monkeypatch.setattr(pipelines, "describe", describe_while_the_event_arrives)
    assert reconciling.recover_lost_completions("basic", now=NOW).recovered == []
    assert len(stepfunctions.sent) == 1


def test_the_gate_schedule_reports_recovered_completions(
    put_running: Callable[..., dict[str, Any]],
    sagemaker: FakeSageMaker,
    stepfunctions: FakeStepFunctions,
    load_app: Callable[[str], ModuleType],
    context: LambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    item = put_running(job_id_for(1), updatedAt=format_timestamp(datetime.now(UTC) - timedelta(hours=1)))
    sagemaker.states[item["pipelineExecutionArn"]] = PipelineExecutionState("Succeeded")
    gate = load_app("gate")
    # Admission is not what this test is about (and is tested on its own): nobody waits anyway.
    monkeypatch.setattr(gate, "_admit", lambda *_, **__: {}, raising=False)
    result = gate.lambda_handler({"trigger": "schedule"}, context)
    assert result["tiers"]["basic"]["recoveredCompletions"] == [job_id_for(1)]
    assert result["tiers"]["standard"]["recoveredCompletions"] == []
    assert [token for token, _ in stepfunctions.sent] == [item["pipelineTaskToken"]]
