"""How long a tier's jobs hold a slot, as a moving average: what a waiting job's start estimate uses.

Kept on the tier item (``runSecondsAverage``, ``runsMeasured``), an exponentially weighted moving average of
the slot time (``slotReleasedAt - admittedAt``) of the tier's jobs whose pipeline started. The gate folds one
job in when the state machine tells it the job's slot was released (the slot-released trigger), in one
transaction with a marker on the job (``runTimeRecordedAt``, set once), under a compare-and-set on
``runsMeasured``: a redelivered trigger or two gates at once never count a run twice or lose one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from controlplane.core.model import parse_timestamp

# Weight of the newest run in the average: the last ~5 runs carry most of it, so a change of instance
# type or dataset sizes shows within a handful of jobs.
NEWEST_RUN_WEIGHT: Final = 0.3
AVERAGE_ATTRIBUTE: Final = "runSecondsAverage"
MEASURED_ATTRIBUTE: Final = "runsMeasured"


@dataclass(frozen=True, slots=True)
class RunTimes:
    average_seconds: float | None = None  # None: no run of the tier measured yet
    measured: int = 0


def run_times_from_item(item: Mapping[str, Any] | None) -> RunTimes:
    if not item or item.get(AVERAGE_ATTRIBUTE) is None:
        return RunTimes()
    return RunTimes(
        average_seconds=float(item[AVERAGE_ATTRIBUTE]), measured=int(item.get(MEASURED_ATTRIBUTE, 0))
    )


def folded(current: RunTimes, seconds: float) -> RunTimes:
    """The average after one more run of ``seconds``."""
    seconds = max(0.0, seconds)
    if current.average_seconds is None:
        return RunTimes(average_seconds=seconds, measured=current.measured + 1)
    average = current.average_seconds * (1 - NEWEST_RUN_WEIGHT) + seconds * NEWEST_RUN_WEIGHT
    return RunTimes(average_seconds=average, measured=current.measured + 1)


def slot_seconds(admitted_at: str | None, released_at: str | None) -> float | None:
    """How long a job held its slot; None when either end is missing or unreadable."""
    if not admitted_at or not released_at:
        return None
    try:
        return (parse_timestamp(released_at) - parse_timestamp(admitted_at)).total_seconds()
    except ValueError:
        return None
