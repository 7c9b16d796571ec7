"""Step Functions: resuming waiting tasks and asking whether (and how) an execution ended."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.core.clients import client, translated
from controlplane.core.errors import TaskTokenDeadError
from controlplane.jobs.execution_end import ExecutionEnd
from controlplane.jobs.execution_path import MAX_EVENTS, HistoryEvent

# Every way Step Functions says "nobody waits on this token any more".
DEAD_TOKEN_CODES: Final = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
_CAUSE_LIMIT: Final = 32768
_ERROR_LIMIT: Final = 256


def _dead_token(error: ClientError) -> TaskTokenDeadError | None:
    code = str(error.response.get("Error", {}).get("Code", ""))
    if code in DEAD_TOKEN_CODES:
        return TaskTokenDeadError(code, str(error.response.get("Error", {}).get("Message", "")))
    return None


@translated
def send_task_success(task_token: str, output: Mapping[str, Any]) -> None:
    """Resume a waiting task with ``output``. Raises TaskTokenDeadError when the task no longer waits."""
    try:
        client("stepfunctions").send_task_success(taskToken=task_token, output=json.dumps(output))
    except ClientError as error:
        dead = _dead_token(error)
        if dead is not None:
            raise dead from error
        raise


@translated
def send_task_failure(task_token: str, *, error: str, cause: str) -> None:
    """Fail a waiting task (``error`` is what the state machine's Catch matches on)."""
    try:
        client("stepfunctions").send_task_failure(
            taskToken=task_token, error=error[:_ERROR_LIMIT], cause=cause[:_CAUSE_LIMIT]
        )
    except ClientError as failure:
        dead = _dead_token(failure)
        if dead is not None:
            raise dead from failure
        raise


@translated
def execution_end(execution_arn: str) -> ExecutionEnd:
    """The execution's status (RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE; None when it
    does not exist) with its error and cause when it failed."""
    try:
        response = client("stepfunctions").describe_execution(executionArn=execution_arn)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in {"ExecutionDoesNotExist", "InvalidArn"}:
            return ExecutionEnd(status=None)
        raise
    error_name, cause = response.get("error"), response.get("cause")
    return ExecutionEnd(
        status=str(response["status"]),
        error=str(error_name) if error_name else None,
        cause=str(cause) if cause else None,
    )


@translated
def execution_status(execution_arn: str) -> str | None:
    """RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE; None when it does not exist."""
    return execution_end(execution_arn).status


def _history_event(event: Mapping[str, Any]) -> HistoryEvent:
    """The parts of one history event the path needs: the state's name, or the failure's error and cause."""
    details: Mapping[str, Any] = next(
        (value for key, value in event.items() if key.endswith("EventDetails") and isinstance(value, dict)),
        {},
    )
    timestamp = event["timestamp"]
    return HistoryEvent(
        id=int(event["id"]),
        type=str(event["type"]),
        timestamp=timestamp.isoformat() if hasattr(timestamp, "isoformat") else str(timestamp),
        state_name=details.get("name"),
        error=details.get("error"),
        cause=details.get("cause"),
    )


@translated
def execution_history(execution_arn: str, *, max_events: int = MAX_EVENTS) -> tuple[list[HistoryEvent], bool]:
    """The execution's history, oldest first, at most ``max_events`` events (GetExecutionHistory, 1,000 a
    page), and whether there were more."""
    stepfunctions = client("stepfunctions")
    events: list[HistoryEvent] = []
    request: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = stepfunctions.get_execution_history(**request)
        events += [_history_event(event) for event in page.get("events", [])]
        token = page.get("nextToken")
        if len(events) >= max_events:
            return events[:max_events], bool(token) or len(events) > max_events
        if not token:
            return events, False
        request["nextToken"] = token
