"""The job lifecycle: statuses, the one transitions table, and the typed Job record.

Every write that changes a job's status, from Python (``controlplane.jobs.store``) or from the state
machine (the ASL's "Put ..." and "Record ..." states), takes its DynamoDB condition from ``SOURCES``
through ``status_condition``. ``scripts/asl_conditions.py`` writes those conditions into
``statemachines/training_job.asl.json`` and a unit test fails when the committed ASL is stale or when
any state writes a status the table does not allow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import Field, field_validator

from controlplane.builds.results import BuildResults
from controlplane.core.model import CamelModel, Tier
from controlplane.usage.cost import JobCost

# Timeline "state" values written by the functions: the names of the state machine states that invoke
# them, so a timeline reads the same whichever side wrote an entry (a unit test checks they exist in the ASL).
STATE_REGISTER: Final = "Register the upload as a job"
STATE_VALIDATE: Final = "Validate the dataset against the tenant's contract"
STATE_QUEUE_WAIT: Final = "Wait in the tier's queue for a free slot"
STATE_PIPELINE_WAIT: Final = "Wait for the pipeline to finish"
# Written by the periodic sweep when it closes a job whose execution is over.
STATE_SWEEP: Final = "Sweep for jobs whose execution is over"


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATED = "VALIDATED"
    QUEUED = "QUEUED"
    ADMITTED = "ADMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


class FailureReason(StrEnum):
    """Why a job failed, as the ``reason`` dimension of the ``JobsFailed`` metric: a fixed, small set (the
    job's own ``reason`` is free text for the tenant and never becomes a dimension)."""

    PIPELINE_FAILED = "PipelineFailed"  # the pipeline reported Failed; counted when its execution resumes
    EXECUTION_FAILED = "ExecutionFailed"  # the build's execution failed before recording an outcome
    EXECUTION_TIMED_OUT = "ExecutionTimedOut"
    EXECUTION_ABORTED = "ExecutionAborted"
    EXECUTION_MISSING = "ExecutionMissing"  # the execution no longer exists
    EXECUTION_ENDED = "ExecutionEnded"  # any other ending Step Functions reports


TERMINAL_STATUSES: Final = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
        JobStatus.REJECTED,
        JobStatus.EXPIRED,
        JobStatus.CANCELLED,
    }
)
NON_TERMINAL_STATUSES: Final = frozenset(JobStatus) - TERMINAL_STATUSES

# THE transitions table: for each status, the statuses a job may reach it from. ``None`` means the job
# item does not exist yet (it is created with that status). A terminal status is never left.
SOURCES: Final[Mapping[JobStatus, frozenset[JobStatus | None]]] = {
    # register_upload claims the object version.
    JobStatus.RECEIVED: frozenset({None}),
    # An odd key, an unknown or suspended tenant (at registration), or an invalid dataset (validation).
    JobStatus.REJECTED: frozenset({None, JobStatus.RECEIVED}),
    JobStatus.VALIDATED: frozenset({JobStatus.RECEIVED}),
    # ADMITTED -> QUEUED: SageMaker refused the start for lack of quota or capacity; the slot was given
    # back and the job waits in line again (its timeline says why).
    JobStatus.QUEUED: frozenset({JobStatus.VALIDATED, JobStatus.ADMITTED}),
    # The gate's take transaction.
    JobStatus.ADMITTED: frozenset({JobStatus.QUEUED}),
    # The state machine records the pipeline execution the moment StartPipelineExecution returns.
    JobStatus.RUNNING: frozenset({JobStatus.ADMITTED}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.STOPPED: frozenset({JobStatus.RUNNING}),
    # The wait for a slot timed out (possibly while the gate was admitting: the slot is released).
    JobStatus.EXPIRED: frozenset({JobStatus.QUEUED, JobStatus.ADMITTED}),
    # Before queueing at once through the API; once queued through the state machine, after any slot is
    # freed. A running build that is cancelled has its pipeline stopped and ends STOPPED.
    JobStatus.CANCELLED: frozenset(
        {JobStatus.RECEIVED, JobStatus.VALIDATED, JobStatus.QUEUED, JobStatus.ADMITTED}
    ),
    # Any step may fail, and registration itself may fail before the job item exists.
    JobStatus.FAILED: frozenset({None, *NON_TERMINAL_STATUSES}),
}

# The same table read the other way round: where each status may go.
ALLOWED_TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = {
    status: frozenset(target for target, sources in SOURCES.items() if status in sources)
    for status in JobStatus
}


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


def can_transition(current: JobStatus | None, target: JobStatus) -> bool:
    """Whether a job in ``current`` (None: no job item yet) may become ``target``."""
    return current in SOURCES[target]


# --------------------------------------------------------------------------- conditions for every writer

# Every non-terminal status write sets these two: the sparse ``open-jobs`` index (openStatus = :status,
# sweepAt ascending) is the periodic sweep's work list over every job that has not ended.
OPEN_STATUS: Final = "openStatus"
SWEEP_AT: Final = "sweepAt"
# Attributes a job keeps only while it waits or runs: a terminal write removes them, so the sparse
# indexes (waiting room, open jobs) and the task tokens never outlive the job's life.
WAITING_ATTRIBUTES: Final = (
    "queueTier",
    "queueShare",
    "queueTaskToken",
    "pipelineTaskToken",
    OPEN_STATUS,
    SWEEP_AT,
)


def source_placeholder(status: JobStatus) -> str:
    return f":from{status.value.title()}"


@dataclass(frozen=True, slots=True)
class StatusCondition:
    """A DynamoDB condition that holds exactly when the job may become ``target`` (plain values: the
    store and the ASL generator render them in their own attribute-value format)."""

    target: JobStatus
    expression: str
    names: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)


