"""What the stack's dead-letter queues hold, and putting it back where it came from (`mlaas dlq ...`).

Talks to AWS (or the local emulator with ``--endpoint-url``) directly, not through the status API: an
operator who may read and move SQS messages runs it.

- **Which queues.** The stack's queues whose logical id ends in ``DeadLetterQueue`` (the template's
  convention; tests/template checks that every queue used as a dead-letter target follows it): from
  CloudFormation's stack resources on AWS, else (the emulator has no CloudFormation stack) the queues
  named ``<stack>-...DeadLetterQueue-...``.
- **Listing never deletes.** Messages are received with a short visibility hold and made visible again
  right away (their receive count goes up by one; a dead-letter queue has no redrive policy of its own).
- **Redrive.** A queue that is the dead-letter target of SQS queues (the tier queues' DLQs) is moved back
  with SQS StartMessageMoveTask, which returns each message to the queue it came from. Where that API is
  missing (moto), the messages are moved one by one: received, sent to the source queue, then deleted.
  A queue fed by EventBridge (undelivered events) or by Lambda (on-failure destination records) has no
  source queue: each message is replayed to what it was meant for (the rule's target, or the function,
  asynchronously, with the original payload), then deleted; one that cannot be replayed stays.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

from botocore.exceptions import BotoCoreError, ClientError

_DLQ_SUFFIX = "DeadLetterQueue"
_RECEIVE_LIMIT = 10
_PEEK_HOLD_SECONDS = 20
_MOVE_HOLD_SECONDS = 60
_TENANT_KEY = re.compile(r"^tenants/([^/]+)/")
# Errors meaning "this endpoint has no StartMessageMoveTask" (moto answers NotImplementedError in
# process, an error response over HTTP).
_MOVE_TASK_MISSING = frozenset({"InternalFailure", "InternalError", "NotImplemented", "InvalidAction"})


class Clients(Protocol):
    def client(self, service: str) -> Any: ...


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    url: str
    arn: str
    logical_id: str
    source_urls: tuple[str, ...]


@dataclass(frozen=True)
class Peeked:
    message_id: str
    sent_at: float | None
    receive_count: int
    kind: str
    job_id: str | None
    tenant_id: str | None
    detail: str


@dataclass
class Inspection:
    queue: DeadLetterQueue
    visible: int
    in_flight: int
    oldest_age_seconds: float | None
    peeked: list[Peeked] = field(default_factory=list)


# ---------------------------------------------------------------- which queues


def _logical_id(stack: str, queue_name: str) -> str:
    rest = queue_name[len(stack) + 1 :] if queue_name.startswith(f"{stack}-") else queue_name
    return rest.rsplit("-", 1)[0] if "-" in rest else rest


def _stack_queue_urls(clients: Clients, stack: str) -> dict[str, str] | None:
    """Logical id -> queue URL from CloudFormation, or None when the stack is not known to it."""
    try:
        resources = clients.client("cloudformation").describe_stack_resources(StackName=stack)
    except (ClientError, BotoCoreError, NotImplementedError):
        return None
    return {
        resource["LogicalResourceId"]: resource["PhysicalResourceId"]
        for resource in resources.get("StackResources", [])
        if resource["ResourceType"] == "AWS::SQS::Queue"
    }


def dead_letter_queues(clients: Clients, stack: str) -> list[DeadLetterQueue]:
    sqs = clients.client("sqs")
    urls = _stack_queue_urls(clients, stack)
    if urls is None:
        listed: list[str] = []
        for page in sqs.get_paginator("list_queues").paginate(QueueNamePrefix=f"{stack}-"):
            listed += page.get("QueueUrls", [])
        urls = {_logical_id(stack, url.rsplit("/", 1)[-1]): url for url in listed}
    found: list[DeadLetterQueue] = []
    for logical_id, url in sorted(urls.items()):
        if not logical_id.endswith(_DLQ_SUFFIX):
            continue
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sources = tuple(sqs.list_dead_letter_source_queues(QueueUrl=url).get("queueUrls", []))
        found.append(DeadLetterQueue(url.rsplit("/", 1)[-1], url, arn, logical_id, sources))
    return found


def find_queue(queues: list[DeadLetterQueue], wanted: str) -> DeadLetterQueue:
    """By logical id (BasicDeadLetterQueue), its short form (basic), queue name or URL."""
    lowered = wanted.lower()
    for queue in queues:
        short = queue.logical_id.removesuffix(_DLQ_SUFFIX).lower()
        if lowered in {queue.logical_id.lower(), short, queue.name.lower(), queue.url.lower()}:
            return queue
    names = ", ".join(queue.logical_id for queue in queues) or "none"
    raise LookupError(f"no dead-letter queue {wanted!r} in the stack (there are: {names})")


# ---------------------------------------------------------------- what a message is


def _walk(value: Any, depth: int = 0) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a JSON document, also inside strings that hold JSON documents."""
    if depth > 8:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            yield key, item
            yield from _walk(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, depth + 1)
    elif isinstance(value, str) and value[:1] in "{[":
        try:
            yield from _walk(json.loads(value), depth + 1)
        except ValueError:
            return


