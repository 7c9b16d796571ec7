"""Fire EventBridge schedule rules, which moto stores but never triggers.

A thread reads the default bus's enabled rules with a `rate(...)` ScheduleExpression through the
public API (so rules created at run time count too) and, when one is due, delivers EventBridge's
`Scheduled Event` to each of its targets. The first firing comes one period after the rule is
first seen, as on AWS. `interval_override_seconds` replaces every rule's period, to speed tests up.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from localcloud.event_delivery import EventDelivery

LOGGER = logging.getLogger("localcloud.schedules")
_RATE = re.compile(r"rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


class UnsupportedScheduleError(ValueError):
    """Only rate() schedules are emulated."""


def rate_seconds(expression: str) -> float:
    match = _RATE.fullmatch(expression.strip())
    if not match:
        raise UnsupportedScheduleError(
            f"schedule {expression!r} is not emulated locally (only rate(N minute[s]|hour[s]|day[s]))"
        )
    value, unit = int(match.group(1)), match.group(2).rstrip("s")
    return float(value * _UNIT_SECONDS[unit])


class ScheduleRunner:
    def __init__(
        self,
        *,
        events_client: Any,
        delivery: EventDelivery,
        account_id: str,
        region: str,
        interval_override_seconds: float | None = None,
    ) -> None:
        self._events = events_client
        self._delivery = delivery
        self._account_id = account_id
        self._region = region
        self._interval_override_seconds = interval_override_seconds
        self._tick_seconds = min(1.0, max(0.05, (interval_override_seconds or 4.0) / 4))
        self._next_due: dict[str, float] = {}
        self._reported_unsupported: set[str] = set()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="schedules", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.wait(self._tick_seconds):
            try:
                self._fire_due_rules()
            except Exception:
                LOGGER.exception("schedule runner tick failed")

    def _fire_due_rules(self) -> None:
        now = time.monotonic()
        for rule in self._scheduled_rules():
            period = self._period(rule)
            if period is None:
                continue
            due = self._next_due.setdefault(rule["Arn"], now + period)
            if now >= due:
                self._next_due[rule["Arn"]] = max(due + period, now)
                self._fire(rule)

    def _scheduled_rules(self) -> list[dict[str, Any]]:
        rules: list[dict[str, Any]] = []
        for page in self._events.get_paginator("list_rules").paginate():
            rules += [
                rule
                for rule in page["Rules"]
                if rule.get("ScheduleExpression") and rule.get("State") == "ENABLED"
            ]
        return rules

    def _period(self, rule: dict[str, Any]) -> float | None:
        try:
            period = rate_seconds(rule["ScheduleExpression"])
        except UnsupportedScheduleError as error:
            if rule["Arn"] not in self._reported_unsupported:
                self._reported_unsupported.add(rule["Arn"])
                LOGGER.error("rule %s never fires locally: %s", rule["Name"], error)
            return None
        return self._interval_override_seconds or period

    def _fire(self, rule: dict[str, Any]) -> None:
        event = {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self._account_id,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self._region,
            "resources": [rule["Arn"]],
            "detail": {},
        }
        for page in self._events.get_paginator("list_targets_by_rule").paginate(Rule=rule["Name"]):
            for target in page["Targets"]:
                if self._delivery.handles(target["Arn"]):
                    self._delivery.deliver(rule["Arn"], target, event)
                else:
                    LOGGER.error(
                        "rule %s: scheduled delivery to %s is not emulated", rule["Name"], target["Arn"]
                    )

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
