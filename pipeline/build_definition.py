"""Generate pipeline/definition.json: the shared tenant training pipeline, built with SageMaker SDK 2.x.

Run it in the separate build venv (requirements/pipeline-build.txt), never in the dev venv or a
Lambda package:  build/pipeline-venv/bin/python pipeline/build_definition.py [--check]

Why SDK 2.x: it builds the definition offline, with no credentials, takes a pipeline parameter as
the role of processing *and* training jobs, and lets tags reference parameters. 3.x rejects a
parameter as a training role and calls IAM/S3 while building.

The output is deterministic (sorted keys, no timestamps, no generated names) and region- and
account-free. It holds two placeholders that deploy fills in (functions/provision_pipeline):

- ``${PipelineCodeUri}``: s3://<artifacts bucket>/pipeline-code/<content hash>, where the step
  scripts are uploaded (``preprocess.py``, ``evaluate.py``, ``train/sourcedir.tar.gz``);
- ``${Region}``: the deploy region, for the training container's ``sagemaker_region``.

Shape (every job runs as the tenant's role, carries the cost tags and writes under ModelOutputUri):

    Preprocess ─▶ UseSpotCapacity ─┬ true ─▶ TrainSpot ─▶ EvaluateSpot ─▶ CheckMetricSpot ─┬▶ RegisterSpot
                                   │                                                       └▶ (Fail)
                                   └ false ▶ TrainOnDemand ─▶ EvaluateOnDemand ─▶ ...  (same tail)

(Fail) is MetricBelowThreshold<Spot|OnDemand>; the register step is named Register<...>-RegisterModel.

The tail is built twice because SageMaker rejects MaxWaitTimeInSeconds unless managed spot training
is on, and requires it when it is on: one training step cannot take UseSpotInstances as a parameter.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import json
import logging
import os
import socket
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

HERE = Path(__file__).resolve().parent
DEFINITION_PATH = HERE / "definition.json"
# The tag keys have one definition, in the shared layer (controlplane/core/tags.py: plain data).
_SHARED_LAYER = str(HERE.parent / "layers" / "shared")
if _SHARED_LAYER not in sys.path:
    sys.path.insert(0, _SHARED_LAYER)
from controlplane.core import tags as build_tags  # noqa: E402

# The names the state machine passes (docs/contracts.md), in that order.
PARAMETER_NAMES = (
    "TenantId",
    "Tier",
    "JobId",
    "TrainingDataUri",
    "ModelOutputUri",
    "TargetColumn",
    "ProblemType",
    "MetricThreshold",
    "ProcessingInstanceType",
    "ProcessingInstanceCount",
    "TrainingInstanceType",
    "TrainingInstanceCount",
    "TenantRoleArn",
    "ModelPackageGroupName",
    "TrainingImageUri",
    "UseSpotInstances",
    "MaxRuntimeSeconds",
)
CODE_URI_PLACEHOLDER = "${PipelineCodeUri}"
REGION_PLACEHOLDER = "${Region}"
PROBLEM_TYPES = ("binary_classification", "regression")
# Each build tag's value is a pipeline parameter: on every job (Tags) and on the registered model version
# (CustomerMetadataProperties: a version in a group cannot carry tags, see controlplane/core/tags.py).
COST_TAG_PARAMETERS = dict(zip(build_tags.BUILD_TAGS, ("TenantId", "Tier", "JobId"), strict=True))

# The vendor's algorithm settings: fixed for every tenant (not pipeline parameters).
ALGORITHM_HYPERPARAMETERS = {
    "max_iter": "300",
    "learning_rate": "0.1",
    "max_leaf_nodes": "31",
    "min_samples_leaf": "20",
    "l2_regularization": "0.0",
    "seed": "0",
}

# Stand-ins the SDK accepts while building (it wants s3:// URIs and a real region); replaced by the
# placeholders above in the output. Neither can occur in a real definition.
_CODE_SENTINEL = "s3://mlaas-pipeline-code-sentinel.invalid/code"
_BUILD_REGION = "us-east-1"
# An explicit SDK config: no user/admin config file can add defaults (tags, VPC, KMS keys) to the
# definition, and no telemetry request is attempted.
_SDK_CONFIG: dict[str, Any] = {
    "SchemaVersion": "1.0",
    "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
}
_OFFLINE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "offline-build",
    "AWS_SECRET_ACCESS_KEY": "offline-build",
    "AWS_DEFAULT_REGION": _BUILD_REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_PROCESSING = "/opt/ml/processing"


@contextlib.contextmanager
def _offline() -> Iterator[None]:
    """The build must need no network and no credentials: any connection attempt fails it."""

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("building the pipeline definition tried to open a network connection")

    original = socket.socket.connect
    socket.socket.connect = refuse  # type: ignore[assignment,method-assign]
    try:
        yield
    finally:
        socket.socket.connect = original  # type: ignore[method-assign]


def _build(stack: contextlib.ExitStack[bool | None]) -> dict[str, Any]:
    # Imported here: the SDK exists only in the build venv; tests import this module without it.
    import boto3  # noqa: PLC0415

    # The SDK re-validates its config against a JSON schema on every lookup (~0.4 s each, ~100 per
    # build). Validate the one config once, then skip the repeats; a missing name fails loudly.
    import sagemaker.utils  # noqa: PLC0415
    from sagemaker.config import validate_sagemaker_config  # noqa: PLC0415
    from sagemaker.estimator import Estimator  # noqa: PLC0415
    from sagemaker.model_metrics import MetricsSource, ModelMetrics  # noqa: PLC0415
    from sagemaker.processing import ProcessingInput, ProcessingOutput, ScriptProcessor  # noqa: PLC0415
    from sagemaker.workflow.condition_step import ConditionStep  # noqa: PLC0415
    from sagemaker.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo  # noqa: PLC0415
    from sagemaker.workflow.fail_step import FailStep  # noqa: PLC0415
    from sagemaker.workflow.functions import Join, JsonGet  # noqa: PLC0415
    from sagemaker.workflow.parameters import (  # noqa: PLC0415
        ParameterBoolean,
        ParameterFloat,
        ParameterInteger,
        ParameterString,
    )
    from sagemaker.workflow.pipeline import Pipeline  # noqa: PLC0415
    from sagemaker.workflow.pipeline_context import PipelineSession  # noqa: PLC0415
    from sagemaker.workflow.properties import PropertyFile  # noqa: PLC0415
    from sagemaker.workflow.step_collections import RegisterModel  # noqa: PLC0415
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep  # noqa: PLC0415

    logging.getLogger("sagemaker.config").setLevel(logging.ERROR)  # it resets its level on import
    validate_sagemaker_config(_SDK_CONFIG)
    stack.enter_context(mock.patch.object(sagemaker.utils, "validate_sagemaker_config", return_value=None))

    session = PipelineSession(
        boto_session=boto3.Session(),
        default_bucket="mlaas-sdk-default-bucket-unused.invalid",
        sagemaker_config=_SDK_CONFIG,
    )

    # Tenant-specific values have no default: a start without them is rejected by SageMaker.
    tenant_id = ParameterString("TenantId")
    tier = ParameterString("Tier")
    job_id = ParameterString("JobId")
    training_data_uri = ParameterString("TrainingDataUri")
    model_output_uri = ParameterString("ModelOutputUri")  # job-scoped, ends with "/"
    target_column = ParameterString("TargetColumn")
    problem_type = ParameterString("ProblemType", enum_values=list(PROBLEM_TYPES))
    metric_threshold = ParameterFloat("MetricThreshold")
    tenant_role_arn = ParameterString("TenantRoleArn")
    model_package_group_name = ParameterString("ModelPackageGroupName")
    image_uri = ParameterString("TrainingImageUri")
    # Capacity knobs default to the basic tier; the state machine always passes the tier's values.
    processing_instance_type = ParameterString("ProcessingInstanceType", default_value="ml.m5.large")
    processing_instance_count = ParameterInteger("ProcessingInstanceCount", default_value=1)
    training_instance_type = ParameterString("TrainingInstanceType", default_value="ml.m5.large")
    training_instance_count = ParameterInteger("TrainingInstanceCount", default_value=1)
    use_spot_instances = ParameterBoolean("UseSpotInstances", default_value=True)
    max_runtime_seconds = ParameterInteger("MaxRuntimeSeconds", default_value=3600)
    parameters = {
        parameter.name: parameter
        for parameter in (
            tenant_id,
            tier,
            job_id,
            training_data_uri,
            model_output_uri,
            target_column,
            problem_type,
            metric_threshold,
            processing_instance_type,
            processing_instance_count,
            training_instance_type,
            training_instance_count,
            tenant_role_arn,
            model_package_group_name,
            image_uri,
            use_spot_instances,
            max_runtime_seconds,
        )
    }

    def cost_tags() -> list[dict[str, Any]]:
        return [{"Key": key, "Value": parameters[name]} for key, name in COST_TAG_PARAMETERS.items()]

    def under_output(path: str) -> Any:
        return Join(on="", values=[model_output_uri, path])

    def processor() -> Any:
        # The algorithm's container (scikit-learn 1.2-1) also runs the processing scripts.
        return ScriptProcessor(
            image_uri=image_uri,
            command=["python3"],
            role=tenant_role_arn,
            instance_type=processing_instance_type,
            instance_count=processing_instance_count,
            # The input (up to the premium tier's 50 GiB) and its three splits, on the volume at once.
            volume_size_in_gb=128,
            max_runtime_in_seconds=max_runtime_seconds,
            sagemaker_session=session,
            tags=cost_tags(),
        )

    preprocess = ProcessingStep(
        name="Preprocess",
        description="Check the dataset's columns and split it into train, validation and test.",
        step_args=processor().run(
            code=f"{_CODE_SENTINEL}/preprocess.py",
            inputs=[
                ProcessingInput(
                    input_name="dataset", source=training_data_uri, destination=f"{_PROCESSING}/input/data"
                )
            ],
            outputs=[
                ProcessingOutput(
                    output_name=name,
                    source=f"{_PROCESSING}/output/{name}",
                    destination=under_output(f"preprocess/{name}"),
                )
                for name in ("train", "validation", "test", "report")
            ],
            arguments=[
                "--target-column",
                target_column,
                "--problem-type",
                problem_type,
                "--input-dir",
                f"{_PROCESSING}/input/data",
                "--output-dir",
                f"{_PROCESSING}/output",
            ],
        ),
    )
    splits = preprocess.properties.ProcessingOutputConfig.Outputs

    def tail(suffix: str, spot: bool) -> list[Any]:
        """Train → evaluate → check the metric → register or fail, on spot or on-demand capacity."""
        estimator = Estimator(
            image_uri=image_uri,
            role=tenant_role_arn,
            instance_type=training_instance_type,
            instance_count=training_instance_count,
            # The train and validation channels (about 85 % of a 50 GiB dataset), copied in File mode.
            volume_size=64,
            max_run=max_runtime_seconds,
            use_spot_instances=spot,
            max_wait=max_runtime_seconds if spot else None,
            output_path=under_output("training"),
            sagemaker_session=session,
            tags=cost_tags(),
            disable_profiler=True,
            debugger_hook_config=False,
            # Script mode of the scikit-learn container: it downloads and runs train.py.
            hyperparameters={
                "sagemaker_program": json.dumps("train.py"),
                "sagemaker_submit_directory": json.dumps(f"{_CODE_SENTINEL}/train/sourcedir.tar.gz"),
                "sagemaker_region": json.dumps(REGION_PLACEHOLDER),
                "sagemaker_container_log_level": "20",
                "target_column": target_column,
                "problem_type": problem_type,
                **ALGORITHM_HYPERPARAMETERS,
            },
        )
        train = TrainingStep(
            name=f"Train{suffix}",
            description=f"Fit the vendor's gradient boosting model ({'spot' if spot else 'on-demand'}).",
            step_args=estimator.fit(
                inputs={
                    "train": splits["train"].S3Output.S3Uri,
                    "validation": splits["validation"].S3Output.S3Uri,
                }
            ),
        )
        report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
        evaluate = ProcessingStep(
            name=f"Evaluate{suffix}",
            description="Score the model on the held-out test split.",
            property_files=[report],
            step_args=processor().run(
                code=f"{_CODE_SENTINEL}/evaluate.py",
                inputs=[
                    ProcessingInput(
                        input_name="model",
                        source=train.properties.ModelArtifacts.S3ModelArtifacts,
                        destination=f"{_PROCESSING}/model",
                    ),
                    ProcessingInput(
                        input_name="test",
                        source=splits["test"].S3Output.S3Uri,
                        destination=f"{_PROCESSING}/test",
                    ),
                ],
                outputs=[
                    ProcessingOutput(
                        output_name="evaluation",
                        source=f"{_PROCESSING}/evaluation",
                        destination=under_output("evaluation"),
                    )
                ],
                arguments=[
                    "--model-dir",
                    f"{_PROCESSING}/model",
                    "--test-dir",
                    f"{_PROCESSING}/test",
                    "--output-dir",
                    f"{_PROCESSING}/evaluation",
                ],
            ),
        )
        metric_name = JsonGet(
            step_name=evaluate.name, property_file=report, json_path="validation_metric.name"
        )
        metric_value = JsonGet(
            step_name=evaluate.name, property_file=report, json_path="validation_metric.value"
        )
        evaluation_uri = Join(
            on="/",
            values=[
                evaluate.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri,
                "evaluation.json",
            ],
        )
        register = RegisterModel(
            name=f"Register{suffix}",  # the SDK names the step "Register<suffix>-RegisterModel"
            description="Register the tenant's model version, pending manual approval.",
            estimator=estimator,
            model_data=train.properties.ModelArtifacts.S3ModelArtifacts,
            image_uri=image_uri,  # the scikit-learn container also serves the model
            content_types=["text/csv"],
            response_types=["text/csv"],
            inference_instances=["ml.m5.large", "ml.m5.xlarge"],
            transform_instances=["ml.m5.large", "ml.m5.xlarge"],
            model_package_group_name=model_package_group_name,
            approval_status="PendingManualApproval",
            model_metrics=ModelMetrics(
                model_statistics=MetricsSource(s3_uri=evaluation_uri, content_type="application/json")
            ),
            customer_metadata_properties={key: parameters[name] for key, name in COST_TAG_PARAMETERS.items()},
        )
        below = FailStep(
            name=f"MetricBelowThreshold{suffix}",
            description="The model is not registered: its metric is below the tenant's threshold.",
            error_message=Join(
                on="",
                values=[
                    "Model not registered: its validation metric ",
                    metric_name,
                    " is ",
                    metric_value,
                    ", below the tenant's threshold of ",
                    metric_threshold,
                    ".",
                ],
            ),
        )
        check = ConditionStep(
            name=f"CheckMetric{suffix}",
            description="Register only a model whose validation metric reaches the tenant's threshold.",
            conditions=[ConditionGreaterThanOrEqualTo(left=metric_value, right=metric_threshold)],
            if_steps=[register],
            else_steps=[below],
        )
        return [train, evaluate, check]

    choose_capacity = ConditionStep(
        name="UseSpotCapacity",
        description="Train on managed spot capacity when the tier allows it.",
        conditions=[ConditionEquals(left=use_spot_instances, right=True)],
        if_steps=tail("Spot", spot=True),
        else_steps=tail("OnDemand", spot=False),
    )
    pipeline = Pipeline(
        name="mlaas-tenant-training",  # not in the definition: the stack names the pipeline
        parameters=list(parameters.values()),
        steps=[preprocess, choose_capacity],
        sagemaker_session=session,
        # No experiment/trial per execution: one per tenant job would pile up thousands of them.
        pipeline_experiment_config=None,
    )
    definition: dict[str, Any] = json.loads(pipeline.definition())
    return definition


def _placeholders(text: str) -> str:
    return text.replace(_CODE_SENTINEL, CODE_URI_PLACEHOLDER)


def render(definition: dict[str, Any]) -> str:
    """The committed form: sorted keys, two-space indent, trailing newline, placeholders in."""
    text = _placeholders(json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False)) + "\n"
    if _BUILD_REGION in text or ".invalid" in text:
        raise RuntimeError("the definition still names the build region or a build-time stand-in")
    return text


def build_text() -> str:
    # Quiet the SDK's v2 deprecation banner, its INFO lines and its notes on fields a pipeline fills
    # in at run time (job names): none of them is a build problem.
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    for name in ("sagemaker", "sagemaker.config", "botocore"):
        logging.getLogger(name).setLevel(logging.ERROR)
    with contextlib.ExitStack() as stack, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Running within a PipelineSession")
        # The SDK creates boto3 clients of its own (e.g. for TensorBoard); they must find these dummy
        # credentials, never a developer's profile nor the instance metadata service.
        stack.enter_context(mock.patch.dict(os.environ, _OFFLINE_ENVIRONMENT))
        stack.enter_context(_offline())
        return render(_build(stack))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=DEFINITION_PATH)
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs from a fresh build; write nothing"
    )
    args = parser.parse_args(argv)
    text = build_text()
    if args.check:
        current = args.output.read_text() if args.output.exists() else ""
        if current == text:
            print(f"{args.output} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(), text.splitlines(), "committed", "regenerated", lineterm="", n=1
        )
        print("\n".join(list(diff)[:80]), file=sys.stderr)
        print(f"{args.output} is stale: regenerate it (see pipeline/README.md)", file=sys.stderr)
        return 1
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