def message_ids(document: Any) -> tuple[str | None, str | None]:
    """The job id and tenant id a message names, wherever they are (an S3 key names the tenant)."""
    job_id: str | None = None
    tenant_id: str | None = None
    for key, value in _walk(document):
        if not isinstance(value, str):
            continue
        if key == "jobId" and job_id is None:
            job_id = value
        elif key == "tenantId" and tenant_id is None:
            tenant_id = value
        elif key == "key" and tenant_id is None and (match := _TENANT_KEY.match(value)):
            tenant_id = match.group(1)
    return job_id, tenant_id


def _attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {}).get("StringValue")
    return str(value) if value is not None else None


def describe(message: dict[str, Any]) -> Peeked:
    try:
        body: Any = json.loads(message.get("Body", ""))
    except ValueError:
        body = message.get("Body", "")
    job_id, tenant_id = message_ids(body)
    attributes = message.get("Attributes", {})
    if isinstance(body, dict) and "taskToken" in body:
        kind, detail = "tier-queue message", f"tier {body.get('tier', '?')}"
    elif isinstance(body, dict) and "requestContext" in body and "requestPayload" in body:
        function = str(body["requestContext"].get("functionArn", "?")).split(":")[6:7] or ["?"]
        response = body.get("responsePayload")
        error = (
            f"{response.get('errorType', '')}: {response.get('errorMessage', '')}"
            if isinstance(response, dict)
            else str(response)
        )
        kind = f"failed invocation of {function[0]}"
        detail = f"{body['requestContext'].get('condition', '')} {error}".strip()
    elif _attribute(message, "RULE_ARN"):
        rule = str(_attribute(message, "RULE_ARN")).rsplit("/", 1)[-1]
        kind = f"undelivered event of rule {rule}"
        detail = f"{_attribute(message, 'ERROR_CODE') or ''}: {_attribute(message, 'ERROR_MESSAGE') or ''}"
    else:
        kind, detail = "message", ""
    sent = attributes.get("SentTimestamp")
    return Peeked(
        message_id=message["MessageId"],
        sent_at=int(sent) / 1000 if sent else None,
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        kind=kind,
        job_id=job_id,
        tenant_id=tenant_id,
        detail=detail[:200],
    )


# ---------------------------------------------------------------- listing


def _receive(sqs: Any, url: str, hold_seconds: int, count: int = _RECEIVE_LIMIT) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = sqs.receive_message(
        QueueUrl=url,
        MaxNumberOfMessages=min(count, _RECEIVE_LIMIT),
        WaitTimeSeconds=0,
        VisibilityTimeout=hold_seconds,
        AttributeNames=["All"],
        MessageAttributeNames=["All"],
    ).get("Messages", [])
    return messages


