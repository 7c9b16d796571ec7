"""The status API's request and response models, and its opaque pagination tokens.

Field names are camelCase on the wire (docs/contracts.md). Request models forbid unknown fields, so a
misspelt field is a 422 that names it rather than a silently ignored change.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from controlplane.api.audit import AuditEvent
from controlplane.api.keys import MAX_ROTATION_GRACE_SECONDS, ApiKey, KeyPolicy, KeyState
from controlplane.builds.results import BuildResults
from controlplane.core.model import Tier
from controlplane.jobs.execution_path import ExecutionPath
from controlplane.jobs.explaining import Explanation, Hold
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.tenants.access_policy import ONBOARDING_TENANT_ID_PATTERN, onboarding_refusal
from controlplane.tenants.model import ProblemType, TenantStatus, target_declaration_problem
from controlplane.usage.cost import JobCost

DEFAULT_PAGE_SIZE: Final = 25
MAX_PAGE_SIZE: Final = 100
_MAX_TOKEN_LENGTH: Final = 2048
TIMESTAMP_PATTERN: Final = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
INSTANCE_TYPE_PATTERN: Final = r"^ml\.[a-z0-9]+\.[a-z0-9]+$"
# Every pattern a request field must match, in words (the 422 says which format is allowed).
FORMATS: Final = {
    TIMESTAMP_PATTERN: "an ISO 8601 UTC time such as 2024-05-01T00:00:00.000Z",
    INSTANCE_TYPE_PATTERN: "a SageMaker instance type such as ml.m5.xlarge",
    ONBOARDING_TENANT_ID_PATTERN: "2-40 of a-z, 0-9 and -, beginning and ending with a letter or digit",
}


class InvalidPageTokenError(ValueError):
    """The nextToken was not issued by this API for this listing."""


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ResponseModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


# ------------------------------------------------------------------ pagination


def encode_page_token(last_key: Mapping[str, Any] | None) -> str | None:
    """An opaque token for DynamoDB's LastEvaluatedKey (plain values); None at the end."""
    if not last_key:
        return None
    text = json.dumps(dict(last_key), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_page_token(token: str, *, expected_keys: frozenset[str]) -> dict[str, str]:
    """The LastEvaluatedKey a token carries; InvalidPageTokenError unless it has exactly the listing's keys
    (string values only)."""
    if len(token) > _MAX_TOKEN_LENGTH:
        raise InvalidPageTokenError("nextToken is too long")
    try:
        decoded = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidPageTokenError("nextToken is not a token this API issued") from None
    if (
        not isinstance(decoded, dict)
        or set(decoded) != expected_keys
        or not all(isinstance(value, str) for value in decoded.values())
    ):
        raise InvalidPageTokenError("nextToken is not a token this API issued for this listing")
    return decoded


# ------------------------------------------------------------------ jobs


class TimelineView(ResponseModel):
    status: str
    at: str
    state: str | None = None
    reason: str | None = None


class _Explained(ResponseModel):
    # Read off controlplane.jobs.explaining's dataclasses.
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="ignore", from_attributes=True
    )


class CountView(_Explained):
    value: int
    at_least: bool = Field(default=False, description="The bounded count stopped at its bound: at least this")


class PositionView(_Explained):
    place: int = Field(description="1-based, in arrival order")
    of: int
    at_least: bool = False


class SlotsView(_Explained):
    running: int
    guaranteed: int
    borrowable: int
    limit: int = Field(description="guaranteed + borrowable: the tier never runs more")


class UsageView(_Explained):
    running: int
    cap: int | None = Field(default=None, description="None: no cap")


class HoldingView(_Explained):
    hold: Hold
    detail: str


class AheadTenantView(_Explained):
    tenant_id: str
    fair_key: float
    tag: float
    weight: float
    running: int
    cap: int | None = None
    why: str


