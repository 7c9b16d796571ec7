"""What the emulator's pipeline runners ran, answered as SageMaker's own APIs answer it.

moto 5.2.5 has no ListPipelineExecutionSteps, and its DescribeProcessingJob / DescribeTrainingJob describe
only jobs created through CreateProcessingJob / CreateTrainingJob, as `Completed` at creation, with no
instances (processing) and start = end = creation time. A pipeline's steps create their jobs inside
SageMaker, so moto never hears of them. This ledger records, as each step of a run starts and ends:

- the step (ListPipelineExecutionSteps: StepName, StepStatus, StartTime, EndTime, FailureReason, Metadata
  with the job's or the model package's ARN);
- its processing or training job (DescribeProcessingJob: ProcessingResources, ProcessingStartTime/EndTime,
  status; DescribeTrainingJob: ResourceConfig, TrainingStartTime/EndTime, TrainingTimeInSeconds,
  BillableTimeInSeconds, EnableManagedSpotTraining, ModelArtifacts).

Times are the runs' own. BillableTimeInSeconds is the job's wall-clock seconds per instance, rounded up
(SageMaker reports whole seconds; the bill is that times InstanceCount). There is no spot market on this
machine: a spot training job is billed for its whole run, so its savings are 0 (SageMaker reports fewer
billable seconds when spot capacity was cheaper). localcloud.patches serves these answers.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

PROCESSING_JOB: Final = "ProcessingJob"
TRAINING_JOB: Final = "TrainingJob"
_JOB_STATUS: Final = {
    "Succeeded": "Completed",
    "Failed": "Failed",
    "Stopped": "Stopped",
    "Executing": "InProgress",
}


@dataclass
class _Step:
    name: str
    status: str
    started: datetime
    ended: datetime | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    display_name: str | None = None

    def entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "StepName": self.name,
            "StepStatus": self.status,
            "StartTime": self.started,
            "Metadata": self.metadata,
            "AttemptCount": 1,
        }
        if self.display_name:
            entry["StepDisplayName"] = self.display_name
        if self.ended is not None:
            entry["EndTime"] = self.ended
        if self.failure_reason:
            entry["FailureReason"] = self.failure_reason
        return entry


def billable_time_seconds(started: datetime, ended: datetime) -> int:
    """Whole seconds per instance, rounded up (at least 1: a job that ran was billed)."""
    return max(1, math.ceil((ended - started).total_seconds()))


class SageMakerJobLedger:
    """Thread-safe record of the steps and jobs of every execution a runner ran (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._steps: dict[str, list[_Step]] = {}
        self._processing: dict[str, dict[str, Any]] = {}
        self._training: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ what the runners record
    def step_started(
        self, execution_arn: str, name: str, *, started: datetime, display_name: str | None = None
    ) -> None:
        with self._lock:
            self._steps.setdefault(execution_arn, []).append(
                _Step(name, "Executing", started, display_name=display_name)
            )

    def job_started(self, execution_arn: str, step_name: str, *, kind: str, job: Mapping[str, Any]) -> None:
        """The step created its processing or training job (``job``: its resolved request, with its name
        and ARN): the step's Metadata names it, and Describe<kind> answers InProgress."""
        with self._lock:
            step = self._step(execution_arn, step_name)
            if step is None:
                return
            step.metadata[kind] = {"Arn": str(job[f"{kind}Arn"])}
            self._record_job(kind, job, status="Executing", started=step.started, ended=None)

    def _step(self, execution_arn: str, name: str) -> _Step | None:
        return next(
            (item for item in reversed(self._steps.get(execution_arn, [])) if item.name == name), None
        )

    def step_ended(
        self,
        execution_arn: str,
        name: str,
        *,
        status: str,
        ended: datetime,
        failure_reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        job_kind: str | None = None,
        job: Mapping[str, Any] | None = None,
    ) -> None:
        """The step ended ``status`` (Succeeded, Failed, Stopped); ``metadata`` adds to its Metadata (e.g.
        RegisterModel's ARN, a Condition's outcome); ``job`` updates its job (e.g. its model artifacts)."""
        with self._lock:
            step = self._step(execution_arn, name)
            if step is None:
                return
            step.status, step.ended, step.failure_reason = status, ended, failure_reason
            step.metadata.update(metadata or {})
            if job_kind and job:
                self._record_job(job_kind, job, status=status, started=step.started, ended=ended)

    def _record_job(
        self,
        kind: str,
        job: Mapping[str, Any],
        *,
        status: str,
        started: datetime,
        ended: datetime | None,
    ) -> None:
        job_status = _JOB_STATUS.get(status, status)
        if kind == PROCESSING_JOB:
            name = str(job["ProcessingJobName"])
            record = self._processing.setdefault(name, {})
            record.update(
                {
                    key: job[key]
                    for key in (
                        "ProcessingJobName",
                        "ProcessingJobArn",
                        "ProcessingInputs",
                        "ProcessingOutputConfig",
                        "ProcessingResources",
                        "StoppingCondition",
                        "AppSpecification",
                        "Environment",
                        "RoleArn",
                    )
                    if key in job
                }
            )
            record.update(
                {"ProcessingJobStatus": job_status, "CreationTime": started, "ProcessingStartTime": started}
            )
            if ended is not None:
                record |= {"ProcessingEndTime": ended, "LastModifiedTime": ended}
            return
        name = str(job["TrainingJobName"])
        record = self._training.setdefault(name, {})
        record.update(
            {
                key: job[key]
                for key in (
                    "TrainingJobName",
                    "TrainingJobArn",
                    "AlgorithmSpecification",
                    "ResourceConfig",
                    "StoppingCondition",
                    "InputDataConfig",
                    "OutputDataConfig",
                    "HyperParameters",
                    "RoleArn",
                    "ModelArtifacts",
                )
                if key in job
            }
        )
        record.update(
            {
                "TrainingJobStatus": job_status,
                "SecondaryStatus": job_status,
                "CreationTime": started,
                "TrainingStartTime": started,
                "EnableManagedSpotTraining": bool(job.get("EnableManagedSpotTraining", False)),
            }
        )
        record.setdefault("ModelArtifacts", {"S3ModelArtifacts": ""})
        if ended is not None:
            seconds = billable_time_seconds(started, ended)
            record |= {
                "TrainingEndTime": ended,
                "LastModifiedTime": ended,
                "TrainingTimeInSeconds": seconds,
                # No spot market here: the whole run is billed (module docstring).
                "BillableTimeInSeconds": seconds,
            }

    # ------------------------------------------------------------------ what the APIs answer
    def steps(self, execution_arn: str, *, ascending: bool = False) -> list[dict[str, Any]] | None:
        """ListPipelineExecutionSteps' entries (newest first unless ``ascending``, as SageMaker sorts
        them); None when this ledger never ran the execution."""
        with self._lock:
            recorded = self._steps.get(execution_arn)
            if recorded is None:
                return None
            entries = [step.entry() for step in recorded]
        return entries if ascending else list(reversed(entries))

    def processing_job(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._processing.get(name)
            return dict(found) if found is not None else None

    def training_job(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._training.get(name)
            return dict(found) if found is not None else None
