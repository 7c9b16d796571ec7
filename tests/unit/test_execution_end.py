"""Domain rules for builds whose execution is over: when, which reason, which job."""

from __future__ import annotations

import json

import pytest
from conftest import ASL, load_event

from controlplane.jobs.execution_end import (
    CAUSE_LIMIT,
    EXECUTION_TIMEOUT_SECONDS,
    UNRECORDED_ENDINGS,
    ExecutionEnd,
    closing_reason,
    closing_state,
    execution_is_over,
    job_id_of_upload_event,
)
from controlplane.uploads.keys import derive_job_id


def test_the_timeout_in_reasons_is_the_state_machines() -> None:
    assert json.loads(ASL.read_text())["TimeoutSeconds"] == EXECUTION_TIMEOUT_SECONDS


@pytest.mark.parametrize(
    ("status", "over"),
    [
        ("RUNNING", False),
        ("PENDING_REDRIVE", False),
        ("ABORTED", True),
        ("TIMED_OUT", True),
        ("FAILED", True),
        ("SUCCEEDED", True),
        (None, True),
    ],
)
def test_execution_is_over(status: str | None, over: bool) -> None:
    assert execution_is_over(status) is over


@pytest.mark.parametrize(
    ("end", "reason", "state"),
    [
        (
            ExecutionEnd("ABORTED"),
            "the build's execution was aborted (stopped by an operator) before it finished",
            "The execution was aborted",
        ),
        (
            ExecutionEnd("TIMED_OUT"),
            "the build's execution timed out after 7 days before it finished",
            "The execution timed out",
        ),
        (
            ExecutionEnd("FAILED", "States.Runtime", "bad path"),
            "the build's execution failed: States.Runtime: bad path",
            "The execution failed",
        ),
        (
            ExecutionEnd("FAILED", "Lambda.Unknown"),
            "the build's execution failed: Lambda.Unknown",
            "The execution failed",
        ),
        (
            ExecutionEnd("FAILED"),
            "the build's execution failed (Step Functions reported no error)",
            "The execution failed",
        ),
        (
            ExecutionEnd("SUCCEEDED"),
            "the build's execution ended (SUCCEEDED) without recording the job's outcome",
            "The execution ended",
        ),
        (ExecutionEnd(None), "the build's execution no longer exists", "The execution no longer exists"),
    ],
)
def test_reasons_and_timeline_states(end: ExecutionEnd, reason: str, state: str) -> None:
    assert closing_reason(end) == reason
    assert closing_state(end) == state


def test_long_causes_are_shortened_to_one_readable_line() -> None:
    trace = "Traceback (most recent call last):\n" + "  File x, line 1\n" * 5000
    reason = closing_reason(ExecutionEnd("FAILED", "Sandbox.Timedout", trace))
    assert reason.startswith(
        "the build's execution failed: Sandbox.Timedout: Traceback (most recent call last):"
    )
    assert "\n" not in reason
    assert reason.endswith("…")
    assert len(reason) < CAUSE_LIMIT + 100


def test_the_rule_subscribes_to_exactly_the_unrecorded_endings() -> None:
    assert {"ABORTED", "TIMED_OUT", "FAILED"} == UNRECORDED_ENDINGS


def test_job_id_is_the_one_register_upload_derives() -> None:
    detail = load_event("s3_object_created.json")["detail"]
    assert job_id_of_upload_event(
        detail["bucket"]["name"], detail["object"]["key"], detail["object"]["version-id"]
    ) == derive_job_id(detail["bucket"]["name"], detail["object"]["key"], detail["object"]["version-id"])
    # Keys are hashed as S3 events carry them (URL-encoded); versions are "null" when versioning was off.
    assert job_id_of_upload_event("b", "tenants/acme/uploads/red+flower%21.csv", None) == derive_job_id(
        "b", "tenants/acme/uploads/red+flower%21.csv", "null"
    )
