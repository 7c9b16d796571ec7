"""`make soak`: the real stack in the local emulator under SIMULATED, seeded, random faults (issue 9, part 4).

Deploys template.yaml into a LocalCloud with the SIMULATED pipeline runner (no step runs; each execution
ends after a random, seeded duration with a random, seeded outcome) and a fault plan
(``localcloud.faults``: every kind injected from that one place). Onboards tenants over the three tiers,
one of which sends a third of the uploads, uploads at a steady rate while faults are armed, and changes
tier limits and the account cap mid-run through the real status API (an operator key, PATCH /tiers and
PATCH /account). Then it disarms the faults, puts the limits back as deployed (as an operator would once
the incident is over), lets the stack drain (its own sweeps recover what the faults
broke), runs the gate's sweep once more and checks the invariants (DESIGN.md 1-4 and 6):

* uploads_without_job: uploads with no job whose event is not held in the upload events' dead-letter
  queue (an undeliverable upload event never reaches the state machine: it waits there, alarmed);
* duplicate_jobs: object versions with more than one job, plus jobs with more than one pipeline execution;
* non_terminal_jobs: jobs not in a terminal status after the drain;
* leaked_slots: leases left plus every running counter (tiers, account, fair shares) off by its leases;
* orphan_pipelines: pipeline executions seen running without their job's lease in two samples at least
  ``ORPHAN_CONFIRM_SECONDS`` apart (the transient stop-after-release window is not counted);
* limit_violations: samples in which a tier held more leases than its limit (guaranteed + borrowable), or
  all tiers more than the account cap, in effect when the newest of those leases was taken.

Exit status 1 when any of those is non-zero or fewer than ``MIN_FAULT_KINDS`` kinds were injected at least
``MIN_FAULTS_PER_KIND`` times each. Emulator latencies are not AWS's, and nothing here measures training.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import random
import shutil
import sys
import tempfile
import threading
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from bench import stack
from bench.fairness import jain
from bench.stack import ROOT, epoch, observer, percentile, slots_left_after_reconciling
from localcloud import LocalCloud
from localcloud.faults import FaultKind, FaultPlan
from localcloud.permissions import PermissionReport
from localcloud.pipeline_runner import Outcome
from scripts import dead_letters
from scripts.api_keys import create_operator_key
from scripts.cli import ApiError, call, http_sender
from scripts.jobs import TERMINAL, plain, tenant_jobs
from scripts.sample_data import SampleTenant, classification_csv
from scripts.tenants import onboard

TIERS: Final = ("basic", "standard", "premium")
FEATURES: Final = ("f1", "f2", "f3")
MUST_BE_ZERO: Final = (
    "uploads_without_job",
    "duplicate_jobs",
    "non_terminal_jobs",
    "leaked_slots",
    "running_executions",
    "orphan_pipelines",
    "limit_violations",
)
MIN_FAULT_KINDS: Final = 10
MIN_FAULTS_PER_KIND: Final = 20
ORPHAN_CONFIRM_SECONDS: Final = 5.0
# A limit change is taken to be in effect from just before the request to just after the answer.
LIMIT_CHANGE_SLACK_SECONDS: Final = 1.0
FAIRNESS_WINDOW_SECONDS: Final = 20.0
# Each sample lists every pipeline execution (moto pages none) and scans the leases: not too often.
SAMPLE_SECONDS: Final = 2.0
HEAVY_SHARE: Final = 1 / 3
# A big customer buys the big tier. With the heavy tenant on basic, basic's demand (its 333 jobs plus its
# tier's share of the rest, about 540) drains through at most 4 slots and the run takes 22-25 minutes here,
# which measures the basic tier's size, not the control plane (README, "The fault-injection soak").
HEAVY_TIER: Final = "premium"

# Chance per opportunity (see localcloud.faults for what an opportunity is per kind).
DEFAULT_PROBABILITIES: Final[Mapping[FaultKind, float]] = {
    FaultKind.LAMBDA_ERROR: 0.02,
    FaultKind.LAMBDA_TIMEOUT: 0.01,
    FaultKind.LAMBDA_THROTTLE: 0.01,
    FaultKind.DYNAMODB_THROTTLE: 0.01,
    FaultKind.DYNAMODB_THROTTLE_PAST_RETRIES: 0.003,
    FaultKind.DYNAMODB_TRANSACTION_CONFLICT: 0.02,
    FaultKind.GATE_CRASH: 0.05,
    FaultKind.LOST_UPLOAD_EVENT: 0.025,
    FaultKind.LOST_PIPELINE_EVENT: 0.03,
    FaultKind.LOST_EXECUTION_EVENT: 0.1,
    FaultKind.DUPLICATE_UPLOAD_EVENT: 0.03,
    FaultKind.SQS_REDELIVERY: 0.03,
    FaultKind.STOP_EXECUTION: 0.1,
    FaultKind.PIPELINE_QUOTA_ERROR: 0.03,
    FaultKind.TIER_LIMIT_CHANGE: 0.1,
    FaultKind.ACCOUNT_CAP_CHANGE: 0.05,
}


@dataclass(frozen=True)
class SoakConfig:
    uploads: int = 1000
    tenants_per_tier: int = 10
    seed: int = 9
    upload_seconds: float = 420.0
    # Generous: a timeout shorter than the backlog left after the uploads reports jobs still in flight as
    # non-terminal (a busy machine makes the drain longer, not the run red).
    drain_timeout_seconds: float = 900.0
    schedule_interval_seconds: float = 10.0
    invalid_share: float = 0.04
    scale: float = 1.0  # multiplies every fault probability
    # Kinds left out (probability 0).
    without: frozenset[FaultKind] = frozenset()
    # The stack's SweepGraceSeconds: how long the sweeps (lost completions, open jobs) wait before they
    # ask about a quiet job. 5 minutes on AWS; shorter here so that a lost event is recovered within the run.
    sweep_grace_seconds: int = 20
    state_dir: str | None = None  # kept (function logs, fault counts); None: a temporary directory
    # Every function's Timeout times this (localcloud's lambda_timeout_scale): a busy machine must not turn
    # into timeouts that were never injected; the injected ones (lambda_timeout) are counted.
    lambda_timeout_scale: float = 3.0
    # Warm workers per function (the gate gets its reserved concurrency, 5, at most).
    workers_per_function: int = 6
    durations: tuple[float, float] = (0.5, 4.0)
    long_durations: tuple[float, float] = (10.0, 30.0)
    long_share: float = 0.1
    failed_share: float = 0.12
    stopped_share: float = 0.03


# ---------------------------------------------------------------------------------------- workload


@dataclass
class Upload(stack.Upload):
    """bench.stack's upload, with the object version S3 gave it."""

    version_id: str = ""


