"""`mlaas dlq list` / `mlaas dlq redrive` (scripts.dead_letters) against moto's SQS: queues named as
CloudFormation names a stack's queues, the three kinds of dead letters this stack has (tier-queue
messages, EventBridge's undelivered events, Lambda's on-failure records), nothing deleted by a listing,
and a redrive that moves or replays every message exactly once."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from moto import mock_aws

from scripts import cli, dead_letters

REGION = "us-east-1"
STACK = "mlaas-t"
JOB = "job-" + "a" * 64
GATE_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{STACK}-GateFunction-ABC"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:123456789012:stateMachine:{STACK}-training-job"


@dataclass
class Recorder:
    """Stands in for the services a replay calls (moto's Lambda would need Docker to run anything)."""

    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("invoke", request))
        return {"StatusCode": 202}

    def start_execution(self, **request: Any) -> dict[str, Any]:
        self.calls.append(("start_execution", request))
        return {"executionArn": "arn:x"}


@dataclass
class Clients:
    recorder: Recorder
    real: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service in ("lambda", "stepfunctions"):
            return self.recorder
        if service not in self.real:
            self.real[service] = boto3.client(service, region_name=REGION)
        return self.real[service]


@pytest.fixture
def clients() -> Iterator[Clients]:
    with mock_aws():
        yield Clients(Recorder())


def _queue(clients: Clients, logical_id: str, **attributes: str) -> str:
    url: str = clients.client("sqs").create_queue(
        QueueName=f"{STACK}-{logical_id}-1A2B3C4D5E6F7", Attributes=attributes
    )["QueueUrl"]
    return url


def _arn(clients: Clients, url: str) -> str:
    attributes = clients.client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
    return str(attributes["Attributes"]["QueueArn"])


@pytest.fixture
def stack(clients: Clients) -> dict[str, str]:
    """A tier queue and its DLQ, the upload events DLQ, the gate on-failure DLQ, as a stack names them."""
    basic_dlq = _queue(clients, "BasicDeadLetterQueue")
    basic = _queue(
        clients,
        "BasicQueue",
        RedrivePolicy=json.dumps({"deadLetterTargetArn": _arn(clients, basic_dlq), "maxReceiveCount": "10"}),
    )
    uploads_dlq = _queue(clients, "UploadEventsDeadLetterQueue")
    gate_dlq = _queue(clients, "GateInvocationsDeadLetterQueue")
    events = clients.client("events")
    events.put_rule(Name=f"{STACK}-tenant-uploads", EventPattern=json.dumps({"source": ["aws.s3"]}))
    events.put_targets(Rule=f"{STACK}-tenant-uploads", Targets=[{"Id": "sfn", "Arn": STATE_MACHINE_ARN}])
    events.put_rule(Name=f"{STACK}-gate-sweep", ScheduleExpression="rate(1 minute)")
    events.put_targets(
        Rule=f"{STACK}-gate-sweep",
        Targets=[{"Id": "gate", "Arn": GATE_ARN, "Input": '{"trigger": "schedule"}'}],
    )
    return {"basic": basic, "basic_dlq": basic_dlq, "uploads_dlq": uploads_dlq, "gate_dlq": gate_dlq}


