from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from conftest import FakeStepFunctions, LambdaContext, job_id_for, load_event, queued_job

from controlplane.access import slots
from controlplane.domain.admission import queued_job_from_item
from controlplane.domain.models import format_timestamp

pytestmark = pytest.mark.usefixtures("aws")
BATCH = load_event("gate_sqs_batch.json")
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
    job_id: str, *, tier: str = "basic", token: str | None = None, tenant: str = "acme"
) -> dict[str, Any]:
    record = json.loads(json.dumps(BATCH["Records"][0]))
    record["messageId"] = f"msg-{job_id}"
    record["body"] = json.dumps(
        {
            "taskToken": token or f"token-{job_id}",
            "jobId": job_id,
            "tenantId": tenant,
            "tier": tier,
            "executionArn": f"{EXECUTION_PREFIX}:{job_id}",
        }
    )
    return record


def just_queued(table: Callable[[str], Any], job_id: str, queued_at: str, tier: str = "basic") -> None:
    """A job as the state machine leaves it before the gate sees its message: QUEUED, no token yet."""
    item = queued_job(table, job_id, tier=tier, queued_at=queued_at)
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id}, UpdateExpression="REMOVE queueTier, queueTaskToken"
    )
    assert item


def job(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def running(table: Callable[[str], Any], tier: str = "basic") -> int:
    return int(table("TIERS_TABLE_NAME").get_item(Key={"tier": tier})["Item"]["running"])


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


def test_slot_released_trigger_admits_for_that_tier(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    queued_job(table, job_id_for(1), tier="standard")
    queued_job(table, job_id_for(2), tier="basic")
    event = load_event("gate_slot_released.json") | {"tier": "standard"}
    result = gate(event)
    assert result["tiers"]["standard"]["admitted"] == [job_id_for(1)]
    assert [token for token, _ in stepfunctions.sent] == [f"token-{job_id_for(1)}"]


def test_unknown_trigger_is_refused(gate: Callable[..., dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="trigger"):
        gate({"trigger": "sometimes"})


def test_schedule_reclaims_leaked_slots_and_admits(
    gate: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
    stepfunctions: FakeStepFunctions,
    capsys: pytest.CaptureFixture[str],
) -> None:
    holders = [queued_job_from_item(queued_job(table, job_id_for(number))) for number in range(2)]
    for holder in holders:
        assert holder is not None
        slots.take(holder, now=format_timestamp(datetime.now(UTC)))
    assert holders[0] is not None
    stepfunctions.statuses[holders[0].execution_arn] = "ABORTED"  # aborted by an operator: never released
    queued_job(table, job_id_for(7), queued_at="2024-05-14T09:00:00.000Z")
    capsys.readouterr()

    result = gate(load_event("gate_schedule.json"))
    assert result["tiers"]["basic"]["reclaimed"] == [job_id_for(0)]
    assert result["tiers"]["basic"]["admitted"] == [job_id_for(7)]
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
    holder = queued_job_from_item(queued_job(table, job_id_for(1)))
    assert holder is not None
    slots.take(holder, now=format_timestamp(datetime.now(UTC)))
    stepfunctions.statuses[holder.execution_arn] = None
    assert gate({"trigger": "schedule"})["tiers"]["basic"]["reclaimed"] == [job_id_for(1)]
    assert running(table) == 0


def test_schedule_redelivers_an_admission_an_invocation_died_before_sending(
    gate: Callable[..., dict[str, Any]], table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    holder = queued_job_from_item(queued_job(table, job_id_for(1)))
    assert holder is not None
    long_ago = format_timestamp(datetime.now(UTC) - timedelta(minutes=10))
    slots.take(holder, now=long_ago)  # ...and the invocation died before SendTaskSuccess
    gate({"trigger": "schedule"})
    assert stepfunctions.outputs_for(holder.task_token) == [{"admittedAt": long_ago, "tier": "basic"}]
    assert "queueTaskToken" not in job(table, job_id_for(1))
    assert running(table) == 1
    gate({"trigger": "schedule"})
    assert len(stepfunctions.sent) == 1  # delivered once