def soak_tenants(per_tier: int) -> list[SampleTenant]:
    return [
        SampleTenant(f"soak-{tier}-{n:02d}", tier, "label", FEATURES, min_rows=50)
        for tier in TIERS
        for n in range(1, per_tier + 1)
    ]


def heavy_tenant(tenants: Sequence[SampleTenant]) -> SampleTenant:
    """The tenant that sends a third of the uploads: the first of HEAVY_TIER."""
    return next(tenant for tenant in tenants if tenant.tier == HEAVY_TIER)


def draw_uploads(tenants: Sequence[SampleTenant], config: SoakConfig) -> list[Upload]:
    """config.uploads uploads: a third from the heavy tenant, the rest uniformly over the others;
    a few invalid (no target column), in a seeded random order."""
    rng = random.Random(config.seed)
    heavy = heavy_tenant(tenants)
    others = [tenant for tenant in tenants if tenant is not heavy]
    heavy_count = round(config.uploads * HEAVY_SHARE)
    owners = [heavy] * heavy_count + [rng.choice(others) for _ in range(config.uploads - heavy_count)]
    rng.shuffle(owners)
    uploads = []
    for i, tenant in enumerate(owners):
        if rng.random() < config.invalid_share:
            body = b"f1,f2,f3\n1,2,3\n"  # no target column: REJECTED by validation
        else:
            body = classification_csv(tenant, rows=60, seed=config.seed * 100_000 + i)
        uploads.append(Upload(tenant, f"tenants/{tenant.tenant_id}/uploads/soak-{i:05d}.csv", body))
    return uploads


def outcome_chooser(config: SoakConfig) -> Any:
    """SIMULATED pipeline outcomes: seeded per job (its JobId), random durations and statuses."""

    def choose(parameters: Mapping[str, str]) -> Outcome:
        rng = random.Random(zlib.crc32(f"{config.seed}:{parameters.get('JobId', '')}".encode()))
        low, high = config.long_durations if rng.random() < config.long_share else config.durations
        delay = rng.uniform(low, high)
        draw = rng.random()
        if draw < config.failed_share:
            return Outcome("Failed", "SIMULATED pipeline failure (bench.soak)", delay)
        if draw < config.failed_share + config.stopped_share:
            return Outcome("Stopped", "SIMULATED pipeline stop (bench.soak)", delay)
        return Outcome("Succeeded", None, delay)

    return choose


# ---------------------------------------------------------------------------------------- limits


