"""The emulator's answers to ListPipelineExecutionSteps / DescribeProcessingJob / DescribeTrainingJob
(localcloud.sagemaker_jobs), as the SIMULATED runner records them."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

from localcloud.pipeline_runner import SIMULATED_STEP, SimulatedPipelineRunner, StatusChange
from localcloud.sagemaker_jobs import SageMakerJobLedger, billable_time_seconds

T0 = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
EXECUTION = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc"


class Store:
    def __init__(self) -> None:
        self.ended = threading.Event()

    def record(self, change: StatusChange) -> None:
        if change.end_time is not None:
            self.ended.set()


def test_a_step_and_its_job_are_described_from_the_run() -> None:
    ledger = SageMakerJobLedger()
    ledger.step_started(EXECUTION, "Train", started=T0)
    job = {
        "TrainingJobName": "pipelines-abc-Train-1",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/pipelines-abc-train-1",
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        "EnableManagedSpotTraining": True,
    }
    ledger.job_started(EXECUTION, "Train", kind="TrainingJob", job=job)
    assert ledger.training_job("pipelines-abc-Train-1")["TrainingJobStatus"] == "InProgress"
    ended = T0 + timedelta(seconds=41.2)
    ledger.step_ended(EXECUTION, "Train", status="Succeeded", ended=ended, job_kind="TrainingJob", job=job)

    (step,) = ledger.steps(EXECUTION) or []
    assert step["StepStatus"] == "Succeeded"
    assert (step["StartTime"], step["EndTime"]) == (T0, ended)
    assert step["Metadata"] == {"TrainingJob": {"Arn": job["TrainingJobArn"]}}
    described = ledger.training_job("pipelines-abc-Train-1")
    assert described["TrainingJobStatus"] == "Completed"
    assert (described["TrainingStartTime"], described["TrainingEndTime"]) == (T0, ended)
    # Whole seconds, rounded up, per instance; no spot market here, so no savings.
    assert described["TrainingTimeInSeconds"] == described["BillableTimeInSeconds"] == 42
    assert ledger.steps("arn:unknown") is None
    assert ledger.processing_job("nope") is None


def test_billable_time_is_at_least_a_second() -> None:
    assert billable_time_seconds(T0, T0) == 1
    assert billable_time_seconds(T0, T0 + timedelta(seconds=2.001)) == 3


def test_the_simulated_runner_reports_the_steps_it_stands_for() -> None:
    store = Store()
    runner = SimulatedPipelineRunner(store, delay_seconds=0.3)
    try:
        runner.set_outcome(status="Failed", reason="Step EvaluateOnDemand failed: boom", job_id="job-1")
        runner.execution_started(
            pipeline_arn="arn:aws:sagemaker:us-east-1:123456789012:pipeline/p",
            execution_arn=EXECUTION,
            display_name="job-1",
            parameters={
                "JobId": "job-1",
                "UseSpotInstances": "false",
                "ProcessingInstanceType": "ml.m5.large",
                "ProcessingInstanceCount": "1",
                "TrainingInstanceType": "ml.m5.4xlarge",
                "TrainingInstanceCount": "3",
            },
        )
        assert store.ended.wait(10)
    finally:
        runner.close()
    steps = runner.jobs.steps(EXECUTION, ascending=True) or []
    assert [(s["StepName"], s["StepStatus"]) for s in steps] == [
        ("Preprocess", "Succeeded"),
        ("TrainOnDemand", "Succeeded"),
        ("EvaluateOnDemand", "Failed"),
    ]
    assert steps[-1]["FailureReason"] == "Step EvaluateOnDemand failed: boom"
    assert {s["StepDisplayName"] for s in steps} == {SIMULATED_STEP}
    assert all(a["EndTime"] <= b["StartTime"] for a, b in itertools.pairwise(steps))
    train = runner.jobs.training_job(steps[1]["Metadata"]["TrainingJob"]["Arn"].rsplit("/", 1)[-1])
    assert train is not None
    assert train["ResourceConfig"]["InstanceType"] == "ml.m5.4xlarge"
    assert train["ResourceConfig"]["InstanceCount"] == 3
    assert train["EnableManagedSpotTraining"] is False
