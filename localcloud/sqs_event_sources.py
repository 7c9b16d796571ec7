"""Lambda's SQS event source mapping: a poller per mapping, in place of moto's synchronous call.

Like the real mapping: long-polls the queue, invokes the function synchronously with a batch of up
to BatchSize records (gathering for MaximumBatchingWindowInSeconds), deletes what succeeded, and
leaves failures in the queue, where they become visible again after the visibility timeout and move
to the dead-letter queue after the redrive policy's maxReceiveCount (SQS itself does that part).
With ReportBatchItemFailures only the reported records stay; an invalid report fails the batch.
Concurrency: up to ScalingConfig.MaximumConcurrency batches of one mapping are processed at once
(without it, five: the concurrent batches Lambda starts with); the poller receives a batch only when a
slot is free, so no message waits out its visibility timeout in the poller.
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
# Lambda processes five batches at a time when a mapping has no maximum concurrency (AWS Lambda guide,
# "Configuring scaling behavior for SQS event source mappings"); it scales beyond, which is not emulated.
DEFAULT_CONCURRENT_BATCHES = 5


@dataclass(frozen=True)
class MappingSettings:
    """The mapping's current configuration (it can change at run time, e.g. Enabled)."""

    enabled: bool
    batch_size: int
    batching_window_seconds: float
    report_batch_item_failures: bool
    maximum_concurrency: int | None = None

    @property
    def concurrent_batches(self) -> int:
        return self.maximum_concurrency or DEFAULT_CONCURRENT_BATCHES


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
        self.queue_arn = queue_arn
        self._queue_arn = queue_arn
        self._function_arn = function_arn
        self._settings = settings
        self._queue_url: str | None = None
        self._in_flight = 0
        self._slots = threading.Condition()
        self._sqs_lock = threading.Lock()
        # The most batches this mapping ever had in flight at once (what tests of MaximumConcurrency read).
        self.peak_in_flight = 0

    def run(self) -> None:
        while not self._owner.stopping.is_set():
            settings = self._settings()
            if settings is None:
                break  # the mapping was deleted
            if not settings.enabled:
                self._owner.stopping.wait(_WAIT_SECONDS)
                continue
            if not self._wait_for_slot(settings.concurrent_batches):
                continue
            try:
                batch = self._receive_batch(settings)
            except (ClientError, BotoCoreError) as error:
                LOGGER.warning("%s -> %s: %s", self._queue_arn, self._function_arn, error)
                self._owner.stopping.wait(_ERROR_BACKOFF_SECONDS)
                continue
            except Exception:  # keep polling, as the real mapping would; the messages stay queued
                LOGGER.exception("%s -> %s: polling failed", self._queue_arn, self._function_arn)
                self._owner.stopping.wait(_ERROR_BACKOFF_SECONDS)
                continue
            if batch:
                self._start_batch(batch, settings)
        with self._slots:  # let batches in flight finish, as stopping always did
            self._slots.wait_for(lambda: self._in_flight == 0, timeout=_WAIT_SECONDS + 5)

    def _wait_for_slot(self, limit: int) -> bool:
        """Whether a batch may start now; waits a little for one to finish otherwise."""
        with self._slots:
            return self._slots.wait_for(lambda: self._in_flight < limit, timeout=_WAIT_SECONDS)

    def _start_batch(self, batch: list[dict[str, Any]], settings: MappingSettings) -> None:
        with self._slots:
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        threading.Thread(
            target=self._run_batch, args=(batch, settings), name=f"{self.name}-batch", daemon=True
        ).start()

    def _run_batch(self, batch: list[dict[str, Any]], settings: MappingSettings) -> None:
        try:
            self._process(batch, settings)
        except (ClientError, BotoCoreError) as error:
            LOGGER.warning("%s -> %s: %s", self._queue_arn, self._function_arn, error)
        except Exception:  # the messages stay queued, to be received again after their visibility timeout
            LOGGER.exception("%s -> %s: processing a batch failed", self._queue_arn, self._function_arn)
        finally:
            with self._slots:
                self._in_flight -= 1
                self._slots.notify_all()

    def _url(self) -> str:
        if self._queue_url is None:
            _, _, _, _, account_id, queue_name = self._queue_arn.split(":")
            self._queue_url = self._owner.sqs.get_queue_url(
                QueueName=queue_name, QueueOwnerAWSAccountId=account_id
            )["QueueUrl"]
        return self._queue_url

    def _receive(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
        """Long-polls only while no batch of this mapping is in flight. moto 5.2.5's queue is not
        thread-safe (DeleteMessage rebuilds its message list unlocked, so a concurrent ReceiveMessage can
        bring a deleted message back): while batches run, receives are short and never overlap their
        deletes (the lock); while none runs, nothing of this mapping deletes."""
        with self._slots:
            busy = self._in_flight > 0
        if not busy:
            return self._receive_now(count, wait_seconds)
        with self._sqs_lock:
            messages = self._receive_now(count, 0)
        if not messages and wait_seconds:  # rest until a batch finishes, at most a long poll's time
            with self._slots:
                self._slots.wait(timeout=wait_seconds)
        return messages

    def _receive_now(self, count: int, wait_seconds: int) -> list[dict[str, Any]]:
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
            with self._sqs_lock:
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

    def peak_concurrency(self, queue_arn: str) -> int:
        """The most batches from this queue that were in flight at once (all its mappings)."""
        return max(
            (poller.peak_in_flight for poller in self._pollers if poller.queue_arn == queue_arn), default=0
        )

    def close(self) -> None:
        self.stopping.set()
        for poller in self._pollers:
            poller.join(timeout=2 * _WAIT_SECONDS + 5)