@dataclass
class LimitHistory:
    """Tier limits (guaranteed + borrowable) and the account cap over time, as changed through the API."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    changes: list[tuple[float, float, str, int]] = field(default_factory=list)  # (from, to, scope, value)
    initial: dict[str, int] = field(default_factory=dict)

    def record(self, started: float, ended: float, scope: str, value: int) -> None:
        with self.lock:
            self.changes.append((started, ended, scope, value))

    def limit_at(self, scope: str, moment: float) -> int:
        """The highest value the scope's limit may have had at ``moment`` (a change's window counts both)."""
        with self.lock:
            value = self.initial[scope]
            candidates = []
            for started, ended, changed_scope, new in sorted(self.changes):
                if changed_scope != scope:
                    continue
                if ended + LIMIT_CHANGE_SLACK_SECONDS <= moment:
                    value = new
                elif started - LIMIT_CHANGE_SLACK_SECONDS <= moment:
                    candidates.append(new)
            return max([value, *candidates])


class Operator:
    """Changes limits at random through the status API (PATCH /tiers/{tier}, PATCH /account)."""

    def __init__(
        self, api_url: str, key: str, history: LimitHistory, defaults: Mapping[str, tuple[int, int]]
    ):
        self._send = http_sender(api_url, key)
        self._history = history
        self._defaults = defaults
        self.refused: Counter[str] = Counter()

    def _patch(self, path: str, body: dict[str, int], scope: str, value: int) -> str | None:
        started = time.time()
        for _ in range(5):  # the API's function may itself be hit by an injected fault
            try:
                call(self._send, "PATCH", path, body=body)
            except ApiError as error:
                if error.status == 409:
                    self.refused[scope] += 1
                    return None
                time.sleep(0.5)
                continue
            self._history.record(started, time.time(), scope, value)
            return f"{scope}={value}"
        self.refused[f"{scope} (errors)"] += 1
        return None

    def change_tier(self, rng: random.Random) -> str | None:
        tier = rng.choice(TIERS)
        guaranteed, borrowing = self._defaults[tier]
        new_guaranteed = rng.randint(max(1, guaranteed // 2), guaranteed + 2)
        new_borrowing = rng.randint(0, borrowing + 2)
        return self._patch(
            f"/tiers/{tier}",
            {"concurrencyLimit": new_guaranteed, "borrowingLimit": new_borrowing},
            tier,
            new_guaranteed + new_borrowing,
        )

    def change_cap(self, rng: random.Random) -> str | None:
        cap = rng.randint(10, 24)
        return self._patch("/account", {"accountCap": cap}, "account", cap)

    def restore(self, cap: int) -> list[str]:
        """Put every tier's limits and the account cap back as deployed, as an operator does once an
        incident is over; the drain then measures recovery under the normal settings, not under whatever
        the last random change left."""
        restored = [
            self._patch(
                f"/tiers/{tier}",
                {"concurrencyLimit": guaranteed, "borrowingLimit": borrowing},
                tier,
                guaranteed + borrowing,
            )
            for tier, (guaranteed, borrowing) in self._defaults.items()
        ]
        restored.append(self._patch("/account", {"accountCap": cap}, "account", cap))
        return [change for change in restored if change]


# ---------------------------------------------------------------------------------------- sampling


@dataclass
class Samples:
    taken: int = 0
    violations: list[dict[str, Any]] = field(default_factory=list)
    orphans: dict[str, dict[str, Any]] = field(default_factory=dict)  # confirmed, by pipeline ARN
    suspects: dict[str, float] = field(default_factory=dict)  # pipeline ARN -> first seen without lease
    max_held: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Sampler(threading.Thread):
    """Every interval: leases per tier vs the limit in effect when the newest was taken; and pipelines
    executing without their job's lease (read through the public APIs, with an observer's clients)."""

    def __init__(self, cloud: LocalCloud, outputs: Mapping[str, str], history: LimitHistory) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self._dynamodb = observer(cloud, "dynamodb")
        self._sagemaker = observer(cloud, "sagemaker")
        self._outputs = outputs
        self._history = history
        self.samples = Samples()
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_SECONDS):
            try:
                self.sample()
            except Exception as error:  # a figure must never stop the run
                print(f"soak sampler: {error!r}", file=sys.stderr)

    def _leases(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"TableName": self._outputs["SlotLeasesTableName"], "ConsistentRead": True}
        while True:
            page = self._dynamodb.scan(**kwargs)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _executing(self) -> list[dict[str, Any]]:
        """Pipeline executions still Executing or Stopping (newest first, until one older than two minutes,
        where the API sorts and pages; moto 5.2.5 answers all of them at once)."""
        found: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "PipelineName": self._outputs["TrainingPipelineName"],
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
            "MaxResults": 100,
        }
        horizon = time.time() - 120
        while True:
            page = self._sagemaker.list_pipeline_executions(**kwargs)
            summaries = page["PipelineExecutionSummaries"]
            found += [s for s in summaries if s.get("PipelineExecutionStatus") in {"Executing", "Stopping"}]
            if not summaries or summaries[-1]["StartTime"].timestamp() < horizon or "NextToken" not in page:
                return found
            kwargs["NextToken"] = page["NextToken"]

    def sample(self) -> None:
        leases = self._leases()
        executing = self._executing()
        now = time.time()
        samples = self.samples
        samples.taken += 1
        by_tier: dict[str, list[float]] = defaultdict(list)
        for lease in leases:
            by_tier[lease["tier"]["S"]].append(epoch(lease["acquiredAt"]["S"]))
        scopes = {**by_tier, "account": [t for times in by_tier.values() for t in times]}
        for scope, acquired in scopes.items():
            if not acquired:
                continue
            samples.max_held[scope] = max(samples.max_held[scope], len(acquired))
            newest = max(acquired)
            limit = self._history.limit_at(scope, newest)
            if len(acquired) > limit:
                samples.violations.append(
                    {
                        "at": now,
                        "scope": scope,
                        "held": len(acquired),
                        "limit": limit,
                        "newest_lease_at": newest,
                    }
                )
        held = {lease["jobId"]["S"] for lease in leases}
        seen = set()
        for execution in executing:
            arn = execution["PipelineExecutionArn"]
            job_id = execution.get("PipelineExecutionDisplayName", "")
            if job_id in held:
                continue
            seen.add(arn)
            first = samples.suspects.setdefault(arn, now)
            if now - first >= ORPHAN_CONFIRM_SECONDS and arn not in samples.orphans:
                samples.orphans[arn] = {"jobId": job_id, "first_seen_without_lease": first, "confirmed": now}
        for arn in set(samples.suspects) - seen:
            del samples.suspects[arn]


# ---------------------------------------------------------------------------------------- figures


def backlogged_fairness(
    jobs: Sequence[Mapping[str, Any]], window: float = FAIRNESS_WINDOW_SECONDS
) -> dict[str, Any]:
    """Jain's index of admissions (the real gate's ``admittedAt``) among the tenants of a tier that were
    backlogged for a whole window (a job queued before it began and not admitted before it ended), per
    window with at least two such tenants; mean, p5 and the number of windows."""
    per_tier: dict[str, Any] = {}
    for tier in TIERS:
        tier_jobs = [j for j in jobs if j.get("tier") == tier and j.get("queuedAt")]
        if not tier_jobs:
            per_tier[tier] = {"windows": 0, "jain_index": math.nan, "jain_p5": math.nan}
            continue
        start = min(epoch(j["queuedAt"]) for j in tier_jobs)
        end = max(epoch(j.get("admittedAt") or j["queuedAt"]) for j in tier_jobs)
        indices = []
        w0 = start
        while w0 + window <= end:
            w1 = w0 + window
            waiting = set()
            admissions: Counter[str] = Counter()
            for job in tier_jobs:
                queued = epoch(job["queuedAt"])
                left = (
                    epoch(job["admittedAt"])
                    if job.get("admittedAt")
                    else epoch(job.get("finishedAt") or job["updatedAt"])
                )
                if queued <= w0 and left >= w1:
                    waiting.add(job["tenantId"])
                if job.get("admittedAt") and w0 <= epoch(job["admittedAt"]) < w1:
                    admissions[job["tenantId"]] += 1
            if len(waiting) >= 2:
                indices.append(jain([float(admissions[t]) for t in sorted(waiting)]))
            w0 = w1
        per_tier[tier] = {
            "windows": len(indices),
            "jain_index": sum(indices) / len(indices) if indices else math.nan,
            "jain_p5": percentile(indices, 5),
        }
    return per_tier


class _ObserverClients:
    """scripts.dead_letters' client source, with the soak's uncounted clients."""

    def __init__(self, cloud: LocalCloud) -> None:
        self._cloud = cloud

    def client(self, service: str) -> Any:
        return observer(self._cloud, service)


def redrive_upload_events(cloud: LocalCloud, stack_name: str) -> int:
    """Replay every upload event EventBridge gave up on (``mlaas dlq redrive``, the alarm's runbook), once
    no fault is injected any more; returns how many were replayed."""
    clients = _ObserverClients(cloud)
    queues = dead_letters.dead_letter_queues(clients, stack_name)
    queue = dead_letters.find_queue(queues, "UploadEventsDeadLetterQueue")
    report = dead_letters.redrive(clients, queue, io.StringIO())
    return int(report.moved)


def dead_lettered_uploads(cloud: LocalCloud, queue_url: str) -> set[tuple[str, str]]:
    """(key, version) of every upload event held in the upload events' DLQ (read and left visible again)."""
    sqs = observer(cloud, "sqs")
    found: set[tuple[str, str]] = set()
    receipts = []
    for _ in range(100):
        page = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=30)
        messages = page.get("Messages", [])
        if not messages:
            break
        for message in messages:
            receipts.append(message["ReceiptHandle"])
            detail = json.loads(message["Body"]).get("detail", {})
            found.add(
                (str(detail.get("object", {}).get("key")), str(detail.get("object", {}).get("version-id")))
            )
    for receipt in receipts:
        sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=receipt, VisibilityTimeout=0)
    return found