def inspect(clients: Clients, queue: DeadLetterQueue, *, peek: int = 5, scan: int = 100) -> Inspection:
    """Counts, the oldest message's age (among up to `scan` messages) and a peek, deleting nothing."""
    sqs = clients.client("sqs")
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    inspection = Inspection(
        queue=queue,
        visible=int(attributes.get("ApproximateNumberOfMessages", 0)),
        in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
        oldest_age_seconds=None,
    )
    if inspection.visible == 0:
        return inspection
    held: list[dict[str, Any]] = []
    try:
        while len(held) < scan:
            batch = _receive(sqs, queue.url, _PEEK_HOLD_SECONDS, scan - len(held))
            if not batch:
                break
            held += batch
    finally:
        # Visible again at once: listing leaves the queue as it was.
        for start in range(0, len(held), _RECEIVE_LIMIT):
            sqs.change_message_visibility_batch(
                QueueUrl=queue.url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"], "VisibilityTimeout": 0}
                    for index, message in enumerate(held[start : start + _RECEIVE_LIMIT])
                ],
            )
    described = sorted((describe(message) for message in held), key=lambda p: p.sent_at or 0)
    sent = [p.sent_at for p in described if p.sent_at is not None]
    inspection.oldest_age_seconds = max(0.0, time.time() - min(sent)) if sent else None
    inspection.peeked = described[:peek]
    return inspection


def age_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


# ---------------------------------------------------------------- redrive


@dataclass
class RedriveReport:
    moved: int = 0
    kept: int = 0
    move_task: str | None = None


def _move_task_missing(error: Exception) -> bool:
    if isinstance(error, NotImplementedError):
        return True
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
        return code in _MOVE_TASK_MISSING or status >= 500
    return False


def redrive(
    clients: Clients, queue: DeadLetterQueue, out: TextIO, *, limit: int | None = None
) -> RedriveReport:
    if queue.source_urls:
        return _redrive_to_sources(clients, queue, out, limit=limit)
    return _replay(clients, queue, out, limit=limit)


def _release(sqs: Any, url: str, kept: list[dict[str, Any]]) -> None:
    """Make the messages a redrive kept visible again (they were held only while this run went on)."""
    for message in kept:
        sqs.change_message_visibility(
            QueueUrl=url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


def _messages(sqs: Any, url: str, limit: int | None) -> Iterator[dict[str, Any]]:
    taken = 0
    while limit is None or taken < limit:
        batch = _receive(sqs, url, _MOVE_HOLD_SECONDS, _RECEIVE_LIMIT if limit is None else limit - taken)
        if not batch:
            return
        for message in batch:
            taken += 1
            yield message


def _line(verb: str, peeked: Peeked, where: str) -> str:
    ids = ", ".join(
        f"{name} {value}" for name, value in (("job", peeked.job_id), ("tenant", peeked.tenant_id)) if value
    )
    return f"  {verb} {peeked.message_id} ({peeked.kind}{', ' + ids if ids else ''}) {where}"


def _redrive_to_sources(
    clients: Clients, queue: DeadLetterQueue, out: TextIO, *, limit: int | None
) -> RedriveReport:
    sqs = clients.client("sqs")
    report = RedriveReport()
    if limit is None:
        try:
            handle = sqs.start_message_move_task(SourceArn=queue.arn)["TaskHandle"]
        except (ClientError, NotImplementedError) as error:
            if not _move_task_missing(error):
                raise
            print(
                f"{queue.logical_id}: StartMessageMoveTask is not available here ({type(error).__name__}); "
                "moving the messages one by one (receive, send to the source queue, delete)",
                file=out,
            )
        else:
            report.move_task = handle
            print(
                f"{queue.logical_id}: started SQS message move task {handle}; SQS returns each message to "
                "the queue it came from (follow it with `aws sqs list-message-move-tasks`)",
                file=out,
            )
            return report
    sources = {
        sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]: url
        for url in queue.source_urls
    }
    kept: list[dict[str, Any]] = []
    for message in _messages(sqs, queue.url, limit):
        peeked = describe(message)
        origin = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
        target = (
            sources.get(origin) if origin else (next(iter(sources.values())) if len(sources) == 1 else None)
        )
        if target is None:
            report.kept += 1
            kept.append(message)
            print(
                _line("kept", peeked, "(its source queue is not known: several queues use this DLQ)"),
                file=out,
            )
            continue
        request: dict[str, Any] = {"QueueUrl": target, "MessageBody": message["Body"]}
        if message.get("MessageAttributes"):
            request["MessageAttributes"] = message["MessageAttributes"]
        sqs.send_message(**request)
        sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        report.moved += 1
        print(_line("moved", peeked, f"to {target.rsplit('/', 1)[-1]}"), file=out)
    _release(sqs, queue.url, kept)
    return report


