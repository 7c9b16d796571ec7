"""Reading a build's results from SageMaker (and its evaluation report from S3): the only code that does.

Calls, each translated into typed values for ``controlplane.builds.results``:
- ListPipelineExecutionSteps (PipelineExecutionArn, every page, oldest first)
- DescribeProcessingJob / DescribeTrainingJob (by the job name in each step's Metadata ARN)
- DescribeModelPackage (the RegisterModel step's ARN), then GetObject of its ModelQuality statistics

A call that fails is named in ``unreadable`` and the rest is still read: results are a report of the
build, never a reason to hold its outcome back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from controlplane.builds.results import (
    PROCESSING,
    TRAINING,
    BuildResults,
    ComputeJob,
    ExecutionStep,
    ModelPackage,
    build_results,
    registered_package_arn,
)
from controlplane.core.clients import client
from controlplane.core.model import utc_now
from controlplane.observability import logger

_KNOWN_KINDS = (TRAINING, PROCESSING, "RegisterModel", "Model", "Condition", "Fail", "Lambda", "Callback")


@dataclass(slots=True)
class _Reading:
    unreadable: list[str] = field(default_factory=list)

    def failed(self, what: str, error: Exception) -> None:
        detail = error.response.get("Error", {}) if isinstance(error, ClientError) else {}
        code = str(detail.get("Code", type(error).__name__))
        self.unreadable.append(f"{what}: {code}")
        logger.warning("Could not read a build result", extra={"what": what, "error": str(error)})


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _name_from_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _step(entry: Mapping[str, Any]) -> ExecutionStep:
    metadata = entry.get("Metadata") or {}
    kind = next((name for name in _KNOWN_KINDS if name in metadata), next(iter(metadata), None))
    resource = metadata.get(kind, {}) if kind else {}
    arn = resource.get("Arn") if isinstance(resource, Mapping) else None
    reason = entry.get("FailureReason")
    return ExecutionStep(
        name=str(entry.get("StepName", "")),
        status=str(entry.get("StepStatus", "")),
        started=_time(entry.get("StartTime")),
        ended=_time(entry.get("EndTime")),
        failure_reason=str(reason) if reason else None,
        kind=kind,
        resource_arn=str(arn) if arn else None,
    )


def execution_steps(pipeline_execution_arn: str) -> list[ExecutionStep]:
    pages = (
        client("sagemaker")
        .get_paginator("list_pipeline_execution_steps")
        .paginate(PipelineExecutionArn=pipeline_execution_arn, SortOrder="Ascending")
    )
    return [_step(entry) for page in pages for entry in page.get("PipelineExecutionSteps", [])]


def processing_job(arn: str) -> ComputeJob:
    response = client("sagemaker").describe_processing_job(ProcessingJobName=_name_from_arn(arn))
    cluster = response.get("ProcessingResources", {}).get("ClusterConfig", {})
    return ComputeJob(
        arn=arn,
        instance_type=cluster.get("InstanceType"),
        instance_count=int(cluster.get("InstanceCount", 1)),
        started=_time(response.get("ProcessingStartTime")),
        ended=_time(response.get("ProcessingEndTime")),
    )


def training_job(arn: str) -> ComputeJob:
    response = client("sagemaker").describe_training_job(TrainingJobName=_name_from_arn(arn))
    resources = response.get("ResourceConfig", {})
    billable, trained = response.get("BillableTimeInSeconds"), response.get("TrainingTimeInSeconds")
    return ComputeJob(
        arn=arn,
        instance_type=resources.get("InstanceType"),
        instance_count=int(resources.get("InstanceCount", 1)),
        started=_time(response.get("TrainingStartTime")),
        ended=_time(response.get("TrainingEndTime")),
        billable_time_seconds=float(billable) if billable is not None else None,
        training_time_seconds=float(trained) if trained is not None else None,
        spot=bool(response.get("EnableManagedSpotTraining", False)),
    )


def model_package(arn: str) -> ModelPackage:
    response = client("sagemaker").describe_model_package(ModelPackageName=arn)
    containers = response.get("InferenceSpecification", {}).get("Containers", [])
    statistics = response.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    version = response.get("ModelPackageVersion")
    return ModelPackage(
        arn=str(response.get("ModelPackageArn", arn)),
        version=int(version) if version is not None else None,
        artifact_uri=containers[0].get("ModelDataUrl") if containers else None,
        metrics_uri=statistics.get("S3Uri"),
        approval_status=response.get("ModelApprovalStatus"),
    )


def json_document(uri: str) -> dict[str, Any]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError(f"{uri} is not a JSON object")
    return document


_READ_ERRORS = (ClientError, BotoCoreError, ValueError, KeyError)


def read(pipeline_execution_arn: str, *, pipeline_failure_reason: str | None = None) -> BuildResults:
    """Everything SageMaker says the execution produced and ran; what failed to read is in ``unreadable``."""
    reading = _Reading()
    steps: list[ExecutionStep] = []
    try:
        steps = execution_steps(pipeline_execution_arn)
    except _READ_ERRORS as error:
        reading.failed("ListPipelineExecutionSteps", error)
    jobs: dict[str, ComputeJob] = {}
    describe = {PROCESSING: processing_job, TRAINING: training_job}
    for step in steps:
        if step.kind not in describe or not step.resource_arn:
            continue
        try:
            jobs[step.resource_arn] = describe[step.kind](step.resource_arn)
        except _READ_ERRORS as error:
            reading.failed(f"Describe{step.kind} {_name_from_arn(step.resource_arn)}", error)
    package: ModelPackage | None = None
    report: dict[str, Any] | None = None
    if arn := registered_package_arn(steps):
        try:
            package = model_package(arn)
        except _READ_ERRORS as error:
            reading.failed(f"DescribeModelPackage {arn}", error)
    if package is not None and package.metrics_uri:
        try:
            report = json_document(package.metrics_uri)
        except _READ_ERRORS as error:
            reading.failed(f"GetObject {package.metrics_uri}", error)
    return build_results(
        steps,
        jobs,
        package,
        report,
        unreadable=reading.unreadable,
        read_at=utc_now(),
        pipeline_failure_reason=pipeline_failure_reason,
    )
