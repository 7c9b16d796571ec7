"""The whole pipeline, end to end, on moto's in-process S3 and SageMaker.

The code gets to S3 and the pipeline to SageMaker the way a deploy does it (the provision_pipeline
custom resource's own functions); the executor then runs the definition SageMaker stored, with the
parameter values as the state machine sends them (all strings).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pipeline_testing import in_process_aws, load_provisioner, write_dataset

from localcloud.pipeline_executor import ExecutingPipelineRunner, PipelineExecutor
from localcloud.pipeline_runner import ExecutionNotStoppableError, StatusChange

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "mlaas-artifacts"
TENANT, JOB, GROUP = "acme", "job-" + "0123456789abcdef" * 4, "acme-models"
JOB_PREFIX = f"tenants/{TENANT}/jobs/{JOB}/"
PIPELINE = "mlaas-test-tenant-training"
ROLE = "arn:aws:iam::123456789012:role/mlaas-tenants/mlaas-tenant-acme"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"


PROVISIONER = load_provisioner()


def parameters(**overrides: str) -> dict[str, str]:
    """What the state machine passes: every value a string (States.Format for numbers and booleans)."""
    values = {
        "TenantId": TENANT,
        "Tier": "basic",
        "JobId": JOB,
        "TrainingDataUri": f"s3://{BUCKET}/{JOB_PREFIX}input/dataset.csv",
        "ModelOutputUri": f"s3://{BUCKET}/{JOB_PREFIX}model/",
        "TargetColumn": "target",
        "ProblemType": "binary_classification",
        "MetricThreshold": "0.7",
        "ProcessingInstanceType": "ml.m5.large",
        "ProcessingInstanceCount": "1",
        "TrainingInstanceType": "ml.m5.large",
        "TrainingInstanceCount": "1",
        "TenantRoleArn": ROLE,
        "ModelPackageGroupName": GROUP,
        "TrainingImageUri": IMAGE,
        "UseSpotInstances": "true",
        "MaxRuntimeSeconds": "600",
    }
    values.update(overrides)
    return values


class Account:
    """moto's S3 and SageMaker with the artifacts bucket, the tenant's group and the deployed pipeline."""

    def __init__(self, bundle: Path) -> None:
        self.s3 = boto3.client("s3", region_name="us-east-1")
        self.sagemaker = boto3.client("sagemaker", region_name="us-east-1")
        self.s3.create_bucket(Bucket=BUCKET)
        self.sagemaker.create_model_package_group(ModelPackageGroupName=GROUP)
        self.provisioned = PROVISIONER.provision(
            {"PipelineName": PIPELINE, "PipelineRoleArn": ROLE, "CodeBucket": BUCKET},
            region="us-east-1",
            bundle=bundle,
            s3=self.s3,
            sagemaker=self.sagemaker,
        )

    def upload_dataset(self, path: Path) -> None:
        self.s3.upload_file(str(path), BUCKET, f"{JOB_PREFIX}input/dataset.csv")

    def definition(self) -> str:
        text: str = self.sagemaker.describe_pipeline(PipelineName=PIPELINE)["PipelineDefinition"]
        return text

    def object_keys(self) -> list[str]:
        return sorted(item["Key"] for item in self.s3.list_objects_v2(Bucket=BUCKET).get("Contents", []))

    def json_object(self, uri: str) -> Any:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        return json.loads(self.s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def run(self, values: dict[str, str], **executor_options: Any) -> Any:
        executor = PipelineExecutor(s3_client=self.s3, sagemaker_client=self.sagemaker, **executor_options)
        return executor.run(self.definition(), values, pipeline_name=PIPELINE, execution_id="exec1")


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with in_process_aws(monkeypatch):
        yield


@pytest.fixture
def account(aws: None) -> Account:
    return Account(ROOT / "pipeline")


def test_a_good_dataset_becomes_a_registered_model_version(account: Account, tmp_path: Path) -> None:
    account.upload_dataset(write_dataset(tmp_path / "dataset.csv", kind="classification"))
    result = account.run(parameters())

    assert result.status == "Succeeded", result.failure_reason
    assert [(step.name, step.status) for step in result.steps] == [
        ("Preprocess", "Succeeded"),
        ("UseSpotCapacity", "Succeeded"),
        ("TrainSpot", "Succeeded"),
        ("EvaluateSpot", "Succeeded"),
        ("CheckMetricSpot", "Succeeded"),
        ("RegisterSpot-RegisterModel", "Succeeded"),
    ]
    packages = account.sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"]
    assert [package["ModelPackageArn"] for package in packages] == [result.model_package_arn]
    package = account.sagemaker.describe_model_package(ModelPackageName=result.model_package_arn)
    assert package["ModelApprovalStatus"] == "PendingManualApproval"
    assert package["CustomerMetadataProperties"] == {
        "mlaas:tenant": TENANT,
        "mlaas:tier": "basic",
        "mlaas:job": JOB,
    }

    # The registered metrics are the evaluation step's output, and the executor reports them.
    evaluation_uri = f"s3://{BUCKET}/{JOB_PREFIX}model/evaluation/evaluation.json"
    statistics = package["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics == {"ContentType": "application/json", "S3Uri": evaluation_uri}
    evaluation = account.json_object(evaluation_uri)
    assert account.json_object(statistics["S3Uri"]) == evaluation == result.metrics
    assert result.property_files == {"EvaluateSpot.EvaluationReport": evaluation}
    assert evaluation["validation_metric"]["name"] == "auc"
    assert evaluation["validation_metric"]["value"] >= 0.7

    # The model the registry points to is the training container's model.tar.gz.
    model_url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert model_url.startswith(f"s3://{BUCKET}/{JOB_PREFIX}model/training/pipelines-exec1-TrainSpot-")
    bucket, _, key = model_url.removeprefix("s3://").partition("/")
    payload = account.s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
        assert sorted(archive.getnames()) == ["model.joblib", "model_metadata.json"]

    # Everything the execution wrote is under the job's own model output prefix.
    code_prefix = account.provisioned["CodeUri"].removeprefix(f"s3://{BUCKET}/") + "/"
    written = [k for k in account.object_keys() if not k.startswith((code_prefix, f"{JOB_PREFIX}input/"))]
    assert written
    assert all(key.startswith(f"{JOB_PREFIX}model/") for key in written)


def test_a_model_below_the_threshold_fails_with_the_metric_and_the_threshold(
    account: Account, tmp_path: Path
) -> None:
    account.upload_dataset(write_dataset(tmp_path / "dataset.csv", kind="noise"))
    result = account.run(parameters(UseSpotInstances="false", MetricThreshold="0.75"))

    assert result.status == "Failed"
    value = result.metrics["validation_metric"]["value"]
    assert value < 0.75
    assert result.failure_reason == (
        f"Model not registered: its validation metric auc is {value}, below the tenant's threshold of 0.75."
    )
    assert [(step.name, step.status) for step in result.steps][-3:] == [
        ("EvaluateOnDemand", "Succeeded"),
        ("CheckMetricOnDemand", "Succeeded"),
        ("MetricBelowThresholdOnDemand", "Failed"),
    ]
    assert result.model_package_arn is None
    assert account.sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"] == []


def test_a_failing_training_script_fails_the_execution_with_its_error(aws: None, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(ROOT / "pipeline", bundle, ignore=shutil.ignore_patterns("__pycache__"))
    (bundle / "steps" / "train.py").write_text(
        "import os, sys\n"
        "message = 'the vendor algorithm ran out of memory'\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write(message)\n"
        "print('train: error: ' + message, file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    account = Account(bundle)
    account.upload_dataset(write_dataset(tmp_path / "dataset.csv"))
    result = account.run(parameters())

    assert result.status == "Failed"
    assert result.failure_reason == (
        "Step TrainSpot failed: AlgorithmError: the vendor algorithm ran out of memory (exit code 3)"
    )
    assert [(step.name, step.status) for step in result.steps] == [
        ("Preprocess", "Succeeded"),
        ("UseSpotCapacity", "Succeeded"),
        ("TrainSpot", "Failed"),
    ]
    assert result.model_package_arn is None


def test_a_failing_processing_script_reports_its_stderr(account: Account, tmp_path: Path) -> None:
    dataset = tmp_path / "dataset.csv"
    dataset.write_text("a,b\n1,2\n")
    account.upload_dataset(dataset)
    result = account.run(parameters())
    assert result.status == "Failed"
    assert result.failure_reason == (
        "Step Preprocess failed: AlgorithmError: preprocess: error: the target column 'target' is not in "
        "the header (a, b) (exit code 1)"
    )


def test_parameters_are_checked_like_start_pipeline_execution(account: Account) -> None:
    unknown = account.run({**parameters(), "Colour": "blue"})
    assert (unknown.status, unknown.failure_reason) == (
        "Failed",
        "parameters not declared by the pipeline: Colour",
    )
    values = parameters()
    del values["TenantRoleArn"]
    missing = account.run(values)
    assert missing.failure_reason == "the pipeline parameter TenantRoleArn has no value and no default"
    bad = account.run(parameters(ProblemType="multiclass"))
    assert bad.failure_reason is not None
    assert "ProblemType is 'multiclass', not one of" in bad.failure_reason
    assert account.run(parameters(TrainingInstanceCount="two")).failure_reason == (
        "the pipeline parameter TrainingInstanceCount is 'two', not a Integer"
    )
    assert all(not result.steps for result in (unknown, missing, bad))


def test_unsupported_step_types_fail_before_anything_runs(aws: None) -> None:
    definition = {
        "Version": "2020-12-01",
        "Parameters": [],
        "Steps": [
            {"Name": "Announce", "Type": "Fail", "Arguments": {"ErrorMessage": "never reached"}},
            {"Name": "CallLambda", "Type": "Lambda", "Arguments": {}},
        ],
    }
    executor = PipelineExecutor(s3_client=boto3.client("s3"), sagemaker_client=boto3.client("sagemaker"))
    result = executor.run(definition)
    assert result.status == "Failed"
    assert result.failure_reason == (
        "Step 'CallLambda' has type 'Lambda', which the local pipeline executor does not run "
        "(it runs Processing, Training, Condition, RegisterModel, Fail)"
    )
    assert result.steps == ()


def test_conditions_joins_and_execution_variables(aws: None) -> None:
    """A definition without jobs: conditions choose branches, Fail renders its Std:Join message."""
    definition = {
        "Version": "2020-12-01",
        "Parameters": [
            {"Name": "Score", "Type": "Float"},
            {"Name": "Tier", "Type": "String", "DefaultValue": "basic"},
            {"Name": "Spot", "Type": "Boolean", "DefaultValue": False},
        ],
        "Steps": [
            {
                "Name": "Gate",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "In",
                            "QueryValue": {"Get": "Parameters.Tier"},
                            "Values": ["basic", "standard"],
                        },
                        {
                            "Type": "Not",
                            "Expression": {
                                "Type": "Equals",
                                "LeftValue": {"Get": "Parameters.Spot"},
                                "RightValue": True,
                            },
                        },
                        {
                            "Type": "Or",
                            "Conditions": [
                                {
                                    "Type": "LessThan",
                                    "LeftValue": {"Get": "Parameters.Score"},
                                    "RightValue": 0.5,
                                },
                                {
                                    "Type": "GreaterThan",
                                    "LeftValue": {"Get": "Parameters.Score"},
                                    "RightValue": 0.9,
                                },
                            ],
                        },
                    ],
                    "IfSteps": [
                        {
                            "Name": "Explain",
                            "Type": "Fail",
                            "Arguments": {
                                "ErrorMessage": {
                                    "Std:Join": {
                                        "On": " ",
                                        "Values": [
                                            {"Get": "Execution.PipelineName"},
                                            {"Get": "Parameters.Tier"},
                                            {"Get": "Parameters.Score"},
                                            {"Get": "Parameters.Spot"},
                                            {"Get": "Steps.Gate.Outcome"},
                                        ],
                                    }
                                }
                            },
                        }
                    ],
                    "ElseSteps": [{"Name": "Never", "Type": "Fail", "Arguments": {"ErrorMessage": "else"}}],
                },
            }
        ],
    }
    executor = PipelineExecutor(s3_client=boto3.client("s3"), sagemaker_client=boto3.client("sagemaker"))
    chosen = executor.run(definition, {"Score": "0.95"}, pipeline_name="gates")
    assert chosen.failure_reason == "gates basic 0.95 false true"
    other = executor.run(definition, [{"Name": "Score", "Value": "0.7"}], pipeline_name="gates")
    assert other.failure_reason == "else"
    assert [step.name for step in other.steps] == ["Gate", "Never"]


def test_a_stop_request_ends_the_execution_stopped(account: Account, tmp_path: Path) -> None:
    account.upload_dataset(write_dataset(tmp_path / "dataset.csv"))
    cancel = threading.Event()
    seen: list[str] = []

    def stop_after_preprocess(step: Any) -> None:
        seen.append(step.name)
        cancel.set()

    executor = PipelineExecutor(
        s3_client=account.s3, sagemaker_client=account.sagemaker, on_step=stop_after_preprocess
    )
    result = executor.run(account.definition(), parameters(), cancel=cancel)
    assert (result.status, seen) == ("Stopped", ["Preprocess"])


class RecordingStore:
    """Collects the status changes the emulator's store would write and announce."""

    def __init__(self) -> None:
        self.changes: list[StatusChange] = []
        self.ended = threading.Event()

    def record(self, change: StatusChange) -> None:
        self.changes.append(change)
        if change.end_time is not None:
            self.ended.set()


