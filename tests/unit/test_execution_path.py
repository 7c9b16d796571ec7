"""controlplane.jobs.execution_path: a job's path through the state machine from its execution's history."""

from __future__ import annotations

from controlplane.jobs.execution_path import HistoryEvent, path_of

ARN = "arn:aws:states:us-east-1:123456789012:execution:s-training-job:job-1"


def _events(*rows: tuple[str, str | None]) -> list[HistoryEvent]:
    return [
        HistoryEvent(id=number, type=kind, timestamp=f"2026-12-02T10:00:{number:02d}+00:00", state_name=name)
        for number, (kind, name) in enumerate(rows, start=1)
    ]


def test_a_running_execution_is_in_the_state_it_entered_last_and_has_not_left() -> None:
    events = _events(
        ("ExecutionStarted", None),
        ("TaskStateEntered", "Register the upload as a job"),
        ("TaskScheduled", None),
        ("TaskSucceeded", None),
        ("TaskStateExited", "Register the upload as a job"),
        ("ChoiceStateEntered", "Is this a new, acceptable upload?"),
        ("ChoiceStateExited", "Is this a new, acceptable upload?"),
        ("TaskStateEntered", "Wait for the pipeline to finish"),
    )
    path = path_of(ARN, "RUNNING", events, truncated=False)
    assert [(v.name, v.type) for v in path.visits] == [
        ("Register the upload as a job", "Task"),
        ("Is this a new, acceptable upload?", "Choice"),
        ("Wait for the pipeline to finish", "Task"),
    ]
    assert path.current == ["Wait for the pipeline to finish"]
    assert path.visits[0].exited_at == "2026-12-02T10:00:05+00:00"
    assert path.visits[-1].exited_at is None
    assert path.started_at == "2026-12-02T10:00:01+00:00"


def test_a_failed_task_is_left_with_its_error_and_the_end_event_wins_over_an_older_status() -> None:
    events = [
        *_events(("ExecutionStarted", None), ("TaskStateEntered", "Start the tenant's pipeline build")),
        HistoryEvent(
            id=3,
            type="TaskFailed",
            timestamp="2026-12-02T10:00:03+00:00",
            error="States.Timeout",
            cause="slow",
        ),
        *_events(("PassStateEntered", "Describe the failure"), ("PassStateExited", "Describe the failure"))[
            :2
        ],
        HistoryEvent(
            id=9, type="ExecutionFailed", timestamp="2026-12-02T10:00:09+00:00", error="BuildFailed"
        ),
    ]
    path = path_of(ARN, "RUNNING", events, truncated=True)
    start = path.visits[0]
    assert (start.error, start.cause, start.exited_at) == (
        "States.Timeout",
        "slow",
        "2026-12-02T10:00:03+00:00",
    )
    assert path.status == "FAILED"
    assert path.current == []
    assert (path.stopped_at, path.error, path.truncated) == ("2026-12-02T10:00:09+00:00", "BuildFailed", True)