class StandingView(_Explained):
    tag: float = Field(description="The tenant's fair tag in the tier's virtual time")
    fair_key: float = Field(description="max(tag, tier clock): the gate admits the lowest first")
    tier_clock: float
    weight: float
    usage: float = Field(description="Slot-units charged recently, decayed to now")
    backlog_since: str | None = None
    tenants_ahead: CountView = Field(description="Backlogged tenants below their cap the gate picks first")
    backlogged_tenants: CountView
    ahead: list[AheadTenantView] = Field(
        default_factory=list, description="The next tenants in fair order (operator views only)"
    )
    rule: str


class StartEstimateView(_Explained):
    seconds: float | None = Field(default=None, description="None: no run of the tier measured yet")
    starts_at: str | None = None
    jobs_ahead: int
    slots: int
    average_run_seconds: float | None = None
    runs_measured: int
    method: str


class WaitingView(_Explained):
    tenant_position: PositionView = Field(description="Among the tenant's waiting jobs in the tier")
    tier_position: PositionView = Field(description="In the tier's waiting room")
    tier: str
    tier_slots: SlotsView
    account: UsageView
    tenant: UsageView
    holding: list[HoldingView] = Field(description="Every limit holding the job now, most binding first")
    fair_share: StandingView
    estimate: StartEstimateView


class SlotHeldView(_Explained):
    borrowed: bool | None = Field(default=None, description="None: not recorded for this job")
    lent_by: str | None = Field(default=None, description='A tier, or "account" (its unguaranteed slots)')
    detail: str


class LogLocationView(_Explained):
    what: str
    log_group: str | None = None
    log_stream: str | None = None
    query: str | None = Field(default=None, description="A CloudWatch Logs Insights query over the log group")
    file: str | None = Field(default=None, description="The emulator's log file")


class FailureView(_Explained):
    status: JobStatus
    recorded_by: str | None = Field(default=None, description="The state that recorded the end")
    failed_step: str = Field(description="The step the job was in when it failed")
    reason: str
    at: str | None = None
    execution_arn: str | None = None
    pipeline_execution_arn: str | None = None
    logs: list[LogLocationView] = Field(default_factory=list)


class ExplanationView(_Explained):
    """Why the job is where it is (controlplane.jobs.explaining): for a QUEUED job ``waiting``, for an
    ADMITTED or RUNNING one ``slot``, for a FAILED or STOPPED one ``failure``."""

    summary: str
    waiting: WaitingView | None = None
    slot: SlotHeldView | None = None
    failure: FailureView | None = None

    @classmethod
    def of(cls, explanation: Explanation | None) -> ExplanationView | None:
        return None if explanation is None else cls.model_validate(explanation)


class JobView(ResponseModel):
    job_id: str
    status: JobStatus
    tier: str | None = None
    key: str | None = Field(default=None, description="The uploaded object's key")
    version_id: str | None = None
    reasons: list[str] = Field(default_factory=list)
    timeline: list[TimelineView] = Field(default_factory=list)
    stats: dict[str, Any] | None = Field(default=None, description="Dataset statistics from validation")
    execution_arn: str | None = None
    pipeline_execution_arn: str | None = None
    created_at: str
    updated_at: str | None = None
    queued_at: str | None = None
    admitted_at: str | None = None
    finished_at: str | None = None
    cancel_requested_at: str | None = Field(
        default=None, description="When the tenant asked to cancel (POST /jobs/{jobId}/cancel)"
    )
    # What the build produced and cost (recorded when its pipeline ended; absent before, or for a job that
    # never ran a pipeline).
    model_package_arn: str | None = Field(default=None, description="The model version the build registered")
    model_package_version: int | None = None
    model_artifact_uri: str | None = None
    metrics: dict[str, float] = Field(
        default_factory=dict, description="The registered model's metrics (its evaluation report)"
    )
    billable_seconds: float | None = Field(
        default=None, description="Billable instance-seconds of the build's SageMaker jobs"
    )
    cost_usd: float | None = Field(default=None, description="Estimated cost: compute plus the control plane")
    results: BuildResults | None = Field(
        default=None, description="Every step of the build as SageMaker reported it, and what it produced"
    )
    cost: JobCost | None = Field(default=None, description="How the estimate was made, per instance type")
    explanation: ExplanationView | None = Field(
        default=None, description="Why the job waits, whose slot it holds, or where it failed (GET only)"
    )

    @classmethod
    def of(cls, job: Job) -> JobView:
        """What the tenant sees of a job: the attributes above, read off the stored job."""
        view = cls.model_validate(job, from_attributes=True)
        results, cost = job.build_results, job.cost
        if results is None and cost is None:
            return view
        return view.model_copy(
            update={
                "results": results,
                "cost": cost,
                "model_package_arn": results.model_package_arn if results else None,
                "model_package_version": results.model_package_version if results else None,
                "model_artifact_uri": results.model_artifact_uri if results else None,
                "metrics": dict(results.metrics) if results else {},
                "billable_seconds": results.billable_seconds if results else None,
                "cost_usd": cost.total_usd if cost else None,
            }
        )

    @classmethod
    def explained(cls, job: Job, explanation: Explanation | None) -> JobView:
        """The job view with why it waits, whose slot it holds or where it failed (GET of one job)."""
        return cls.of(job).model_copy(update={"explanation": ExplanationView.of(explanation)})


