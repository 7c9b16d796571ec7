"""Follow a job through the state machine: its execution's path (the operator console's picture of it)."""

from __future__ import annotations

from controlplane.jobs import execution_store
from controlplane.jobs.execution_path import ExecutionPath, path_of
from controlplane.jobs.lifecycle import Job


def execution_path(job: Job) -> ExecutionPath | None:
    """The states the job's execution visited, with its status; None when the job names no execution or the
    execution no longer exists (Step Functions keeps a Standard execution's history for 90 days)."""
    if not job.execution_arn:
        return None
    end = execution_store.execution_end(job.execution_arn)
    if end.status is None:
        return None
    events, truncated = execution_store.execution_history(job.execution_arn)
    return path_of(job.execution_arn, end.status, events, truncated=truncated)
