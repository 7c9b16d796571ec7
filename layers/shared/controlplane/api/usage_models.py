"""The usage routes' response models (GET /usage, GET /tenants/{tenantId}/usage)."""

from __future__ import annotations

from pydantic import Field

from controlplane.api.models import ResponseModel
from controlplane.usage.cost import MonthUsage


class UsageMonthView(ResponseModel):
    month: str = Field(description="YYYY-MM (UTC): the month the builds' pipelines ended in")
    tenant_id: str | None = None
    tier: str | None = Field(default=None, description="The tier of the tenant's latest counted build")
    jobs: int = Field(description="Builds counted (every build whose pipeline ran, whatever its outcome)")
    billable_seconds: float = Field(description="Billable instance-seconds of their SageMaker jobs")
    instance_hours: float
    compute_usd: float
    control_plane_usd: float
    cost_usd: float = Field(description="Estimated cost: compute plus the control plane")

    @classmethod
    def of(cls, usage: MonthUsage) -> UsageMonthView:
        return cls(
            month=usage.month,
            tenant_id=usage.tenant_id,
            tier=usage.tier,
            jobs=usage.jobs,
            billable_seconds=usage.billable_seconds,
            instance_hours=round(usage.billable_seconds / 3600, 6),
            compute_usd=usage.compute_usd,
            control_plane_usd=usage.control_plane_usd,
            cost_usd=usage.cost_usd,
        )


class UsagePage(ResponseModel):
    items: list[UsageMonthView]
    next_token: str | None = None