class JobPage(ResponseModel):
    items: list[JobView]
    next_token: str | None = None


class StateVisitView(ResponseModel):
    name: str = Field(description="The state's name in statemachines/training_job.asl.json")
    type: str = Field(description="Task, Choice, Pass, Wait, Succeed or Fail")
    entered_at: str
    exited_at: str | None = Field(default=None, description="None while the execution is still in it")
    error: str | None = Field(default=None, description="Why it failed; its Catch chose the next state")
    cause: str | None = None


class ExecutionPathView(ResponseModel):
    """The job's execution as Step Functions' history tells it: every state it entered, in order."""

    job_id: str
    execution_arn: str
    status: str = Field(description="The execution's: RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED")
    started_at: str | None = None
    stopped_at: str | None = None
    visits: list[StateVisitView]
    current: list[str] = Field(description="States entered and not yet left (RUNNING only)")
    error: str | None = None
    cause: str | None = None
    truncated: bool = Field(description="True when the history was longer than the API reads (5,000 events)")

    @classmethod
    def of(cls, job_id: str, path: ExecutionPath) -> ExecutionPathView:
        return cls.model_validate(path.model_dump() | {"job_id": job_id})


# ------------------------------------------------------------------ tiers


class TierView(ResponseModel):
    tier: Tier
    concurrency_limit: int = Field(description="Guaranteed slots: the tier gets them whenever it has work")
    borrowing_limit: int = Field(
        default=0, description="Slots beyond the guarantee it may borrow from other tiers' idle guarantees"
    )
    running: int
    queued: int = Field(description="Jobs waiting in the tier's queue (tier-queue index)")
    training_instance_type: str | None = None
    training_instance_count: int | None = None
    processing_instance_type: str | None = None
    processing_instance_count: int | None = None
    max_dataset_bytes: int | None = None
    queue_wait_seconds: int | None = None
    use_spot_instances: bool | None = None
    max_runtime_seconds: int | None = None
    updated_at: str | None = None


class AccountView(ResponseModel):
    account_cap: int = Field(description="Most pipelines running at once across all tiers")
    running: int
    guaranteed: int = Field(description="The tiers' guaranteed slots, summed (never above the cap)")


class TierList(ResponseModel):
    items: list[TierView]
    account: AccountView | None = None


class AccountPatch(ApiModel):
    """The account cap (SageMaker's concurrent pipeline executions); never below the tiers' guarantees."""

    account_cap: int = Field(ge=1, le=10000)


