from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import (
    FakeStepFunctions,
    LambdaContext,
    job_id_for,
    load_event,
    queued_job,
    set_tier_limits,
    take_slot,
)

from controlplane.admission import gate as admission
from controlplane.admission import slot_store as slots
from controlplane.admission.decisions import queued_job_from
from controlplane.core.errors import AwsServiceError
from controlplane.core.model import format_timestamp
from controlplane.jobs import execution_store as executions
from controlplane.jobs.lifecycle import Job

pytestmark = pytest.mark.usefixtures("aws")
BATCH = load_event("gate_sqs_batch.json")
ASL_PATH = Path(__file__).parents[2] / "statemachines" / "training_job.asl.json"
EXECUTION_PREFIX = "arn:aws:states:us-east-1:123456789012:execution:MLaaS-Test-training-job"


@pytest.fixture
def gate(
    load_app: Callable[[str], ModuleType], context: LambdaContext
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    app = load_app("gate")

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(event, context)
        json.dumps(result)
        return result

    return invoke


def message(
    job_id: str,
    *,
    tier: str = "basic",
    token: str | None = None,
    tenant: str = "acme",
    queue_round: int | None = None,
) -> dict[str, Any]:
    record = json.loads(json.dumps(BATCH["Records"][0]))
    record["messageId"] = f"msg-{job_id}"
    body = {
        "taskToken": token or f"token-{job_id}",
        "jobId": job_id,
        "tenantId": tenant,
        "tier": tier,
        "executionArn": f"{EXECUTION_PREFIX}:{job_id}",
    }
    if queue_round is not None:
        body["queueRound"] = queue_round
    record["body"] = json.dumps(body)
    return record


def just_queued(table: Callable[[str], Any], job_id: str, queued_at: str, tier: str = "basic") -> None:
    """A job as the state machine leaves it before the gate sees its message: QUEUED, no token yet."""
    item = queued_job(table, job_id, tier=tier, queued_at=queued_at)
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id}, UpdateExpression="REMOVE queueTier, queueShare, queueTaskToken"
    )
    assert item


