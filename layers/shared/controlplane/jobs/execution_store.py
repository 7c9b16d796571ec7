"""Step Functions: resuming waiting tasks and asking whether (and how) an execution ended."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.core.clients import client, translated
from controlplane.core.errors import TaskTokenDeadError
from controlplane.jobs.execution_end import ExecutionEnd

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
