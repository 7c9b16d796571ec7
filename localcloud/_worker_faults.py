"""The worker half of localcloud.faults: SIMULATED faults in the AWS calls a Lambda handler makes.

Loaded by localcloud/_lambda_worker.py (from this file, not as a package: a worker's sys.path is the
function's own) when the emulator runs with a fault plan. It hooks botocore's events of every client the
handler creates, so no code of the function or its layers knows about faults:

* ``before-send`` (inside botocore's retry loop, once per attempt): DynamoDB throttling
  (ProvisionedThroughputExceededException or ThrottlingException: botocore retries them) and a
  TransactWriteItems cancelled with a TransactionConflict reason (not retried by botocore);
* ``before-call`` (outside the retry loop): DynamoDB throttling that outlasts botocore's retries;
* ``after-call`` + ``before-call`` of Step Functions' SendTaskSuccess: the gate's process dies
  (``os._exit``) after a successful transaction (its take) and before the admission is delivered.

Standard library and botocore only. Faults are injected only while the emulator's "armed" file exists.
Every injected fault is appended as one JSON line to ``<counts_dir>/<pid>.jsonl`` before it takes
effect; localcloud.faults adds these lines up. Decisions are drawn from a random.Random seeded with the
plan's seed, the function's logical id and the worker's process id: which worker serves which invocation
is up to scheduling, so a run is seeded, not replayable call by call.
"""

from __future__ import annotations

import json
import os
import random
import threading
import zlib
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse

PLAN_VARIABLE = "LOCALCLOUD_FAULT_PLAN"
_DYNAMODB_THROTTLES = ("ProvisionedThroughputExceededException", "ThrottlingException")


class _Body:
    """The raw stream botocore's AWSResponse reads its content from."""

    def __init__(self, content: bytes) -> None:
        self._content = content

    def stream(self, **_: Any) -> Any:
        yield self._content


class _WorkerFaults:
    def __init__(self, plan: dict[str, Any]) -> None:
        # localcloud.lambda_runtime names the log stream after the function's logical id.
        self.function = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "").rpartition("/")[2]
        self.probabilities: dict[str, float] = {k: float(v) for k, v in plan["probabilities"].items()}
        self.crash_functions = set(plan.get("crash_functions", []))
        self.armed_path = str(plan["armed_path"])
        self.counts_path = os.path.join(str(plan["counts_dir"]), f"{os.getpid()}.jsonl")
        seed = zlib.crc32(f"{plan['seed']}:{self.function}:{os.getpid()}".encode())
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        # A transaction succeeded and no SendTaskSuccess followed yet (the gate's take, before delivery).
        self._taken = False

    def draw(self, kind: str) -> bool:
        probability = self.probabilities.get(kind, 0.0)
        if probability <= 0 or not os.path.exists(self.armed_path):
            return False
        with self._lock:
            return self._random.random() < probability

    def pick(self, options: tuple[str, ...]) -> str:
        with self._lock:
            return self._random.choice(options)

    def record(self, kind: str, operation: str) -> None:
        line = json.dumps({"kind": kind, "function": self.function, "operation": operation})
        with self._lock, open(self.counts_path, "a", encoding="utf-8") as counts:
            counts.write(line + "\n")

    # ------------------------------------------------------------------ DynamoDB

    def before_send(self, request: Any, **_: Any) -> AWSResponse | None:
        operation = _operation(request)
        if self.draw("dynamodb_throttle"):
            self.record("dynamodb_throttle", operation)
            code = self.pick(_DYNAMODB_THROTTLES)
            return _response(
                request.url,
                400,
                {
                    "__type": f"com.amazonaws.dynamodb.v20120810#{code}",
                    "message": "SIMULATED throttle (localcloud.faults)",
                },
            )
        if operation == "TransactWriteItems" and self.draw("dynamodb_transaction_conflict"):
            self.record("dynamodb_transaction_conflict", operation)
            return _response(request.url, 400, _transaction_conflict(request.body, self.pick))
        return None

    def before_call(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        if not self.draw("dynamodb_throttle_past_retries"):
            return None
        self.record("dynamodb_throttle_past_retries", model.name)
        code = self.pick(_DYNAMODB_THROTTLES)
        message = "SIMULATED throttle past the SDK's retries (localcloud.faults)"
        parsed = {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": 400, "MaxAttemptsReached": True},
        }
        return _response("", 400, {}), parsed

    # ------------------------------------------------------------------ the gate's take and delivery

    def after_transaction(self, http_response: Any, **_: Any) -> None:
        if http_response is not None and http_response.status_code < 300:
            self._taken = True

    def before_send_task_success(self, **_: Any) -> None:
        taken, self._taken = self._taken, False
        if taken and self.draw("gate_crash"):
            self.record("gate_crash", "SendTaskSuccess")
            print(
                "SIMULATED crash between the take transaction and SendTaskSuccess (localcloud.faults)",
                flush=True,
            )
            os._exit(137)

    def register(self, client: Any) -> None:
        service = client.meta.service_model.service_id.hyphenize()
        events = client.meta.events
        if service == "dynamodb":
            events.register_first("before-send.dynamodb", self.before_send)
            events.register_first("before-call.dynamodb", self.before_call)
            if self.function in self.crash_functions:
                events.register("after-call.dynamodb.TransactWriteItems", self.after_transaction)
        elif service == "sfn" and self.function in self.crash_functions:
            events.register_first("before-call.sfn.SendTaskSuccess", self.before_send_task_success)


def _operation(request: Any) -> str:
    target = str(request.headers.get("X-Amz-Target", b"") or "")
    if isinstance(request.headers.get("X-Amz-Target"), bytes):
        target = request.headers["X-Amz-Target"].decode()
    return target.rpartition(".")[2] or "?"


def _response(url: str, status: int, body: dict[str, Any]) -> AWSResponse:
    content = json.dumps(body).encode()
    headers: Any = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "localcloud-fault"}
    return AWSResponse(url, status, headers, _Body(content))


def _transaction_conflict(body: Any, pick: Any) -> dict[str, Any]:
    try:
        items = len(json.loads(body or b"{}").get("TransactItems", [])) or 1
    except ValueError:
        items = 1
    conflicting = int(pick(tuple(str(i) for i in range(items))))
    reasons = [
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}
        if index == conflicting
        else {"Code": "None"}
        for index in range(items)
    ]
    return {
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": "Transaction cancelled, please refer cancellation reasons for specific reasons "
        f"[{', '.join(r['Code'] for r in reasons)}] (SIMULATED, localcloud.faults)",
        "CancellationReasons": reasons,
    }


def install() -> None:
    """Hook every botocore client the function creates from now on."""
    faults = _WorkerFaults(json.loads(os.environ[PLAN_VARIABLE]))
    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        faults.register(client)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