class TierPatch(ApiModel):
    """Run-time tunables of a tier; at least one. (queueUrl and the running counter are not tunable.)"""

    concurrency_limit: int | None = Field(default=None, ge=0, le=1000)
    borrowing_limit: int | None = Field(default=None, ge=0, le=1000)
    training_instance_type: str | None = Field(default=None, pattern=INSTANCE_TYPE_PATTERN)
    training_instance_count: int | None = Field(default=None, ge=1, le=1)
    processing_instance_type: str | None = Field(default=None, pattern=INSTANCE_TYPE_PATTERN)
    processing_instance_count: int | None = Field(default=None, ge=1, le=1)
    # Up to S3's largest object (5 TiB): above 1 GiB validated in ranges, above 5 GiB copied in parts.
    max_dataset_bytes: int | None = Field(default=None, gt=0, le=5 * 1024**4)
    queue_wait_seconds: int | None = Field(default=None, ge=60, le=7 * 86400)
    use_spot_instances: bool | None = None
    max_runtime_seconds: int | None = Field(default=None, ge=60, le=5 * 86400)

    @model_validator(mode="after")
    def _something_to_change(self) -> TierPatch:
        if not self.changes():
            raise ValueError("name at least one setting to change")
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# ------------------------------------------------------------------ tenants


class ContractInput(ApiModel):
    target_column: str = Field(min_length=1, max_length=255)
    feature_columns: list[str] | None = Field(default=None, min_length=1, max_length=1000)
    problem_type: ProblemType
    min_rows: int = Field(ge=1, le=10_000_000)
    target_values: list[Annotated[str, Field(min_length=1, max_length=255)]] | None = Field(
        default=None, max_length=10, description="binary_classification: the two labels"
    )
    positive_class: str | None = Field(
        default=None, min_length=1, max_length=255, description="binary_classification: the positive label"
    )
    non_finite_as_missing: bool = Field(
        default=False, description="NaN and infinity count as missing instead of being errors"
    )

    @model_validator(mode="after")
    def _target_declaration(self) -> ContractInput:
        problem = target_declaration_problem(self.problem_type, self.target_values, self.positive_class)
        if problem is not None:
            raise ValueError(problem)
        return self


class TenantCreate(ApiModel):
    tenant_id: str = Field(
        pattern=ONBOARDING_TENANT_ID_PATTERN,
        description="2-40 of a-z, 0-9 and -; not a reserved id (unknown)",
    )

    tier: Tier
    contract: ContractInput
    metric_threshold: float = Field(ge=-1e6, le=1e6, allow_inf_nan=False)
    fair_share_weight: float = Field(
        default=1.0,
        gt=0,
        le=100,
        allow_inf_nan=False,
        description="Share of its tier's slots relative to others",
    )
    max_running_jobs: int | None = Field(
        default=None, ge=1, le=1000, description="Per-tenant cap; none by default"
    )

    @field_validator("tenant_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if (refusal := onboarding_refusal(value)) is not None:
            raise ValueError(refusal)
        return value


class TenantPatch(ApiModel):
    """Tier change, suspend (status SUSPENDED) or resume (status ACTIVE), metric threshold."""

    tier: Tier | None = None
    status: TenantStatus | None = None
    metric_threshold: float | None = Field(default=None, ge=-1e6, le=1e6, allow_inf_nan=False)
    fair_share_weight: float | None = Field(default=None, gt=0, le=100, allow_inf_nan=False)
    max_running_jobs: int | None = Field(default=None, ge=1, le=1000)

    @model_validator(mode="after")
    def _something_to_change(self) -> TenantPatch:
        if not self.changes():
            raise ValueError(
                "name at least one of tier, status, metricThreshold, fairShareWeight, maxRunningJobs"
            )
        return self

    def changes(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ContractView(ResponseModel):
    target_column: str
    feature_columns: list[str] | None = None
    problem_type: str
    min_rows: int
    target_values: list[str] | None = None
    positive_class: str | None = None
    non_finite_as_missing: bool = False


class TenantView(ResponseModel):
    tenant_id: str
    tier: str
    status: str
    role_arn: str
    model_package_group_name: str
    metric_threshold: float
    contract: ContractView
    fair_share_weight: float = 1.0
    max_running_jobs: int | None = None
    created_at: str | None = None
    updated_at: str | None = None


class TenantPage(ResponseModel):
    items: list[TenantView]
    next_token: str | None = None


class OffboardingView(ResponseModel):
    tenant_id: str
    deleted: bool = Field(description="True when the tenant's data was deleted (immediate=true)")
    delete_after: str = Field(description="End of the grace period during which the data is kept")
    cancelled_jobs: list[str] = Field(description="Open jobs this request cancelled")
    removed: dict[str, int] = Field(description="What was deleted, counted per kind (empty unless deleted)")


class ErrorBody(ResponseModel):
    message: str


# ------------------------------------------------------------------ keys

MAX_KEY_SECONDS: Final = 3650 * 86400


class KeyCreate(ApiModel):
    """A new key for the route's owner (a tenant's, or the operators')."""

    expires_in_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_KEY_SECONDS,
        description="Lifetime of the new key; default and most: the role's (tenant 365 days, operator 90 "
        "days, as deployed: TenantKeyLifetimeDays, OperatorKeyLifetimeDays)",
    )


class KeyRotate(ApiModel):
    """Rotate a key: a new key is issued; the old one keeps working for the grace period."""

    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_ROTATION_GRACE_SECONDS,
        description="How long the old key keeps working (default KeyRotationGraceSeconds, 86400: 24 h; "
        "0 ends it at once; never beyond its own expiry)",
    )
    expires_in_seconds: int | None = Field(
        default=None, ge=1, le=MAX_KEY_SECONDS, description="Lifetime of the new key (as for a new key)"
    )