def _send_dead_letters(clients: Clients, stack: dict[str, str]) -> None:
    sqs = clients.client("sqs")
    sqs.send_message(
        QueueUrl=stack["basic_dlq"],
        MessageBody=json.dumps(
            {"taskToken": "t0k3n", "jobId": JOB, "tenantId": "acme", "tier": "basic", "executionArn": "arn:e"}
        ),
    )
    upload_event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "uploads"}, "object": {"key": "tenants/globex/uploads/a.csv"}},
    }
    sqs.send_message(
        QueueUrl=stack["uploads_dlq"],
        MessageBody=json.dumps(upload_event),
        MessageAttributes={
            name: {"DataType": "String", "StringValue": value}
            for name, value in {
                "RULE_ARN": f"arn:aws:events:{REGION}:123456789012:rule/{STACK}-tenant-uploads",
                "TARGET_ARN": STATE_MACHINE_ARN,
                "ERROR_CODE": "ThrottlingException",
                "ERROR_MESSAGE": "Rate exceeded",
            }.items()
        },
    )
    record = {
        "version": "1.0",
        "requestContext": {"functionArn": f"{GATE_ARN}:$LATEST", "condition": "RetriesExhausted"},
        "requestPayload": {"trigger": "slot-released", "tier": "basic", "jobId": JOB},
        "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        "responsePayload": {
            "errorType": "Sandbox.Timedout",
            "errorMessage": "Task timed out after 30.00 seconds",
        },
    }
    sqs.send_message(QueueUrl=stack["gate_dlq"], MessageBody=json.dumps(record))
    sqs.send_message(
        QueueUrl=stack["gate_dlq"],
        MessageBody=json.dumps({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events"}),
        MessageAttributes={
            "RULE_ARN": {
                "DataType": "String",
                "StringValue": f"arn:aws:events:{REGION}:123456789012:rule/{STACK}-gate-sweep",
            },
            "TARGET_ARN": {"DataType": "String", "StringValue": GATE_ARN},
        },
    )


def _run(clients: Clients, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(["dlq", "--stack", STACK, *argv], out=out, clients=clients)
    return code, out.getvalue()


def _visible(clients: Clients, url: str) -> int:
    attributes = clients.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_the_stacks_dead_letter_queues_are_found_with_their_source_queues(
    clients: Clients, stack: dict[str, str]
) -> None:
    queues = {queue.logical_id: queue for queue in dead_letters.dead_letter_queues(clients, STACK)}
    assert set(queues) == {
        "BasicDeadLetterQueue",
        "UploadEventsDeadLetterQueue",
        "GateInvocationsDeadLetterQueue",
    }
    assert queues["BasicDeadLetterQueue"].source_urls == (stack["basic"],)
    assert queues["UploadEventsDeadLetterQueue"].source_urls == ()
    assert dead_letters.find_queue(list(queues.values()), "basic").url == stack["basic_dlq"]
    with pytest.raises(LookupError, match="no dead-letter queue 'premium'"):
        dead_letters.find_queue(list(queues.values()), "premium")


def test_list_shows_counts_ages_and_the_jobs_and_tenants_of_each_message_and_deletes_nothing(
    clients: Clients, stack: dict[str, str]
) -> None:
    _send_dead_letters(clients, stack)
    code, text = _run(clients, "list")
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].split() == ["queue", "visible", "in", "flight", "oldest", "redrive", "to"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["BasicDeadLetterQueue"][1:3] == ["1", "0"]
    assert rows["BasicDeadLetterQueue"][4].startswith(f"{STACK}-BasicQueue-")
    assert rows["GateInvocationsDeadLetterQueue"][1] == "2"
    assert rows["UploadEventsDeadLetterQueue"][4:] == ["replay", "to", "its", "target"]
    assert "tier-queue message" in text
    assert JOB in text
    assert "acme" in text
    assert "globex" in text  # from the upload event's S3 key
    assert "undelivered event of rule mlaas-t-tenant-uploads" in text
    assert "ThrottlingException: Rate exceeded" in text
    assert f"failed invocation of {STACK}-GateFunction-ABC" in text
    assert "RetriesExhausted Sandbox.Timedout" in text
    # Nothing was deleted, and everything is visible again at once.
    assert (_visible(clients, stack["basic_dlq"]), _visible(clients, stack["gate_dlq"])) == (1, 2)
    assert _run(clients, "list")[1].count(JOB) == 2


def test_redrive_of_a_tier_dlq_moves_its_messages_back_to_the_tier_queue(
    clients: Clients, stack: dict[str, str]
) -> None:
    _send_dead_letters(clients, stack)
    code, text = _run(clients, "redrive", "basic")
    assert code == 0, text
    # moto has no StartMessageMoveTask: the fallback says so and moves one by one.
    assert "StartMessageMoveTask is not available here" in text
    assert "moved" in text
    assert f"job {JOB}, tenant acme) to {STACK}-BasicQueue-" in text
    assert text.strip().endswith("BasicDeadLetterQueue: 1 moved back, 0 kept")
    assert _visible(clients, stack["basic_dlq"]) == 0
    (message,) = clients.client("sqs").receive_message(QueueUrl=stack["basic"])["Messages"]
    assert json.loads(message["Body"])["taskToken"] == "t0k3n"


def test_redrive_uses_start_message_move_task_where_sqs_has_it(
    clients: Clients, stack: dict[str, str]
) -> None:
    sqs = clients.client("sqs")
    requests: list[dict[str, Any]] = []

    def start_message_move_task(**request: Any) -> dict[str, str]:
        requests.append(request)
        return {"TaskHandle": "handle-1"}

    sqs.start_message_move_task = start_message_move_task
    code, text = _run(clients, "redrive", "BasicDeadLetterQueue")
    assert code == 0, text
    assert requests == [{"SourceArn": _arn(clients, stack["basic_dlq"])}]  # back to each message's source
    assert "started SQS message move task handle-1" in text


def test_redrive_replays_undelivered_events_and_failed_invocations_to_their_targets(
    clients: Clients, stack: dict[str, str]
) -> None:
    _send_dead_letters(clients, stack)
    code, text = _run(clients, "redrive", "UploadEventsDeadLetterQueue")
    assert code == 0, text
    ((kind, request),) = clients.recorder.calls
    assert kind == "start_execution"
    assert request["stateMachineArn"] == STATE_MACHINE_ARN
    assert json.loads(request["input"])["detail"]["object"]["key"] == "tenants/globex/uploads/a.csv"
    assert "replayed" in text

    clients.recorder.calls.clear()
    code, text = _run(clients, "redrive", "GateInvocationsDeadLetterQueue")
    assert code == 0, text
    replayed = sorted(
        (
            (request["FunctionName"], json.loads(request["Payload"]), request["InvocationType"])
            for _, request in clients.recorder.calls
        ),
        key=lambda call: json.dumps(call, sort_keys=True),
    )
    assert replayed == sorted(
        [
            (
                GATE_ARN,
                {"jobId": JOB, "tier": "basic", "trigger": "slot-released"},
                "Event",
            ),  # the record's payload
            (GATE_ARN, {"trigger": "schedule"}, "Event"),  # the schedule's own Input, not the raw event
        ],
        key=lambda call: json.dumps(call, sort_keys=True),
    )
    assert (_visible(clients, stack["uploads_dlq"]), _visible(clients, stack["gate_dlq"])) == (0, 0)
    assert text.strip().endswith("GateInvocationsDeadLetterQueue: 2 moved back, 0 kept")


def test_a_message_that_cannot_be_replayed_is_kept_and_the_command_fails(
    clients: Clients, stack: dict[str, str]
) -> None:
    clients.client("sqs").send_message(QueueUrl=stack["gate_dlq"], MessageBody="not json")
    code, text = _run(clients, "redrive", "GateInvocationsDeadLetterQueue")
    assert code == 1
    assert "kept" in text
    assert "its body is not JSON" in text
    assert _visible(clients, stack["gate_dlq"]) == 1