def pipeline_executions_by_job(cloud: LocalCloud, pipeline_name: str) -> dict[str, list[str]]:
    sagemaker = observer(cloud, "sagemaker")
    by_job: dict[str, list[str]] = defaultdict(list)
    kwargs: dict[str, Any] = {"PipelineName": pipeline_name, "MaxResults": 100}
    while True:
        page = sagemaker.list_pipeline_executions(**kwargs)
        for summary in page["PipelineExecutionSummaries"]:
            by_job[str(summary.get("PipelineExecutionDisplayName", ""))].append(
                summary["PipelineExecutionArn"]
            )
        if "NextToken" not in page:
            return dict(by_job)
        kwargs["NextToken"] = page["NextToken"]


def job_timeline(job: Mapping[str, Any]) -> list[str]:
    return [
        f"{e.get('at')} {e.get('status')} {e.get('state', '')} {e.get('reason', '') or ''}".strip()
        for e in job.get("timeline", [])
    ]


def invariants(  # noqa: PLR0917 - one call site, each input named
    uploads: Sequence[Upload],
    jobs: Sequence[Mapping[str, Any]],
    dead_lettered: set[tuple[str, str]],
    executions: Mapping[str, list[str]],
    leftovers: Mapping[str, int],
    samples: Samples,
) -> dict[str, Any]:
    by_version: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for job in jobs:
        by_version[(str(job.get("key")), str(job.get("versionId")))].append(job)
    without_job = [
        u
        for u in uploads
        if (u.key, u.version_id) not in by_version and (u.key, u.version_id) not in dead_lettered
    ]
    duplicate_versions = {k: v for k, v in by_version.items() if len(v) > 1}
    job_ids = {str(j["jobId"]) for j in jobs}
    duplicate_pipelines = {j: arns for j, arns in executions.items() if j in job_ids and len(arns) > 1}
    non_terminal = [j for j in jobs if j.get("status") not in TERMINAL]
    # After the drain every job is terminal, so no slot may be held: every lease left is a leak and every
    # running counter (tiers, account, fair shares) above zero is drift.
    leaked = sum(abs(value) for value in leftovers.values())
    return {
        "uploads": len(uploads),
        "jobs": len(jobs),
        "uploads_dead_lettered": sum(1 for u in uploads if (u.key, u.version_id) in dead_lettered),
        "uploads_without_job": len(without_job),
        "duplicate_jobs": sum(len(v) - 1 for v in duplicate_versions.values())
        + sum(len(a) - 1 for a in duplicate_pipelines.values()),
        "non_terminal_jobs": len(non_terminal),
        "leaked_slots": leaked,
        "orphan_pipelines": len(samples.orphans),
        "limit_violations": len(samples.violations),
        "examples": {
            "uploads_without_job": [{"key": u.key, "versionId": u.version_id} for u in without_job[:10]],
            "duplicate_jobs": [
                {"object": list(k), "jobs": [str(j["jobId"]) for j in v]}
                for k, v in list(duplicate_versions.items())[:10]
            ]
            + [{"jobId": j, "pipelines": a} for j, a in list(duplicate_pipelines.items())[:10]],
            "non_terminal_jobs": [
                {
                    "jobId": j["jobId"],
                    "tenantId": j.get("tenantId"),
                    "status": j.get("status"),
                    "executionArn": j.get("executionArn"),
                    "pipelineExecutionArn": j.get("pipelineExecutionArn"),
                    "has_queue_token": bool(j.get("queueTaskToken")),
                    "has_pipeline_token": bool(j.get("pipelineTaskToken")),
                    "pipelineOutcome": j.get("pipelineOutcome"),
                    "updatedAt": j.get("updatedAt"),
                    "timeline": job_timeline(j),
                }
                for j in non_terminal[:15]
            ],
            "leftover_slots": dict(leftovers),
            "orphan_pipelines": list(samples.orphans.items())[:10],
            "limit_violations": samples.violations[:10],
        },
    }


