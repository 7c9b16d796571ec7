"""SIMULATED SageMaker pipeline executions: no step of the pipeline runs.

moto stores pipeline executions as `Succeeded` from the start and never emits a status-change
event. This runner gives them a life instead: an execution starts `Executing`, and after a delay
ends `Succeeded`, or `Failed`/`Stopped` (with a FailureReason) when a test registered that outcome
for its job or tenant, or stays `Executing` until stopped. StopPipelineExecution goes through
`Stopping` to `Stopped`. Every status change is recorded where DescribePipelineExecution reads it
and announced as the real `SageMaker Model Building Pipeline Execution Status Change` event.

It is a stand-in for control-plane tests (the executing runner in ``pipeline_executor`` runs the
pipeline's own step scripts). What it reports of an execution's steps is what it simulated, labelled so:
ListPipelineExecutionSteps lists the steps the shared pipeline would have run on its path (Preprocess, then
Train and Evaluate, Spot or OnDemand by the UseSpotInstances parameter), each with a third of the execution's
real duration and the instance types and counts of its parameters, each StepDisplayName "SIMULATED (no step
ran)"; DescribeProcessingJob / DescribeTrainingJob describe those jobs with those times (billable seconds
as for a real run, localcloud.sagemaker_jobs). No model is registered and no metric exists: nothing trained.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, Protocol

from localcloud.sagemaker_jobs import PROCESSING_JOB, TRAINING_JOB, SageMakerJobLedger

LOGGER = logging.getLogger("localcloud.pipeline_runner")
TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
SIMULATED_STEP: Final = "SIMULATED (no step ran)"
OutcomeStatus = Literal["Succeeded", "Failed", "Stopped", "Executing"]


@dataclass(frozen=True)
class StatusChange:
    pipeline_arn: str
    execution_arn: str
    display_name: str | None
    current_status: str
    previous_status: str | None
    start_time: datetime
    end_time: datetime | None
    failure_reason: str | None
    # False: recorded where DescribePipelineExecution reads it, but no status-change event is put (a test
    # simulating a lost event, see SimulatedPipelineRunner.drop_completion_events).
    announce: bool = True


class PipelineExecutionStore(Protocol):
    """Records a status change on the execution and announces it on the default event bus."""

    def record(self, change: StatusChange) -> None: ...


class ExecutionNotStoppableError(Exception):
    """StopPipelineExecution on an execution that has already ended."""


class PipelineRunner(Protocol):
    """What the patched SageMaker backend hands pipeline executions to.

    Two implementations: SimulatedPipelineRunner (runs no step; tests steer outcomes) and
    localcloud.pipeline_executor.ExecutingPipelineRunner (runs the definition's step scripts).
    Both record what ran in ``jobs``, which ListPipelineExecutionSteps and DescribeProcessingJob /
    DescribeTrainingJob answer from (localcloud.patches).
    """

    jobs: SageMakerJobLedger

    def execution_started(
        self,
        *,
        pipeline_arn: str,
        execution_arn: str,
        display_name: str | None,
        parameters: Mapping[str, str],
    ) -> None: ...

    def stop_requested(self, execution_arn: str) -> None: ...

    def status(self, execution_arn: str) -> str | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """How a simulated execution ends, and after how long (None: the runner's delay_seconds)."""

    status: OutcomeStatus
    reason: str | None = None
    delay_seconds: float | None = None


# Picks the outcome of an execution nobody registered one for, from its pipeline parameters.
OutcomeChooser = Callable[[Mapping[str, str]], Outcome]


@dataclass
class TrackedExecution:
    """What both runners keep per execution: enough to describe it and to announce its changes."""

    pipeline_arn: str
    execution_arn: str
    display_name: str | None
    start_time: datetime
    status: str = "Executing"

    def change(self, previous: str | None, reason: str | None) -> StatusChange:
        """The change to the current status (ended now, when the status is terminal)."""
        return StatusChange(
            pipeline_arn=self.pipeline_arn,
            execution_arn=self.execution_arn,
            display_name=self.display_name,
            current_status=self.status,
            previous_status=previous,
            start_time=self.start_time,
            end_time=datetime.now(UTC) if self.status in TERMINAL_STATUSES else None,
            failure_reason=reason,
        )


def stop_is_pending(execution: TrackedExecution | None, execution_arn: str) -> bool:
    """StopPipelineExecution's precondition, shared by both runners: raises ExecutionNotStoppableError
    when the execution is unknown or over; True when it is already stopping (nothing more to do)."""
    if execution is None or execution.status in TERMINAL_STATUSES:
        status = execution.status if execution else "unknown"
        raise ExecutionNotStoppableError(f"pipeline execution {execution_arn} is {status}")
    return execution.status == "Stopping"


@dataclass
class _Execution(TrackedExecution):
    drop_completion: bool = False
    parameters: dict[str, str] = field(default_factory=dict)


def _simulated_plan(parameters: Mapping[str, str]) -> list[tuple[str, str, dict[str, object]]]:
    """(step name, job kind, the job's instance settings) of the shared pipeline's path for these
    parameters: Preprocess, then Train and Evaluate on spot or on-demand capacity."""
    branch = "Spot" if parameters.get("UseSpotInstances", "false").lower() == "true" else "OnDemand"
    processing: dict[str, object] = {
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": parameters.get("ProcessingInstanceType", "ml.m5.large"),
                "InstanceCount": int(parameters.get("ProcessingInstanceCount", "1")),
                "VolumeSizeInGB": 30,
            }
        }
    }
    training: dict[str, object] = {
        "ResourceConfig": {
            "InstanceType": parameters.get("TrainingInstanceType", "ml.m5.large"),
            "InstanceCount": int(parameters.get("TrainingInstanceCount", "1")),
            "VolumeSizeInGB": 30,
        },
        "EnableManagedSpotTraining": branch == "Spot",
    }
    return [
        ("Preprocess", PROCESSING_JOB, processing),
        (f"Train{branch}", TRAINING_JOB, training),
        (f"Evaluate{branch}", PROCESSING_JOB, processing),
    ]


