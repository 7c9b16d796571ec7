"""What a build produced, as SageMaker's own APIs report it: the rules that turn their answers into the
results recorded on the job (plain Python; ``results_store`` makes the calls).

Sources, per field:
- steps ............... ListPipelineExecutionSteps (name, status, start, end, failure reason, the job's ARN)
- instances, billing .. DescribeProcessingJob (ProcessingResources, ProcessingStart/EndTime) and
                        DescribeTrainingJob (ResourceConfig, BillableTimeInSeconds, TrainingTimeInSeconds)
- the model ........... the RegisterModel step's ARN -> DescribeModelPackage (version, the artifact URI in
                        InferenceSpecification, ModelMetrics.ModelQuality.Statistics: the evaluation report)
- metrics ............. the evaluation report that ModelQuality points to (what the registry shows)

Billable seconds are instance-seconds: a training job's BillableTimeInSeconds (per instance, wall clock,
already net of managed spot savings) times its InstanceCount; a processing job's run time (ProcessingEndTime -
ProcessingStartTime; processing has no spot) times its InstanceCount.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from pydantic import Field

from controlplane.core.model import CamelModel, format_timestamp

# Step types that run instances (and so bill), as ListPipelineExecutionSteps' Metadata names them.
PROCESSING: Final = "ProcessingJob"
TRAINING: Final = "TrainingJob"
REGISTER_MODEL: Final = "RegisterModel"
_FAILED_STEP_STATUSES: Final = frozenset({"Failed", "Stopped"})


@dataclass(frozen=True, slots=True)
class ExecutionStep:
    """One entry of ListPipelineExecutionSteps."""

    name: str
    status: str
    started: datetime | None
    ended: datetime | None
    failure_reason: str | None
    kind: str | None  # the Metadata key: ProcessingJob, TrainingJob, RegisterModel, Condition, Fail, ...
    resource_arn: str | None  # the job's or the model package's ARN, when the step made one


@dataclass(frozen=True, slots=True)
class ComputeJob:
    """A processing or training job as its Describe call reports it."""

    arn: str
    instance_type: str | None
    instance_count: int
    started: datetime | None
    ended: datetime | None
    # Training only: SageMaker's BillableTimeInSeconds and TrainingTimeInSeconds (per instance).
    billable_time_seconds: float | None = None
    training_time_seconds: float | None = None
    spot: bool = False


@dataclass(frozen=True, slots=True)
class ModelPackage:
    arn: str
    version: int | None
    artifact_uri: str | None
    metrics_uri: str | None  # ModelMetrics.ModelQuality.Statistics.S3Uri
    approval_status: str | None = None


class StepView(CamelModel):
    """One step of the build as recorded on the job."""

    name: str
    status: str
    started_at: str | None = None
    ended_at: str | None = None
    duration_seconds: float | None = None
    failure_reason: str | None = None
    job_arn: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    billable_seconds: float | None = Field(
        default=None, description="Instance-seconds SageMaker bills for this step's job"
    )
    spot: bool = False
    spot_savings_percent: float | None = Field(
        default=None, description="(1 - BillableTimeInSeconds / TrainingTimeInSeconds) x 100, training only"
    )


class ValidationMetric(CamelModel):
    name: str
    value: float


class BuildResults(CamelModel):
    """What the build produced and what it ran, read from SageMaker when its pipeline ended."""

    model_package_arn: str | None = None
    model_package_version: int | None = None
    model_artifact_uri: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    validation_metric: ValidationMetric | None = None
    steps: list[StepView] = Field(default_factory=list)
    billable_seconds: float = 0.0
    failed_step: str | None = None
    failure_reason: str | None = None
    # What could not be read (a call that failed): the results hold everything else.
    unreadable: list[str] = Field(default_factory=list)
    read_at: str

    def instance_seconds_by_type(self) -> dict[str, float]:
        """Billable instance-seconds per instance type (what the cost is priced from)."""
        seconds: dict[str, float] = {}
        for step in self.steps:
            if step.billable_seconds and step.instance_type:
                seconds[step.instance_type] = seconds.get(step.instance_type, 0.0) + step.billable_seconds
        return seconds


def _seconds(started: datetime | None, ended: datetime | None) -> float | None:
    if started is None or ended is None:
        return None
    return round(max((ended - started).total_seconds(), 0.0), 3)


def billable_seconds(job: ComputeJob) -> float | None:
    """Instance-seconds SageMaker bills for the job (module docstring)."""
    count = max(job.instance_count, 1)
    if job.billable_time_seconds is not None:
        return round(job.billable_time_seconds * count, 3)
    run = _seconds(job.started, job.ended)
    return None if run is None else round(run * count, 3)


def spot_savings_percent(job: ComputeJob) -> float | None:
    """SageMaker's formula: (1 - BillableTimeInSeconds / TrainingTimeInSeconds) x 100."""
    if not job.spot or not job.training_time_seconds or job.billable_time_seconds is None:
        return None
    return round((1 - job.billable_time_seconds / job.training_time_seconds) * 100, 2)