def execution_story(sfn: Any, execution_arn: str) -> dict[str, Any]:
    """An execution's status and the last states it entered, with the error it ended on (for examples)."""
    try:
        described = sfn.describe_execution(executionArn=execution_arn)
        events = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    except Exception as error:  # an example must not stop the report
        return {"error": repr(error)}
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    failed = [
        {"type": e["type"], **{k: v for k, v in details.items() if k in {"error", "cause"}}}
        for e in events
        for key, details in e.items()
        if key.endswith("EventDetails") and isinstance(details, dict) and details.get("error")
    ]
    return {
        "status": described["status"],
        "last_states": entered[-4:],
        "errors": [{k: str(v)[:300] for k, v in f.items()} for f in failed[-3:]],
    }


def leftover_leases(cloud: LocalCloud, outputs: Mapping[str, str], sfn: Any) -> list[dict[str, Any]]:
    """Every lease still held after the drain, beside its job (status, execution, admission and release
    stamps, timeline) and the story of the execution that took it: a leak explains itself."""
    dynamodb = observer(cloud, "dynamodb")
    leases = dynamodb.scan(TableName=outputs["SlotLeasesTableName"], ConsistentRead=True).get("Items", [])
    found: list[dict[str, Any]] = []
    for item in leases[:10]:
        lease = plain(item)
        stored = dynamodb.get_item(
            TableName=outputs["JobsTableName"], Key={"jobId": item["jobId"]}, ConsistentRead=True
        ).get("Item")
        job = plain(stored) if stored else None
        found.append(
            {
                "lease": lease,
                "job": None
                if job is None
                else {
                    k: job.get(k)
                    for k in ("status", "executionArn", "admittedAt", "slotReleasedAt", "pipelineOutcome")
                }
                | {"timeline": job_timeline(job)},
                "leaseExecution": execution_story(sfn, str(lease.get("executionArn") or "")),
            }
        )
    return found


def explain(cloud: LocalCloud, outputs: Mapping[str, str], examples: dict[str, Any]) -> None:
    """Adds each example's execution story: non-terminal jobs by their executionArn, uploads without a job by
    finding the execution whose input names their key."""
    sfn = observer(cloud, "stepfunctions")
    for job in examples["non_terminal_jobs"]:
        if job.get("executionArn"):
            job["execution"] = execution_story(sfn, str(job["executionArn"]))
    examples["leftover_leases"] = leftover_leases(cloud, outputs, sfn)
    missing = {(u["key"], u["versionId"]): u for u in examples["uploads_without_job"]}
    if not missing:
        return
    for arn in executions_of(cloud, outputs["TrainingJobStateMachineArn"]):
        described = sfn.describe_execution(executionArn=arn)
        detail = json.loads(described.get("input") or "{}").get("detail", {})
        key = (str(detail.get("object", {}).get("key")), str(detail.get("object", {}).get("version-id")))
        if key in missing:
            missing[key].setdefault("executions", []).append(
                {"executionArn": arn, **execution_story(sfn, arn)}
            )


