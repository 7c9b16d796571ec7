"""A job's path through the state machine, as its execution's history tells it (the console draws it).

Step Functions' history is a list of events; the path is the states in the order they were entered, each
with when it was entered and left, and the error that made it leave when it failed (a Catch then names
the next state). Plain rules over typed events: the store (execution_store.execution_history) reads them.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from controlplane.core.model import CamelModel

# Suffixes of the history's event types that enter and leave a state (TaskStateEntered, ChoiceStateExited...).
_ENTERED: Final = "StateEntered"
_EXITED: Final = "StateExited"
# Events that say a state's work failed (its Catch, if any, picks the next state; no StateExited follows).
_FAILED: Final = frozenset(
    {"TaskFailed", "TaskTimedOut", "TaskStartFailed", "TaskSubmitFailed", "LambdaFunctionFailed"}
)
# The history's last word on an execution, as DescribeExecution's status names it.
EXECUTION_ENDS: Final = {
    "ExecutionSucceeded": "SUCCEEDED",
    "ExecutionFailed": "FAILED",
    "ExecutionAborted": "ABORTED",
    "ExecutionTimedOut": "TIMED_OUT",
}
# How many history events one view reads at most (Step Functions pages 1,000 at a time).
MAX_EVENTS: Final = 5000


class HistoryEvent(CamelModel):
    """One GetExecutionHistory event, reduced to what the path needs."""

    id: int
    type: str
    timestamp: str
    state_name: str | None = None
    error: str | None = None
    cause: str | None = None


class StateVisit(CamelModel):
    """One stay in a state: entered, then left (``exited_at``), or still in it (None)."""

    name: str
    type: str = Field(description="The state's type as the history names it: Task, Choice, Pass, Wait, ...")
    entered_at: str
    exited_at: str | None = None
    error: str | None = Field(default=None, description="Why it failed (its Catch then chose the next state)")
    cause: str | None = None


class ExecutionPath(CamelModel):
    execution_arn: str
    status: str = Field(description="RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED")
    started_at: str | None = None
    stopped_at: str | None = None
    visits: list[StateVisit] = Field(default_factory=list, description="In the order the states were entered")
    current: list[str] = Field(default_factory=list, description="States entered and not yet left")
    error: str | None = None
    cause: str | None = None
    truncated: bool = Field(
        default=False, description=f"True when the history had more than {MAX_EVENTS} events"
    )


def _cut(text: str | None, limit: int = 2000) -> str | None:
    return text if text is None or len(text) <= limit else text[:limit] + "..."


def path_of(execution_arn: str, status: str, events: list[HistoryEvent], *, truncated: bool) -> ExecutionPath:
    """The states ``events`` (oldest first) visited; ``status`` is the execution's (DescribeExecution)."""
    visits: list[dict[str, str | None]] = []
    open_visits: dict[str, dict[str, str | None]] = {}
    execution: dict[str, str | None] = {}
    for event in events:
        if event.type == "ExecutionStarted":
            execution["started_at"] = event.timestamp
        elif event.type in EXECUTION_ENDS:
            # Newer than a status read before the history was: the end event wins.
            status = EXECUTION_ENDS[event.type]
            execution |= {"stopped_at": event.timestamp, "error": event.error, "cause": _cut(event.cause)}
        elif event.type.endswith(_ENTERED) and event.state_name:
            visit: dict[str, str | None] = {
                "name": event.state_name,
                "type": event.type[: -len(_ENTERED)],
                "entered_at": event.timestamp,
            }
            visits.append(visit)
            open_visits[event.state_name] = visit
        elif event.type.endswith(_EXITED) and event.state_name in open_visits:
            open_visits.pop(event.state_name)["exited_at"] = event.timestamp
        elif event.type in _FAILED:
            # A task's failure belongs to the state entered last and not yet left.
            failing = next((v for v in reversed(visits) if v.get("exited_at") is None), None)
            if failing is not None:
                failing |= {"error": event.error, "cause": _cut(event.cause), "exited_at": event.timestamp}
                open_visits.pop(str(failing["name"]), None)
    stays = [StateVisit.model_validate(visit) for visit in visits]
    current = [stay.name for stay in stays if stay.exited_at is None] if status == "RUNNING" else []
    return ExecutionPath.model_validate(
        execution
        | {
            "execution_arn": execution_arn,
            "status": status,
            "visits": stays,
            "current": current,
            "truncated": truncated,
        }
    )
