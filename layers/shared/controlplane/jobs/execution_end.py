"""What it means for a job when its build's Step Functions execution is over.

The state machine records every outcome it reaches itself (SUCCEEDED, FAILED, STOPPED, EXPIRED) before it
ends. An execution that is aborted (StopExecution), times out (the definition's TimeoutSeconds) or fails
without reaching one of its "Record ..." states leaves its job in its last non-terminal status and, if the
job held one, its slot taken. These rules say when that is the case and what the tenant reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from controlplane.jobs.lifecycle import FailureReason
from controlplane.uploads.keys import NULL_VERSION_ID, derive_job_id

# statemachines/training_job.asl.json "TimeoutSeconds" (a unit test keeps the two equal).
EXECUTION_TIMEOUT_SECONDS: Final = 604_800
RUNNING: Final = "RUNNING"
# A redrive was requested: the execution is about to run again, from the state where it stopped.
PENDING_REDRIVE: Final = "PENDING_REDRIVE"
ABORTED: Final = "ABORTED"
TIMED_OUT: Final = "TIMED_OUT"
FAILED: Final = "FAILED"
SUCCEEDED: Final = "SUCCEEDED"
# The statuses the ExecutionEvents rule subscribes to: the ways an execution can end without recording.
UNRECORDED_ENDINGS: Final = frozenset({ABORTED, TIMED_OUT, FAILED})
# Step Functions causes can be 32 KiB (a whole Lambda stack trace); the tenant reads the start of it.
CAUSE_LIMIT: Final = 1000


@dataclass(frozen=True, slots=True)
class ExecutionEnd:
    """An execution's status as Step Functions reports it (None: no such execution), with its error."""

    status: str | None
    error: str | None = None
    cause: str | None = None


def execution_is_over(status: str | None) -> bool:
    """Nothing will move the job on any more: the execution ended, or does not exist."""
    return status not in {RUNNING, PENDING_REDRIVE}


def _days(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    return f"{days} days" if rest == 0 else f"{seconds} seconds"


def _shorten(text: str, limit: int = CAUSE_LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def closing_reason(end: ExecutionEnd) -> str:
    """The reason the tenant reads on a job closed because its execution is over."""
    if end.status == ABORTED:
        return "the build's execution was aborted (stopped by an operator) before it finished"
    if end.status == TIMED_OUT:
        return f"the build's execution timed out after {_days(EXECUTION_TIMEOUT_SECONDS)} before it finished"
    if end.status == FAILED:
        error, cause = (end.error or "").strip(), (end.cause or "").strip()
        if error and cause:
            return f"the build's execution failed: {_shorten(error, 256)}: {_shorten(cause)}"
        if error or cause:
            return f"the build's execution failed: {_shorten(error or cause)}"
        return "the build's execution failed (Step Functions reported no error)"
    if end.status is None:
        return "the build's execution no longer exists"
    return f"the build's execution ended ({end.status}) without recording the job's outcome"


def closing_state(end: ExecutionEnd) -> str:
    """The timeline entry's ``state``: not a state of the definition (the execution is over), but the
    execution's ending, read as a sentence like the state names."""
    return {
        ABORTED: "The execution was aborted",
        TIMED_OUT: "The execution timed out",
        FAILED: "The execution failed",
        None: "The execution no longer exists",
    }.get(end.status, "The execution ended")


def failure_reason(end: ExecutionEnd) -> FailureReason:
    """The ``reason`` dimension of ``JobsFailed`` for a job closed because its execution is over."""
    return {
        ABORTED: FailureReason.EXECUTION_ABORTED,
        TIMED_OUT: FailureReason.EXECUTION_TIMED_OUT,
        FAILED: FailureReason.EXECUTION_FAILED,
        None: FailureReason.EXECUTION_MISSING,
    }.get(end.status, FailureReason.EXECUTION_ENDED)


def job_id_of_upload_event(bucket: str, raw_key: str, version_id: str | None) -> str:
    """The job id register_upload derives from the same S3 event (the execution's input): the key as the
    event carries it (URL-encoded), the version id as reported ("null" when absent)."""
    return derive_job_id(bucket, raw_key, version_id or NULL_VERSION_ID)