# ---------------------------------------------------------------------------------------- the run


def slot_time(jobs: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Where a held slot's time goes (p50 / p90 seconds over the jobs that built once, from their own
    timestamps): the start (admitted -> RUNNING recorded), the simulated pipeline and the delivery of its
    end (RUNNING -> outcome recorded), the resume and release (outcome -> slot released), and the hand-over
    (a slot released -> the next admission in that tier, when jobs of the tier were waiting)."""
    phases: dict[str, list[float]] = defaultdict(list)
    admissions: dict[str, list[float]] = defaultdict(list)
    releases: dict[str, list[float]] = defaultdict(list)
    for job in jobs:
        tier = str(job.get("tier"))
        if job.get("admittedAt"):
            admissions[tier].append(epoch(str(job["admittedAt"])))
        if job.get("slotReleasedAt"):
            releases[tier].append(epoch(str(job["slotReleasedAt"])))
        running = stack.running_at(job)
        outcome = job.get("pipelineOutcome") or {}
        if not (running and outcome.get("at") and job.get("slotReleasedAt") and job.get("admittedAt")):
            continue
        if [e.get("status") for e in job.get("timeline", [])].count("ADMITTED") != 1:
            continue  # put back in line once at least: its phases are not one hold
        admitted, ended, released = (
            epoch(str(job["admittedAt"])),
            epoch(str(outcome["at"])),
            epoch(str(job["slotReleasedAt"])),
        )
        phases["start"].append(running - admitted)
        phases["pipeline_and_event"].append(ended - running)
        phases["resume_and_release"].append(released - ended)
        phases["held"].append(released - admitted)
    for tier, freed in releases.items():
        taken = sorted(admissions[tier])
        for moment in freed:
            later = next((at for at in taken if at >= moment), None)
            if later is not None and later - moment < 60:
                phases["hand_over"].append(later - moment)
    return {
        name: {"p50": percentile(values, 50), "p90": percentile(values, 90), "n": len(values)}
        for name, values in phases.items()
    }


def fault_plan(config: SoakConfig) -> FaultPlan:
    return FaultPlan(
        seed=config.seed,
        probabilities={
            kind: 0.0 if kind in config.without else min(1.0, p * config.scale)
            for kind, p in DEFAULT_PROBABILITIES.items()
        },
        exempt_functions=frozenset({"SeedTiersFunction", "ProvisionPipelineFunction"}),
    )


def all_jobs(cloud: LocalCloud, table: str, tenants: Iterable[SampleTenant]) -> list[dict[str, Any]]:
    dynamodb = observer(cloud, "dynamodb")
    return [job for tenant in tenants for job in tenant_jobs(dynamodb, table, tenant.tenant_id)]


def upload_steadily(cloud: LocalCloud, bucket: str, uploads: list[Upload], seconds: float) -> None:
    """Each upload at its slot of a steady schedule over ``seconds`` (several at once when PUTs are slow)."""
    s3 = cloud.client("s3")
    interval = seconds / max(len(uploads), 1)
    started = time.monotonic()

    def put(index: int) -> None:
        upload = uploads[index]
        delay = started + index * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        upload.at = time.time()
        upload.version_id = s3.put_object(Bucket=bucket, Key=upload.key, Body=upload.body)["VersionId"]

    with ThreadPoolExecutor(max_workers=8, thread_name_prefix="soak-upload") as pool:
        list(pool.map(put, range(len(uploads))))


def job_statuses(cloud: LocalCloud, table: str, tenants: Iterable[SampleTenant]) -> list[str]:
    """Every job's status only (the drain's poll: full items of 1,000 jobs every few seconds would load the
    emulator's DynamoDB serialiser, the stack's own bottleneck, with the harness's reads)."""
    dynamodb = observer(cloud, "dynamodb")
    return [
        str(job["status"])
        for tenant in tenants
        for job in tenant_jobs(dynamodb, table, tenant.tenant_id, attributes=("status",))
    ]


def executions_of(cloud: LocalCloud, state_machine_arn: str, status: str | None = None) -> Iterator[str]:
    """The state machine's execution ARNs (only those in ``status`` when given), every page."""
    sfn = observer(cloud, "stepfunctions")
    kwargs: dict[str, Any] = {"stateMachineArn": state_machine_arn, "maxResults": 1000}
    if status:
        kwargs["statusFilter"] = status
    while True:
        page = sfn.list_executions(**kwargs)
        yield from (str(summary["executionArn"]) for summary in page["executions"])
        if "nextToken" not in page:
            return
        kwargs["nextToken"] = page["nextToken"]


def running_executions(cloud: LocalCloud, state_machine_arn: str) -> list[str]:
    """The state machine's executions still RUNNING."""
    return list(executions_of(cloud, state_machine_arn, "RUNNING"))


