"""SIMULATED faults, drawn at random from one seeded plan, injected from this one place.

``LocalCloud(faults=FaultPlan(seed=..., probabilities={FaultKind.X: p, ...}))`` makes the emulator inject
every kind of fault below with its probability (per opportunity: per invocation, per delivery, per request,
per tick), but only while the injector is armed (``cloud.faults.arm()`` / ``disarm()``), so a deploy and a
final drain run clean. No production code knows about faults: the emulator-side kinds wrap emulator objects
at run time, the DynamoDB and gate kinds are botocore event hooks that the Lambda worker bootstrap installs
(``localcloud/_worker_faults.py``). Every injected fault is counted by kind (``counts()``) and by
kind and place (``counts_by_place()``).

What each kind does, and what it stands for on AWS:

=================================  ========================================================================
lambda_error                       the invocation fails with a function error before the handler runs
lambda_timeout                     the handler runs (its writes happen), then the invocation reports
                                   ``Sandbox.Timedout``: its result is lost
lambda_throttle                    a synchronous Invoke is refused with 429 TooManyRequestsException
                                   (asynchronous invocations are not: Lambda retries those internally)
dynamodb_throttle                  one attempt of a handler's DynamoDB request is throttled (botocore retries)
dynamodb_throttle_past_retries     a handler's DynamoDB request fails throttled after the SDK's retries
dynamodb_transaction_conflict      a handler's TransactWriteItems is cancelled: TransactionConflict
gate_crash                         the gate's process dies after a transaction and before SendTaskSuccess
lost_upload_event                  S3's Object Created event cannot be delivered to its target: EventBridge
                                   gives up and sends it to the rule's dead-letter queue
lost_pipeline_event                a SageMaker pipeline status-change event is never delivered
lost_execution_event               a Step Functions execution status-change event is never delivered
duplicate_upload_event             S3's Object Created event is delivered twice (at-least-once)
sqs_redelivery                     a message an SQS event source processed is not deleted and comes back
stop_execution                     StopExecution of a random RUNNING execution (per tick)
pipeline_quota_error               StartPipelineExecution fails with ResourceLimitExceeded
tier_limit_change                  a registered action changes a tier's limits (per tick; see add_action)
account_cap_change                 a registered action changes the account cap (per tick)
=================================  ========================================================================

Each kind draws from a random.Random of its own, seeded with the plan's seed and the kind's name, so
changing one probability does not change the draws of another. Threads interleave as the machine schedules
them, so a run is seeded, not replayable request by request.
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("localcloud.faults")
_WORKER_HOOK = Path(__file__).with_name("_worker_faults.py")
PLAN_VARIABLE = "LOCALCLOUD_FAULT_PLAN"
UPLOAD_EVENT = ("aws.s3", "Object Created")
PIPELINE_EVENT = ("aws.sagemaker", "SageMaker Model Building Pipeline Execution Status Change")
EXECUTION_EVENT = ("aws.states", "Step Functions Execution Status Change")


class FaultKind(StrEnum):
    LAMBDA_ERROR = "lambda_error"
    LAMBDA_TIMEOUT = "lambda_timeout"
    LAMBDA_THROTTLE = "lambda_throttle"
    DYNAMODB_THROTTLE = "dynamodb_throttle"
    DYNAMODB_THROTTLE_PAST_RETRIES = "dynamodb_throttle_past_retries"
    DYNAMODB_TRANSACTION_CONFLICT = "dynamodb_transaction_conflict"
    GATE_CRASH = "gate_crash"
    LOST_UPLOAD_EVENT = "lost_upload_event"
    LOST_PIPELINE_EVENT = "lost_pipeline_event"
    LOST_EXECUTION_EVENT = "lost_execution_event"
    DUPLICATE_UPLOAD_EVENT = "duplicate_upload_event"
    SQS_REDELIVERY = "sqs_redelivery"
    STOP_EXECUTION = "stop_execution"
    PIPELINE_QUOTA_ERROR = "pipeline_quota_error"
    TIER_LIMIT_CHANGE = "tier_limit_change"
    ACCOUNT_CAP_CHANGE = "account_cap_change"


WORKER_KINDS = frozenset(
    {
        FaultKind.DYNAMODB_THROTTLE,
        FaultKind.DYNAMODB_THROTTLE_PAST_RETRIES,
        FaultKind.DYNAMODB_TRANSACTION_CONFLICT,
        FaultKind.GATE_CRASH,
    }
)
TICK_KINDS = frozenset({FaultKind.STOP_EXECUTION, FaultKind.TIER_LIMIT_CHANGE, FaultKind.ACCOUNT_CAP_CHANGE})


@dataclass(frozen=True)
class FaultPlan:
    """Which faults, how often. probabilities: kind -> chance per opportunity (0 <= p <= 1)."""

    seed: int
    probabilities: Mapping[FaultKind, float] = field(default_factory=dict)
    # Functions whose process may crash between a transaction and SendTaskSuccess (gate_crash).
    crash_functions: frozenset[str] = frozenset({"GateFunction"})
    # Functions that never get lambda_* faults (e.g. deploy-time custom resources).
    exempt_functions: frozenset[str] = frozenset()
    tick_seconds: float = 1.0

    def __post_init__(self) -> None:
        for kind, probability in self.probabilities.items():
            FaultKind(kind)
            if not 0.0 <= probability <= 1.0:
                raise ValueError(f"probability of {kind} must be within [0, 1], not {probability}")

    def probability(self, kind: FaultKind) -> float:
        return float(self.probabilities.get(kind, 0.0))


class FaultInjector:
    """Holds the plan's random streams and counters and installs the emulator-side wrappers."""

    def __init__(self, plan: FaultPlan, state_dir: Path | None = None) -> None:
        self.plan = plan
        self._dir = Path(tempfile.mkdtemp(prefix="faults-", dir=state_dir))
        self._counts_dir = self._dir / "worker-counts"
        self._counts_dir.mkdir()
        self._armed_path = self._dir / "armed"
        self._lock = threading.Lock()
        self._random = {kind: random.Random(zlib.crc32(f"{plan.seed}:{kind}".encode())) for kind in FaultKind}
        self._counts: Counter[tuple[str, str]] = Counter()
        self._actions: dict[FaultKind, Callable[[random.Random], str | None]] = {}
        self._restore: list[Callable[[], None]] = []
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None

    # ------------------------------------------------------------------ plan, arming, counts

    def worker_environment(self) -> dict[str, str]:
        """What every Lambda worker's environment gets, for the worker half (localcloud/_worker_faults.py)."""
        plan = {
            "seed": self.plan.seed,
            "probabilities": {str(k): p for k, p in self.plan.probabilities.items() if k in WORKER_KINDS},
            "crash_functions": sorted(self.plan.crash_functions),
            "armed_path": str(self._armed_path),
            "counts_dir": str(self._counts_dir),
        }
        return {"LOCALCLOUD_FAULT_HOOK": str(_WORKER_HOOK), PLAN_VARIABLE: json.dumps(plan)}

    @property
    def armed(self) -> bool:
        return self._armed_path.exists()

    def arm(self) -> None:
        self._armed_path.touch()
        LOGGER.warning("SIMULATED faults armed (seed %s)", self.plan.seed)

    def disarm(self) -> None:
        self._armed_path.unlink(missing_ok=True)
        LOGGER.warning("SIMULATED faults disarmed")

    def draw(self, kind: FaultKind) -> bool:
        probability = self.plan.probability(kind)
        if probability <= 0 or not self.armed:
            return False
        with self._lock:
            return self._random[kind].random() < probability

    def choice(self, kind: FaultKind, options: list[Any]) -> Any:
        with self._lock:
            return self._random[kind].choice(options)

    def record(self, kind: FaultKind, place: str) -> None:
        with self._lock:
            self._counts[(str(kind), place)] += 1

    def counts_by_place(self) -> dict[str, dict[str, int]]:
        """kind -> place (function, event, queue, ...) -> injected count, both halves."""
        with self._lock:
            merged: Counter[tuple[str, str]] = Counter(self._counts)
        for path in self._counts_dir.glob("*.jsonl"):
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line a dying process did not finish
                merged[(str(entry["kind"]), f"{entry['function']}:{entry['operation']}")] += 1
        by_kind: dict[str, dict[str, int]] = {}
        for (kind, place), count in sorted(merged.items()):
            by_kind.setdefault(kind, {})[place] = count
        return by_kind

    def counts(self) -> dict[str, int]:
        """kind -> injected count (every kind of the plan, zero included)."""
        totals = {str(kind): 0 for kind in self.plan.probabilities}
        for kind, places in self.counts_by_place().items():
            totals[kind] = sum(places.values())
        return totals

    def add_action(self, kind: FaultKind, action: Callable[[random.Random], str | None]) -> None:
        """Run action(rng) on a tick with the kind's probability (e.g. an operator changing a limit through
        the status API); it returns where it acted (counted) or None when it did nothing."""
        if kind not in TICK_KINDS:
            raise ValueError(f"{kind} is not a per-tick kind")
        self._actions[kind] = action

    # ------------------------------------------------------------------ install

    def install(self, cloud: Any) -> None:
        """Wrap the running emulator's objects (after localcloud.patches). Undone by uninstall()."""
        self._wrap_invocations(cloud.lambda_runtime)
        self._wrap_sync_invoke()
        self._wrap_deliveries(cloud.event_delivery)
        self._wrap_sqs_deletes(cloud.sqs_event_sources.sqs)
        self._wrap_pipeline_starts()
        self._add_stop_execution(cloud)
        self._ticker = threading.Thread(target=self._tick, name="faults-ticker", daemon=True)
        self._ticker.start()

    def uninstall(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
        while self._restore:
            self._restore.pop()()

    def _swap(self, owner: Any, name: str, replacement: Any, *, instance: bool = False) -> None:
        original = owner.__dict__.get(name)
        setattr(owner, name, replacement)
        if instance:
            self._restore.append(lambda: delattr(owner, name))
        else:
            self._restore.append(lambda: setattr(owner, name, original))

    def _wrap_invocations(self, runtime: Any) -> None:
        from localcloud.lambda_runtime import Invocation  # noqa: PLC0415 - keeps this module light

        original = runtime.invoke
        plan = self.plan

        def invoke(function_name: str, event_json: str) -> Any:
            spec = runtime.spec(function_name)
            name = spec.logical_id if spec else function_name
            if name in plan.exempt_functions:
                return original(function_name, event_json)
            if self.draw(FaultKind.LAMBDA_ERROR):
                self.record(FaultKind.LAMBDA_ERROR, name)
                return Invocation(
                    json.dumps(
                        {
                            "errorType": "Runtime.ExitError",
                            "errorMessage": "SIMULATED fault (localcloud.faults): the runtime exited",
                        }
                    ),
                    function_error=True,
                )
            timed_out = self.draw(FaultKind.LAMBDA_TIMEOUT)
            invocation = original(function_name, event_json)
            if not timed_out:
                return invocation
            self.record(FaultKind.LAMBDA_TIMEOUT, name)
            timeout = spec.timeout_seconds if spec else 3
            return Invocation(
                json.dumps(
                    {
                        "errorType": "Sandbox.Timedout",
                        "errorMessage": f"SIMULATED fault (localcloud.faults): Task timed out after "
                        f"{timeout:.2f} seconds",
                    }
                ),
                function_error=True,
            )

        self._swap(runtime, "invoke", invoke, instance=True)

    def _wrap_sync_invoke(self) -> None:
        from moto.awslambda.exceptions import LambdaClientError  # noqa: PLC0415
        from moto.awslambda.models import LambdaFunction  # noqa: PLC0415

        class TooManyRequestsError(LambdaClientError):
            code = 429

            def __init__(self) -> None:
                super().__init__("TooManyRequestsException", "Rate Exceeded. (SIMULATED, localcloud.faults)")

        original = LambdaFunction.invoke
        plan = self.plan

        def invoke(function: Any, body: str, request_headers: Any, response_headers: Any) -> Any:
            synchronous = request_headers.get("x-amz-invocation-type") != "Event"
            name = _logical_id(function)
            if synchronous and name not in plan.exempt_functions and self.draw(FaultKind.LAMBDA_THROTTLE):
                self.record(FaultKind.LAMBDA_THROTTLE, name)
                raise TooManyRequestsError
            return original(function, body, request_headers, response_headers)

        self._swap(LambdaFunction, "invoke", invoke)

    def _wrap_deliveries(self, delivery: Any) -> None:
        from localcloud.event_delivery import _DeliveryFailedError  # noqa: PLC0415

        original_deliver = delivery.deliver
        original_send = delivery._send

        def deliver(rule_arn: str, target: Mapping[str, Any], event: Mapping[str, Any]) -> None:
            kind = (event.get("source"), event.get("detail-type"))
            lost = {
                PIPELINE_EVENT: FaultKind.LOST_PIPELINE_EVENT,
                EXECUTION_EVENT: FaultKind.LOST_EXECUTION_EVENT,
            }
            if kind in lost and self.draw(lost[kind]):
                self.record(lost[kind], _status_of(event))
                LOGGER.warning("SIMULATED lost event %s (%s)", event.get("id"), kind[1])
                return
            original_deliver(rule_arn, target, event)
            if kind == UPLOAD_EVENT and self.draw(FaultKind.DUPLICATE_UPLOAD_EVENT):
                self.record(FaultKind.DUPLICATE_UPLOAD_EVENT, "Object Created")
                original_deliver(rule_arn, target, event)

        def send(rule_arn: str, target: dict[str, Any], event: dict[str, Any]) -> None:
            if (event.get("source"), event.get("detail-type")) == UPLOAD_EVENT and self.draw(
                FaultKind.LOST_UPLOAD_EVENT
            ):
                self.record(FaultKind.LOST_UPLOAD_EVENT, "Object Created")
                raise _DeliveryFailedError(
                    "SDK_CLIENT_ERROR", "SIMULATED undeliverable event (localcloud.faults)", retryable=False
                )
            original_send(rule_arn, target, event)

        self._swap(delivery, "deliver", deliver, instance=True)
        self._swap(delivery, "_send", send, instance=True)

    def _wrap_sqs_deletes(self, sqs: Any) -> None:
        original = sqs.delete_message_batch

        def delete_message_batch(*, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
            kept = []
            for entry in Entries:
                if self.draw(FaultKind.SQS_REDELIVERY):
                    self.record(FaultKind.SQS_REDELIVERY, QueueUrl.rsplit("/", 1)[-1])
                    sqs.change_message_visibility(
                        QueueUrl=QueueUrl, ReceiptHandle=entry["ReceiptHandle"], VisibilityTimeout=1
                    )
                else:
                    kept.append(entry)
            if kept:
                return original(QueueUrl=QueueUrl, Entries=kept)
            return {"Successful": [], "Failed": []}

        self._swap(sqs, "delete_message_batch", delete_message_batch, instance=True)

    def _wrap_pipeline_starts(self) -> None:
        from moto.sagemaker.exceptions import SagemakerClientError  # noqa: PLC0415
        from moto.sagemaker.models import SageMakerModelBackend  # noqa: PLC0415

        class ResourceLimitExceededError(SagemakerClientError):
            code = "ResourceLimitExceeded"

        original = SageMakerModelBackend.start_pipeline_execution

        def start_pipeline_execution(backend: Any, *args: Any, **kwargs: Any) -> Any:
            if self.draw(FaultKind.PIPELINE_QUOTA_ERROR):
                self.record(FaultKind.PIPELINE_QUOTA_ERROR, "StartPipelineExecution")
                raise ResourceLimitExceededError(
                    "SIMULATED (localcloud.faults): the account-level service limit "
                    "'Maximum number of concurrent pipeline executions' is exceeded"
                )
            return original(backend, *args, **kwargs)

        self._swap(SageMakerModelBackend, "start_pipeline_execution", start_pipeline_execution)

    def _add_stop_execution(self, cloud: Any) -> None:
        sfn = cloud.client("stepfunctions")

        def stop(rng: random.Random) -> str | None:
            running: list[str] = []
            settled = time.time() - 2.0
            for machine in sfn.list_state_machines()["stateMachines"]:
                page = sfn.list_executions(
                    stateMachineArn=machine["stateMachineArn"], statusFilter="RUNNING", maxResults=1000
                )
                # Not one that is only starting: moto cannot stop an execution before its worker runs.
                running += [
                    e["executionArn"] for e in page["executions"] if e["startDate"].timestamp() < settled
                ]
            if not running:
                return None
            arn = rng.choice(sorted(running))
            sfn.stop_execution(executionArn=arn, error="Injected", cause="SIMULATED StopExecution")
            return arn.rsplit(":", 1)[-1]

        self._actions[FaultKind.STOP_EXECUTION] = stop

    def _tick(self) -> None:
        while not self._stopping.wait(self.plan.tick_seconds):
            for kind, action in list(self._actions.items()):
                if not self.draw(kind):
                    continue
                try:
                    with self._lock:
                        rng = random.Random(self._random[kind].random())
                    place = action(rng)
                except Exception:
                    LOGGER.exception("SIMULATED %s could not be injected", kind)
                    continue
                if place is not None:
                    self.record(kind, place)


def _logical_id(function: Any) -> str:
    from localcloud.patches import _active  # noqa: PLC0415

    spec = _active().lambda_runtime.spec(function.function_name)
    return spec.logical_id if spec else str(function.function_name)


def _status_of(event: Mapping[str, Any]) -> str:
    detail = event.get("detail") or {}
    return str(detail.get("currentPipelineExecutionStatus") or detail.get("status") or "?")
