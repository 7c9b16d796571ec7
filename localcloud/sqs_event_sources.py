"""Lambda's SQS event source mapping: a poller per mapping, in place of moto's synchronous call.

Like the real mapping: long-polls the queue, invokes the function synchronously with a batch of up
to BatchSize records (gathering for MaximumBatchingWindowInSeconds), deletes what succeeded, and
leaves failures in the queue, where they become visible again after the visibility timeout and move
to the dead-letter queue after the redrive policy's maxReceiveCount (SQS itself does that part).
With ReportBatchItemFailures only the reported records stay; an invalid report fails the batch.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.clients import emulator_client

LOGGER = logging.getLogger("localcloud.sqs_event_sources")
_RECEIVE_LIMIT = 10
# Short long-polls, so that stopping the emulator never waits long for a poller.
_WAIT_SECONDS = 1
_ERROR_BACKOFF_SECONDS = 1.0


@dataclass(frozen=True)
class MappingSettings:
    """The mapping's current configuration (it can change at run time, e.g. Enabled)."""

    enabled: bool
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool


def _message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    records: dict[str, Any] = {}
    for name, attribute in attributes.items():
        binary = attribute.get("BinaryValue")
        records[name] = {
            "stringValue": attribute.get("StringValue"),
            "binaryValue": base64.b64encode(binary).decode() if binary is not None else None,
            "stringListValues": attribute.get("StringListValues", []),
            "binaryListValues": [
                base64.b64encode(item).decode() for item in attribute.get("BinaryListValues", [])
            ],
            "dataType": attribute["DataType"],
        }
    return records


def sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage result."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": _message_attributes(message.get("MessageAttributes", {})),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def failed_message_ids(response_payload: bytes, batch_ids: set[str]) -> set[str]:
    """The messages a ReportBatchItemFailures response keeps, by Lambda's rules.

    No response, or no failures listed: the whole batch succeeded. Anything malformed (not an
    object, an item without a known message id): the whole batch failed.
    """
    try:
        response = json.loads(response_payload or b"null")
    except ValueError:
        return batch_ids
    if response is None:
        return set()
    if not isinstance(response, dict):
        return batch_ids
    failures = response.get("batchItemFailures")
    if not failures:
        return set()
    try:
        reported = {failure["itemIdentifier"] for failure in failures}
    except (TypeError, KeyError):
        return batch_ids
    return reported if reported <= batch_ids else batch_ids


class _Poller(threading.Thread):
    def __init__(
        self,
        owner: SqsEventSources,
        queue_arn: str,
        function_arn: str,
        settings: Callable[[], MappingSettings | None],
    ) -> None:
        super().__init__(name=f"sqs-esm-{queue_arn.rsplit(':', 1)[-1]}", daemon=True)
        self._owner = owner
        self._queue_arn = queue_arn
        self._function_arn = function_arn
        self._settings = settings
        self._queue_url: str | None = None

    def run(self) -> None:
        while not self._owner.stopping.is_set():
            settings = self._settings()
            if settings is None:
                return  # the mapping was deleted
            if not settings.enabled:
                self._owner.stopping.wait(_WAIT_SECONDS)
                continue
            try:
                batch = self._receive_batch(settings)
                if batch:
                    self._process(batch, settings)
            except (ClientError, BotoCoreError) as error:
                LOGGER.warning("%s -> %s: %s", self._queue_arn, self._function_arn, error)
                self._owner.stopping.wait(_ERROR_BACKOFF_SECONDS)
            except Exception:  # keep polling, as the real mapping would; the messages stay queued
                LOGGER.exception("%s -> %s: polling failed", self._queue_arn, self._function_arn)
                self._owner.stopping.wait(_ERROR_BACKOFF_SECONDS)

    def _url(self) -> str:
        if self._queue_url is None:
            _, _, _, _, account_id, queue_name = self._queue_arn.split(":")
            self._queue_url = self._owner.sqs.get_queue_url(
                QueueName=queue_name, QueueOwnerAWSAccountId=account_id
            )["QueueUrl"]
        return self._queue_url

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._owner.sqs.receive_message(
            QueueUrl=self._url(),
            MaxNumberOfMessages=count,
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    def _receive_batch(self, settings: MappingSettings) -> list[dict[str, Any]]:
        batch = self._receive(min(_RECEIVE_LIMIT, settings.batch_size), _WAIT_SECONDS)
        window_ends = time.monotonic() + settings.batching_window_seconds
        while batch and len(batch) < settings.batch_size:
            remaining = window_ends - time.monotonic()
            if remaining <= 0:
                break
            # ReceiveMessage waits whole seconds only; a shorter rest of the window is slept off.
            more = self._receive(
                min(_RECEIVE_LIMIT, settings.batch_size - len(batch)), min(_WAIT_SECONDS, int(remaining))
            )
            if not more and remaining < 1:
                self._owner.stopping.wait(remaining)
            batch += more
        return batch

    def _process(self, batch: list[dict[str, Any]], settings: MappingSettings) -> None:
        event = {"Records": [sqs_record(message, self._queue_arn, self._owner.region) for message in batch]}
        response = self._owner.lambda_client.invoke(
            FunctionName=self._function_arn, Payload=json.dumps(event)
        )
        payload = response["Payload"].read()
        batch_ids = {message["MessageId"] for message in batch}
        if "FunctionError" in response:
            failed = batch_ids
            LOGGER.info(
                "%s failed a batch of %d from %s; the messages stay in the queue",
                self._function_arn,
                len(batch),
                self._queue_arn,
            )
        elif settings.report_batch_item_failures:
            failed = failed_message_ids(payload, batch_ids)
        else:
            failed = set()
        done = [message for message in batch if message["MessageId"] not in failed]
        for start in range(0, len(done), _RECEIVE_LIMIT):
            self._owner.sqs.delete_message_batch(
                QueueUrl=self._url(),
                Entries=[
                    {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                    for index, message in enumerate(done[start : start + _RECEIVE_LIMIT])
                ],
            )


class SqsEventSources:
    """Starts and stops one poller per SQS event source mapping."""

    def __init__(self, *, endpoint_url: str, region: str) -> None:
        self.region = region
        self.sqs = emulator_client("sqs", endpoint_url=endpoint_url, region=region, sdk_retries=False)
        # A synchronous invoke waits for the function, up to Lambda's 15-minute maximum.
        self.lambda_client = emulator_client(
            "lambda", endpoint_url=endpoint_url, region=region, sdk_retries=False, read_timeout=960
        )
        self.stopping = threading.Event()
        self._pollers: list[_Poller] = []

    def start_mapping(
        self, queue_arn: str, function_arn: str, settings: Callable[[], MappingSettings | None]
    ) -> None:
        poller = _Poller(self, queue_arn, function_arn, settings)
        self._pollers.append(poller)
        poller.start()

    def close(self) -> None:
        self.stopping.set()
        for poller in self._pollers:
            poller.join(timeout=_WAIT_SECONDS + 5)
