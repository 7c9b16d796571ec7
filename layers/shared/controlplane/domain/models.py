"""Domain models: statuses and their transitions, tenants, tiers, jobs and the build plan.

Field names are camelCase on the wire and in DynamoDB (docs/contracts.md); Python uses snake_case.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

# Timeline "state" values written by the functions: the names of the state machine states that invoke
# them, so a timeline reads the same whichever side wrote an entry (a unit test checks they exist in the ASL).
STATE_REGISTER: Final = "Register the upload as a job"
STATE_VALIDATE: Final = "Validate the dataset against the tenant's contract"
STATE_QUEUE_WAIT: Final = "Wait in the tier's queue for a free slot"
STATE_PIPELINE_WAIT: Final = "Wait for the pipeline to finish"

UNKNOWN_TENANT: Final = "unknown"


def utc_now() -> str:
    """Timestamp in the format Step Functions uses for ``$$.State.EnteredTime`` (sorts as text)."""
    return format_timestamp(datetime.now(UTC))


def format_timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class CamelModel(BaseModel):
    """camelCase aliases, accepts either spelling, ignores attributes it does not know."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)

    def wire(self) -> dict[str, Any]:
        """JSON-compatible dict with camelCase keys (what Lambda returns to the state machine)."""
        return self.model_dump(mode="json", by_alias=True)


class Tier(StrEnum):
    BASIC = "basic"
    STANDARD = "standard"
    PREMIUM = "premium"


class JobStatus(StrEnum):
    RECEIVED = "RECEIVED"
    VALIDATED = "VALIDATED"
    QUEUED = "QUEUED"
    ADMITTED = "ADMITTED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    STOPPED = "STOPPED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


TERMINAL_STATUSES: Final = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED,
        JobStatus.STOPPED,
        JobStatus.REJECTED,
        JobStatus.EXPIRED,
        JobStatus.CANCELLED,
    }
)

# Any non-terminal status may also end as FAILED (a step failed) or CANCELLED (through the API).
_ALWAYS: Final = frozenset({JobStatus.FAILED, JobStatus.CANCELLED})
ALLOWED_TRANSITIONS: Final[Mapping[JobStatus, frozenset[JobStatus]]] = {
    JobStatus.RECEIVED: _ALWAYS | {JobStatus.VALIDATED, JobStatus.REJECTED},
    JobStatus.VALIDATED: _ALWAYS | {JobStatus.QUEUED},
    JobStatus.QUEUED: _ALWAYS | {JobStatus.ADMITTED, JobStatus.EXPIRED},
    # ADMITTED can still expire: the wait timed out while the gate was admitting (the slot is released).
    JobStatus.ADMITTED: _ALWAYS | {JobStatus.RUNNING, JobStatus.EXPIRED},
    JobStatus.RUNNING: _ALWAYS | {JobStatus.SUCCEEDED, JobStatus.STOPPED},
    **{status: frozenset() for status in TERMINAL_STATUSES},
}


def is_terminal(status: str | None) -> bool:
    return status in TERMINAL_STATUSES


def can_transition(current: JobStatus | None, target: JobStatus) -> bool:
    """Whether ``current`` may become ``target``. A job that does not exist yet can only be created
    as RECEIVED or REJECTED (register_upload)."""
    if current is None:
        return target in {JobStatus.RECEIVED, JobStatus.REJECTED}
    return target in ALLOWED_TRANSITIONS[current]


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


class TierSettings(CamelModel):
    """A tier's limits and instance choices (Tiers table item, minus the ``running`` counter)."""

    tier: Tier
    # Guaranteed slots: the tier gets them whenever it has work (see controlplane.domain.scheduling).
    concurrency_limit: int = Field(ge=0)
    # Slots beyond the guarantee the tier may borrow from other tiers' idle guarantees (or the account's
    # unguaranteed remainder): the tier never runs more than concurrency_limit + borrowing_limit.
    borrowing_limit: int = Field(default=0, ge=0)
    queue_url: str = Field(min_length=1)
    training_instance_type: str = Field(pattern=r"^ml\.")
    training_instance_count: int = Field(ge=1)
    processing_instance_type: str = Field(pattern=r"^ml\.")
    processing_instance_count: int = Field(ge=1)
    max_dataset_bytes: int = Field(gt=0)
    queue_wait_seconds: int = Field(gt=0)
    use_spot_instances: bool
    max_runtime_seconds: int = Field(gt=0)


class UploadedObject(CamelModel):
    """The object version an S3 event reported (key already URL-decoded)."""

    bucket: str
    key: str
    version_id: str
    size_bytes: int = Field(ge=0)
    etag: str


class JobRef(CamelModel):
    """The ``job`` object passed between the functions and the state machine."""

    job_id: str
    tenant_id: str
    bucket: str
    key: str
    version_id: str
    size_bytes: int = Field(ge=0)
    etag: str


class BuildPlan(CamelModel):
    """Everything the state machine needs to queue, start and bound one build."""

    tier: Tier
    queue_url: str
    queue_wait_seconds: int
    training_instance_type: str
    training_instance_count: int
    processing_instance_type: str
    processing_instance_count: int
    use_spot_instances: bool
    max_runtime_seconds: int
    pipeline_wait_seconds: int
    max_dataset_bytes: int
    training_image_uri: str
    training_data_uri: str
    model_output_uri: str


class TimelineEntry(CamelModel):
    status: JobStatus
    at: str
    state: str
    reason: str | None = None

    def item(self) -> dict[str, Any]:
        # Same shape as the entries the state machine appends: reason only when there is one.
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class PipelineOutcome(CamelModel):
    """A terminal pipeline status as the state machine's "How did the build end?" reads it."""

    status: JobStatus
    reason: str
    at: str
    pipeline_execution_arn: str

    @field_validator("status")
    @classmethod
    def _terminal_build_status(cls, value: JobStatus) -> JobStatus:
        if value not in {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED}:
            raise ValueError(f"a pipeline outcome is SUCCEEDED, FAILED or STOPPED, not {value}")
        return value

    def resume_payload(self) -> dict[str, str]:
        """The task output await_pipeline / pipeline_events send (docs/contracts.md)."""
        return {
            "status": self.status.value,
            "reason": self.reason,
            "pipelineExecutionArn": self.pipeline_execution_arn,
        }


class Job(CamelModel):
    """A Jobs table item (docs/contracts.md, "Items"). Attributes appear as the job progresses."""

    job_id: str
    tenant_id: str
    status: JobStatus
    tier: Tier | None = None
    reasons: list[str] = Field(default_factory=list)
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    size_bytes: int | None = None
    etag: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    timeline: list[TimelineEntry] = Field(default_factory=list)
    execution_arn: str | None = None
    stats: dict[str, Any] | None = None
    training_data_uri: str | None = None
    model_output_uri: str | None = None
    queued_at: str | None = None
    queue_tier: Tier | None = None
    queue_task_token: str | None = None
    admitted_at: str | None = None
    pipeline_execution_arn: str | None = None
    pipeline_task_token: str | None = None
    pipeline_outcome: PipelineOutcome | None = None
    resumed_at: str | None = None
    finished_at: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES
