"""Part (b) of the benchmark: the real stack in the local emulator, measured per job.

Deploys template.yaml into a LocalCloud with the SIMULATED pipeline runner (each pipeline execution runs
no step and succeeds after ``--stack-pipeline-seconds``): what is measured is the control plane (S3 →
EventBridge → Step Functions → Lambda → DynamoDB / SQS → the gate), not training. Onboards two tenants
per tier, uploads a few hundred small valid CSVs (60 rows; each tier's share proportional to its deployed
concurrency limit, so every tier is backlogged for about as long; tiers interleaved), waits until every
job is terminal, then reports:

* uploads per second through to pipeline start (first upload → last RUNNING timeline entry) and each
  job's upload → pipeline-start latency (p50 / p99);
* slot free → next pipeline start (p50 / p99): each admission of a job that was already waiting when a
  slot of its tier freed, from that release (``slotReleasedAt``) to its RUNNING timeline entry;
* per job: state transitions (``*StateEntered`` events of each execution's history: what Step Functions
  Standard bills), Lambda invocations per function, DynamoDB requests (reads / writes by action, with
  request units), SQS requests, S3 requests, EventBridge events;
* the control plane's cost per 1,000 jobs at the published prices of ``bench.prices``;
* that transitions per job do not grow with queue wait (a long-queue and a no-queue configuration).

Instrumentation wraps emulator objects at run time from here (nothing in localcloud/ changes). The moto
internals wrapped are PINNED to moto 5.2.5 (localcloud refuses any other version):

* ``moto.core.responses.BaseResponse.setup_class`` - called once per HTTP request for every service
  (``BaseResponse._dispatch``: setup_class, then call_action); after it, ``service_name``, ``method``,
  ``headers``, ``body`` and ``_get_action()`` describe the request. localcloud wraps DynamoDB's
  ``call_action`` (a lock), not setup_class, so the two seams do not meet.
* ``moto.sqs.models.SQSBackend.receive_message`` - to tell empty long polls (idle cost of the event
  source mappings, not per job) from receives that returned messages.
* ``moto.events.models.EventsBackend.put_events`` - every event put on a bus, by HTTP PutEvents or by
  localcloud's patches (SageMaker pipeline and Step Functions status changes).
* ``moto.s3.notifications._send_event_bridge_message`` - S3's EventBridge notifications, which moto
  hands to the rules directly, bypassing put_events.
* ``localcloud.lambda_runtime.LambdaRuntime.invoke`` (the instance's, not the class's) - every Lambda
  invocation, whatever triggered it.

Requests made by this benchmark to observe (polling the jobs table, reading execution histories) carry
the user agent suffix ``mlaas-bench-observer`` and are not counted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.config import Config

from bench import prices
from bench.stack_options import (
    DEFAULT_PIPELINE_SECONDS,
    DEFAULT_TIMEOUT_SECONDS,
    DEFAULT_UPLOADS,
    QUEUE_CHECK_JOBS,
    stack_arguments,
)
from localcloud import LocalCloud
from localcloud.clients import DUMMY_CREDENTIALS
from scripts import gate_picture
from scripts.jobs import TERMINAL, tenant_jobs
from scripts.sample_data import SampleTenant, classification_csv
from scripts.tenants import onboard

ROOT: Final = Path(__file__).resolve().parents[1]
TIERS: Final = ("basic", "standard", "premium")
TENANTS_PER_TIER: Final = 2
OBSERVER_AGENT: Final = "mlaas-bench-observer"
FEATURES: Final = ("f1", "f2", "f3")

# ---------------------------------------------------------------------------------------- pure figures


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation percentile (numpy's default); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Admission:
    """One admitted job of a tier, in seconds since any common origin; started is None if it never ran."""

    queued: float
    admitted: float
    started: float | None


def slot_free_to_start(releases: Iterable[float], admissions: Iterable[Admission]) -> list[float]:
    """Seconds from a slot freeing to the pipeline start of the waiting job that took it.

    Freed slots are taken in the order they freed: admissions, in order, each take the earliest release
    not yet taken at or before their admission (none: the slot had never been used). It is measured only
    when the job was already waiting at that release (queued at or before it) and its pipeline started.
    """
    pending = sorted(releases)
    taken = 0
    latencies: list[float] = []
    for admission in sorted(admissions, key=lambda a: a.admitted):
        if taken >= len(pending) or pending[taken] > admission.admitted:
            continue
        release = pending[taken]
        taken += 1
        if admission.queued <= release and admission.started is not None:
            latencies.append(admission.started - release)
    return latencies


_DYNAMODB_WRITES: Final = frozenset({"PutItem", "UpdateItem", "DeleteItem"})
_DYNAMODB_READS: Final = frozenset({"GetItem", "Query", "Scan"})


def dynamodb_request_units(action: str, body: Mapping[str, Any]) -> tuple[float, float]:
    """(read, write) request units of one DynamoDB request, for items of at most 4 KB read / 1 KB written.

    On-demand billing: 1 WRU per item written, 2 per item of a transaction (ConditionCheck included);
    1 RRU per strongly consistent read, 0.5 eventually consistent, 2 per transactional item. A Query or
    Scan is taken to read at most 4 KB. Table-management calls are free.
    """
    consistent = 1.0 if body.get("ConsistentRead") else 0.5
    if action in _DYNAMODB_WRITES:
        return 0.0, 1.0
    if action == "TransactWriteItems":
        return 0.0, 2.0 * len(body.get("TransactItems", []))
    if action == "BatchWriteItem":
        return 0.0, float(sum(len(r) for r in body.get("RequestItems", {}).values()))
    if action in _DYNAMODB_READS:
        return consistent, 0.0
    if action == "TransactGetItems":
        return 2.0 * len(body.get("TransactItems", [])), 0.0
    if action == "BatchGetItem":
        units = 0.0
        for request in body.get("RequestItems", {}).values():
            units += len(request.get("Keys", [])) * (1.0 if request.get("ConsistentRead") else 0.5)
        return units, 0.0
    return 0.0, 0.0


_S3_PUT_CLASS_METHODS: Final = frozenset({"PUT", "POST"})


def cost_per_1000_jobs(
    per_job: Mapping[str, float],
    lambda_invocations_per_job: Mapping[str, float],
    lambda_memory_mb: Mapping[str, int],
    assumed_duration_ms: Callable[[str], float] | None = None,
) -> dict[str, float]:
    """USD per 1,000 jobs, per line item and in total, from per-job figures.

    per_job keys: state_transitions, dynamodb_rru, dynamodb_wru, sqs_requests, eventbridge_custom_events,
    s3_put_requests, s3_get_requests (missing keys count as 0). Lambda compute is invocations × the
    function's MemorySize (GB) × the assumed billed duration (``bench.prices``).
    """

    def duration(function: str) -> float:
        if assumed_duration_ms is not None:
            return assumed_duration_ms(function)
        return prices.ASSUMED_DURATION_MS.get(function, prices.DEFAULT_ASSUMED_DURATION_MS)

    gb_seconds = sum(
        count * lambda_memory_mb[function] / 1024 * duration(function) / 1000
        for function, count in lambda_invocations_per_job.items()
    )
    invocations = sum(lambda_invocations_per_job.values())
    lines = {
        "step_functions": per_job.get("state_transitions", 0.0) * prices.STEP_FUNCTIONS_STANDARD.usd,
        "lambda_requests": invocations * prices.LAMBDA_REQUEST.usd,
        "lambda_compute": gb_seconds * prices.LAMBDA_GB_SECOND.usd,
        "dynamodb_reads": per_job.get("dynamodb_rru", 0.0) * prices.DYNAMODB_READ.usd,
        "dynamodb_writes": per_job.get("dynamodb_wru", 0.0) * prices.DYNAMODB_WRITE.usd,
        "sqs": per_job.get("sqs_requests", 0.0) * prices.SQS_STANDARD.usd,
        "eventbridge": per_job.get("eventbridge_custom_events", 0.0) * prices.EVENTBRIDGE_CUSTOM.usd,
        "s3_requests": per_job.get("s3_put_requests", 0.0) * prices.S3_PUT_CLASS.usd
        + per_job.get("s3_get_requests", 0.0) * prices.S3_GET_CLASS.usd,
    }
    per_1000 = {name: value * 1000 for name, value in lines.items()}
    per_1000["total"] = sum(per_1000.values())
    return per_1000


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def running_at(job: Mapping[str, Any]) -> float | None:
    """When the job's pipeline started: its RUNNING timeline entry."""
    for entry in job.get("timeline", []):
        if entry.get("status") == "RUNNING":
            return epoch(str(entry["at"]))
    return None


