"""Deliver matched EventBridge events to Step Functions, Lambda and SQS targets, as EventBridge does.

Asynchronous to the event's producer; the target's Input / InputPath / InputTransformer shape what
the target receives; a failed delivery is retried under the target's RetryPolicy (throttling, 5xx
and connection errors only; other client errors are final at once) and then sent to the target's
DeadLetterConfig queue with EventBridge's message attributes. Without a dead-letter queue the
event is logged as an error: nothing is lost silently.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.clients import emulator_client

LOGGER = logging.getLogger("localcloud.events")
DELIVERED_SERVICES = frozenset({"states", "lambda", "sqs"})
# EventBridge's defaults when a target has no RetryPolicy.
_DEFAULT_MAXIMUM_RETRY_ATTEMPTS = 185
_DEFAULT_MAXIMUM_EVENT_AGE_SECONDS = 86400
_PATH_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")
_PLACEHOLDER = re.compile(r"<([A-Za-z0-9_.-]+)>")


class _DeliveryFailedError(Exception):
    def __init__(self, code: str, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.retryable = retryable


@dataclass(frozen=True)
class _Failure:
    code: str
    message: str
    retry_attempts: int
    exhausted_condition: str | None


def json_path_value(document: Any, path: str) -> Any:
    """EventBridge's JSONPath subset: `$`, `$.a.b-c`, `$.list[0]`. A missing path gives None."""
    if not path.startswith("$"):
        raise ValueError(f"not a JSONPath: {path}")
    value = document
    for key, index in _PATH_STEP.findall(path[1:]):
        if key:
            value = value.get(key) if isinstance(value, dict) else None
        else:
            value = value[int(index)] if isinstance(value, list) and int(index) < len(value) else None
    return value