def status_condition(target: JobStatus, *, creating: bool = False, owned: bool = False) -> StatusCondition:
    """``#status IN (...)`` over the statuses ``SOURCES`` allows; with ``creating`` (a writer that may
    create the item), or'ed with ``attribute_not_exists`` when the table lets a job start as ``target``.

    With ``owned``, an existing job changes only when its execution is the writer's (``:executionArn``,
    which the writer supplies): a writer that is a duplicate delivery of the upload must never end the job
    another execution is running (it would strand that execution's slot and waits)."""
    sources = sorted(status for status in SOURCES[target] if status is not None)
    values = {source_placeholder(status): status.value for status in sources}
    names = {"#status": "status"} | ({"#executionArn": "executionArn"} if owned else {})
    creatable = creating and None in SOURCES[target]
    if not values:
        # Only ever created with this status (RECEIVED): an update can never apply.
        expression = (
            "attribute_not_exists(#status)"
            if creatable
            else "attribute_exists(#status) AND attribute_not_exists(#status)"
        )
    else:
        expression = f"#status IN ({', '.join(values)})"
        if owned:
            expression = f"(#executionArn = :executionArn AND {expression})"
        if creatable:
            expression = f"attribute_not_exists(#status) OR {expression}"
    return StatusCondition(target=target, expression=expression, names=names, values=values)


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """One status write as DynamoDB expression parts (plain values): SET status, updatedAt and a timeline
    entry (reasons and finishedAt, and REMOVE of the waiting attributes, for a terminal status), under the
    condition the table gives. Callers add their own attributes and conditions with ``extended``."""

    target: JobStatus
    sets: tuple[str, ...]
    removes: tuple[str, ...]
    names: dict[str, str]
    values: dict[str, Any]
    condition: str

    @property
    def expression(self) -> str:
        text = "SET " + ", ".join(self.sets)
        return f"{text} REMOVE {', '.join(self.removes)}" if self.removes else text

    def extended(
        self,
        *,
        sets: tuple[str, ...] = (),
        removes: tuple[str, ...] = (),
        names: Mapping[str, str] | None = None,
        values: Mapping[str, Any] | None = None,
        condition: str | None = None,
    ) -> StatusUpdate:
        return StatusUpdate(
            target=self.target,
            sets=self.sets + sets,
            removes=self.removes + tuple(name for name in removes if name not in self.removes),
            names=self.names | dict(names or {}),
            values=self.values | dict(values or {}),
            condition=f"({self.condition}) AND {condition}" if condition else self.condition,
        )


