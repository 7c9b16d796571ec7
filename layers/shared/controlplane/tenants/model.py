"""A tenant, its status and the contract its datasets must meet (Tenants table item)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, field_validator, model_validator

from controlplane.core.model import CamelModel, Tier


class TenantStatus(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"


class ProblemType(StrEnum):
    BINARY_CLASSIFICATION = "binary_classification"
    REGRESSION = "regression"


class TenantContract(CamelModel):
    """What a tenant's datasets must look like."""

    target_column: str = Field(min_length=1)
    # None (absent): every column except the target is a feature.
    feature_columns: list[str] | None = None
    problem_type: ProblemType
    min_rows: int = Field(ge=1)

    @field_validator("feature_columns")
    @classmethod
    def _features_unique_and_named(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("featureColumns must not be an empty list (omit it to use every other column)")
        if any(not name for name in value):
            raise ValueError("featureColumns must not contain an empty name")
        duplicates = sorted({name for name in value if value.count(name) > 1})
        if duplicates:
            raise ValueError(f"featureColumns lists {', '.join(duplicates)} more than once")
        return value

    @model_validator(mode="after")
    def _target_is_not_a_feature(self) -> TenantContract:
        if self.feature_columns and self.target_column in self.feature_columns:
            raise ValueError(f"the target column {self.target_column!r} is also listed as a feature")
        return self

    def wire(self) -> dict[str, Any]:
        # "featureColumns (list or absent)": absent rather than null when every column is a feature.
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Tenant(CamelModel):
    tenant_id: str
    tier: Tier
    status: TenantStatus
    role_arn: str = Field(min_length=20)
    model_package_group_name: str = Field(min_length=1)
    metric_threshold: float
    contract: TenantContract
    created_at: str | None = None
    updated_at: str | None = None

    def summary(self) -> dict[str, Any]:
        """The ``tenant`` object of the register_upload output."""
        return {
            "tenantId": self.tenant_id,
            "tier": self.tier.value,
            "roleArn": self.role_arn,
            "modelPackageGroupName": self.model_package_group_name,
            "metricThreshold": self.metric_threshold,
            "contract": self.contract.wire(),
        }
