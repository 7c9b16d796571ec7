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
    # Binary classification only: the two labels the target may hold (anything else is rejected), and
    # which of them is the positive class. Undeclared, a target mixing a number and a word is rejected.
    target_values: list[str] | None = None
    positive_class: str | None = None
    # NaN and infinity (any spelling float() reads) are errors in features and target alike; true: they
    # count as missing, as an empty cell does.
    non_finite_as_missing: bool = False

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
        problem = target_declaration_problem(self.problem_type, self.target_values, self.positive_class)
        if problem is not None:
            raise ValueError(problem)
        return self

    def wire(self) -> dict[str, Any]:
        # "featureColumns (list or absent)": absent rather than null when every column is a feature; the
        # same for the options of issue 13, so a contract that declares none reads as it always did.
        wired = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not self.non_finite_as_missing:
            del wired["nonFiniteAsMissing"]
        return wired


def target_declaration_problem(
    problem_type: ProblemType, target_values: list[str] | None, positive_class: str | None
) -> str | None:
    """Why a declaration of the target's values does not fit the problem type (None when it does)."""
    if problem_type is not ProblemType.BINARY_CLASSIFICATION:
        if target_values is not None or positive_class is not None:
            return "targetValues and positiveClass are for binary_classification only"
        return None
    if target_values is not None:
        if len(target_values) != 2 or len(set(target_values)) != 2:
            return "targetValues must list exactly two different labels for binary_classification"
        if any(not value or value != value.strip() for value in target_values):
            return "targetValues must not be empty or start or end with spaces"
        if positive_class is not None and positive_class not in target_values:
            return f"positiveClass {positive_class!r} is not one of targetValues"
    if positive_class is not None and (not positive_class or positive_class != positive_class.strip()):
        return "positiveClass must not be empty or start or end with spaces"
    return None


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