def status_update(
    target: JobStatus, *, at: str, state: str, reason: str | None = None, reasons: list[str] | None = None
) -> StatusUpdate:
    """The write that moves a job to ``target`` (the only place a job's status is SET from Python)."""
    condition = status_condition(target)
    entry = TimelineEntry(status=target, at=at, state=state, reason=reason)
    sets = [
        "#status = :status",
        "#updatedAt = :now",
        "#timeline = list_append(if_not_exists(#timeline, :empty), :entry)",
    ]
    names = condition.names | {"#updatedAt": "updatedAt", "#timeline": "timeline"}
    values: dict[str, Any] = condition.values | {
        ":status": target.value,
        ":now": at,
        ":entry": [entry.item()],
        ":empty": [],
    }
    if reasons is not None or (reason is not None and target in TERMINAL_STATUSES):
        sets.append("#reasons = :reasons")
        names["#reasons"] = "reasons"
        values[":reasons"] = reasons if reasons is not None else [reason]
    removes: tuple[str, ...] = ()
    if target not in TERMINAL_STATUSES:
        sets += [f"#{OPEN_STATUS} = :status", f"#{SWEEP_AT} = :now"]
        names |= {f"#{OPEN_STATUS}": OPEN_STATUS, f"#{SWEEP_AT}": SWEEP_AT}
    else:
        sets.append("#finishedAt = :now")
        names["#finishedAt"] = "finishedAt"
        removes = tuple(f"#{name}" for name in WAITING_ATTRIBUTES)
        names |= {f"#{name}": name for name in WAITING_ATTRIBUTES}
    return StatusUpdate(
        target=target,
        sets=tuple(sets),
        removes=removes,
        names=names,
        values=values,
        condition=condition.expression,
    )


class JobRef(CamelModel):
    """The ``job`` object passed between the functions and the state machine."""

    job_id: str
    tenant_id: str
    bucket: str
    key: str
    version_id: str
    size_bytes: int = Field(ge=0)
    etag: str


class TimelineEntry(CamelModel):
    status: JobStatus
    at: str
    state: str
    reason: str | None = None

    def item(self) -> dict[str, Any]:
        # Same shape as the entries the state machine appends: reason only when there is one.
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class PipelineOutcome(CamelModel):
    """A terminal pipeline status as the state machine's "How did the build end?" reads it."""

    status: JobStatus
    reason: str
    at: str
    pipeline_execution_arn: str

    @field_validator("status")
    @classmethod
    def _terminal_build_status(cls, value: JobStatus) -> JobStatus:
        if value not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            raise ValueError(f"a pipeline outcome is SUCCEEDED, FAILED or STOPPED, not {value}")
        return value

    def resume_payload(self) -> dict[str, str]:
        """The task output await_pipeline / pipeline_events send (docs/contracts.md)."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "pipelineExecutionArn": self.pipeline_execution_arn,
        }


class Job(CamelModel):
    """A Jobs table item as controlplane.jobs.store returns it (docs/contracts.md, "Items"). Attributes
    appear as the job progresses; every writer that creates the item sets tenantId and status."""

    job_id: str
    tenant_id: str
    status: JobStatus
    tier: Tier | None = None
    reasons: list[str] = Field(default_factory=list)
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    size_bytes: int | None = None
    etag: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    execution_arn: str | None = None
    stats: dict[str, Any] | None = None
    training_data_uri: str | None = None
    model_output_uri: str | None = None
    queued_at: str | None = None
    # Which wait the job is in (docs/contracts.md): jobs queued before queueRound existed carry none.
    queue_round: int = 0
    queue_tier: Tier | None = None
    queue_share: str | None = None
    queue_task_token: str | None = None
    admitted_at: str | None = None
    # Set by the take: whether the slot is borrowed, and from whom (empty: the tier's own slot).
    slot_borrowed: bool | None = None
    slot_lent_by: str | None = None
    slot_released_at: str | None = None
    # When the gate folded this job's slot time into its tier's run-time average (once per job).
    run_time_recorded_at: str | None = None
    pipeline_execution_arn: str | None = None
    pipeline_task_token: str | None = None
    pipeline_outcome: PipelineOutcome | None = None
    resumed_at: str | None = None
    resumed_by: str | None = None
    cancel_requested_at: str | None = None
    finished_at: str | None = None
    # What the build produced and cost, read from SageMaker when its pipeline ended (builds.recording).
    build_results: BuildResults | None = None
    cost: JobCost | None = None
    cost_recorded_at: str | None = None
    # Only while the job is open: the sparse open-jobs index (OPEN_STATUS, SWEEP_AT).
    open_status: JobStatus | None = None
    sweep_at: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES
