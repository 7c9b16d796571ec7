"""What a job cost: its billable instance-seconds priced per instance type, plus the control plane's share.

cost = sum over its SageMaker jobs of (billable instance-seconds x the per-second price of the instance
type) + the control plane's own cost per job (``prices.control_plane_usd``). Billable instance-seconds are
SageMaker's figures (``controlplane.builds.results``): for managed spot training BillableTimeInSeconds is
already net of the spot savings, so no discount is applied twice. An instance type missing from the price
table is named in ``unpriced`` and counted at 0 (never guessed).

Amounts are rounded to ``DIGITS`` decimal places once per line, and the totals are sums of the rounded
lines, so a month's counter (DynamoDB adds decimals exactly) equals the sum of its jobs' costs exactly.
"""

from __future__ import annotations

from typing import Final

from pydantic import Field

from controlplane.builds.results import BuildResults
from controlplane.core.model import CamelModel
from controlplane.usage import prices

DIGITS: Final = 8
MONTH_PATTERN: Final = r"^\d{4}-(0[1-9]|1[0-2])$"


def usd(value: float) -> float:
    return round(value, DIGITS)


class CostLine(CamelModel):
    instance_type: str
    instance_seconds: float
    usd_per_second: float | None = Field(default=None, description="None: not in the price table")
    usd: float


class JobCost(CamelModel):
    """The estimate recorded on the job, and what its month's usage counters were given."""

    month: str = Field(description="YYYY-MM (UTC) of the pipeline's end: the month the cost counts in")
    tier: str
    billable_seconds: float = Field(description="Billable instance-seconds of every SageMaker job")
    compute_usd: float
    control_plane_usd: float
    total_usd: float
    lines: list[CostLine] = Field(default_factory=list)
    unpriced: list[str] = Field(default_factory=list, description="Instance types not in the price table")
    prices_as_of: str = prices.AS_OF

    @property
    def instance_hours(self) -> float:
        return self.billable_seconds / 3600


def month_of(timestamp: str) -> str:
    """``2026-12-02T14:17:48.123Z`` -> ``2026-12``."""
    return timestamp[:7]


def job_cost(results: BuildResults, *, tier: str, ended_at: str) -> JobCost:
    lines: list[CostLine] = []
    unpriced: list[str] = []
    for instance_type, seconds in sorted(results.instance_seconds_by_type().items()):
        price = prices.instance_price(instance_type)
        if price is None:
            unpriced.append(instance_type)
        lines.append(
            CostLine(
                instance_type=instance_type,
                instance_seconds=seconds,
                usd_per_second=price.usd if price else None,
                usd=usd(seconds * price.usd) if price else 0.0,
            )
        )
    compute = usd(sum(line.usd for line in lines))
    control_plane = usd(prices.control_plane_usd())
    return JobCost(
        month=month_of(ended_at),
        tier=tier,
        billable_seconds=results.billable_seconds,
        compute_usd=compute,
        control_plane_usd=control_plane,
        total_usd=usd(compute + control_plane),
        lines=lines,
        unpriced=unpriced,
    )


class MonthUsage(CamelModel):
    """One month of a tenant's (or a tier's) usage, as its counters stand."""

    month: str
    tenant_id: str | None = None
    tier: str | None = None
    jobs: int = 0
    billable_seconds: float = 0.0
    compute_usd: float = 0.0
    control_plane_usd: float = 0.0
    cost_usd: float = 0.0
