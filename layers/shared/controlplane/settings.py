"""Environment configuration, validated once at cold start.

Variable names are exactly those of template.yaml's ``Globals.Function.Environment``. A missing or
malformed variable fails the cold start with a ConfigurationError that names it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache

from pydantic import BaseModel, ConfigDict, Field, Json, ValidationError

from controlplane.admission.scheduling import FairSharePolicy
from controlplane.api.keys import (
    DEFAULT_OPERATOR_LIFETIME_DAYS,
    DEFAULT_ROTATION_GRACE_SECONDS,
    DEFAULT_TENANT_LIFETIME_DAYS,
    MAX_ROTATION_GRACE_SECONDS,
    KeyPolicy,
)
from controlplane.core.errors import ConfigurationError

_NAME = r"^[A-Za-z0-9_.-]{3,255}$"
_BUCKET = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    service_name: str = Field(alias="POWERTOOLS_SERVICE_NAME", min_length=1)
    metrics_namespace: str = Field(alias="POWERTOOLS_METRICS_NAMESPACE", min_length=1)
    jobs_table_name: str = Field(alias="JOBS_TABLE_NAME", pattern=_NAME)
    tenants_table_name: str = Field(alias="TENANTS_TABLE_NAME", pattern=_NAME)
    tiers_table_name: str = Field(alias="TIERS_TABLE_NAME", pattern=_NAME)
    slot_leases_table_name: str = Field(alias="SLOT_LEASES_TABLE_NAME", pattern=_NAME)
    fair_share_table_name: str = Field(alias="FAIR_SHARE_TABLE_NAME", pattern=_NAME)
    # Usage per tenant and tier per month (controlplane.usage.store).
    usage_table_name: str = Field(alias="USAGE_TABLE_NAME", pattern=_NAME)
    # The fair-share policy's knobs (template parameters FairShareHalfLifeSeconds, FairShareMaxUsageDebt).
    fair_share_half_life_seconds: float = Field(default=21600.0, alias="FAIR_SHARE_HALF_LIFE_SECONDS", gt=0)
    fair_share_max_usage_debt: float = Field(default=2.0, alias="FAIR_SHARE_MAX_USAGE_DEBT", ge=0)
    # The lifecycle sweep (template parameter SweepGraceSeconds): how long a job may go unwritten before
    # the sweep asks whether its execution still runs.
    sweep_grace_seconds: int = Field(default=300, alias="SWEEP_GRACE_SECONDS", ge=1)
    # Datasets above this many bytes are validated in ranges of about VALIDATION_RANGE_BYTES (template
    # parameters ParallelValidationBytes, ValidationRangeBytes).
    parallel_validation_bytes: int = Field(default=1024**3, alias="PARALLEL_VALIDATION_BYTES", ge=1)
    validation_range_bytes: int = Field(default=256 * 1024**2, alias="VALIDATION_RANGE_BYTES", ge=1)
    uploads_bucket_name: str = Field(alias="UPLOADS_BUCKET_NAME", pattern=_BUCKET)
    artifacts_bucket_name: str = Field(alias="ARTIFACTS_BUCKET_NAME", pattern=_BUCKET)
    pipeline_name: str = Field(alias="PIPELINE_NAME", pattern=r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,255}$")
    training_image_uri: str = Field(alias="TRAINING_IMAGE_URI", min_length=1)
    state_machine_arn: str = Field(
        alias="STATE_MACHINE_ARN", pattern=r"^arn:[a-z-]+:states:[a-z0-9-]+:\d{12}:stateMachine:.+$"
    )

    def fair_share_policy(self) -> FairSharePolicy:
        return FairSharePolicy(
            half_life_seconds=self.fair_share_half_life_seconds, max_usage_debt=self.fair_share_max_usage_debt
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Settings:
        try:
            return cls.model_validate(dict(environ))
        except ValidationError as error:
            raise ConfigurationError(_explain(error, environ)) from None


def _explain(error: ValidationError, environ: Mapping[str, str]) -> str:
    aliases = {name: field.alias or name for name, field in Settings.model_fields.items()}
    problems = []
    for problem in error.errors(include_url=False):
        variable = str(problem["loc"][0]) if problem["loc"] else "?"
        variable = aliases.get(variable, variable)
        if problem["type"] == "missing":
            problems.append(f"environment variable {variable} is not set")
        else:
            problems.append(
                f"environment variable {variable}={environ.get(variable, '')!r} is invalid: {problem['msg']}"
            )
    return "invalid function configuration: " + "; ".join(problems)


@cache
def get_settings() -> Settings:
    """The process-wide settings (Lambda environment variables do not change while a sandbox lives)."""
    return Settings.from_environ(os.environ)


class ApiSettings(BaseModel):
    """What only the API and its authorizer read (set on those functions, not in Globals)."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    api_keys_table_name: str = Field(alias="API_KEYS_TABLE_NAME", pattern=_NAME)
    # Key lifetimes and the default rotation grace (template parameters TenantKeyLifetimeDays,
    # OperatorKeyLifetimeDays, KeyRotationGraceSeconds).
    tenant_key_lifetime_days: int = Field(
        default=DEFAULT_TENANT_LIFETIME_DAYS, alias="TENANT_KEY_LIFETIME_DAYS", ge=1, le=3650
    )
    operator_key_lifetime_days: int = Field(
        default=DEFAULT_OPERATOR_LIFETIME_DAYS, alias="OPERATOR_KEY_LIFETIME_DAYS", ge=1, le=3650
    )
    key_rotation_grace_seconds: int = Field(
        default=DEFAULT_ROTATION_GRACE_SECONDS,
        alias="KEY_ROTATION_GRACE_SECONDS",
        ge=0,
        le=MAX_ROTATION_GRACE_SECONDS,
    )
    # The API only: where operator actions and key changes are recorded.
    audit_table_name: str | None = Field(default=None, alias="AUDIT_TABLE_NAME", pattern=_NAME)
    # Onboarding only (the API function); the authorizer does not need them.
    tenant_role_path: str = Field(
        default="/mlaas-tenants/", alias="TENANT_ROLE_PATH", pattern=r"^/([\w+=,.@-]+/)*$"
    )
    tenant_role_boundary_arn: str | None = Field(
        default=None, alias="TENANT_ROLE_BOUNDARY_ARN", pattern=r"^arn:[a-z-]+:iam::\d{12}:policy/.+$"
    )
    # arn:<partition>:sagemaker:<region>:<account>: the tenant roles' trust policy names this account's jobs.
    sagemaker_arn_prefix: str | None = Field(
        default=None, alias="SAGEMAKER_ARN_PREFIX", pattern=r"^arn:[a-z-]+:sagemaker:[a-z0-9-]+:\d{12}$"
    )
    # The API only: the function it asks to delete a tenant now (DELETE /tenants/{id}?immediate=true).
    offboard_tenants_function_name: str | None = Field(
        default=None, alias="OFFBOARD_TENANTS_FUNCTION_NAME", pattern=r"^[A-Za-z0-9_:.-]{1,170}$"
    )
    # Rate limits (controlplane.api.rate_limits): each tier's usage plan, by tier name (the API only), the
    # name prefix of tenants' usage keys, and the operators' usage key (the authorizer only).
    usage_plan_ids: Json[dict[str, str]] = Field(default_factory=dict, alias="USAGE_PLAN_IDS")
    usage_key_prefix: str = Field(
        default="mlaas-tenant-", alias="USAGE_KEY_PREFIX", pattern=r"^[\w.-]{1,120}$"
    )
    operator_usage_key: str | None = Field(default=None, alias="OPERATOR_USAGE_KEY", min_length=20)
    # Where a failed job's logs are (its explanation): log group names by the template's logical id, and,
    # in the emulator, the directory of its per-function log files (localcloud sets it).
    job_log_groups: Json[dict[str, str]] = Field(default_factory=dict, alias="JOB_LOG_GROUPS")
    local_log_dir: str | None = Field(default=None, alias="LOCALCLOUD_LOG_DIR", min_length=1)

    def key_policy(self) -> KeyPolicy:
        return KeyPolicy(
            tenant_lifetime_days=self.tenant_key_lifetime_days,
            operator_lifetime_days=self.operator_key_lifetime_days,
            rotation_grace_seconds=self.key_rotation_grace_seconds,
        )

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> ApiSettings:
        try:
            return cls.model_validate(dict(environ))
        except ValidationError as error:
            problems = "; ".join(
                f"environment variable {problem['loc'][0] if problem['loc'] else '?'}: {problem['msg']}"
                for problem in error.errors(include_url=False)
            )
            raise ConfigurationError("invalid function configuration: " + problems) from None


@cache
def get_api_settings() -> ApiSettings:
    return ApiSettings.from_environ(os.environ)