@dataclass(order=True)
class _Transition:
    due: float
    sequence: int
    execution_arn: str = field(compare=False)
    status: str = field(compare=False)
    reason: str | None = field(compare=False)


class SimulatedPipelineRunner:
    """One timer thread drives every simulated execution (bounded, whatever the load)."""

    def __init__(
        self,
        store: PipelineExecutionStore,
        *,
        delay_seconds: float = 1.5,
        stop_delay_seconds: float = 0.3,
    ) -> None:
        self._store = store
        self.jobs = SageMakerJobLedger()
        self._chooser: OutcomeChooser | None = None
        self._delay_seconds = delay_seconds
        self._stop_delay_seconds = stop_delay_seconds
        self._outcomes_by_job: dict[str, Outcome] = {}
        self._outcomes_by_tenant: dict[str, Outcome] = {}
        self._dropped_by_job: set[str] = set()
        self._dropped_by_tenant: set[str] = set()
        self._executions: dict[str, _Execution] = {}
        self._transitions: list[_Transition] = []
        self._sequence = itertools.count()
        self._changed = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="simulated-pipelines", daemon=True)
        self._thread.start()
        LOGGER.warning(
            "SIMULATED SageMaker pipelines: executions run no step and end Succeeded after %.1fs "
            "unless a test registers another outcome",
            delay_seconds,
        )

    def set_outcome(
        self,
        *,
        status: OutcomeStatus,
        reason: str | None = None,
        job_id: str | None = None,
        tenant_id: str | None = None,
    ) -> None:
        """How executions for this job (pipeline parameter JobId or display name) or tenant
        (parameter TenantId) end; a job's outcome wins over its tenant's. "Executing" never ends."""
        if (job_id is None) == (tenant_id is None):
            raise ValueError("give exactly one of job_id or tenant_id")
        outcome = Outcome(status, reason)
        with self._changed:
            if job_id is not None:
                self._outcomes_by_job[job_id] = outcome
            else:
                self._outcomes_by_tenant[str(tenant_id)] = outcome

    def drop_completion_events(self, *, job_id: str | None = None, tenant_id: str | None = None) -> None:
        """Lose the terminal status-change event of executions started afterwards for this job or tenant
        (matched as set_outcome does): the status is still recorded for DescribePipelineExecution, as if
        EventBridge or the Lambda invocation had lost the event."""
        if (job_id is None) == (tenant_id is None):
            raise ValueError("give exactly one of job_id or tenant_id")
        with self._changed:
            (self._dropped_by_job if job_id is not None else self._dropped_by_tenant).add(
                str(job_id or tenant_id)
            )

    def choose_outcomes(self, chooser: OutcomeChooser | None) -> None:
        """Let ``chooser`` decide (status, reason, duration) of every execution without a registered
        outcome (e.g. random, seeded durations and outcomes for a soak); None: succeed after the delay."""
        with self._changed:
            self._chooser = chooser

    def clear_outcomes(self) -> None:
        with self._changed:
            self._outcomes_by_job.clear()
            self._outcomes_by_tenant.clear()
            self._dropped_by_job.clear()
            self._dropped_by_tenant.clear()

    def execution_started(
        self,
        *,
        pipeline_arn: str,
        execution_arn: str,
        display_name: str | None,
        parameters: Mapping[str, str],
    ) -> None:
        execution = _Execution(
            pipeline_arn, execution_arn, display_name, datetime.now(UTC), parameters=dict(parameters)
        )
        with self._changed:
            self._executions[execution_arn] = execution
            outcome = (
                self._outcomes_by_job.get(parameters.get("JobId", ""))
                or self._outcomes_by_job.get(display_name or "")
                or self._outcomes_by_tenant.get(parameters.get("TenantId", ""))
                or (self._chooser(parameters) if self._chooser else None)
                or Outcome("Succeeded", None)
            )
            execution.drop_completion = bool(
                {parameters.get("JobId", ""), display_name or ""} & self._dropped_by_job
                or parameters.get("TenantId", "") in self._dropped_by_tenant
            )
        LOGGER.warning(
            "SIMULATED pipeline execution %s: no step runs; it will end %s",
            execution_arn,
            outcome.status if outcome.status != "Executing" else "only when stopped",
        )
        # Recorded before any later transition is scheduled, so the events keep their order.
        self._store.record(execution.change(None, None))
        delay = self._delay_seconds if outcome.delay_seconds is None else outcome.delay_seconds
        with self._changed:
            now = time.monotonic()
            if outcome.status == "Stopped":
                self._schedule(now + delay, execution_arn, "Stopping", None)
                self._schedule(
                    now + delay + self._stop_delay_seconds,
                    execution_arn,
                    "Stopped",
                    outcome.reason,
                )
            elif outcome.status != "Executing":
                self._schedule(now + delay, execution_arn, outcome.status, outcome.reason)

    def stop_requested(self, execution_arn: str) -> None:
        with self._changed:
            if stop_is_pending(self._executions.get(execution_arn), execution_arn):
                return
            self._schedule(time.monotonic(), execution_arn, "Stopping", None)
            self._schedule(time.monotonic() + self._stop_delay_seconds, execution_arn, "Stopped", None)

    def status(self, execution_arn: str) -> str | None:
        with self._changed:
            execution = self._executions.get(execution_arn)
            return execution.status if execution else None

    def _schedule(self, due: float, execution_arn: str, status: str, reason: str | None) -> None:
        heapq.heappush(
            self._transitions, _Transition(due, next(self._sequence), execution_arn, status, reason)
        )
        self._changed.notify()

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._stopping and (
                    not self._transitions or self._transitions[0].due > time.monotonic()
                ):
                    timeout = self._transitions[0].due - time.monotonic() if self._transitions else None
                    self._changed.wait(timeout)
                if self._stopping:
                    return
                transition = heapq.heappop(self._transitions)
                change = self._apply(transition)
            if change is not None:
                try:
                    self._store.record(change)
                except Exception:
                    LOGGER.exception(
                        "could not record %s for %s", change.current_status, change.execution_arn
                    )

    def _apply(self, transition: _Transition) -> StatusChange | None:
        execution = self._executions[transition.execution_arn]
        previous = execution.status
        allowed = previous == "Executing" or (previous == "Stopping" and transition.status == "Stopped")
        if not allowed:
            return None  # e.g. the planned success of an execution that was stopped meanwhile
        execution.status = transition.status
        change = execution.change(previous, transition.reason)
        if change.end_time is not None:
            self._record_simulated_steps(execution, change.end_time, transition.reason)
        if change.end_time is not None and execution.drop_completion:
            LOGGER.warning(
                "SIMULATED lost event: %s ended %s unannounced",
                execution.execution_arn,
                change.current_status,
            )
            return dataclasses.replace(change, announce=False)
        return change

    def _record_simulated_steps(self, execution: _Execution, ended: datetime, reason: str | None) -> None:
        """The steps this execution stood for, each a third of its real duration (module docstring): all
        Succeeded; the last one Failed with the reason; or, stopped, the one under way Stopped."""
        plan = _simulated_plan(execution.parameters)
        share = (ended - execution.start_time) / len(plan)
        execution_id = execution.execution_arn.rsplit("/", 1)[-1]
        for number, (name, kind, settings) in enumerate(plan, start=1):
            started, finished = (
                execution.start_time + share * (number - 1),
                execution.start_time + share * number,
            )
            status, failure = "Succeeded", None
            if execution.status == "Failed" and number == len(plan):
                status, failure = "Failed", reason or "SIMULATED failure"
            elif execution.status == "Stopped" and number == len(plan):
                status = "Stopped"
            job_name = f"pipelines-{execution_id}-{name}-{number}"[:63]
            arn = (
                execution.execution_arn.split(":pipeline/")[0]
                + f":{kind.replace('Job', '-job').lower()}/{job_name}"
            )
            job = {**settings, f"{kind}Name": job_name, f"{kind}Arn": arn}
            self.jobs.step_started(
                execution.execution_arn, name, started=started, display_name=SIMULATED_STEP
            )
            self.jobs.job_started(execution.execution_arn, name, kind=kind, job=job)
            self.jobs.step_ended(
                execution.execution_arn,
                name,
                status=status,
                ended=finished,
                failure_reason=failure,
                job_kind=kind,
                job=job,
            )

    def close(self) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        self._thread.join(timeout=5)