def job(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def running(table: Callable[[str], Any], tier: str = "basic") -> int:
    return int(table("TIERS_TABLE_NAME").get_item(Key={"tier": tier})["Item"]["running"])


def set_limit(table: Callable[[str], Any], limit: int) -> None:
    set_tier_limits(table, "basic", limit)


def test_sample_batch_stores_tokens_and_admits_in_order(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    bodies = [json.loads(record["body"]) for record in BATCH["Records"]]
    for number, body in enumerate(bodies):
        just_queued(table, body["jobId"], f"2024-05-14T09:2{number}:00.000Z")
    assert gate(BATCH) == {"batchItemFailures": []}
    assert [token for token, _ in stepfunctions.sent] == [body["taskToken"] for body in bodies]
    output = stepfunctions.sent[0][1]
    assert output["tier"] == "basic"
    assert output["admittedAt"] == job(table, bodies[0]["jobId"])["admittedAt"]
    for body in bodies:
        item = job(table, body["jobId"])
        assert item["status"] == "ADMITTED"
        assert "queueTaskToken" not in item  # delivered
        assert "queueTier" not in item  # out of the waiting room
    assert running(table) == 2


def test_admission_is_oldest_first_and_stops_at_the_limit(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    set_limit(table, 2)
    ids = [job_id_for(number) for number in range(4)]
    for number, job_id in enumerate(ids):
        just_queued(table, job_id, f"2024-05-14T09:0{4 - number}:00.000Z")  # newest first in the batch
    gate({"Records": [message(job_id) for job_id in ids]})
    admitted = {token.removeprefix("token-") for token, _ in stepfunctions.sent}
    assert admitted == {ids[3], ids[2]}  # the two oldest (basic allows 2)
    assert job(table, ids[0])["status"] == "QUEUED"
    assert job(table, ids[0])["queueTier"] == "basic"  # still waiting, with its token
    assert running(table) == 2


def test_bad_record_is_reported_and_the_rest_processed(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    just_queued(table, job_id_for(1), "2024-05-14T09:00:00.000Z")
    broken = message(job_id_for(2))
    broken["body"] = '{"jobId": "not-a-job"}'
    response = gate({"Records": [message(job_id_for(1)), broken]})
    assert response == {"batchItemFailures": [{"itemIdentifier": broken["messageId"]}]}
    assert len(stepfunctions.sent) == 1


def test_redelivered_message_for_an_admitted_job_is_dropped(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    just_queued(table, job_id_for(1), "2024-05-14T09:00:00.000Z")
    gate({"Records": [message(job_id_for(1))]})
    assert gate({"Records": [message(job_id_for(1))]}) == {"batchItemFailures": []}
    assert len(stepfunctions.sent) == 1
    assert running(table) == 1


def test_a_message_of_an_earlier_wait_never_replaces_the_current_waits_token(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    """A capacity shortage put the job back in line (round 1); its first wait's message, redelivered by
    SQS, must not be stored: its token is spent, and admitting with it would leave the live wait stranded."""
    job_id = job_id_for(1)
    just_queued(table, job_id, "2024-05-14T09:00:00.000Z")
    gate({"Records": [message(job_id, token="first-wait", queue_round=0)]})
    assert [token for token, _ in stepfunctions.sent] == ["first-wait"]
    assert slots.release(job_id, "basic")  # the refused start gave the slot back ...
    table("JOBS_TABLE_NAME").update_item(  # ... and "Put the job back in its tier's queue" ran
        Key={"jobId": job_id},
        UpdateExpression="SET #status = :queued, queueRound = :round",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={":queued": "QUEUED", ":round": 1},
    )

    stale = message(job_id, token="first-wait", queue_round=0)
    assert gate({"Records": [stale]}) == {"batchItemFailures": []}
    assert [token for token, _ in stepfunctions.sent] == ["first-wait"]
    assert "queueTaskToken" not in job(table, job_id)
    assert job(table, job_id)["status"] == "QUEUED"

    gate({"Records": [message(job_id, token="second-wait", queue_round=1)]})
    assert [token for token, _ in stepfunctions.sent] == ["first-wait", "second-wait"]
    assert job(table, job_id)["status"] == "ADMITTED"
    assert running(table) == 1


def test_every_queue_write_and_the_queue_message_name_the_same_wait_round() -> None:
    """The round the gate compares is written by both queueing states and sent by the wait, from one path."""
    states = json.loads(ASL_PATH.read_text())["States"]
    path = states["Wait in the tier's queue for a free slot"]["Parameters"]["MessageBody"]["queueRound.$"]
    for name in ("Put the job in its tier's queue", "Put the job back in its tier's queue"):
        parameters = states[name]["Parameters"]
        assert "#queueRound = :round" in parameters["UpdateExpression"]
        assert parameters["ExpressionAttributeValues"][":round"] == {"N.$": f"States.Format('{{}}', {path})"}


def test_message_on_the_wrong_queue_is_not_admitted(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    just_queued(table, job_id_for(1), "2024-05-14T09:00:00.000Z", tier="basic")
    assert gate({"Records": [message(job_id_for(1), tier="premium")]}) == {"batchItemFailures": []}
    assert stepfunctions.sent == []
    assert "queueTaskToken" not in job(table, job_id_for(1))


def test_dead_token_releases_the_slot_and_the_next_job_is_admitted(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    ids = [job_id_for(number) for number in range(3)]
    for number, job_id in enumerate(ids):
        just_queued(table, job_id, f"2024-05-14T09:0{number}:00.000Z")
    stepfunctions.dead.add(f"token-{ids[0]}")  # its wait timed out a moment ago
    gate({"Records": [message(job_id) for job_id in ids]})
    assert [token for token, _ in stepfunctions.sent] == [f"token-{ids[1]}", f"token-{ids[2]}"]
    assert running(table) == 2
    lease_ids = {item["jobId"] for item in table("SLOT_LEASES_TABLE_NAME").scan()["Items"]}
    assert lease_ids == {ids[1], ids[2]}
    # Nothing else is marked: the state machine's timeout path records EXPIRED.
    assert job(table, ids[0])["status"] == "ADMITTED"
    assert "queueTaskToken" not in job(table, ids[0])


def test_slot_released_trigger_admits_across_tiers(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    queued_job(table, job_id_for(1), tier="standard")
    queued_job(table, job_id_for(2), tier="basic", tenant_id="globex")
    event = load_event("gate_slot_released.json") | {"tier": "standard"}
    result = gate(event)
    # The freed slot's tier does not limit the run: every tier with a free slot admits.
    assert sorted(result["admission"]["admitted"]) == [job_id_for(1), job_id_for(2)]
    assert {token for token, _ in stepfunctions.sent} == {f"token-{job_id_for(1)}", f"token-{job_id_for(2)}"}


def test_unknown_trigger_is_refused(gate: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="trigger"):
        gate({"trigger": "sometimes"})


def test_schedule_reclaims_leaked_slots_and_admits(
    gate: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    capsys: pytest.CaptureFixture[str],
) -> None:
    holders = [
        queued_job_from(Job.model_validate(queued_job(table, job_id_for(number)))) for number in range(2)
    ]
    for holder in holders:
        assert holder is not None
        take_slot(holder, now=format_timestamp(datetime.now(UTC)))
    assert holders[0] is not None
    stepfunctions.statuses[holders[0].execution_arn] = "ABORTED"  # aborted by an operator: never released
    queued_job(table, job_id_for(7), queued_at="2024-05-14T09:00:00.000Z")
    capsys.readouterr()

    result = gate(load_event("gate_schedule.json"))
    assert result["tiers"]["basic"]["reclaimed"] == [job_id_for(0)]
    assert result["admission"]["admitted"] == [job_id_for(7)]
    assert set(result["tiers"]) == {"basic", "standard", "premium"}
    assert running(table) == 2
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    leaked = [blob for blob in metrics if "LeakedSlotsReclaimed" in blob]
    assert len(leaked) == 1
    assert leaked[0]["tier"] == "basic"
    assert leaked[0]["LeakedSlotsReclaimed"] == [1.0]


def test_schedule_reclaims_slots_of_executions_that_no_longer_exist(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    holder = queued_job_from(Job.model_validate(queued_job(table, job_id_for(1))))
    assert holder is not None
    take_slot(holder, now=format_timestamp(datetime.now(UTC)))
    stepfunctions.statuses[holder.execution_arn] = None
    assert gate({"trigger": "schedule"})["tiers"]["basic"]["reclaimed"] == [job_id_for(1)]
    assert running(table) == 0


def test_schedule_redelivers_an_admission_an_invocation_died_before_sending(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    holder = queued_job_from(Job.model_validate(queued_job(table, job_id_for(1))))
    assert holder is not None
    long_ago = format_timestamp(datetime.now(UTC) - timedelta(minutes=10))
    take_slot(holder, now=long_ago)  # ...and the invocation died before SendTaskSuccess
    gate({"trigger": "schedule"})
    assert stepfunctions.outputs_for(holder.task_token) == [{"admittedAt": long_ago, "tier": "basic"}]
    assert "queueTaskToken" not in job(table, job_id_for(1))
    assert running(table) == 1
    gate({"trigger": "schedule"})
    assert len(stepfunctions.sent) == 1  # delivered once


# ------------------------------------------------------------------ jobs whose execution is over


@pytest.fixture
def fresh_cursors(load_app: Callable[[str], ModuleType]) -> None:
    """The gate keeps its waiting-room sweep position in the warm sandbox: start each test from the oldest."""
    load_app("gate")._waiting_room_cursors.clear()


def take(table: Callable[[str], Any], number: int, *, at: datetime | None = None) -> str:
    holder = queued_job_from(Job.model_validate(queued_job(table, job_id_for(number))))
    assert holder is not None
    take_slot(holder, now=format_timestamp(at or datetime.now(UTC)))
    return holder.execution_arn


@pytest.mark.usefixtures("fresh_cursors")
def test_schedule_closes_the_job_of_a_reclaimed_slot_with_the_executions_ending(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    aborted, failed = take(table, 1), take(table, 2)
    stepfunctions.statuses[aborted] = "ABORTED"
    stepfunctions.statuses[failed] = "FAILED"
    stepfunctions.errors[failed] = ("States.Runtime", "The JSONPath '$.plan' could not be found")
    queued_job(table, job_id_for(3), queued_at="2024-05-14T09:00:00.000Z")  # waiting, its execution alive

    output = gate({"trigger": "schedule"})
    result = output["tiers"]["basic"]

    assert sorted(result["reclaimed"]) == [job_id_for(1), job_id_for(2)]
    assert output["admission"]["admitted"] == [job_id_for(3)]
    first, second = job(table, job_id_for(1)), job(table, job_id_for(2))
    assert first["status"] == second["status"] == "FAILED"
    assert first["reasons"] == [
        "the build's execution was aborted (stopped by an operator) before it finished"
    ]
    assert second["reasons"] == [
        "the build's execution failed: States.Runtime: The JSONPath '$.plan' could not be found"
    ]
    assert first["slotReleasedAt"] >= first["admittedAt"]
    assert running(table) == 1


@pytest.mark.usefixtures("fresh_cursors")
def test_schedule_closes_waiting_jobs_whose_execution_is_over_and_keeps_live_waits(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    set_limit(table, 0)  # nobody is admitted: only the sweep acts
    items = [
        queued_job(table, job_id_for(number), queued_at=f"2024-05-14T09:0{number}:00.000Z")
        for number in range(4)
    ]
    stepfunctions.statuses[items[1]["executionArn"]] = "ABORTED"
    stepfunctions.statuses[items[2]["executionArn"]] = "TIMED_OUT"
    stepfunctions.statuses[items[3]["executionArn"]] = "PENDING_REDRIVE"  # about to run again

    result = gate({"trigger": "schedule"})["tiers"]["basic"]

    assert result["closedWaiting"] == [job_id_for(1), job_id_for(2)]
    assert [job(table, job_id_for(n))["status"] for n in range(4)] == ["QUEUED", "FAILED", "FAILED", "QUEUED"]
    assert "queueTier" not in job(table, job_id_for(1))
    assert job(table, job_id_for(0))["queueTier"] == "basic"
    assert job(table, job_id_for(2))["reasons"] == [
        "the build's execution timed out after 7 days before it finished"
    ]
    assert running(table) == 0
    assert stepfunctions.sent == []


def test_the_waiting_room_sweep_is_bounded_and_continues_where_it_stopped(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    items = [
        queued_job(table, job_id_for(number), queued_at=f"2024-05-14T09:{number:02d}:00.000Z")
        for number in range(5)
    ]
    for item in items:
        stepfunctions.statuses[item["executionArn"]] = "ABORTED"

    first = admission.sweep_waiting_room("basic", limit=2)
    second = admission.sweep_waiting_room("basic", start_key=first.next_key, limit=2)
    third = admission.sweep_waiting_room("basic", start_key=second.next_key, limit=2)

    assert (first.closed, first.checked) == ([job_id_for(0), job_id_for(1)], 2)
    assert first.next_key is not None
    assert second.closed == [job_id_for(2), job_id_for(3)]
    assert third.closed == [job_id_for(4)]
    assert third.next_key is None  # the end: the next run starts from the oldest again


def test_a_throttled_waiting_room_sweep_stops_and_resumes_from_the_same_page(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = [
        queued_job(table, job_id_for(number), queued_at=f"2024-05-14T09:{number:02d}:00.000Z")
        for number in range(3)
    ]
    for item in items:
        stepfunctions.statuses[item["executionArn"]] = "ABORTED"
    first = admission.sweep_waiting_room("basic", limit=1)
    calls = iter([AwsServiceError("DescribeExecution", "ThrottlingException", "slow down")])

    def throttled_once(arn: str) -> Any:
        error = next(calls, None)
        if error is not None:
            raise error
        return stepfunctions.execution_end(arn)

    monkeypatch.setattr(executions, "execution_end", throttled_once)
    second = admission.sweep_waiting_room("basic", start_key=first.next_key, limit=1)
    third = admission.sweep_waiting_room("basic", start_key=second.next_key, limit=5)

    assert first.closed == [job_id_for(0)]
    assert second.closed == []
    assert second.next_key == first.next_key
    assert third.closed == [job_id_for(1), job_id_for(2)]


def test_a_dead_token_of_an_ended_execution_closes_the_job_and_admits_the_next(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    ids = [job_id_for(number) for number in range(3)]
    for number, job_id in enumerate(ids):
        just_queued(table, job_id, f"2024-05-14T09:0{number}:00.000Z")
    stepfunctions.dead.add(f"token-{ids[0]}")
    stepfunctions.statuses[f"{EXECUTION_PREFIX}:{ids[0]}"] = "ABORTED"  # aborted while waiting

    gate({"Records": [message(job_id) for job_id in ids]})

    closed = job(table, ids[0])
    assert closed["status"] == "FAILED"
    assert closed["reasons"] == [
        "the build's execution was aborted (stopped by an operator) before it finished"
    ]
    assert closed["slotReleasedAt"] >= closed["admittedAt"]
    assert "queueTaskToken" not in closed
    assert [token for token, _ in stepfunctions.sent] == [f"token-{ids[1]}", f"token-{ids[2]}"]
    assert running(table) == 2


def test_a_dead_token_whose_execution_cannot_be_described_keeps_the_lease_for_the_reclaimer(
    gate: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    just_queued(table, job_id_for(1), "2024-05-14T09:00:00.000Z")
    stepfunctions.dead.add(f"token-{job_id_for(1)}")

    def unavailable(arn: str) -> Any:
        raise AwsServiceError("DescribeExecution", "ServiceUnavailable", "later")

    monkeypatch.setattr(executions, "execution_end", unavailable)
    gate({"Records": [message(job_id_for(1))]})

    assert job(table, job_id_for(1))["status"] == "ADMITTED"
    assert running(table) == 1  # the lease stays: the reclaimer judges it on a later sweep
    monkeypatch.setattr(executions, "execution_end", stepfunctions.execution_end)
    stepfunctions.statuses[f"{EXECUTION_PREFIX}:{job_id_for(1)}"] = "ABORTED"
    assert admission.reclaim("basic") == [job_id_for(1)]
    assert job(table, job_id_for(1))["status"] == "FAILED"
    assert running(table) == 0
