"""Runs a SageMaker pipeline definition on this machine, for real: the step scripts run as subprocesses.

Given the definition (the JSON SageMaker stores), an execution's parameter values, an S3 client and a
SageMaker client (both boto3, pointed at the emulator or at moto in-process), :class:`PipelineExecutor`
walks the steps in dependency order the way SageMaker Pipelines does:

- expressions: ``{"Get": "Parameters.X" | "Execution.X" | "Steps.S.<property path>"}``, ``Std:Join``,
  ``Std:JsonGet`` on a step's property file (or an S3 JSON file);
- ``Processing``: downloads each S3 input to a temporary folder standing for its container path, runs
  ``ContainerEntrypoint + ContainerArguments`` with every ``/opt/ml/...`` path mapped to that folder and
  ``python``/``python3`` replaced by a configurable interpreter, then uploads each output folder and
  reads the step's property files;
- ``Training`` (script mode, as the SageMaker framework containers run it): downloads
  ``sagemaker_submit_directory``, the channels, writes ``hyperparameters.json``, sets the ``SM_*``
  variables, runs ``python <sagemaker_program> --<hp> <value> ...``, and uploads ``model.tar.gz`` (and
  ``output.tar.gz``) to ``<S3OutputPath>/<job name>/output/``;
- ``Condition`` (Equals, GreaterThan[OrEqualTo], LessThan[OrEqualTo], In, Not, Or), then only the
  chosen branch's steps become eligible;
- ``RegisterModel``: CreateModelPackage with the step's resolved arguments;
- ``Fail``: the execution fails with the step's ``ErrorMessage`` as its reason.

Any other step type fails the execution before any step runs, naming the step and its type. A failing
script's message (``$SM_OUTPUT_DIR/failure`` for training, else the last line of stderr) becomes the
step's failure reason. Single host: a job asking for N instances runs once, as ``algo-1`` of N.

:class:`ExecutingPipelineRunner` adapts it to the emulator's runner interface (the one the simulated
runner in ``pipeline_runner`` offers), so it can run the executions StartPipelineExecution creates.
"""

from __future__ import annotations

import io
import json
import logging
import os
import posixpath
import queue
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

from localcloud.pipeline_runner import (
    TERMINAL_STATUSES,
    PipelineExecutionStore,
    StatusChange,
    TrackedExecution,
    stop_is_pending,
)
from localcloud.sagemaker_jobs import PROCESSING_JOB, TRAINING_JOB, SageMakerJobLedger

LOGGER = logging.getLogger("localcloud.pipeline_executor")

SUPPORTED_STEP_TYPES: Final = ("Processing", "Training", "Condition", "RegisterModel", "Fail")
StepStatus = Literal["Succeeded", "Failed", "Stopped"]
ExecutionStatus = Literal["Succeeded", "Failed", "Stopped"]

_CONTAINER_ROOT: Final = "/opt/ml/"
_PYTHON_COMMANDS: Final = frozenset({"python", "python3"})
_REASON_CHARS: Final = 1024  # SageMaker's FailureReason is at most 1024 characters
_LOG_TAIL_LINES: Final = 20
_POLL_SECONDS: Final = 0.1
# Threads the executing runner may use when not capped: far above any account cap the gate enforces.
_UNBOUNDED_EXECUTIONS: Final = 1024
_PATH_TOKEN: Final = re.compile(r"\.?([A-Za-z_][A-Za-z0-9_]*)|\['([^']*)'\]|\[(\d+)\]")


class PipelineDefinitionError(Exception):
    """The definition or the parameter values cannot run: the execution fails before any step."""


class StepFailedError(Exception):
    """A step failed; the message is its failure reason."""


class _StoppedError(Exception):
    """The execution was asked to stop while a step ran."""


@dataclass(frozen=True)
class StepResult:
    name: str
    step_type: str
    status: StepStatus
    started_at: datetime
    ended_at: datetime
    failure_reason: str | None = None
    # What later steps can read as Steps.<name>.<path> (job names and ARNs, outputs, Outcome, ...).
    properties: Mapping[str, Any] = field(default_factory=dict)
    log_tail: str = ""


@dataclass(frozen=True)
class PipelineRunResult:
    status: ExecutionStatus
    failure_reason: str | None
    steps: tuple[StepResult, ...]
    model_package_arn: str | None
    # The registered model version's ModelQuality statistics when one was registered; otherwise the
    # last property file a step wrote (e.g. the evaluation report of a model below its threshold).
    metrics: Mapping[str, Any] | None
    property_files: Mapping[str, Mapping[str, Any]]

    def step(self, name: str) -> StepResult:
        return next(step for step in self.steps if step.name == name)


@dataclass
class _Step:
    name: str
    type: str
    definition: Mapping[str, Any]
    dependencies: frozenset[str]
    branch_of: str | None  # the Condition step whose branch holds this step


@dataclass
class _Run:
    """The state of one execution."""

    pipeline_name: str
    execution_id: str
    execution_arn: str
    started_at: datetime
    parameters: dict[str, Any]
    work_dir: Path
    cancel: threading.Event
    properties: dict[str, Mapping[str, Any]] = field(default_factory=dict)
    property_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_property_file: dict[str, Any] | None = None
    model_package_arn: str | None = None
    job_counter: int = 0
    # The processing or training job the running step created: (ProcessingJob | TrainingJob, its request).
    current_job: tuple[str, dict[str, Any]] | None = None


def parse_s3_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise StepFailedError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise StepFailedError(f"{uri!r} names no bucket")
    return bucket, key