def step_view(step: ExecutionStep, job: ComputeJob | None) -> StepView:
    started = step.started or (job.started if job else None)
    ended = step.ended or (job.ended if job else None)
    return StepView(
        name=step.name,
        status=step.status,
        started_at=format_timestamp(started) if started else None,
        ended_at=format_timestamp(ended) if ended else None,
        duration_seconds=_seconds(started, ended),
        failure_reason=step.failure_reason,
        job_arn=step.resource_arn if step.kind in (PROCESSING, TRAINING) else None,
        instance_type=job.instance_type if job else None,
        instance_count=job.instance_count if job else None,
        billable_seconds=billable_seconds(job) if job else None,
        spot=job.spot if job else False,
        spot_savings_percent=spot_savings_percent(job) if job else None,
    )


def metrics_of(report: Mapping[str, Any] | None) -> tuple[dict[str, float], ValidationMetric | None]:
    """The metrics of an evaluation report (SageMaker model-quality JSON: ``<kind>_metrics: {name: {value}}``)
    and the one the pipeline gated on (``validation_metric``)."""
    if not report:
        return {}, None
    metrics: dict[str, float] = {}
    for section, entries in report.items():
        if not section.endswith("_metrics") or not isinstance(entries, Mapping):
            continue
        for name, entry in entries.items():
            value = entry.get("value") if isinstance(entry, Mapping) else entry
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics[str(name)] = float(value)
    gated = report.get("validation_metric")
    validation = None
    if isinstance(gated, Mapping) and isinstance(gated.get("value"), (int, float)):
        validation = ValidationMetric(name=str(gated.get("name", "")), value=float(gated["value"]))
    return metrics, validation


def failing_step(steps: Sequence[ExecutionStep]) -> ExecutionStep | None:
    """The step that ended the build: the first that failed or was stopped, in the order they started."""
    ended = [step for step in steps if step.status in _FAILED_STEP_STATUSES]
    return (
        min(ended, key=lambda step: (step.started is None, step.started or datetime.max)) if ended else None
    )


def build_results(
    steps: Sequence[ExecutionStep],
    jobs: Mapping[str, ComputeJob],
    package: ModelPackage | None,
    report: Mapping[str, Any] | None,
    *,
    unreadable: Sequence[str],
    read_at: str,
    pipeline_failure_reason: str | None = None,
) -> BuildResults:
    """The results of a build from what its calls returned (``jobs`` by ARN; what is missing stays empty)."""
    ordered = sorted(steps, key=lambda step: (step.started is None, step.started or datetime.max, step.name))
    views = [step_view(step, jobs.get(step.resource_arn or "")) for step in ordered]
    metrics, validation = metrics_of(report)
    failed = failing_step(ordered)
    return BuildResults(
        model_package_arn=package.arn if package else None,
        model_package_version=package.version if package else None,
        model_artifact_uri=package.artifact_uri if package else None,
        metrics=metrics,
        validation_metric=validation,
        steps=views,
        billable_seconds=round(sum(view.billable_seconds or 0.0 for view in views), 3),
        failed_step=failed.name if failed else None,
        failure_reason=(failed.failure_reason if failed else None) or pipeline_failure_reason,
        unreadable=list(unreadable),
        read_at=read_at,
    )


def registered_package_arn(steps: Sequence[ExecutionStep]) -> str | None:
    """The model package the build registered (its RegisterModel step's ARN), if it got that far."""
    for step in steps:
        if step.kind == REGISTER_MODEL and step.status == "Succeeded" and step.resource_arn:
            return step.resource_arn
    return None