def start_execution(account: Account, values: dict[str, str]) -> str:
    arn: str = account.sagemaker.start_pipeline_execution(
        PipelineName=PIPELINE,
        PipelineExecutionDisplayName=JOB,
        PipelineParameters=[{"Name": name, "Value": value} for name, value in values.items()],
    )["PipelineExecutionArn"]
    return arn


def test_the_emulator_runner_reports_status_changes_of_real_runs(account: Account, tmp_path: Path) -> None:
    account.upload_dataset(write_dataset(tmp_path / "dataset.csv"))
    store = RecordingStore()
    runner = ExecutingPipelineRunner(store, s3_client=account.s3, sagemaker_client=account.sagemaker)
    values = parameters()
    arn = start_execution(account, values)
    pipeline_arn = account.provisioned["PipelineArn"]
    runner.execution_started(
        pipeline_arn=pipeline_arn, execution_arn=arn, display_name=JOB, parameters=values
    )
    assert store.ended.wait(120)
    runner.close()
    assert [(c.previous_status, c.current_status, c.failure_reason) for c in store.changes] == [
        (None, "Executing", None),
        ("Executing", "Succeeded", None),
    ]
    assert runner.status(arn) == "Succeeded"
    with pytest.raises(ExecutionNotStoppableError):
        runner.stop_requested(arn)
    assert (
        len(account.sagemaker.list_model_packages(ModelPackageGroupName=GROUP)["ModelPackageSummaryList"])
        == 1
    )


def test_the_emulator_runner_stops_a_running_execution(account: Account, tmp_path: Path) -> None:
    account.upload_dataset(write_dataset(tmp_path / "dataset.csv"))
    store = RecordingStore()
    runner = ExecutingPipelineRunner(store, s3_client=account.s3, sagemaker_client=account.sagemaker)
    values = parameters()
    arn = start_execution(account, values)
    runner.execution_started(
        pipeline_arn=account.provisioned["PipelineArn"],
        execution_arn=arn,
        display_name=JOB,
        parameters=values,
    )
    runner.stop_requested(arn)
    assert store.ended.wait(60)
    runner.close()
    assert [change.current_status for change in store.changes] == ["Executing", "Stopping", "Stopped"]
    assert store.changes[-1].failure_reason is None