def _now() -> datetime:
    return datetime.now(UTC)


def _as_text(value: Any) -> str:
    """How SageMaker renders a value inside Std:Join and string fields."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def _tail(text: str, lines: int = _LOG_TAIL_LINES) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class PipelineExecutor:
    """Runs pipeline executions; one instance can run several executions, each in its own folder."""

    def __init__(
        self,
        *,
        s3_client: Any,
        sagemaker_client: Any,
        python_executable: str = sys.executable,
        work_dir: Path | None = None,
        keep_work_dirs: bool = False,
        max_step_seconds: float | None = None,
        account_id: str = "123456789012",
        on_step: Callable[[StepResult], None] | None = None,
        ledger: SageMakerJobLedger | None = None,
    ) -> None:
        """
        Args:
            python_executable: runs the step scripts (a venv with requirements/pipeline-runtime.txt).
            work_dir: parent of each execution's temporary folder (default: the system temp dir).
            keep_work_dirs: keep each execution's folder (inputs, outputs, logs) for inspection.
            max_step_seconds: a cap on every step's run time, below the definition's own limits.
            on_step: called after each step ends.
            ledger: records each step and the job it runs, for ListPipelineExecutionSteps and
                DescribeProcessingJob / DescribeTrainingJob (localcloud.sagemaker_jobs).
        """
        self._s3 = s3_client
        self._sagemaker = sagemaker_client
        self._python = python_executable
        self._work_dir = work_dir
        self._keep_work_dirs = keep_work_dirs
        self._max_step_seconds = max_step_seconds
        self._account_id = account_id
        self._on_step = on_step
        self._ledger = ledger

    # ------------------------------------------------------------------ entry point
    def run(
        self,
        definition: Mapping[str, Any] | str,
        parameters: Mapping[str, str] | Sequence[Mapping[str, str]] = (),
        *,
        pipeline_name: str = "local-pipeline",
        execution_id: str | None = None,
        execution_arn: str | None = None,
        cancel: threading.Event | None = None,
    ) -> PipelineRunResult:
        """Run one execution to its end. ``parameters`` are the StartPipelineExecution values
        (``{name: value}`` or ``[{"Name", "Value"}]``, values as strings)."""
        body: Mapping[str, Any] = json.loads(definition) if isinstance(definition, str) else definition
        execution_id = execution_id or f"local{int(time.time() * 1000):x}"
        region = str(getattr(getattr(self._sagemaker, "meta", None), "region_name", None) or "us-east-1")
        execution_arn = execution_arn or (
            f"arn:aws:sagemaker:{region}:{self._account_id}:pipeline/{pipeline_name}/execution/{execution_id}"
        )
        started = _now()
        try:
            steps = _steps(body)
            values = _parameter_values(body, parameters)
        except PipelineDefinitionError as error:
            LOGGER.error("pipeline %s cannot run: %s", pipeline_name, error)
            return PipelineRunResult("Failed", str(error)[:_REASON_CHARS], (), None, None, {})
        work_dir = Path(tempfile.mkdtemp(prefix=f"pipeline-{execution_id}-", dir=self._work_dir))
        run = _Run(
            pipeline_name=pipeline_name,
            execution_id=execution_id,
            execution_arn=execution_arn,
            started_at=started,
            parameters=values,
            work_dir=work_dir,
            cancel=cancel or threading.Event(),
        )
        try:
            return self._execute(run, steps, region)
        finally:
            if self._keep_work_dirs:
                LOGGER.info("pipeline execution %s kept its files in %s", execution_id, work_dir)
            else:
                shutil.rmtree(work_dir, ignore_errors=True)

    def _execute(self, run: _Run, steps: dict[str, _Step], region: str) -> PipelineRunResult:
        eligible = [step for step in steps.values() if step.branch_of is None]
        results: dict[str, StepResult] = {}
        outcome: ExecutionStatus = "Succeeded"
        reason: str | None = None
        while True:
            runnable = [
                step
                for step in eligible
                if step.name not in results
                and all(
                    results.get(dep) is not None and results[dep].status == "Succeeded"
                    for dep in step.dependencies
                )
            ]
            if not runnable or run.cancel.is_set():
                if run.cancel.is_set():
                    outcome, reason = "Stopped", "The pipeline execution was stopped."
                break
            step = runnable[0]
            result = self._run_step(run, step, region)
            results[step.name] = result
            if self._on_step is not None:
                self._on_step(result)
            if result.status != "Succeeded":
                outcome, reason = result.status, result.failure_reason
                break
            if step.type == "Condition":
                chosen = "IfSteps" if result.properties["Outcome"] else "ElseSteps"
                eligible += [
                    steps[child["Name"]] for child in step.definition.get("Arguments", {}).get(chosen, [])
                ]
        metrics = self._registered_metrics(run) or run.last_property_file
        LOGGER.info(
            "pipeline execution %s ended %s%s", run.execution_id, outcome, f": {reason}" if reason else ""
        )
        return PipelineRunResult(
            status=outcome,
            failure_reason=reason,
            steps=tuple(results.values()),
            model_package_arn=run.model_package_arn,
            metrics=metrics,
            property_files=dict(run.property_files),
        )

    def _run_step(self, run: _Run, step: _Step, region: str) -> StepResult:
        started = _now()
        run.current_job = None
        if self._ledger is not None:
            self._ledger.step_started(run.execution_arn, step.name, started=started)
        result = self._step_result(run, step, region, started)
        if self._ledger is not None:
            self._record_step_end(run, result)
        return result

    def _record_step_end(self, run: _Run, result: StepResult) -> None:
        assert self._ledger is not None
        metadata: dict[str, Any] = {}
        if result.step_type == "RegisterModel" and result.properties.get("ModelPackageArn"):
            metadata["RegisterModel"] = {"Arn": result.properties["ModelPackageArn"]}
        elif result.step_type == "Condition" and "Outcome" in result.properties:
            metadata["Condition"] = {"Outcome": _as_text(result.properties["Outcome"]).title()}
        elif result.step_type == "Fail":
            metadata["Fail"] = {"ErrorMessage": result.failure_reason or ""}
        kind, job = run.current_job or (None, None)
        if job is not None and result.status == "Succeeded":
            job = {**job, **result.properties}
        self._ledger.step_ended(
            run.execution_arn,
            result.name,
            status=result.status,
            ended=result.ended_at,
            failure_reason=result.failure_reason,
            metadata=metadata,
            job_kind=kind,
            job=job,
        )

    def _job_started(self, run: _Run, step: _Step, kind: str, job: dict[str, Any]) -> None:
        run.current_job = (kind, job)
        if self._ledger is not None:
            self._ledger.job_started(run.execution_arn, step.name, kind=kind, job=job)

    def _step_result(self, run: _Run, step: _Step, region: str, started: datetime) -> StepResult:
        LOGGER.info("pipeline execution %s: step %s (%s) starts", run.execution_id, step.name, step.type)
        runner: Callable[[_Run, _Step, str], tuple[dict[str, Any], str]] = {
            "Processing": self._processing,
            "Training": self._training,
            "Condition": self._condition,
            "RegisterModel": self._register_model,
            "Fail": self._fail,
        }[step.type]
        try:
            properties, logs = runner(run, step, region)
        except _StoppedError as stopped:
            return StepResult(step.name, step.type, "Stopped", started, _now(), "stopped", {}, str(stopped))
        except StepFailedError as error:
            reason = str(error)
            LOGGER.warning("step %s failed: %s", step.name, reason)
        except Exception as error:  # a fault of the executor or the emulator: the execution still ends
            LOGGER.exception("step %s failed unexpectedly", step.name)
            reason = f"{type(error).__name__}: {error}"
        else:
            run.properties[step.name] = properties
            return StepResult(
                step.name, step.type, "Succeeded", started, _now(), None, properties, _tail(logs)
            )
        message = reason if step.type == "Fail" else f"Step {step.name} failed: {reason}"
        return StepResult(step.name, step.type, "Failed", started, _now(), message[:_REASON_CHARS])

    # ------------------------------------------------------------------ expressions
    def _resolve(self, run: _Run, value: Any) -> Any:
        if isinstance(value, list):
            return [self._resolve(run, item) for item in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Get"}:
            return self._get(run, str(value["Get"]))
        if set(value) == {"Std:Join"}:
            join = value["Std:Join"]
            parts = self._resolve(run, join.get("Values", []))
            return str(join.get("On", "")).join(_as_text(part) for part in parts)
        if set(value) == {"Std:JsonGet"}:
            return self._json_get(run, value["Std:JsonGet"])
        functions = [key for key in value if key.startswith("Std:")]
        if functions:
            raise StepFailedError(f"the function {functions[0]} is not supported by the local executor")
        return {key: self._resolve(run, item) for key, item in value.items()}

    def _get(self, run: _Run, path: str) -> Any:
        scope, _, rest = path.partition(".")
        if scope == "Parameters":
            return run.parameters[rest]
        if scope == "Execution":
            now = _now()
            variables = {
                "PipelineExecutionId": run.execution_id,
                "PipelineExecutionArn": run.execution_arn,
                "PipelineName": run.pipeline_name,
                "PipelineArn": run.execution_arn.split("/execution/")[0],
                "StartDateTime": run.started_at.isoformat(),
                "CurrentDateTime": now.isoformat(),
            }
            if rest not in variables:
                raise StepFailedError(f"unknown execution variable {path!r}")
            return variables[rest]
        if scope == "Steps":
            step_name, _, property_path = rest.partition(".")
            if step_name not in run.properties:
                raise StepFailedError(f"{path!r} refers to step {step_name!r}, which has not succeeded")
            return _walk(run.properties[step_name], property_path, path)
        raise StepFailedError(f"cannot resolve {path!r}")

    def _json_get(self, run: _Run, spec: Mapping[str, Any]) -> Any:
        json_path = str(self._resolve(run, spec.get("Path", "")))
        if "PropertyFile" in spec:
            reference = spec["PropertyFile"]
            name = reference["Get"] if isinstance(reference, dict) else str(reference)
            match = re.fullmatch(r"Steps\.([^.]+)\.PropertyFiles\.(.+)", name)
            if match is None or f"{match[1]}.{match[2]}" not in run.property_files:
                raise StepFailedError(f"Std:JsonGet: no property file {name!r} has been written")
            document: Any = run.property_files[f"{match[1]}.{match[2]}"]
        elif "S3Uri" in spec:
            bucket, key = parse_s3_uri(str(self._resolve(run, spec["S3Uri"])))
            document = json.loads(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        else:
            raise StepFailedError("Std:JsonGet needs a PropertyFile or an S3Uri")
        return _walk(document, json_path, f"Std:JsonGet path {json_path!r}")

    # ------------------------------------------------------------------ step types
    def _processing(self, run: _Run, step: _Step, region: str) -> tuple[dict[str, Any], str]:
        args = self._resolve(run, step.definition.get("Arguments", {}))
        job_name = self._job_name(run, step)
        arn = f"arn:aws:sagemaker:{region}:{self._account_id}:processing-job/{job_name}"
        self._job_started(
            run, step, PROCESSING_JOB, {**args, "ProcessingJobName": job_name, "ProcessingJobArn": arn}
        )
        root = run.work_dir / step.name
        app = args.get("AppSpecification", {})
        entrypoint = list(app.get("ContainerEntrypoint") or [])
        if not entrypoint:
            raise StepFailedError("the local executor runs only processing jobs with a ContainerEntrypoint")
        for processing_input in args.get("ProcessingInputs", []):
            s3_input = processing_input.get("S3Input")
            if s3_input is None:
                raise StepFailedError(
                    f"input {processing_input.get('InputName')!r}: only S3Input is supported"
                )
            if s3_input.get("S3InputMode", "File") != "File" or s3_input.get("S3CompressionType") == "Gzip":
                raise StepFailedError(
                    f"input {processing_input.get('InputName')!r}: only File mode, uncompressed"
                )
            self._download(s3_input["S3Uri"], _local(root, s3_input["LocalPath"]))
        outputs = args.get("ProcessingOutputConfig", {}).get("Outputs", [])
        for output in outputs:
            _local(root, output["S3Output"]["LocalPath"]).mkdir(parents=True, exist_ok=True)
        command = [self._command(part, root) for part in [*entrypoint, *app.get("ContainerArguments", [])]]
        instances = int(args.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceCount", 1))
        environment = {**{key: str(value) for key, value in args.get("Environment", {}).items()}}
        environment.update(_host_environment(instances))
        limit = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        logs = self._subprocess(
            run, command, cwd=root, environment=environment, limit=limit, failure_file=None
        )
        for output in outputs:
            s3_output = output["S3Output"]
            self._upload_dir(_local(root, s3_output["LocalPath"]), s3_output["S3Uri"])
        for property_file in step.definition.get("PropertyFiles", []):
            self._read_property_file(run, step, property_file, outputs, root)
        return {
            **args,
            "ProcessingJobName": job_name,
            "ProcessingJobArn": arn,
            "ProcessingJobStatus": "Completed",
        }, logs

    def _read_property_file(
        self,
        run: _Run,
        step: _Step,
        property_file: Mapping[str, Any],
        outputs: Sequence[Mapping[str, Any]],
        root: Path,
    ) -> None:
        name = property_file["PropertyFileName"]
        output = next(
            (item for item in outputs if item.get("OutputName") == property_file["OutputName"]), None
        )
        if output is None:
            raise StepFailedError(f"property file {name!r} names no output {property_file['OutputName']!r}")
        path = _local(root, output["S3Output"]["LocalPath"]) / property_file["FilePath"]
        try:
            content = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise StepFailedError(f"property file {name!r} ({property_file['FilePath']}): {error}") from None
        run.property_files[f"{step.name}.{name}"] = content
        run.last_property_file = content

    def _training(self, run: _Run, step: _Step, region: str) -> tuple[dict[str, Any], str]:
        args = self._resolve(run, step.definition.get("Arguments", {}))
        job_name = self._job_name(run, step)
        arn = f"arn:aws:sagemaker:{region}:{self._account_id}:training-job/{job_name}"
        self._job_started(
            run, step, TRAINING_JOB, {**args, "TrainingJobName": job_name, "TrainingJobArn": arn}
        )
        root = run.work_dir / step.name
        raw = {str(key): _as_text(value) for key, value in args.get("HyperParameters", {}).items()}
        program, submit = (
            _decoded(raw.get("sagemaker_program")),
            _decoded(raw.get("sagemaker_submit_directory")),
        )
        if not program or not submit:
            raise StepFailedError(
                "the local executor runs only script-mode training "
                "(hyperparameters sagemaker_program and sagemaker_submit_directory)"
            )
        code_dir = root / "code"
        self._download_code(submit, code_dir)
        if not (code_dir / program).is_file():
            raise StepFailedError(f"{program} is not in {submit}")
        channels = {}
        for channel in args.get("InputDataConfig", []):
            source = channel.get("DataSource", {}).get("S3DataSource")
            if source is None:
                raise StepFailedError(
                    f"channel {channel.get('ChannelName')!r}: only S3 data sources are supported"
                )
            target = _local(root, f"/opt/ml/input/data/{channel['ChannelName']}")
            self._download(source["S3Uri"], target)
            channels[channel["ChannelName"]] = target
        config_dir = _local(root, "/opt/ml/input/config")
        model_dir, output_dir = _local(root, "/opt/ml/model"), _local(root, "/opt/ml/output")
        for directory in (config_dir, model_dir, output_dir / "data"):
            directory.mkdir(parents=True, exist_ok=True)
        (config_dir / "hyperparameters.json").write_text(json.dumps(raw))
        user_hyperparameters = {key: value for key, value in raw.items() if not key.startswith("sagemaker_")}
        instances = int(args.get("ResourceConfig", {}).get("InstanceCount", 1))
        environment = {
            "SM_MODEL_DIR": str(model_dir),
            "SM_OUTPUT_DIR": str(output_dir),
            "SM_OUTPUT_DATA_DIR": str(output_dir / "data"),
            "SM_INPUT_DIR": str(_local(root, "/opt/ml/input")),
            "SM_INPUT_CONFIG_DIR": str(config_dir),
            "SM_CHANNELS": json.dumps(sorted(channels)),
            "SM_HPS": json.dumps({key: _decoded(value) for key, value in user_hyperparameters.items()}),
            **{f"SM_CHANNEL_{name.upper()}": str(path) for name, path in channels.items()},
            **_host_environment(instances),
            **{key: str(value) for key, value in args.get("Environment", {}).items()},
        }
        command = [self._python, str(code_dir / program)]
        for key, value in user_hyperparameters.items():
            command += [f"--{key}", value]
        limit = args.get("StoppingCondition", {}).get("MaxRuntimeInSeconds")
        logs = self._subprocess(
            run,
            command,
            cwd=code_dir,
            environment=environment,
            limit=limit,
            failure_file=output_dir / "failure",
        )
        output_path = str(args["OutputDataConfig"]["S3OutputPath"]).rstrip("/")
        model_uri = f"{output_path}/{job_name}/output/model.tar.gz"
        self._upload_bytes(_tar_gz(model_dir), model_uri)
        self._upload_bytes(_tar_gz(output_dir / "data"), f"{output_path}/{job_name}/output/output.tar.gz")
        return {
            **args,
            "TrainingJobName": job_name,
            "TrainingJobArn": arn,
            "TrainingJobStatus": "Completed",
            "ModelArtifacts": {"S3ModelArtifacts": model_uri},
        }, logs

    def _condition(self, run: _Run, step: _Step, _region: str) -> tuple[dict[str, Any], str]:
        conditions = step.definition.get("Arguments", {}).get("Conditions", [])
        outcome = all(self._evaluate(run, condition) for condition in conditions)
        return {"Outcome": outcome}, f"conditions evaluated to {outcome}"

    def _evaluate(self, run: _Run, condition: Mapping[str, Any]) -> bool:
        kind = condition.get("Type")
        if kind == "Not":
            return not self._evaluate(run, condition["Expression"])
        if kind == "Or":
            return any(self._evaluate(run, item) for item in condition["Conditions"])
        if kind == "In":
            query = self._resolve(run, condition["QueryValue"])
            return any(_equal(query, self._resolve(run, item)) for item in condition["Values"])
        left, right = (
            self._resolve(run, condition.get("LeftValue")),
            self._resolve(run, condition.get("RightValue")),
        )
        if kind == "Equals":
            return _equal(left, right)
        comparisons: dict[str, Callable[[float, float], bool]] = {
            "GreaterThan": lambda a, b: a > b,
            "GreaterThanOrEqualTo": lambda a, b: a >= b,
            "LessThan": lambda a, b: a < b,
            "LessThanOrEqualTo": lambda a, b: a <= b,
        }
        if kind not in comparisons:
            raise StepFailedError(f"condition type {kind!r} is not supported by the local executor")
        return comparisons[kind](_number(left, kind), _number(right, kind))

    def _register_model(self, run: _Run, step: _Step, _region: str) -> tuple[dict[str, Any], str]:
        request = self._resolve(run, step.definition.get("Arguments", {}))
        if "CustomerMetadataProperties" in request:
            request["CustomerMetadataProperties"] = {
                key: _as_text(value) for key, value in request["CustomerMetadataProperties"].items()
            }
        try:
            response = self._sagemaker.create_model_package(**request)
        except Exception as error:  # the client's own error names what SageMaker refused
            raise StepFailedError(f"CreateModelPackage failed: {error}") from None
        run.model_package_arn = response["ModelPackageArn"]
        return {"ModelPackageArn": run.model_package_arn}, f"registered {run.model_package_arn}"

    def _fail(self, run: _Run, step: _Step, _region: str) -> tuple[dict[str, Any], str]:
        message = self._resolve(run, step.definition.get("Arguments", {}).get("ErrorMessage", ""))
        raise StepFailedError(_as_text(message) or f"the pipeline reached the Fail step {step.name}")

    # ------------------------------------------------------------------ helpers
    def _job_name(self, run: _Run, step: _Step) -> str:
        run.job_counter += 1
        name = f"pipelines-{run.execution_id}-{step.name}-{run.job_counter}"
        return re.sub(r"[^A-Za-z0-9-]", "-", name)[:63]

    def _command(self, part: Any, root: Path) -> str:
        text = _as_text(part)
        if text in _PYTHON_COMMANDS:
            return self._python
        return str(_local(root, text)) if text.startswith(_CONTAINER_ROOT) else text

    def _subprocess(
        self,
        run: _Run,
        command: Sequence[str],
        *,
        cwd: Path,
        environment: Mapping[str, str],
        limit: Any,
        failure_file: Path | None,
    ) -> str:
        """Run one job's process; a non-zero exit, a timeout or a stop raises with the reason."""
        seconds = float(limit) if limit is not None else None
        if self._max_step_seconds is not None:
            seconds = min(seconds, self._max_step_seconds) if seconds is not None else self._max_step_seconds
        cwd.mkdir(parents=True, exist_ok=True)
        log_path = cwd.parent / f"{cwd.name}.log"
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **environment}
        with log_path.open("w+b") as log, open(os.devnull, "rb") as stdin:
            stderr_path = cwd.parent / f"{cwd.name}.stderr"
            with stderr_path.open("w+b") as stderr:
                process = subprocess.Popen(  # noqa: S603 - the command is the pipeline's own step
                    list(command),
                    cwd=cwd,
                    env=env,
                    stdin=stdin,
                    stdout=log,
                    stderr=stderr,
                    start_new_session=True,
                )
                deadline = time.monotonic() + seconds if seconds is not None else None
                try:
                    while process.poll() is None:
                        if run.cancel.is_set():
                            _kill(process)
                            raise _StoppedError("stopped while running")
                        if deadline is not None and time.monotonic() > deadline:
                            _kill(process)
                            raise StepFailedError(
                                f"MaxRuntimeExceeded: the job ran longer than {seconds:g} s"
                            )
                        time.sleep(_POLL_SECONDS)
                finally:
                    if process.poll() is None:
                        _kill(process)
                stderr.seek(0)
                error_text = stderr.read().decode(errors="replace")
            log.seek(0)
            output = log.read().decode(errors="replace")
        logs = f"{output}{error_text}"
        if process.returncode != 0:
            message = ""
            if failure_file is not None and failure_file.is_file():
                message = failure_file.read_text(errors="replace").strip()
            if not message:
                lines = [line for line in error_text.strip().splitlines() if line.strip()]
                message = lines[-1].strip() if lines else f"no output on stderr; see {log_path}"
            raise StepFailedError(f"AlgorithmError: {message} (exit code {process.returncode})")
        return logs

    def _download(self, uri: str, target: Path) -> None:
        """SageMaker's S3Prefix semantics: every object under the prefix, at its path below it."""
        bucket, prefix = parse_s3_uri(uri)
        target.mkdir(parents=True, exist_ok=True)
        found = False
        for key in self._keys(bucket, prefix):
            relative = key[len(prefix) :]
            if relative.startswith("/") or prefix.endswith("/"):
                relative = relative.lstrip("/")
            elif relative:  # the prefix ends inside a name ("data" matching "data.csv"): keep the name
                relative = key[len(prefix) - len(posixpath.basename(prefix)) :]
            relative = relative or posixpath.basename(key)
            destination = (target / relative).resolve()
            if not destination.is_relative_to(target.resolve()):
                raise StepFailedError(f"s3://{bucket}/{key} would land outside {target}")
            destination.parent.mkdir(parents=True, exist_ok=True)
            self._s3.download_file(bucket, key, str(destination))
            found = True
        if not found:
            raise StepFailedError(f"no object found under {uri}")

    def _keys(self, bucket: str, prefix: str) -> Iterator[str]:
        token: str | None = None
        while True:
            page = self._s3.list_objects_v2(
                Bucket=bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {})
            )
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    yield item["Key"]
            token = page.get("NextContinuationToken")
            if not token:
                return

    def _download_code(self, uri: str, target: Path) -> None:
        bucket, key = parse_s3_uri(uri)
        try:
            payload = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as error:  # the client's error says what S3 answered
            raise StepFailedError(f"cannot download the training code {uri}: {error}") from None
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(payload), mode="r:gz") as archive:
            for member in archive.getmembers():
                name = posixpath.normpath(member.name)
                if member.isdir() or name == ".":
                    continue
                if not member.isfile() or name.startswith(("/", "..")):
                    raise StepFailedError(f"{uri}: unexpected entry {member.name!r}")
                destination = target / name
                destination.parent.mkdir(parents=True, exist_ok=True)
                extracted = archive.extractfile(member)
                if extracted is not None:
                    destination.write_bytes(extracted.read())

    def _upload_dir(self, source: Path, uri: str) -> None:
        bucket, prefix = parse_s3_uri(uri)
        for path in sorted(item for item in source.rglob("*") if item.is_file()):
            key = f"{prefix.rstrip('/')}/{path.relative_to(source).as_posix()}".lstrip("/")
            self._s3.upload_file(str(path), bucket, key)

    def _upload_bytes(self, payload: bytes, uri: str) -> None:
        bucket, key = parse_s3_uri(uri)
        self._s3.put_object(Bucket=bucket, Key=key, Body=payload)

    def _registered_metrics(self, run: _Run) -> dict[str, Any] | None:
        """The ModelQuality statistics the registered model version points to."""
        if run.model_package_arn is None:
            return None
        try:
            package = self._sagemaker.describe_model_package(ModelPackageName=run.model_package_arn)
            uri = package.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {}).get("S3Uri")
            if not uri:
                return None
            bucket, key = parse_s3_uri(uri)
            document: dict[str, Any] = json.loads(self._s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        except Exception:  # the metrics are a convenience: the registration itself succeeded
            LOGGER.exception("could not read the metrics of %s", run.model_package_arn)
            return None
        return document


# ---------------------------------------------------------------------- definition parsing
def _steps(definition: Mapping[str, Any]) -> dict[str, _Step]:
    """Every step, nested branches included, with its dependencies; unsupported types fail here."""
    steps: dict[str, _Step] = {}

    def add(items: Sequence[Mapping[str, Any]], branch_of: str | None) -> None:
        for item in items:
            name, kind = str(item.get("Name", "")), str(item.get("Type", ""))
            if not name:
                raise PipelineDefinitionError("a step has no Name")
            if name in steps:
                raise PipelineDefinitionError(f"two steps are named {name!r}")
            if kind not in SUPPORTED_STEP_TYPES:
                raise PipelineDefinitionError(
                    f"Step {name!r} has type {kind!r}, which the local pipeline executor does not run "
                    f"(it runs {', '.join(SUPPORTED_STEP_TYPES)})"
                )
            references = set(
                re.findall(r'"Get":\s*"Steps\.([^."]+)\.', json.dumps(item.get("Arguments", {})))
            )
            if kind == "Condition":
                # A condition depends on what its own conditions read, not on its branches' steps.
                references = set(
                    re.findall(
                        r'"Get":\s*"Steps\.([^."]+)\.',
                        json.dumps(item.get("Arguments", {}).get("Conditions", [])),
                    )
                )
            dependencies = frozenset(references | set(item.get("DependsOn", [])))
            steps[name] = _Step(name, kind, item, dependencies, branch_of)
            if kind == "Condition":
                arguments = item.get("Arguments", {})
                add(arguments.get("IfSteps", []), name)
                add(arguments.get("ElseSteps", []), name)

    add(definition.get("Steps", []), None)
    for step in steps.values():
        unknown = sorted(step.dependencies - set(steps))
        if unknown:
            raise PipelineDefinitionError(f"Step {step.name!r} depends on unknown steps {unknown}")
        if step.name in step.dependencies:
            raise PipelineDefinitionError(f"Step {step.name!r} depends on itself")
    return steps


def _parameter_values(
    definition: Mapping[str, Any], given: Mapping[str, str] | Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """Typed values for every declared parameter, as StartPipelineExecution would accept them."""
    provided = (
        {str(key): value for key, value in given.items()}
        if isinstance(given, Mapping)
        else {str(item["Name"]): item["Value"] for item in given}
    )
    declared = {str(parameter["Name"]): parameter for parameter in definition.get("Parameters", [])}
    unknown = sorted(set(provided) - set(declared))
    if unknown:
        raise PipelineDefinitionError(f"parameters not declared by the pipeline: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for name, parameter in declared.items():
        if name in provided:
            raw: Any = provided[name]
        elif "DefaultValue" in parameter:
            raw = parameter["DefaultValue"]
        else:
            raise PipelineDefinitionError(f"the pipeline parameter {name} has no value and no default")
        values[name] = _typed(name, str(parameter.get("Type", "String")), raw)
        allowed = parameter.get("EnumValues")
        if allowed and values[name] not in allowed:
            raise PipelineDefinitionError(f"the pipeline parameter {name} is {raw!r}, not one of {allowed}")
    referenced = set(re.findall(r'"Get":\s*"Parameters\.([^"]+)"', json.dumps(definition.get("Steps", []))))
    undeclared = sorted(referenced - set(declared))
    if undeclared:
        raise PipelineDefinitionError(f"steps read undeclared parameters: {', '.join(undeclared)}")
    return values


def _typed(name: str, kind: str, raw: Any) -> Any:
    text = _as_text(raw).strip()
    try:
        if kind == "Integer":
            return int(text)
        if kind == "Float":
            return float(text)
    except ValueError:
        raise PipelineDefinitionError(f"the pipeline parameter {name} is {raw!r}, not a {kind}") from None
    if kind == "Boolean":
        if text.lower() not in {"true", "false"}:
            raise PipelineDefinitionError(f"the pipeline parameter {name} is {raw!r}, not a Boolean")
        return text.lower() == "true"
    return _as_text(raw)


def _walk(document: Any, path: str, what: str) -> Any:
    """Follow ``A.B['name'][0]`` through dicts and lists (a list indexed by a name finds the element
    whose OutputName / ChannelName / InputName / Name is that name, as SageMaker properties do)."""
    current = document
    position = 0
    while position < len(path):
        match = _PATH_TOKEN.match(path, position)
        if match is None:
            raise StepFailedError(f"cannot parse {what} at {path[position:]!r}")
        position = match.end()
        attribute, name, index = match.groups()
        key = attribute if attribute is not None else name
        try:
            if index is not None:
                current = current[int(index)]
            elif isinstance(current, list):
                current = next(
                    item
                    for item in current
                    if key
                    in (
                        item.get("OutputName"),
                        item.get("ChannelName"),
                        item.get("InputName"),
                        item.get("Name"),
                    )
                )
            else:
                current = current[key]
        except (KeyError, IndexError, TypeError, StopIteration, AttributeError):
            raise StepFailedError(f"{what}: nothing at {path!r}") from None
    return current


def _local(root: Path, container_path: str) -> Path:
    """Where a container path lives in this step's folder (every path under /opt/ml is mapped)."""
    if not container_path.startswith("/"):
        raise StepFailedError(f"{container_path!r} is not an absolute container path")
    local = (root / "fs" / container_path.lstrip("/")).resolve()
    if not local.is_relative_to((root / "fs").resolve()):
        raise StepFailedError(f"{container_path!r} leaves the container file system")
    return local


def _host_environment(instances: int) -> dict[str, str]:
    hosts = [f"algo-{number}" for number in range(1, max(instances, 1) + 1)]
    return {
        "SM_CURRENT_HOST": hosts[0],
        "SM_HOSTS": json.dumps(hosts),
        "SM_NUM_CPUS": str(os.cpu_count() or 1),
        # On SageMaker each step has an instance to itself; here steps of several executions share
        # the machine, and OpenMP's one-thread-per-core spin-waiting then slows them down ~50x.
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }


def _decoded(value: str | None) -> Any:
    """A hyperparameter as the SageMaker training toolkit reads it: JSON when it parses."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return value


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return _as_text(left).lower() == _as_text(right).lower()
    try:
        return float(left) == float(right)
    except (TypeError, ValueError):
        return _as_text(left) == _as_text(right)


def _number(value: Any, kind: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise StepFailedError(f"{kind} compares numbers; {value!r} is not one") from None


def _tar_gz(directory: Path) -> bytes:
    """The folder's files at the archive root, as SageMaker packs /opt/ml/model."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path in sorted(item for item in directory.rglob("*") if item.is_file()):
            archive.add(path, arcname=path.relative_to(directory).as_posix())
    return buffer.getvalue()


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    process.wait(timeout=10)


# ---------------------------------------------------------------------- emulator adapter
class ExecutingPipelineRunner:
    """A drop-in for ``SimulatedPipelineRunner`` that really runs each execution.

    Same calls (``execution_started``, ``stop_requested``, ``status``, ``close``) and the same status
    changes on the store (``Executing``, then ``Succeeded`` / ``Failed`` with the executor's failure
    reason / ``Stopping`` → ``Stopped``), so the emulator's patches can hand executions to it instead.
    The definition is the one SageMaker stored for the execution. Every execution runs as soon as it is
    started (a thread each, its steps' scripts as subprocesses), as on SageMaker: the gate's admission
    (the account cap) is what bounds them, so "running" on a job never means "waiting for a local worker".
    ``max_concurrent`` caps them for tests only; an execution past the cap stays Executing with no step
    started, which ListPipelineExecutionSteps shows. Each step and its job are recorded in ``jobs``
    (ListPipelineExecutionSteps, DescribeProcessingJob, DescribeTrainingJob: localcloud.sagemaker_jobs).
    """

    def __init__(
        self,
        store: PipelineExecutionStore,
        *,
        s3_client: Any,
        sagemaker_client: Any,
        max_concurrent: int | None = None,
        **executor_options: Any,
    ) -> None:
        self._store = store
        self._sagemaker = sagemaker_client
        self.jobs = SageMakerJobLedger()
        self._executor = PipelineExecutor(
            s3_client=s3_client, sagemaker_client=sagemaker_client, ledger=self.jobs, **executor_options
        )
        # Unbounded unless a test caps it: ThreadPoolExecutor needs a number, and the account cap (at most
        # a few dozen) bounds how many executions the control plane starts at once.
        self._pool = ThreadPoolExecutor(
            max_workers=max_concurrent or _UNBOUNDED_EXECUTIONS, thread_name_prefix="pipeline-executions"
        )
        self._lock = threading.Lock()
        self._executions: dict[str, _Tracked] = {}
        # Changes after the first are queued under the lock and recorded by one thread, so they reach
        # the store (and the event bus) in the order they happened, and the lock is never held
        # while the store delivers events.
        self._changes: queue.Queue[StatusChange | None] = queue.Queue()
        self._recorder = threading.Thread(target=self._record_changes, name="pipeline-status", daemon=True)
        self._recorder.start()

    def execution_started(
        self,
        *,
        pipeline_arn: str,
        execution_arn: str,
        display_name: str | None,
        parameters: Mapping[str, str],
    ) -> None:
        tracked = _Tracked(
            pipeline_arn=pipeline_arn,
            execution_arn=execution_arn,
            display_name=display_name,
            start_time=_now(),
            parameters=dict(parameters),
        )
        with self._lock:
            self._executions[execution_arn] = tracked
        # Recorded before the execution is queued: DescribePipelineExecution says Executing at once.
        self._record(tracked.change(None, None))
        self._pool.submit(self._run, tracked)

    def stop_requested(self, execution_arn: str) -> None:
        with self._lock:
            tracked = self._executions.get(execution_arn)
            if stop_is_pending(tracked, execution_arn):
                return
            assert tracked is not None  # stop_is_pending raised otherwise
            tracked.cancel.set()
            self._transition(tracked, "Stopping", None)

    def status(self, execution_arn: str) -> str | None:
        with self._lock:
            tracked = self._executions.get(execution_arn)
            return tracked.status if tracked else None

    def close(self) -> None:
        with self._lock:
            for tracked in self._executions.values():
                tracked.cancel.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._changes.put(None)
        self._recorder.join(timeout=10)

    def _run(self, tracked: _Tracked) -> None:
        reason: str | None = None
        status = "Stopped"
        try:
            if not tracked.cancel.is_set():
                definition = self._sagemaker.describe_pipeline_definition_for_execution(
                    PipelineExecutionArn=tracked.execution_arn
                )["PipelineDefinition"]
                result = self._executor.run(
                    definition,
                    tracked.parameters,
                    pipeline_name=tracked.pipeline_arn.rsplit("/", 1)[-1],
                    execution_id=tracked.execution_arn.rsplit("/", 1)[-1],
                    execution_arn=tracked.execution_arn,
                    cancel=tracked.cancel,
                )
                status = result.status
                reason = None if status == "Stopped" else result.failure_reason
        except Exception as error:  # the execution must still end, with the reason
            LOGGER.exception("pipeline execution %s could not run", tracked.execution_arn)
            status, reason = "Failed", f"{type(error).__name__}: {error}"[:_REASON_CHARS]
        with self._lock:
            self._transition(tracked, status, reason)

    def _transition(self, tracked: _Tracked, status: str, reason: str | None) -> None:
        """Under the lock: a terminal status is final; the change is queued in order."""
        previous = tracked.status
        if previous in TERMINAL_STATUSES:
            return
        tracked.status = status
        self._changes.put(tracked.change(previous, reason))

    def _record_changes(self) -> None:
        while (change := self._changes.get()) is not None:
            self._record(change)

    def _record(self, change: StatusChange) -> None:
        try:
            self._store.record(change)
        except Exception:  # a lost status change must not kill the recording thread
            LOGGER.exception("could not record %s for %s", change.current_status, change.execution_arn)


@dataclass
class _Tracked(TrackedExecution):
    parameters: dict[str, str] = field(default_factory=dict)
    cancel: threading.Event = field(default_factory=threading.Event)