class KeyView(ResponseModel):
    """A key as listed: never its secret nor its hash."""

    key_id: str = Field(description="The key's public id (time-ordered): name it to rotate or revoke it")
    role: str
    tenant_id: str | None = None
    prefix: str | None = Field(default=None, description="The secret's first 12 characters, to recognise it")
    status: str = Field(description="ACTIVE or REVOKED (an ACTIVE key past expiresAt no longer works)")
    state: KeyState = Field(
        description="Now: active, grace (rotated, works until expiresAt), expired or revoked"
    )
    created_at: str
    expires_at: str | None = Field(default=None, description="When it stops working (rotated: grace end)")
    last_used_at: str | None = Field(
        default=None, description="Last request it authorized, to within 5 minutes (none yet: never used)"
    )
    revoked_at: str | None = None
    rotated_at: str | None = None
    replaced_by: str | None = Field(default=None, description="The key that replaced it (rotation)")
    replaces: str | None = Field(default=None, description="The key it replaced (rotation)")

    @classmethod
    def of(cls, key: ApiKey, *, now: str, policy: KeyPolicy) -> KeyView:
        return cls.model_validate(key.model_dump(by_alias=True) | {"state": key.state(now, policy)})


class TenantCreated(ResponseModel):
    tenant: TenantView
    key: KeyView = Field(description="The tenant's first key (its id, prefix and expiry)")
    api_key: str = Field(description="The tenant's API key. Shown once: only its SHA-256 is stored.")


class KeyCreated(ResponseModel):
    key: KeyView
    api_key: str = Field(description="The new key's secret. Shown once: only its SHA-256 is stored.")


class KeyRotated(ResponseModel):
    old_key: KeyView = Field(description="The rotated key: it keeps working until its expiresAt")
    key: KeyView
    api_key: str = Field(description="The new key's secret. Shown once: only its SHA-256 is stored.")


class KeyPage(ResponseModel):
    items: list[KeyView]
    next_token: str | None = None


# ------------------------------------------------------------------ audit


class AuditEventView(ResponseModel):
    event_id: str
    at: str
    action: str = Field(description="tenant.onboard, tenant.change, tenant.offboard, tier.change, ...")
    target: str = Field(description="What it changed: tenant/<id>, tier/<tier>, account, key/<keyId>")
    actor_key_id: str = Field(description="The caller's key id (who)")
    actor_role: str
    actor_tenant_id: str | None = None
    request_id: str | None = Field(default=None, description="The API request (its access log line)")
    before: dict[str, Any] | None = Field(default=None, description="Changed fields before, where known")
    after: dict[str, Any] | None = Field(default=None, description="Changed fields after")

    @classmethod
    def of(cls, event: AuditEvent) -> AuditEventView:
        return cls.model_validate(event.model_dump(by_alias=True))


class AuditPage(ResponseModel):
    items: list[AuditEventView]
    next_token: str | None = None