def _rule_target(clients: Clients, rule_arn: str, target_arn: str) -> dict[str, Any] | None:
    name = rule_arn.split(":rule/", 1)[-1]
    bus, _, rule = name.rpartition("/")
    request: dict[str, Any] = {"Rule": rule} | ({"EventBusName": bus} if bus else {})
    for page in clients.client("events").get_paginator("list_targets_by_rule").paginate(**request):
        for target in page["Targets"]:
            if target["Arn"] == target_arn:
                return dict(target)
    return None


def _replay_target(clients: Clients, message: dict[str, Any]) -> tuple[str, str] | str:
    """(target ARN, payload) to replay the message to, or why it cannot be replayed."""
    try:
        body = json.loads(message["Body"])
    except ValueError:
        return "its body is not JSON"
    if isinstance(body, dict) and "requestContext" in body and "requestPayload" in body:
        function_arn = str(body["requestContext"].get("functionArn", ""))
        if function_arn.count(":") > 6:  # a qualified ARN (...:function:name:$LATEST)
            function_arn = function_arn.rsplit(":", 1)[0]
        return function_arn, json.dumps(body["requestPayload"])
    rule_arn, target_arn = _attribute(message, "RULE_ARN"), _attribute(message, "TARGET_ARN")
    if rule_arn and target_arn:
        target = _rule_target(clients, rule_arn, target_arn)
        if target is None:
            return f"rule {rule_arn} no longer has the target {target_arn}"
        if "InputPath" in target or "InputTransformer" in target:
            return "its target transforms the event (InputPath/InputTransformer), which is not replayed"
        return target_arn, str(target["Input"]) if "Input" in target else message["Body"]
    return "it is neither a Lambda destination record nor an EventBridge dead letter"


def _replay(clients: Clients, queue: DeadLetterQueue, out: TextIO, *, limit: int | None) -> RedriveReport:
    sqs = clients.client("sqs")
    report = RedriveReport()
    print(
        f"{queue.logical_id}: no SQS queue dead-letters into it; replaying each message to its target "
        "(the rule's target or the function, asynchronously), deleting it once accepted",
        file=out,
    )
    kept: list[dict[str, Any]] = []
    for message in _messages(sqs, queue.url, limit):
        peeked = describe(message)
        target = _replay_target(clients, message)
        if isinstance(target, str):
            report.kept += 1
            kept.append(message)
            print(_line("kept", peeked, f"({target})"), file=out)
            continue
        arn, payload = target
        try:
            if ":states:" in arn:
                name = f"redrive-{message['MessageId']}"[:80]
                clients.client("stepfunctions").start_execution(stateMachineArn=arn, name=name, input=payload)
            elif ":lambda:" in arn:
                clients.client("lambda").invoke(
                    FunctionName=arn, InvocationType="Event", Payload=payload.encode()
                )
            elif ":sqs:" in arn:
                sqs.send_message(
                    QueueUrl=sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"],
                    MessageBody=payload,
                )
            else:
                report.kept += 1
                kept.append(message)
                print(_line("kept", peeked, f"(replaying to {arn} is not supported)"), file=out)
                continue
        except (ClientError, BotoCoreError) as error:
            report.kept += 1
            kept.append(message)
            print(_line("kept", peeked, f"(replay to {arn} failed: {error})"), file=out)
            continue
        sqs.delete_message(QueueUrl=queue.url, ReceiptHandle=message["ReceiptHandle"])
        report.moved += 1
        print(_line("replayed", peeked, f"to {arn.rsplit(':', 1)[-1]}"), file=out)
    _release(sqs, queue.url, kept)
    return report