def target_input(rule_arn: str, target: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    """What the target receives: Input, InputPath or InputTransformer applied to the event."""
    if "Input" in target:
        return str(target["Input"])
    if "InputPath" in target:
        return json.dumps(json_path_value(event, target["InputPath"]))
    transformer = target.get("InputTransformer")
    if transformer is None:
        return json.dumps(event)
    values: dict[str, Any] = {
        name: json_path_value(event, path) for name, path in transformer.get("InputPathsMap", {}).items()
    }
    values["aws.events.rule-arn"] = rule_arn
    values["aws.events.rule-name"] = rule_arn.rsplit("/", 1)[-1]
    values["aws.events.event.json"] = dict(event)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            return match.group(0)
        value = values[name]
        # A string lands inside the template's own quotes; anything else is written as JSON.
        return json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(fill, str(transformer["InputTemplate"]))


class EventDelivery:
    """Delivers (rule, target, event) triples on a bounded pool of threads, with retries and DLQ."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        retry_base_delay_seconds: float = 0.2,
        retry_max_delay_seconds: float = 2.0,
        max_workers: int = 8,
    ) -> None:
        def client(service: str) -> Any:
            return emulator_client(service, endpoint_url=endpoint_url, region=region, sdk_retries=False)

        self._stepfunctions = client("stepfunctions")
        self._lambda = client("lambda")
        self._sqs = client("sqs")
        self._retry_base_delay_seconds = retry_base_delay_seconds
        self._retry_max_delay_seconds = retry_max_delay_seconds
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="event-delivery")

    @staticmethod
    def handles(target_arn: str) -> bool:
        return target_arn.split(":")[2] in DELIVERED_SERVICES

    def deliver(self, rule_arn: str, target: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        """Queue one delivery; returns at once, as PutEvents does."""
        self._pool.submit(self._deliver, rule_arn, dict(target), dict(event), time.monotonic())

    def _deliver(
        self, rule_arn: str, target: dict[str, Any], event: dict[str, Any], received_at: float
    ) -> None:
        retry_policy = target.get("RetryPolicy", {})
        maximum_retries = int(retry_policy.get("MaximumRetryAttempts", _DEFAULT_MAXIMUM_RETRY_ATTEMPTS))
        maximum_age = float(retry_policy.get("MaximumEventAgeInSeconds", _DEFAULT_MAXIMUM_EVENT_AGE_SECONDS))
        retries = 0
        while True:
            try:
                self._send(rule_arn, target, event)
                return
            except _DeliveryFailedError as error:
                failure = error
            except Exception as error:  # a bug or a bad InputTransformer: never lose the event silently
                LOGGER.exception("delivery of event %s to %s failed", event["id"], target["Arn"])
                failure = _DeliveryFailedError(type(error).__name__, str(error), retryable=False)
            delay = min(self._retry_base_delay_seconds * 2**retries, self._retry_max_delay_seconds)
            exhausted: str | None = None
            if failure.retryable:
                if retries >= maximum_retries:
                    exhausted = "MaximumRetryAttempts"
                elif time.monotonic() - received_at + delay > maximum_age:
                    exhausted = "MaximumEventAgeInSeconds"
                elif self._stopping.wait(delay):
                    LOGGER.warning(
                        "emulator stopping: event %s to %s not delivered", event["id"], target["Arn"]
                    )
                    return
                else:
                    retries += 1
                    continue
            self._dead_letter(
                rule_arn, target, event, _Failure(failure.code, str(failure), retries, exhausted)
            )
            return

    def _send(self, rule_arn: str, target: Mapping[str, Any], event: Mapping[str, Any]) -> None:
        arn = target["Arn"]
        payload = target_input(rule_arn, target, event)
        service = arn.split(":")[2]
        try:
            if service == "states":
                # Unique and valid (80 characters, no spaces): the event id plus a random part.
                name = f"{event['id']}_{uuid.uuid4()}"[:80]
                self._stepfunctions.start_execution(stateMachineArn=arn, name=name, input=payload)
            elif service == "lambda":
                self._lambda.invoke(FunctionName=arn, InvocationType="Event", Payload=payload.encode())
            else:
                message: dict[str, Any] = {"QueueUrl": self._queue_url(arn), "MessageBody": payload}
                group_id = target.get("SqsParameters", {}).get("MessageGroupId")
                if group_id:
                    message["MessageGroupId"] = group_id
                self._sqs.send_message(**message)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            code = error.response.get("Error", {}).get("Code", "ClientError")
            retryable = status == 429 or status >= 500 or "Throttl" in code
            raise _DeliveryFailedError(code, str(error), retryable) from error
        except BotoCoreError as error:
            raise _DeliveryFailedError(type(error).__name__, str(error), retryable=True) from error

    def _queue_url(self, queue_arn: str) -> str:
        _, _, _, _, account_id, queue_name = queue_arn.split(":")
        url: str = self._sqs.get_queue_url(QueueName=queue_name, QueueOwnerAWSAccountId=account_id)[
            "QueueUrl"
        ]
        return url

    def _dead_letter(
        self, rule_arn: str, target: Mapping[str, Any], event: Mapping[str, Any], failure: _Failure
    ) -> None:
        dead_letter_arn = target.get("DeadLetterConfig", {}).get("Arn")
        if not dead_letter_arn:
            LOGGER.error(
                "event %s could not be delivered to %s (%s: %s) and the target has no dead-letter queue: %s",
                event["id"],
                target["Arn"],
                failure.code,
                failure.message,
                json.dumps(event),
            )
            return
        attributes = {
            "RULE_ARN": rule_arn,
            "TARGET_ARN": target["Arn"],
            "ERROR_CODE": failure.code,
            "ERROR_MESSAGE": failure.message[:1000],
        }
        if failure.exhausted_condition:
            attributes["EXHAUSTED_RETRY_CONDITION"] = failure.exhausted_condition
        message_attributes: dict[str, Any] = {
            name: {"DataType": "String", "StringValue": value} for name, value in attributes.items()
        }
        message_attributes["RETRY_ATTEMPTS"] = {
            "DataType": "Number",
            "StringValue": str(failure.retry_attempts),
        }
        try:
            self._sqs.send_message(
                QueueUrl=self._queue_url(dead_letter_arn),
                MessageBody=json.dumps(event),
                MessageAttributes=message_attributes,
            )
            LOGGER.warning(
                "event %s for %s went to the dead-letter queue %s (%s)",
                event["id"],
                target["Arn"],
                dead_letter_arn,
                failure.code,
            )
        except (ClientError, BotoCoreError) as error:
            LOGGER.error(
                "event %s could not be delivered to %s nor to its dead-letter queue %s (%s): %s",
                event["id"],
                target["Arn"],
                dead_letter_arn,
                error,
                json.dumps(event),
            )

    def close(self) -> None:
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)