def drain(
    cloud: LocalCloud,
    outputs: Mapping[str, str],
    tenants: Sequence[SampleTenant],
    expected: int,
    timeout: float,
) -> float:
    """Wait until every job is terminal, no new job appeared for a while and every execution has ended (or
    the timeout); returns the seconds waited (the caller reads the jobs in full afterwards).

    The executions too: a job's terminal status is written in its execution's last state but one, so a
    sweep at that moment finds a slot still held by a live execution (its release failed and was caught,
    for one) and must leave it; once the execution has ended, the sweep reclaims it."""
    started = time.monotonic()
    last_count, stable_since = -1, time.monotonic()
    while True:
        statuses = job_statuses(cloud, outputs["JobsTableName"], tenants)
        open_jobs = sum(1 for status in statuses if status not in TERMINAL)
        if len(statuses) != last_count:
            last_count, stable_since = len(statuses), time.monotonic()
        settled = open_jobs == 0 and (len(statuses) >= expected or time.monotonic() - stable_since > 30)
        if settled:
            settled = not running_executions(cloud, outputs["TrainingJobStateMachineArn"])
        if settled or time.monotonic() - started > timeout:
            return time.monotonic() - started
        time.sleep(5.0)


def run(config: SoakConfig) -> dict[str, Any]:
    run_started = time.perf_counter()
    tenants = soak_tenants(config.tenants_per_tier)
    uploads = draw_uploads(tenants, config)
    if config.state_dir:
        shutil.rmtree(config.state_dir, ignore_errors=True)
        Path(config.state_dir).mkdir(parents=True)
    with (
        contextlib.nullcontext(config.state_dir)
        if config.state_dir
        else tempfile.TemporaryDirectory(prefix="soak-") as state_dir,
        LocalCloud(
            port=0,
            state_dir=state_dir,
            pipeline_runner="simulated",
            schedule_interval_seconds=config.schedule_interval_seconds,
            lambda_timeout_scale=config.lambda_timeout_scale,
            workers_per_function=config.workers_per_function,
            faults=fault_plan(config),
        ) as cloud,
    ):
        faults = cloud.faults
        assert faults is not None
        cloud.pipeline_runner.choose_outcomes(outcome_chooser(config))  # type: ignore[union-attr]
        stack = cloud.deploy(
            ROOT / "template.yaml",
            stack_name="mlaas-soak",
            parameter_overrides={"SweepGraceSeconds": str(config.sweep_grace_seconds)},
        )
        outputs = dict(stack.outputs)
        for tenant in tenants:
            onboard(cloud, outputs, tenant)
        dynamodb = observer(cloud, "dynamodb")
        tiers_table = outputs["TiersTableName"]
        items = {
            name: dynamodb.get_item(TableName=tiers_table, Key={"tier": {"S": name}}, ConsistentRead=True)[
                "Item"
            ]
            for name in (*TIERS, "account")
        }
        defaults = {
            t: (int(items[t]["concurrencyLimit"]["N"]), int(items[t]["borrowingLimit"]["N"])) for t in TIERS
        }
        history = LimitHistory(
            initial={t: sum(defaults[t]) for t in TIERS}
            | {"account": int(items["account"]["accountCap"]["N"])}
        )
        operator = Operator(
            cloud.api_url(stack, "ControlPlaneApi"), create_operator_key(cloud, outputs), history, defaults
        )
        faults.add_action(FaultKind.TIER_LIMIT_CHANGE, operator.change_tier)
        faults.add_action(FaultKind.ACCOUNT_CAP_CHANGE, operator.change_cap)
        sampler = Sampler(cloud, outputs, history)
        setup_s = time.perf_counter() - run_started

        faults.arm()
        sampler.start()
        load_started = time.perf_counter()
        upload_steadily(cloud, outputs["UploadsBucketName"], uploads, config.upload_seconds)
        upload_s = time.perf_counter() - load_started
        faults.disarm()
        restored = operator.restore(history.initial["account"])
        # What an operator does when the upload DLQ's alarm fires: replay the lost deliveries.
        redriven = redrive_upload_events(cloud, stack.name)
        drain_s = drain(cloud, outputs, tenants, len(uploads), config.drain_timeout_seconds)
        sampler.stopping.set()
        sampler.join(timeout=30)
        leftovers = slots_left_after_reconciling(cloud, outputs, stack.ref("GateFunction"))
        still_running = running_executions(cloud, outputs["TrainingJobStateMachineArn"])
        jobs = all_jobs(cloud, outputs["JobsTableName"], tenants)
        dead = dead_lettered_uploads(cloud, outputs["UploadEventsDeadLetterQueueUrl"])
        executions = pipeline_executions_by_job(cloud, outputs["TrainingPipelineName"])
        figures = invariants(uploads, jobs, dead, executions, leftovers, sampler.samples)
        # Every job is terminal, so no execution may still run (it would hold whatever it took).
        figures["running_executions"] = len(still_running)
        figures["examples"]["running_executions"] = [
            {"executionArn": arn, **execution_story(observer(cloud, "stepfunctions"), arn)}
            for arn in still_running[:10]
        ]
        explain(cloud, outputs, figures["examples"])
        fault_counts = faults.counts()
        fault_places = faults.counts_by_place()
        permissions = permission_figures(cloud.permission_report())
    total_s = time.perf_counter() - run_started
    heavy = heavy_tenant(tenants).tenant_id
    frequent = sorted(k for k, n in fault_counts.items() if n >= MIN_FAULTS_PER_KIND)
    return {
        "note": (
            "SIMULATED: pipelines run no step (random, seeded durations and outcomes), faults are injected "
            "by "
            "localcloud.faults, and the stack runs in the local emulator (moto 5.2.5 + localcloud, one "
            "machine): emulator latencies are not AWS's."
        ),
        "config": {k: v for k, v in vars(config).items()},
        **{k: v for k, v in figures.items() if k != "examples"},
        **permissions,
        "faults": fault_counts,
        "faults_by_place": fault_places,
        "fault_kinds_at_least_20": frequent,
        "upload_events_redriven": redriven,
        "limit_changes_refused": dict(operator.refused),
        "limit_changes": len(history.changes),
        "limits_restored_after_faults": restored,
        "tenants": len(tenants),
        "heavy_tenant": {
            "tenantId": heavy,
            "uploads": sum(1 for u in uploads if u.tenant.tenant_id == heavy),
        },
        "statuses": dict(Counter(str(j.get("status")) for j in jobs)),
        "jain_index": backlogged_fairness(jobs),
        "max_leases_held": dict(sampler.samples.max_held),
        "slot_time_s": slot_time(jobs),
        "samples": sampler.samples.taken,
        "examples": figures["examples"],
        "runtime_s": {"setup": setup_s, "uploading": upload_s, "drain": drain_s, "total": total_s},
        "uploads_per_second": len(uploads) / (upload_s + drain_s),
    }