def stage_seconds(
    uploads_at: Mapping[str, float], jobs: Iterable[Mapping[str, Any]]
) -> dict[str, list[float]]:
    """Seconds spent between consecutive milestones of each job: upload, then each timeline status."""
    stages: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        previous, at = "upload", uploads_at.get(str(job.get("key")))
        for entry in job.get("timeline", []):
            moment = epoch(str(entry["at"]))
            if at is not None:
                stages[f"{previous} → {entry['status']}"].append(moment - at)
            previous, at = str(entry["status"]), moment
    return dict(stages)


def tier_admissions(jobs: Iterable[Mapping[str, Any]]) -> tuple[list[float], list[Admission]]:
    releases, admissions = [], []
    for job in jobs:
        if job.get("slotReleasedAt"):
            releases.append(epoch(str(job["slotReleasedAt"])))
        if job.get("admittedAt") and job.get("queuedAt"):
            admissions.append(
                Admission(epoch(str(job["queuedAt"])), epoch(str(job["admittedAt"])), running_at(job))
            )
    return releases, admissions


# ---------------------------------------------------------------------------------------- instruments


@dataclass
class Counts:
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    dynamodb_rru: float = 0.0
    dynamodb_wru: float = 0.0
    sqs_receives_empty: int = 0
    sqs_receives_with_messages: int = 0
    events: Counter[tuple[str, str]] = field(default_factory=Counter)
    lambda_invocations: Counter[str] = field(default_factory=Counter)
    lambda_seconds: Counter[str] = field(default_factory=Counter)
    gate_triggers: Counter[str] = field(default_factory=Counter)


