"""Evaluate the deployed CloudWatch alarms locally and say when one fires or returns to OK.

moto stores alarms (PutMetricAlarm, DescribeAlarms, SetAlarmState) but never evaluates them, and no
Lambda function's metrics reach its CloudWatch. This thread does both parts, as far as they can be
sourced on one machine:

- **Custom metrics** come from the functions' own Powertools output: every function's stdout is its
  log file (`<state_dir>/logs/<LogicalId>.log`), where Powertools Metrics writes each flush as one
  Embedded Metric Format (EMF) line. The reader tails those files and turns each EMF line into
  datapoints (namespace, metric, dimension set, timestamp, value), as CloudWatch Logs would.
- **AWS/SQS** `ApproximateNumberOfMessagesVisible`, `ApproximateNumberOfMessagesNotVisible` and
  `ApproximateAgeOfOldestMessage` (dimension QueueName) are sampled from the queues on every tick.
- Any other metric (AWS/Lambda, AWS/States, ...) is **not emulated**: such an alarm is named once in
  the log and left in its state.

Every tick (`interval_seconds`) each alarm is evaluated as CloudWatch does: the statistic over each
of its last EvaluationPeriods periods, DatapointsToAlarm of them breaching the threshold, missing
periods per TreatMissingData. Metric math is limited to `SUM(METRICS())` and a bare metric id. A
change of state is set on moto's alarm (so `aws cloudwatch describe-alarms` shows it), published to
the alarm's SNS actions (AlarmActions / OKActions, CloudWatch's JSON message), kept in
`transitions`, and printed when the alarm fires or returns to OK from ALARM.
`period_override_seconds` replaces every alarm's Period, to make tests fast.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("localcloud.alarms")
_SQS_NAMESPACE = "AWS/SQS"
_SQS_METRICS = frozenset(
    {
        "ApproximateNumberOfMessagesVisible",
        "ApproximateNumberOfMessagesNotVisible",
        "ApproximateAgeOfOldestMessage",
    }
)
# Datapoints older than this are dropped (no alarm looks further back locally).
_RETENTION_SECONDS = 6 * 3600
_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": lambda value, threshold: value > threshold,
    "GreaterThanOrEqualToThreshold": lambda value, threshold: value >= threshold,
    "LessThanThreshold": lambda value, threshold: value < threshold,
    "LessThanOrEqualToThreshold": lambda value, threshold: value <= threshold,
}
_SUM_OF_METRICS = re.compile(r"^\s*SUM\(\s*METRICS\(\s*\)\s*\)\s*$")

MetricKey = tuple[str, str, frozenset[tuple[str, str]]]


def metric_key(
    namespace: str, name: str, dimensions: Mapping[str, str] | Iterable[Mapping[str, str]]
) -> MetricKey:
    """One metric: namespace, name and its exact dimension set (CloudWatch matches all of them)."""
    if isinstance(dimensions, Mapping):
        pairs = {(str(k), str(v)) for k, v in dimensions.items()}
    else:
        pairs = {(str(d["Name"]), str(d["Value"])) for d in dimensions}
    return namespace, name, frozenset(pairs)


def emf_datapoints(line: str | bytes) -> list[tuple[MetricKey, float, float]]:
    """The (metric, timestamp in seconds, value) datapoints of one EMF log line; [] for any other line."""
    try:
        document = json.loads(line)
    except ValueError:
        return []
    if not isinstance(document, dict):
        return []
    metadata = document.get("_aws")
    if not isinstance(metadata, dict):
        return []
    timestamp = float(metadata.get("Timestamp", time.time() * 1000)) / 1000
    points: list[tuple[MetricKey, float, float]] = []
    for directive in metadata.get("CloudWatchMetrics", []):
        namespace = directive.get("Namespace", "")
        for dimension_set in directive.get("Dimensions", [[]]):
            dimensions = {name: str(document.get(name, "")) for name in dimension_set}
            for metric in directive.get("Metrics", []):
                values = document.get(metric.get("Name"))
                for value in values if isinstance(values, list) else [values]:
                    if isinstance(value, (int, float)):
                        points.append(
                            (metric_key(namespace, metric["Name"], dimensions), timestamp, float(value))
                        )
    return points


class MetricStore:
    """Datapoints by metric, thread-safe, pruned after a few hours."""

    def __init__(self) -> None:
        self._points: dict[MetricKey, list[tuple[float, float]]] = defaultdict(list)
        self._lock = threading.Lock()

    def add(self, key: MetricKey, timestamp: float, value: float) -> None:
        with self._lock:
            self._points[key].append((timestamp, value))

    def values(self, key: MetricKey, start: float, end: float) -> list[float]:
        with self._lock:
            return [value for moment, value in self._points.get(key, []) if start <= moment < end]

    def prune(self, now: float) -> None:
        with self._lock:
            for key, points in self._points.items():
                self._points[key] = [point for point in points if point[0] >= now - _RETENTION_SECONDS]


class EmfLogReader:
    """Tails every function log file under log_dir and feeds its EMF lines into a MetricStore."""

    def __init__(self, log_dir: Path, store: MetricStore) -> None:
        self._log_dir = log_dir
        self._store = store
        self._offsets: dict[Path, int] = {}

    def read(self) -> int:
        """Read what was appended since the last call; the number of datapoints found."""
        found = 0
        for path in sorted(self._log_dir.glob("*.log")) if self._log_dir.is_dir() else []:
            offset = self._offsets.get(path, 0)
            try:
                with path.open("rb") as log:
                    log.seek(offset)
                    chunk = log.read()
            except OSError:
                continue
            complete = chunk.rfind(b"\n") + 1  # a line still being written is read next time
            self._offsets[path] = offset + complete
            for line in chunk[:complete].splitlines():
                if b'"CloudWatchMetrics"' in line:
                    for key, timestamp, value in emf_datapoints(line):
                        self._store.add(key, timestamp, value)
                        found += 1
        return found


def oldest_message_age_seconds(queue_name: str, account_id: str, region: str, now: float) -> float | None:
    """ApproximateAgeOfOldestMessage, read from moto's queue (in process). PINNED: moto 5.2.5's
    `sqs_backends[account][region].get_queue(name)._messages` and `Message.sent_timestamp` (millis)."""
    from moto.sqs.models import sqs_backends  # noqa: PLC0415 - moto is imported only inside the emulator

    try:
        queue = sqs_backends[account_id][region].get_queue(queue_name)
    except Exception:  # the queue is gone
        return None
    moments: list[Any] = [message.sent_timestamp for message in list(queue._messages)]
    sent = [int(moment) for moment in moments if moment]
    return max(0.0, now - min(sent) / 1000) if sent else None


@dataclass(frozen=True)
class Transition:
    alarm_name: str
    old_state: str
    new_state: str
    reason: str
    at: float


@dataclass(frozen=True)
class _Query:
    """One metric an alarm reads: its key, statistic and period."""

    key: MetricKey
    statistic: str
    period: int


def _statistic(name: str, values: list[float]) -> float | None:
    if not values:
        return None
    if name == "Sum":
        return sum(values)
    if name == "Minimum":
        return min(values)
    if name == "Average":
        return sum(values) / len(values)
    if name == "SampleCount":
        return float(len(values))
    return max(values)  # Maximum, and what percentiles of one sample amount to


class AlarmEvaluator:
    """A thread evaluating every alarm in moto's CloudWatch each tick; see the module docstring."""

    def __init__(
        self,
        *,
        client: Callable[[str], Any],
        log_dir: Path,
        account_id: str,
        region: str,
        interval_seconds: float = 5.0,
        period_override_seconds: float | None = None,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self._client = client
        self._account_id = account_id
        self._region = region
        self._period_override = period_override_seconds
        self._interval = (
            min(interval_seconds, max(0.05, period_override_seconds / 4))
            if period_override_seconds
            else interval_seconds
        )
        self._echo = echo or (lambda text: print(text, flush=True))
        self.store = MetricStore()
        self._emf = EmfLogReader(log_dir, self.store)
        self._states: dict[str, str] = {}
        self._queue_urls: dict[str, str] = {}
        self._reported_unsupported: set[str] = set()
        self.transitions: list[Transition] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarms", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)

    def state(self, alarm_name: str) -> str | None:
        """The state this evaluator last gave the alarm (None before its first evaluation)."""
        with self._lock:
            return self._states.get(alarm_name)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.evaluate_once()
            except Exception:
                LOGGER.exception("alarm evaluation failed")

    # ------------------------------------------------------------------ one tick

    def evaluate_once(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._emf.read()
        alarms = self._alarms()
        self._sample_queues(alarms, now)
        for alarm in alarms:
            queries = self._queries(alarm)
            if queries is None:
                continue
            state, reason = self._evaluate(alarm, queries, now)
            if state is not None:
                self._set_state(alarm, state, reason, now)
        self.store.prune(now)

    def _alarms(self) -> list[dict[str, Any]]:
        alarms: list[dict[str, Any]] = []
        for page in (
            self._client("cloudwatch").get_paginator("describe_alarms").paginate(AlarmTypes=["MetricAlarm"])
        ):
            alarms += page["MetricAlarms"]
        return alarms

    def _period(self, period: Any) -> int:
        return int(self._period_override or period or 60)

    def _queries(self, alarm: dict[str, Any]) -> dict[str, _Query] | None:
        """The metrics the alarm reads by id (a plain alarm: one, id "m"); None if it cannot be evaluated."""
        name = alarm["AlarmName"]
        queries: dict[str, _Query] = {}
        if alarm.get("Metrics"):
            for item in alarm["Metrics"]:
                stat = item.get("MetricStat")
                if stat is None:
                    continue
                metric = stat["Metric"]
                key = metric_key(metric["Namespace"], metric["MetricName"], metric.get("Dimensions", []))
                queries[item["Id"]] = _Query(key, stat["Stat"], self._period(stat.get("Period")))
            returned: dict[str, Any] = next(
                (item for item in alarm["Metrics"] if item.get("ReturnData", True)), {}
            )
            expression = returned.get("Expression")
            if expression is None and returned.get("Id") in queries:
                queries = {returned["Id"]: queries[returned["Id"]]}
            elif expression is not None and not _SUM_OF_METRICS.match(expression):
                self._unsupported(name, f"metric math {expression!r} (only SUM(METRICS()) is)")
                return None
        else:
            key = metric_key(alarm["Namespace"], alarm["MetricName"], alarm.get("Dimensions", []))
            statistic = alarm.get("Statistic") or "Maximum"
            queries["m"] = _Query(key, statistic, self._period(alarm.get("Period")))
        for query in queries.values():
            namespace, metric_name, _ = query.key
            if namespace.startswith("AWS/") and not (
                namespace == _SQS_NAMESPACE and metric_name in _SQS_METRICS
            ):
                self._unsupported(name, f"metric {namespace} {metric_name}")
                return None
        return queries

    def _unsupported(self, name: str, what: str) -> None:
        if name not in self._reported_unsupported:
            self._reported_unsupported.add(name)
            LOGGER.warning("alarm %s is not evaluated locally: %s is not emulated", name, what)

    def _sample_queues(self, alarms: list[dict[str, Any]], now: float) -> None:
        wanted: set[MetricKey] = set()
        for alarm in alarms:
            for query in (self._queries(alarm) or {}).values():
                if query.key[0] == _SQS_NAMESPACE:
                    wanted.add(query.key)
        sqs = self._client("sqs") if wanted else None
        attributes_of: dict[str, dict[str, str] | None] = {}
        for key in wanted:
            _, metric_name, dimensions = key
            queue_name = dict(dimensions).get("QueueName")
            if queue_name is None or sqs is None:
                continue
            if metric_name == "ApproximateAgeOfOldestMessage":
                age = oldest_message_age_seconds(queue_name, self._account_id, self._region, now)
                if age is not None:  # an empty queue publishes no age
                    self.store.add(key, now, age)
                continue
            if queue_name not in attributes_of:
                attributes_of[queue_name] = self._queue_attributes(sqs, queue_name)
            attributes = attributes_of[queue_name]
            if attributes is None:
                continue
            attribute = {
                "ApproximateNumberOfMessagesVisible": "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible": "ApproximateNumberOfMessagesNotVisible",
            }[metric_name]
            self.store.add(key, now, float(attributes.get(attribute, 0)))

    def _queue_attributes(self, sqs: Any, queue_name: str) -> dict[str, str] | None:
        try:
            if queue_name not in self._queue_urls:
                self._queue_urls[queue_name] = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            attributes: dict[str, str] = sqs.get_queue_attributes(
                QueueUrl=self._queue_urls[queue_name],
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
        except Exception:  # the queue is gone (or the emulator is stopping)
            self._queue_urls.pop(queue_name, None)
            return None
        return attributes

    def _period_value(self, queries: dict[str, _Query], start_back: int, now: float) -> float | None:
        """The alarm's value for the start_back-th period before now (0: the latest); None when missing."""
        values: list[float] = []
        for query in queries.values():
            end = now - start_back * query.period
            value = _statistic(query.statistic, self.store.values(query.key, end - query.period, end))
            if value is not None:
                values.append(value)
        return sum(values) if values else None

    def _evaluate(
        self, alarm: dict[str, Any], queries: dict[str, _Query], now: float
    ) -> tuple[str | None, str]:
        periods = int(alarm.get("EvaluationPeriods") or 1)
        needed = int(alarm.get("DatapointsToAlarm") or periods)
        threshold = float(alarm["Threshold"])
        compare = _COMPARISONS[alarm["ComparisonOperator"]]
        treat_missing = alarm.get("TreatMissingData") or "missing"
        values = [self._period_value(queries, back, now) for back in range(periods)]
        present = [value for value in values if value is not None]
        if not present:
            if treat_missing == "notBreaching":
                return "OK", "no datapoints (treated as not breaching)"
            if treat_missing == "breaching":
                return "ALARM", "no datapoints (treated as breaching)"
            if treat_missing == "ignore":
                return None, ""
            return "INSUFFICIENT_DATA", "no datapoints"
        breaching = sum(1 for value in present if compare(value, threshold))
        if treat_missing == "breaching":
            breaching += len(values) - len(present)
        shown = ", ".join("-" if value is None else f"{value:g}" for value in reversed(values))
        reason = (
            f"{breaching} of the last {periods} period(s) breached "
            f"{alarm['ComparisonOperator']} {threshold:g} (values, oldest first: [{shown}])"
        )
        return ("ALARM" if breaching >= needed else "OK"), reason

    def _set_state(self, alarm: dict[str, Any], state: str, reason: str, now: float) -> None:
        name = alarm["AlarmName"]
        with self._lock:
            old = self._states.get(name, alarm.get("StateValue", "INSUFFICIENT_DATA"))
        if old == state:
            with self._lock:
                self._states[name] = state
            return
        transition = Transition(name, old, state, reason, now)
        try:
            self._client("cloudwatch").set_alarm_state(
                AlarmName=name, StateValue=state, StateReason=reason[:1023]
            )
        except Exception:
            LOGGER.exception("could not set the state of alarm %s", name)
        if state == "ALARM":
            self._echo(f"localcloud alarm ALARM: {name}: {alarm.get('AlarmDescription', '')} [{reason}]")
        elif old == "ALARM":
            self._echo(f"localcloud alarm OK (was ALARM): {name} [{reason}]")
        actions = {
            "ALARM": alarm.get("AlarmActions"),
            "OK": alarm.get("OKActions"),
            "INSUFFICIENT_DATA": alarm.get("InsufficientDataActions"),
        }[state]
        if alarm.get("ActionsEnabled", True):
            self._publish(alarm, transition, actions or [])
        with self._lock:  # last: whoever sees the new state also sees it printed and published
            self._states[name] = state
            self.transitions.append(transition)

    def _publish(self, alarm: dict[str, Any], transition: Transition, actions: list[str]) -> None:
        message = {
            "AlarmName": transition.alarm_name,
            "AlarmDescription": alarm.get("AlarmDescription"),
            "AWSAccountId": self._account_id,
            "NewStateValue": transition.new_state,
            "NewStateReason": transition.reason,
            "StateChangeTime": datetime.fromtimestamp(transition.at, UTC).strftime(
                "%Y-%m-%dT%H:%M:%S.000+0000"
            ),
            "Region": self._region,
            "AlarmArn": alarm.get("AlarmArn"),
            "OldStateValue": transition.old_state,
        }
        for action in actions:
            if ":sns:" not in action:
                continue
            try:
                self._client("sns").publish(
                    TopicArn=action,
                    Subject=f'{transition.new_state}: "{transition.alarm_name}"'[:100],
                    Message=json.dumps(message),
                )
            except Exception:
                LOGGER.exception("could not publish alarm %s to %s", transition.alarm_name, action)