def permission_figures(report: PermissionReport, examples: int = 10) -> dict[str, Any]:
    """The permission check's figures for the result: every AWS call the functions and the state machine made
    under faults, against their roles (not in MUST_BE_ZERO yet: denied_calls is reported, not judged)."""
    return {
        "denied_calls": report.denied_calls,
        "unmapped_calls": report.unmapped_calls,
        "permissions": {
            "calls_checked": report.calls_checked,
            "calls_by_principal": {p.principal: p.calls for p in report.principals},
            "denied": [dataclasses.asdict(d) for d in report.denied[:examples]],
            "unmapped": [dataclasses.asdict(u) for u in report.unmapped[:examples]],
        },
    }


def ok(result: Mapping[str, Any]) -> bool:
    return (
        all(result[k] == 0 for k in MUST_BE_ZERO)
        and len(result["fault_kinds_at_least_20"]) >= MIN_FAULT_KINDS
    )


def print_report(result: Mapping[str, Any]) -> None:
    print(f"\nSoak: {result['uploads']} uploads from {result['tenants']} tenants over {len(TIERS)} tiers")
    print(f"  {result['note']}")
    print(f"  heavy tenant {result['heavy_tenant']['tenantId']}: {result['heavy_tenant']['uploads']} uploads")
    print(f"  statuses: {result['statuses']}")
    print("\n  invariant                       value")
    for name in ("uploads", "jobs", "uploads_dead_lettered", *MUST_BE_ZERO):
        flag = "" if name not in MUST_BE_ZERO else ("  ok" if result[name] == 0 else "  BROKEN")
        print(f"  {name:30} {result[name]:>6}{flag}")
    for name in ("denied_calls", "unmapped_calls"):  # the permission check: reported, not yet judged
        print(f"  {name:30} {result[name]:>6}")
    print("\n  fault (SIMULATED)               injected")
    for kind, count in sorted(result["faults"].items()):
        print(f"  {kind:30} {count:>8}{'' if count >= MIN_FAULTS_PER_KIND else '  (<20)'}")
    print(f"  kinds injected >= {MIN_FAULTS_PER_KIND} times: {len(result['fault_kinds_at_least_20'])}")
    print("\n  tier       Jain index (backlogged tenants, mean / p5)   windows   max leases held")
    for tier, figures in result["jain_index"].items():
        print(
            f"  {tier:10} {figures['jain_index']:>8.3f} / {figures['jain_p5']:<8.3f}"
            f"{figures['windows']:>27}   {result['max_leases_held'].get(tier, 0):>8}"
        )
    print("\n  a held slot's time (s)   p50     p90")
    for phase, figures in result["slot_time_s"].items():
        print(f"  {phase:22} {figures['p50']:>6.1f}  {figures['p90']:>6.1f}")
    timings = result["runtime_s"]
    print(
        f"\n  runtime: setup {timings['setup']:.0f} s, uploading {timings['uploading']:.0f} s, "
        f"drain {timings['drain']:.0f} s, total {timings['total']:.0f} s; "
        f"{result['uploads_per_second']:.2f} uploads/s end to end"
    )


def save(result: Mapping[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"\nWrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    defaults = SoakConfig()
    # Each option's dest is the SoakConfig field it sets.
    for option, kind in (
        ("uploads", int),
        ("tenants_per_tier", int),
        ("seed", int),
        ("upload_seconds", float),
        ("drain_timeout_seconds", float),
        ("scale", float),
    ):
        default = getattr(defaults, option)
        parser.add_argument(
            f"--{option.replace('_', '-')}", type=kind, default=default, help=f"default {default}"
        )
    parser.add_argument(
        "--state-dir", help="keep the emulator's function logs here (default: a temporary one)"
    )
    parser.add_argument("--output", type=Path, default=Path("build/soak.json"))
    arguments = vars(parser.parse_args(argv))
    output = arguments.pop("output")
    result = run(SoakConfig(**arguments))
    print_report(result)
    save(result, output)
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