class Instruments:
    """Counts requests, events and invocations by wrapping moto and localcloud objects (see module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts = Counts()
        self._restore: list[Callable[[], None]] = []

    def reset(self) -> Counts:
        with self._lock:
            counts, self.counts = self.counts, Counts()
        return counts

    def snapshot(self) -> Counts:
        with self._lock:
            return Counts(
                Counter(self.counts.requests),
                self.counts.dynamodb_rru,
                self.counts.dynamodb_wru,
                self.counts.sqs_receives_empty,
                self.counts.sqs_receives_with_messages,
                Counter(self.counts.events),
                Counter(self.counts.lambda_invocations),
                Counter(self.counts.lambda_seconds),
                Counter(self.counts.gate_triggers),
            )

    def install(self, cloud: LocalCloud) -> None:
        from moto.core.responses import BaseResponse  # noqa: PLC0415 - moto loads slowly; only when run
        from moto.events.models import EventsBackend  # noqa: PLC0415
        from moto.s3 import notifications  # noqa: PLC0415
        from moto.sqs.models import SQSBackend  # noqa: PLC0415

        meter = self

        # moto 5.2.5: BaseResponse._dispatch calls setup_class(request, full_url, headers), then call_action.
        original_setup = BaseResponse.setup_class

        def setup_class(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = original_setup(self, *args, **kwargs)
            try:
                meter._request(self)
            except Exception as error:  # never break the emulator for a figure
                print(f"bench.stack: could not count a request: {error!r}", file=sys.stderr)
            return result

        self._swap(BaseResponse, "setup_class", setup_class)

        # moto 5.2.5: SQSBackend.receive_message(queue_name, count, wait_seconds_timeout, ...) -> messages.
        original_receive = SQSBackend.receive_message

        def receive_message(self: Any, *args: Any, **kwargs: Any) -> Any:
            messages = original_receive(self, *args, **kwargs)
            with meter._lock:
                if messages:
                    meter.counts.sqs_receives_with_messages += 1
                else:
                    meter.counts.sqs_receives_empty += 1
            return messages

        self._swap(SQSBackend, "receive_message", receive_message)

        # moto 5.2.5: EventsBackend.put_events(events) with each entry's Source and DetailType.
        original_put_events = EventsBackend.put_events

        def put_events(self: Any, events: list[dict[str, Any]]) -> Any:
            with meter._lock:
                for event in events:
                    meter.counts.events[(str(event.get("Source")), str(event.get("DetailType")))] += 1
            return original_put_events(self, events)

        self._swap(EventsBackend, "put_events", put_events)

        # moto 5.2.5: S3 → EventBridge goes notifications.send_event → _send_event_bridge_message(
        # account_id, bucket, event_name, key), which hands the event to each rule directly.
        original_s3_event = notifications._send_event_bridge_message

        def send_event_bridge_message(*args: Any, **kwargs: Any) -> Any:
            with meter._lock:
                meter.counts.events[("aws.s3", "Object Created")] += 1
            return original_s3_event(*args, **kwargs)

        self._swap(notifications, "_send_event_bridge_message", send_event_bridge_message)

        # localcloud: every invocation (moto's Lambda seam, event sources, API) reaches runtime.invoke.
        runtime = cloud.lambda_runtime
        original_invoke = runtime.invoke

        def invoke(function_name: str, event_json: str) -> Any:
            started = time.perf_counter()
            try:
                return original_invoke(function_name, event_json)
            finally:
                spec = runtime.spec(function_name)
                name = spec.logical_id if spec else function_name
                with meter._lock:
                    meter.counts.lambda_invocations[name] += 1
                    meter.counts.lambda_seconds[name] += time.perf_counter() - started  # type: ignore[assignment]
                    if name == "GateFunction":
                        meter.counts.gate_triggers[_gate_trigger(event_json)] += 1

        setattr(runtime, "invoke", invoke)  # noqa: B010 - an instance attribute shadows the method
        self._restore.append(lambda: delattr(runtime, "invoke"))

    def uninstall(self) -> None:
        while self._restore:
            self._restore.pop()()

    def _swap(self, owner: Any, name: str, replacement: Any) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, replacement)
        self._restore.append(lambda: setattr(owner, name, original))

    def _request(self, response: Any) -> None:
        headers = response.headers or {}
        if OBSERVER_AGENT in str(headers.get("User-Agent", "")):
            return
        service = str(response.service_name or "")
        if service == "s3":
            action = "PUT-class" if response.method in _S3_PUT_CLASS_METHODS else str(response.method)
        else:
            action = str(response._get_action() or "?")
        rru = wru = 0.0
        if service == "dynamodb":
            body = json.loads(response.body or "{}")
            rru, wru = dynamodb_request_units(action, body)
        with self._lock:
            self.counts.requests[(service, action)] += 1
            self.counts.dynamodb_rru += rru
            self.counts.dynamodb_wru += wru


def _gate_trigger(event_json: str) -> str:
    if '"aws:sqs"' in event_json:
        return "sqs (job queued)"
    if "Scheduled Event" in event_json:
        return "schedule (sweep)"
    return "direct (slot freed)"


# ---------------------------------------------------------------------------------------- the run


def observer(cloud: LocalCloud, service: str) -> Any:
    """A client whose requests the instruments do not count."""
    session: Any = boto3.session.Session()
    return session.client(
        service,
        endpoint_url=cloud.endpoint_url,
        region_name=cloud.region,
        **DUMMY_CREDENTIALS,
        config=Config(user_agent_extra=OBSERVER_AGENT, read_timeout=120),
    )


def bench_tenants() -> list[SampleTenant]:
    return [
        SampleTenant(f"bench-{tier}-{n}", tier, "label", FEATURES, min_rows=50)
        for tier in TIERS
        for n in range(1, TENANTS_PER_TIER + 1)
    ]


@dataclass
class Upload:
    tenant: SampleTenant
    key: str
    body: bytes
    at: float = 0.0


def upload_all(cloud: LocalCloud, bucket: str, uploads: list[Upload]) -> None:
    s3 = cloud.client("s3")

    def put(upload: Upload) -> None:
        upload.at = time.time()
        s3.put_object(Bucket=bucket, Key=upload.key, Body=upload.body)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(put, uploads))


def wait_terminal(
    dynamodb: Any, table: str, tenants: Iterable[str], keys: set[str], timeout: float
) -> tuple[list[dict[str, Any]], bool]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = [job for t in tenants for job in tenant_jobs(dynamodb, table, t) if job.get("key") in keys]
        done = len(jobs) == len(keys) and all(job["status"] in TERMINAL for job in jobs)
        if done or time.monotonic() > deadline:
            return jobs, done
        time.sleep(1.0)


def state_transitions(sfn: Any, execution_arn: str) -> int:
    entered, kwargs = 0, {"executionArn": execution_arn, "maxResults": 1000}
    while True:
        page = sfn.get_execution_history(**kwargs)
        entered += sum(1 for event in page["events"] if event["type"].endswith("StateEntered"))
        if not page.get("nextToken"):
            return entered
        kwargs["nextToken"] = page["nextToken"]


def per_job_figures(counts: Counts, jobs: int) -> dict[str, Any]:
    requests = counts.requests
    by_service: dict[str, Counter[str]] = defaultdict(Counter)
    for (service, action), n in requests.items():
        by_service[service][action] += n
    dynamodb, sqs, s3 = by_service["dynamodb"], by_service["sqs"], by_service["s3"]
    dynamodb_writes = sum(
        n
        for a, n in dynamodb.items()
        if a in _DYNAMODB_WRITES or a in {"TransactWriteItems", "BatchWriteItem"}
    )
    dynamodb_reads = sum(
        n for a, n in dynamodb.items() if a in _DYNAMODB_READS or a in {"TransactGetItems", "BatchGetItem"}
    )
    sqs_total = sum(sqs.values())
    custom_events = sum(n for (source, _), n in counts.events.items() if not source.startswith("aws."))
    s3_put = s3.get("PUT-class", 0)
    s3_get = sum(n for a, n in s3.items() if a not in {"PUT-class", "DELETE"})
    return {
        "lambda_invocations": {name: n / jobs for name, n in sorted(counts.lambda_invocations.items())},
        "lambda_invocations_total": sum(counts.lambda_invocations.values()) / jobs,
        "lambda_local_wall_ms_incl_worker_wait": {
            name: 1000 * counts.lambda_seconds[name] / n
            for name, n in sorted(counts.lambda_invocations.items())
        },
        "gate_invocations_by_trigger": {k: n / jobs for k, n in sorted(counts.gate_triggers.items())},
        "dynamodb_requests": sum(dynamodb.values()) / jobs,
        "dynamodb_read_requests": dynamodb_reads / jobs,
        "dynamodb_write_requests": dynamodb_writes / jobs,
        "dynamodb_by_action": {a: n / jobs for a, n in sorted(dynamodb.items())},
        "dynamodb_rru": counts.dynamodb_rru / jobs,
        "dynamodb_wru": counts.dynamodb_wru / jobs,
        "sqs_requests_all": sqs_total / jobs,
        "sqs_by_action": {a: n / jobs for a, n in sorted(sqs.items())},
        "sqs_empty_receives": counts.sqs_receives_empty / jobs,
        # Empty long polls are the event source mappings' idle cost (per queue-hour, not per job).
        "sqs_requests": (sqs_total - counts.sqs_receives_empty) / jobs,
        "eventbridge_events": {f"{s} / {d}": n / jobs for (s, d), n in sorted(counts.events.items())},
        "eventbridge_custom_events": custom_events / jobs,
        "s3_put_requests": s3_put / jobs,
        "s3_get_requests": s3_get / jobs,
        "other_requests": {
            f"{service}:{a}": n / jobs
            for service, actions in sorted(by_service.items())
            if service not in {"dynamodb", "sqs", "s3"}
            for a, n in sorted(actions.items())
        },
    }


def set_limit(cloud: LocalCloud, table: str, tier: str, limit: int, borrowing: int) -> None:
    cloud.client("dynamodb").update_item(
        TableName=table,
        Key={"tier": {"S": tier}},
        UpdateExpression="SET concurrencyLimit = :n, borrowingLimit = :b",
        ExpressionAttributeValues={":n": {"N": str(limit)}, ":b": {"N": str(borrowing)}},
    )


def max_concurrent(jobs: Iterable[Mapping[str, Any]]) -> int:
    """Most slots held at once, from each job's [admittedAt, slotReleasedAt] (a release before a take at the
    same instant: the slot was free)."""
    events = sorted(
        (epoch(str(at)), step)
        for job in jobs
        if job.get("admittedAt")
        for at, step in ((job["admittedAt"], 1), (job.get("slotReleasedAt") or "9999-12-31T00:00:00Z", -1))
    )
    held = peak = 0
    for _, step in events:
        held += step
        peak = max(peak, held)
    return peak


def slots_left_after_reconciling(cloud: LocalCloud, outputs: Mapping[str, str], gate: str) -> dict[str, int]:
    """Run the gate's scheduled sweep (the reconciler), then count what still holds a slot: leases, and the
    tier, account and fair-share counters. All zero when nothing leaked."""
    response = cloud.client("lambda").invoke(FunctionName=gate, Payload=b'{"trigger": "schedule"}')
    if response.get("FunctionError"):
        # A sweep that did not run would make every leftover look like a leak: say so instead.
        raise RuntimeError(f"the gate's sweep failed: {response['Payload'].read().decode()[:2000]}")
    dynamodb = observer(cloud, "dynamodb")

    def scan(table: str) -> list[dict[str, Any]]:
        return list(dynamodb.scan(TableName=outputs[table], ConsistentRead=True).get("Items", []))

    counters = {
        item["tier"]["S"]: int(item.get("running", {"N": "0"})["N"]) for item in scan("TiersTableName")
    }
    return {
        "leases": len(scan("SlotLeasesTableName")),
        **{f"running_{name}": value for name, value in sorted(counters.items())},
        "running_fair_shares": sum(
            int(i.get("running", {"N": "0"})["N"]) for i in scan("FairShareTableName")
        ),
    }


def shares(weights: Mapping[str, int], count: int) -> dict[str, int]:
    """Split count in proportion to weights (largest remainder; ties to the first)."""
    total = sum(weights.values())
    exact = {name: count * weight / total for name, weight in weights.items()}
    split = {name: math.floor(value) for name, value in exact.items()}
    by_remainder = sorted(weights, key=lambda name: split[name] - exact[name])
    for name in by_remainder[: count - sum(split.values())]:
        split[name] += 1
    return split


def make_uploads(
    tenants: Sequence[SampleTenant],
    count: int,
    prefix: str,
    seed: int,
    limits: Mapping[str, int] | None = None,
) -> list[Upload]:
    """count uploads over the tenants; with limits, each tier gets a share proportional to its limit (so
    every tier stays backlogged for about as long), round-robin over its tenants, tiers interleaved."""
    tiers = sorted({t.tier for t in tenants}, key=TIERS.index)
    per_tier = shares({tier: (limits or {}).get(tier, 1) for tier in tiers}, count)
    queues = {
        tier: [
            [t for t in tenants if t.tier == tier][i % sum(1 for t in tenants if t.tier == tier)]
            for i in range(per_tier[tier])
        ]
        for tier in tiers
    }
    ordered: list[SampleTenant] = []
    while any(queues.values()):
        # The tier furthest behind its share goes next: arrivals of every tier spread over the batch.
        tier = min(
            (t for t in tiers if queues[t]),
            key=lambda t: (per_tier[t] - len(queues[t])) / per_tier[t],
        )
        ordered.append(queues[tier].pop(0))
    return [
        Upload(
            tenant,
            f"tenants/{tenant.tenant_id}/uploads/{prefix}-{i:04d}.csv",
            classification_csv(tenant, rows=60, seed=seed + i),
        )
        for i, tenant in enumerate(ordered)
    ]


def measure_batch(
    cloud: LocalCloud,
    outputs: Mapping[str, str],
    tenants: Sequence[SampleTenant],
    uploads: list[Upload],
    timeout: float,
) -> tuple[list[dict[str, Any]], bool, float]:
    started = time.time()
    upload_all(cloud, outputs["UploadsBucketName"], uploads)
    jobs, done = wait_terminal(
        observer(cloud, "dynamodb"),
        outputs["JobsTableName"],
        sorted({t.tenant_id for t in tenants}),
        {u.key for u in uploads},
        timeout,
    )
    return jobs, done, time.time() - started


# What tells why a job did not end: which task token it holds, whether its pipeline's outcome was recorded and
# who claimed the right to resume its execution (services.rendezvous).
_STUCK_FIELDS: Final = ("status", "tier", "updatedAt", "resumedAt", "resumedBy", "executionArn")


def stuck_jobs(jobs: Iterable[Mapping[str, Any]], keys: Iterable[str]) -> list[dict[str, Any]]:
    """Every upload whose job is missing or not terminal, with what tells why."""
    by_key = {str(job.get("key")): job for job in jobs}
    stuck: list[dict[str, Any]] = []
    for key in sorted(keys):
        job = by_key.get(key)
        if job is None:
            stuck.append({"key": key, "status": None, "why": "no job item for this upload"})
        elif job.get("status") not in TERMINAL:
            outcome = job.get("pipelineOutcome")
            stuck.append(
                {
                    "key": key,
                    "jobId": job.get("jobId"),
                    **{name: job.get(name) for name in _STUCK_FIELDS if job.get(name) is not None},
                    "holdsQueueTaskToken": bool(job.get("queueTaskToken")),
                    "holdsPipelineTaskToken": bool(job.get("pipelineTaskToken")),
                    "pipelineOutcome": outcome.get("status") if isinstance(outcome, Mapping) else None,
                }
            )
    return stuck


@contextlib.contextmanager
def _state_dir(keep: Path | None) -> Iterator[Path]:
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        yield keep
        return
    with tempfile.TemporaryDirectory(prefix="bench-stack-") as temporary:
        yield Path(temporary)


def transitions_of(cloud: LocalCloud, jobs: Iterable[Mapping[str, Any]]) -> list[int]:
    sfn = observer(cloud, "stepfunctions")
    return [state_transitions(sfn, str(job["executionArn"])) for job in jobs if job.get("executionArn")]


def run(
    uploads: int = DEFAULT_UPLOADS,
    pipeline_seconds: float = DEFAULT_PIPELINE_SECONDS,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    queue_check_jobs: int = QUEUE_CHECK_JOBS,
    state_dir_to_keep: Path | None = None,
) -> dict[str, Any]:
    run_started = time.perf_counter()
    tenants = bench_tenants()
    with (
        _state_dir(state_dir_to_keep) as state_dir,
        LocalCloud(
            port=0, state_dir=state_dir, pipeline_runner="simulated", pipeline_delay_seconds=pipeline_seconds
        ) as cloud,
    ):
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-bench")
        outputs = stack.outputs
        for tenant in tenants:
            onboard(cloud, outputs, tenant)
        dynamodb = cloud.client("dynamodb")
        tier_items = {
            tier: dynamodb.get_item(TableName=outputs["TiersTableName"], Key={"tier": {"S": tier}})["Item"]
            for tier in TIERS
        }
        limits = {tier: int(item["concurrencyLimit"]["N"]) for tier, item in tier_items.items()}
        borrowing = {tier: int(item["borrowingLimit"]["N"]) for tier, item in tier_items.items()}
        account_cap = int(
            dynamodb.get_item(TableName=outputs["TiersTableName"], Key={"tier": {"S": "account"}})["Item"][
                "accountCap"
            ]["N"]
        )
        memory = {logical_id: spec.memory_mb for logical_id, spec in stack.functions.items()}
        setup_s = time.perf_counter() - run_started
        instruments = Instruments()
        instruments.install(cloud)
        try:
            # ---- main run
            batch = make_uploads(tenants, uploads, "bench", seed=10_000, limits=limits)
            jobs, done, main_s = measure_batch(cloud, outputs, tenants, batch, timeout)
            counts = instruments.reset()
            transitions = transitions_of(cloud, jobs)
            main = main_figures(batch, jobs, done, main_s, counts, transitions, memory, limits, borrowing)
            main["stuck_jobs"] = stuck_jobs(jobs, [u.key for u in batch])
            main["max_running_all_tiers"] = max_concurrent(jobs)
            main["account_cap"] = account_cap
            main["gate_picture"] = draw_gate(jobs, tier_items, account_cap)
            leftovers = slots_left_after_reconciling(cloud, outputs, stack.ref("GateFunction"))
            # ---- transitions vs queue wait: one basic tenant, its tier limit 1 (long queue) vs ≥ jobs
            basic = [t for t in tenants if t.tier == "basic"][:1]
            queue_check = {}
            for label, limit in (
                ("long queue (limit 1)", 1),
                (f"no queue (limit {queue_check_jobs})", queue_check_jobs),
            ):
                set_limit(cloud, outputs["TiersTableName"], "basic", limit, 0)
                check = make_uploads(basic, queue_check_jobs, f"check-{limit}", seed=20_000 + limit * 100)
                check_jobs, check_done, check_s = measure_batch(cloud, outputs, basic, check, timeout)
                check_counts = instruments.reset()
                check_transitions = transitions_of(cloud, check_jobs)
                waits = [
                    epoch(str(j["admittedAt"])) - epoch(str(j["queuedAt"]))
                    for j in check_jobs
                    if j.get("admittedAt") and j.get("queuedAt")
                ]
                per_job = per_job_figures(check_counts, len(check))
                queue_check[label] = {
                    "jobs": len(check),
                    "all_terminal": check_done,
                    "stuck_jobs": stuck_jobs(check_jobs, [u.key for u in check]),
                    "statuses": dict(Counter(j["status"] for j in check_jobs)),
                    "queue_wait_p50_s": percentile(waits, 50),
                    "queue_wait_max_s": max(waits, default=math.nan),
                    "state_transitions_per_job": sum(check_transitions) / max(len(check_transitions), 1),
                    "state_transitions_min_max": [
                        min(check_transitions, default=0),
                        max(check_transitions, default=0),
                    ],
                    "lambda_invocations_per_job": per_job["lambda_invocations_total"],
                    "runtime_s": check_s,
                }
            set_limit(cloud, outputs["TiersTableName"], "basic", limits["basic"], borrowing["basic"])
        finally:
            instruments.uninstall()
    total_s = time.perf_counter() - run_started
    return {
        "note": (
            f"SIMULATED pipeline runner: each pipeline execution runs no step and succeeds after "
            f"{pipeline_seconds} s. What is measured is the control plane in the local emulator "
            "(moto 5.2.5 + localcloud, one machine), not training and not AWS latencies."
        ),
        "pipeline_seconds": pipeline_seconds,
        "tier_limits": limits,
        "tier_borrowing_limits": borrowing,
        "slots_left_after_reconciling": leftovers,
        "leaked_slots_after_reconciling": sum(leftovers.values()),
        "tenants": [t.tenant_id for t in tenants],
        "main": main,
        "queue_check": queue_check,
        "transitions_independent_of_queue_wait": len(
            {round(c["state_transitions_per_job"], 6) for c in queue_check.values()}
        )
        == 1,
        "prices": {"as_of": prices.AS_OF, "region": prices.REGION, "table": prices.price_table()},
        "assumed_lambda_duration_ms": {
            **{f: prices.ASSUMED_DURATION_MS.get(f, prices.DEFAULT_ASSUMED_DURATION_MS) for f in memory},
        },
        "lambda_memory_mb": memory,
        "function_logs": str(Path(state_dir_to_keep) / "logs") if state_dir_to_keep else None,
        "not_priced": list(prices.NOT_PRICED),
        "runtime_s": {"setup": setup_s, "main": main_s, "total": total_s},
    }


GATE_PICTURE_PATH = Path("build/bench-gate.svg")


def draw_gate(jobs: list[dict[str, Any]], tier_items: Mapping[str, Any], account_cap: int) -> dict[str, Any]:
    """Slots over time per tier of the main run (scripts/gate_picture.py), in build/bench-gate.svg."""
    data = gate_picture.write(
        ROOT / GATE_PICTURE_PATH,
        jobs,
        gate_picture.limits_from_items(tier_items),
        account_cap,
        title="make bench: slots over time per tier (main run, simulated pipeline)",
    )
    return {
        "path": str(GATE_PICTURE_PATH),
        "limits_crossed": data.crossings,
        "borrowed_admissions": data.borrowed_admissions,
    }


def main_figures(  # noqa: PLR0917 - one call site, each figure a named input
    uploads: Sequence[Upload],
    jobs: Sequence[Mapping[str, Any]],
    done: bool,
    elapsed_s: float,
    counts: Counts,
    transitions: Sequence[int],
    memory: Mapping[str, int],
    limits: Mapping[str, int],
    borrowing: Mapping[str, int],
) -> dict[str, Any]:
    uploaded_at = {u.key: u.at for u in uploads}
    starts = {str(j["key"]): s for j in jobs if (s := running_at(j)) is not None}
    first_upload = min(uploaded_at.values())
    last_start = max(starts.values(), default=math.nan)
    latencies = [s - uploaded_at[key] for key, s in starts.items()]
    slot_latencies: list[float] = []
    by_tier: dict[str, Any] = {}
    for tier in TIERS:
        tier_jobs = [
            j
            for j in jobs
            if j.get("tier") == tier or str(j.get("tenantId", "")).startswith(f"bench-{tier}-")
        ]
        releases, admissions = tier_admissions(tier_jobs)
        measured = slot_free_to_start(releases, admissions)
        slot_latencies += measured
        by_tier[tier] = {
            "limit": limits[tier] + borrowing[tier],
            "guaranteed": limits[tier],
            "max_running": max_concurrent(tier_jobs),
            "jobs": len(tier_jobs),
            "slot_free_to_start_pairs": len(measured),
            "slot_free_to_start_p50_s": percentile(measured, 50),
            "slot_free_to_start_p99_s": percentile(measured, 99),
        }
    stages = {
        name: {"p50_s": percentile(values, 50), "p99_s": percentile(values, 99), "jobs": len(values)}
        for name, values in stage_seconds(uploaded_at, jobs).items()
    }
    per_job = per_job_figures(counts, len(uploads))
    per_job["state_transitions"] = sum(transitions) / max(len(transitions), 1)
    per_job["state_transitions_min_max"] = [min(transitions, default=0), max(transitions, default=0)]
    cost = cost_per_1000_jobs(
        per_job, per_job["lambda_invocations"], {f: memory.get(f, 128) for f in per_job["lambda_invocations"]}
    )
    return {
        "uploads": len(uploads),
        "all_terminal": done,
        "statuses": dict(Counter(str(j["status"]) for j in jobs)),
        "pipeline_starts": len(starts),
        "uploads_per_second_to_pipeline_start": len(starts) / (last_start - first_upload)
        if starts
        else math.nan,
        "first_upload_to_last_start_s": last_start - first_upload,
        "upload_to_start_p50_s": percentile(latencies, 50),
        "upload_to_start_p99_s": percentile(latencies, 99),
        "slot_free_to_start_pairs": len(slot_latencies),
        "slot_free_to_start_p50_s": percentile(slot_latencies, 50),
        "slot_free_to_start_p99_s": percentile(slot_latencies, 99),
        "by_tier": by_tier,
        "stages": stages,
        "per_job": per_job,
        "cost_per_1000_jobs_usd": cost,
        "runtime_s": elapsed_s,
    }


# ---------------------------------------------------------------------------------------- report


def print_report(result: Mapping[str, Any]) -> None:
    main = result["main"]
    per_job = main["per_job"]
    print(
        f"\nThe real stack in the local emulator ({main['uploads']} uploads, "
        f"tier limits {result['tier_limits']})"
    )
    print(f"  {result['note']}")
    print(f"  statuses: {main['statuses']}  all terminal: {main['all_terminal']}")
    if main.get("gate_picture"):
        picture = main["gate_picture"]
        crossed = "; ".join(picture["limits_crossed"]) or "no limit crossed"
        borrowed = picture["borrowed_admissions"]
        print(f"  gate picture: {picture['path']} ({crossed}, {borrowed} borrowed admissions)")
    rows = [
        ("uploads/s through to pipeline start", f"{main['uploads_per_second_to_pipeline_start']:.2f}"),
        ("first upload → last pipeline start (s)", f"{main['first_upload_to_last_start_s']:.1f}"),
        (
            "upload → pipeline start p50 / p99 (s)",
            f"{main['upload_to_start_p50_s']:.1f} / {main['upload_to_start_p99_s']:.1f}",
        ),
        (
            f"slot free → next pipeline start p50 / p99 (s), {main['slot_free_to_start_pairs']} pairs",
            f"{main['slot_free_to_start_p50_s']:.2f} / {main['slot_free_to_start_p99_s']:.2f}",
        ),
    ]
    for tier, figures in main["by_tier"].items():
        rows.append(
            (
                f"  {tier} (limit {figures['limit']}, {figures['slot_free_to_start_pairs']} pairs)",
                f"{figures['slot_free_to_start_p50_s']:.2f} / {figures['slot_free_to_start_p99_s']:.2f}",
            )
        )
    rows += [
        (
            f"max running vs limit, {tier} (guaranteed {f['guaranteed']} + borrowable)",
            f"{f['max_running']} / {f['limit']}",
        )
        for tier, f in main["by_tier"].items()
    ]
    rows += [
        ("max running vs cap, all tiers", f"{main['max_running_all_tiers']} / {main['account_cap']}"),
        ("slots still held after the reconciler ran", str(result["leaked_slots_after_reconciling"])),
    ]
    rows += [
        (f"  stage {name} p50 / p99 (s)", f"{f['p50_s']:.2f} / {f['p99_s']:.2f}")
        for name, f in main["stages"].items()
    ]
    lo, hi = per_job["state_transitions_min_max"]
    rows += [
        ("per job: state transitions (min–max)", f"{per_job['state_transitions']:.2f} ({lo}–{hi})"),
        ("per job: Lambda invocations", f"{per_job['lambda_invocations_total']:.2f}"),
    ]
    rows += [(f"  {name}", f"{n:.2f}") for name, n in per_job["lambda_invocations"].items()]
    rows += [(f"    gate: {k}", f"{n:.2f}") for k, n in per_job["gate_invocations_by_trigger"].items()]
    rows += [
        (
            "per job: DynamoDB requests (reads / writes)",
            f"{per_job['dynamodb_requests']:.2f} ({per_job['dynamodb_read_requests']:.2f} / "
            f"{per_job['dynamodb_write_requests']:.2f})",
        ),
        ("per job: DynamoDB RRU / WRU", f"{per_job['dynamodb_rru']:.2f} / {per_job['dynamodb_wru']:.2f}"),
    ]
    rows += [(f"  {a}", f"{n:.2f}") for a, n in per_job["dynamodb_by_action"].items()]
    rows += [
        (
            "per job: SQS requests (excl. empty polls; empty polls)",
            f"{per_job['sqs_requests']:.2f} ({per_job['sqs_empty_receives']:.2f})",
        )
    ]
    rows += [(f"  {a}", f"{n:.2f}") for a, n in per_job["sqs_by_action"].items()]
    rows += [("per job: EventBridge events", "")]
    rows += [(f"  {k}", f"{n:.2f}") for k, n in per_job["eventbridge_events"].items()]
    rows += [
        (
            "per job: S3 requests PUT-class / GET-class",
            f"{per_job['s3_put_requests']:.2f} / {per_job['s3_get_requests']:.2f}",
        )
    ]
    for label, value in rows:
        print(f"  {label:58} {value:>16}")
    print(
        f"\n  Cost per 1,000 jobs (USD, {result['prices']['region']}, "
        f"prices as of {result['prices']['as_of']})"
    )
    for item, usd in main["cost_per_1000_jobs_usd"].items():
        print(f"    {item:24} {usd:>10.4f}")
    print(
        "  Lambda compute uses ASSUMED billed durations (ms), not local ones:",
        result["assumed_lambda_duration_ms"],
    )
    print("\n  State transitions per job vs queue wait (basic tier, one tenant)")
    for label, check in result["queue_check"].items():
        print(
            f"    {label:24} wait p50 {check['queue_wait_p50_s']:6.1f} s, "
            f"max {check['queue_wait_max_s']:6.1f} s: "
            f"{check['state_transitions_per_job']:.2f} transitions/job "
            f"(min–max {check['state_transitions_min_max'][0]}–{check['state_transitions_min_max'][1]}), "
            f"{check['lambda_invocations_per_job']:.2f} invocations/job, {check['statuses']}"
        )
    print(f"    transitions independent of queue wait: {result['transitions_independent_of_queue_wait']}")
    timings = result["runtime_s"]
    print(
        f"\n  Runtime: setup {timings['setup']:.0f} s, main run {timings['main']:.0f} s, "
        f"total {timings['total']:.0f} s"
    )


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    return run(
        args.stack_uploads,
        args.stack_pipeline_seconds,
        args.stack_timeout,
        args.stack_queue_check_jobs,
        args.stack_state_dir,
    )


def failures(result: Mapping[str, Any]) -> list[str]:
    """What makes the stack run fail, one line each (none: it passed)."""
    main = result["main"]
    found: list[str] = []
    batches = {"main run": main, **{f"queue check, {label}": c for label, c in result["queue_check"].items()}}
    for name, batch in batches.items():
        if not batch["all_terminal"]:
            stuck = batch.get("stuck_jobs", [])
            found.append(f"{name}: {len(stuck)} job(s) not terminal after the run's timeout")
            found += [f"  {json.dumps(job, default=str)}" for job in stuck]
    if result["leaked_slots_after_reconciling"]:
        found.append(f"slots still held after the reconciler ran: {result['slots_left_after_reconciling']}")
    for tier, figures in main["by_tier"].items():
        if figures["max_running"] > figures["limit"]:
            found.append(
                f"{tier}: {figures['max_running']} running at once, above its limit {figures['limit']}"
            )
    if main["max_running_all_tiers"] > main["account_cap"]:
        found.append(
            f"{main['max_running_all_tiers']} running at once, above the account cap {main['account_cap']}"
        )
    if not result["transitions_independent_of_queue_wait"]:
        found.append("state transitions per job depend on the queue wait")
    found += [
        f"gate picture: {crossing}" for crossing in main.get("gate_picture", {}).get("limits_crossed", [])
    ]
    return found


def ok(result: Mapping[str, Any]) -> bool:
    return not failures(result)


def print_failures(result: Mapping[str, Any]) -> None:
    """Say loudly, on stderr, why the stack run failed."""
    for line in failures(result):
        print(f"bench.stack FAIL: {line}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__)
    stack_arguments(parser)
    parser.add_argument("--output", type=Path, default=Path("build/bench-stack.json"))
    args = parser.parse_args(argv)
    result = run_from_args(args)
    print_report(result)
    print_failures(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    print(f"\nWrote {args.output}")
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
