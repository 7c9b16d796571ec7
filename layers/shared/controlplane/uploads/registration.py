"""Registration: turn one uploaded object version into exactly one job (ACCEPTED or REJECTED) and its plan."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from pydantic import ValidationError

from controlplane.admission.tiers import TierSettings
from controlplane.core.errors import RegistrationConflictError
from controlplane.core.model import Tier
from controlplane.jobs.lifecycle import (
    OPEN_STATUS,
    STATE_REGISTER,
    SWEEP_AT,
    Job,
    JobRef,
    JobStatus,
    TimelineEntry,
)
from controlplane.tenants.model import Tenant, TenantStatus
from controlplane.uploads.keys import KeyRejection, UploadKey
from controlplane.uploads.model import BuildPlan, UploadedObject

# The shared pipeline runs three SageMaker jobs one after another (processing, training, evaluation),
# each bounded by MaxRuntimeSeconds. Each also needs time to get instances and pull its image; managed
# spot training may additionally wait for capacity up to MaxWaitTimeInSeconds, which the pipeline sets
# to twice MaxRuntimeSeconds (so one extra MaxRuntimeSeconds of waiting).
PIPELINE_STEPS: Final = 3
STEP_STARTUP_ALLOWANCE_SECONDS: Final = 900


class Outcome(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    DUPLICATE = "DUPLICATE"


@dataclass(frozen=True, slots=True)
class Accepted:
    tenant: Tenant
    plan: BuildPlan


@dataclass(frozen=True, slots=True)
class Rejected:
    tenant_id: str
    reasons: tuple[str, ...]
    tier: Tier | None = None


Decision = Accepted | Rejected


@dataclass(frozen=True, slots=True)
class RegistrationResult:
    outcome: Outcome
    job: JobRef
    reasons: tuple[str, ...] = ()
    tenant: Tenant | None = None
    plan: BuildPlan | None = None

    def wire(self) -> dict[str, Any]:
        """The register_upload output (docs/contracts.md)."""
        return {
            "outcome": self.outcome.value,
            "reasons": list(self.reasons),
            "job": self.job.wire(),
            "tenant": self.tenant.summary() if self.tenant else None,
            "plan": self.plan.wire() if self.plan else None,
        }


def pipeline_wait_seconds(max_runtime_seconds: int, use_spot_instances: bool) -> int:
    """How long the state machine waits for the pipeline before stopping it.

    ``PIPELINE_STEPS x maxRuntime`` (processing + training + evaluation, each bounded by maxRuntime)
    ``+ maxRuntime`` when spot training may wait for capacity
    ``+ PIPELINE_STEPS x 15 minutes`` of instance start-up.
    """
    spot_wait = max_runtime_seconds if use_spot_instances else 0
    return PIPELINE_STEPS * max_runtime_seconds + spot_wait + PIPELINE_STEPS * STEP_STARTUP_ALLOWANCE_SECONDS


def job_prefix(artifacts_bucket: str, tenant_id: str, job_id: str) -> str:
    return f"s3://{artifacts_bucket}/tenants/{tenant_id}/jobs/{job_id}/"


def training_data_uri(artifacts_bucket: str, tenant_id: str, job_id: str, *, gzipped: bool = False) -> str:
    """Where the validated version is copied for the pipeline; a .csv.gz upload stays compressed (the
    pipeline's preprocess reads gzip), so the copy is one server-side request whatever its size."""
    name = "dataset.csv.gz" if gzipped else "dataset.csv"
    return f"{job_prefix(artifacts_bucket, tenant_id, job_id)}input/{name}"


def model_output_uri(artifacts_bucket: str, tenant_id: str, job_id: str) -> str:
    return f"{job_prefix(artifacts_bucket, tenant_id, job_id)}model/"


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ValueError(f"an s3:// URI needs a bucket and a key: {uri!r}")
    return bucket, key


def _describe_validation_error(error: ValidationError) -> str:
    parts = []
    for problem in error.errors(include_url=False):
        location = ".".join(str(step) for step in problem["loc"]) or "record"
        parts.append(f"{location}: {problem['msg']}")
    return "; ".join(parts)


def build_plan(
    job_id: str,
    tenant: Tenant,
    settings: TierSettings,
    *,
    artifacts_bucket: str,
    training_image_uri: str,
    gzipped: bool = False,
    validate_in_ranges: bool = False,
) -> BuildPlan:
    return BuildPlan(
        validate_in_ranges=validate_in_ranges,
        tier=settings.tier,
        queue_url=settings.queue_url,
        queue_wait_seconds=settings.queue_wait_seconds,
        training_instance_type=settings.training_instance_type,
        training_instance_count=settings.training_instance_count,
        processing_instance_type=settings.processing_instance_type,
        processing_instance_count=settings.processing_instance_count,
        use_spot_instances=settings.use_spot_instances,
        max_runtime_seconds=settings.max_runtime_seconds,
        pipeline_wait_seconds=pipeline_wait_seconds(
            settings.max_runtime_seconds, settings.use_spot_instances
        ),
        max_dataset_bytes=settings.max_dataset_bytes,
        training_image_uri=training_image_uri,
        training_data_uri=training_data_uri(artifacts_bucket, tenant.tenant_id, job_id, gzipped=gzipped),
        model_output_uri=model_output_uri(artifacts_bucket, tenant.tenant_id, job_id),
    )


def decide_registration(
    job_id: str,
    parsed_key: UploadKey | KeyRejection,
    tenant_item: Mapping[str, Any] | None,
    tier_lookup: Callable[[Tier], Mapping[str, Any] | None],
    *,
    artifacts_bucket: str,
    training_image_uri: str,
    size_bytes: int = 0,
    parallel_validation_bytes: int | None = None,
) -> Decision:
    """ACCEPTED (with the tenant and the plan) or REJECTED (with reasons) for one upload.

    ``tenant_item`` is the Tenants item of the key's tenant (None when absent); ``tier_lookup`` returns a
    tier's Tiers item (it is only called for an acceptable tenant).
    """
    if isinstance(parsed_key, KeyRejection):
        return Rejected(parsed_key.tenant_id, (parsed_key.reason,))
    tenant_id = parsed_key.tenant_id
    if tenant_item is None:
        return Rejected(tenant_id, (f"tenant {tenant_id!r} is not onboarded",))
    try:
        tenant = Tenant.model_validate(tenant_item)
    except ValidationError as error:
        return Rejected(
            tenant_id,
            (
                f"the configuration of tenant {tenant_id!r} is invalid "
                f"({_describe_validation_error(error)}); "
                "an operator must correct it",
            ),
        )
    if tenant.tenant_id != tenant_id:
        return Rejected(tenant_id, (f"the record of tenant {tenant_id!r} names tenant {tenant.tenant_id!r}",))
    if tenant.status is TenantStatus.SUSPENDED:
        return Rejected(tenant_id, (f"tenant {tenant_id!r} is suspended",), tenant.tier)

    tier_item = tier_lookup(tenant.tier)
    if tier_item is None:
        return Rejected(
            tenant_id,
            (f"tier {tenant.tier.value!r} has no settings; an operator must seed the tiers table",),
            tenant.tier,
        )
    try:
        settings = TierSettings.model_validate(tier_item)
    except ValidationError as error:
        return Rejected(
            tenant_id,
            (
                f"the settings of tier {tenant.tier.value!r} are invalid "
                f"({_describe_validation_error(error)})",
            ),
            tenant.tier,
        )
    plan = build_plan(
        job_id,
        tenant,
        settings,
        artifacts_bucket=artifacts_bucket,
        training_image_uri=training_image_uri,
        gzipped=parsed_key.gzipped,
        validate_in_ranges=validates_in_ranges(size_bytes, parsed_key.gzipped, parallel_validation_bytes),
    )
    return Accepted(tenant, plan)


def validates_in_ranges(size_bytes: int, gzipped: bool, threshold: int | None) -> bool:
    """Above the threshold (template parameter ParallelValidationBytes), a plain CSV is validated in byte
    ranges by a Distributed Map; gzip cannot be read from the middle, so a .csv.gz is read serially."""
    return threshold is not None and not gzipped and size_bytes > threshold


def job_ref(job_id: str, tenant_id: str, upload: UploadedObject) -> JobRef:
    return JobRef(
        job_id=job_id,
        tenant_id=tenant_id,
        bucket=upload.bucket,
        key=upload.key,
        version_id=upload.version_id,
        size_bytes=upload.size_bytes,
        etag=upload.etag,
    )


def decision_tenant_id(decision: Decision) -> str:
    return decision.tenant.tenant_id if isinstance(decision, Accepted) else decision.tenant_id


def new_job_item(
    job_id: str, upload: UploadedObject, decision: Decision, *, execution_arn: str, now: str
) -> dict[str, Any]:
    """The Jobs item register_upload creates: RECEIVED, or REJECTED with its reasons."""
    item: dict[str, Any] = {
        **job_ref(job_id, decision_tenant_id(decision), upload).wire(),
        "createdAt": now,
        "updatedAt": now,
        "executionArn": execution_arn,
    }
    if isinstance(decision, Accepted):
        item |= {
            "tier": decision.plan.tier.value,
            "status": JobStatus.RECEIVED.value,
            # On the open-jobs index from the start: the sweep closes it if its execution dies unrecorded.
            OPEN_STATUS: JobStatus.RECEIVED.value,
            SWEEP_AT: now,
            "reasons": [],
            "timeline": [TimelineEntry(status=JobStatus.RECEIVED, at=now, state=STATE_REGISTER).item()],
        }
    else:
        reason = "; ".join(decision.reasons)
        item |= {
            "status": JobStatus.REJECTED.value,
            "reasons": list(decision.reasons),
            "finishedAt": now,
            "timeline": [
                TimelineEntry(status=JobStatus.REJECTED, at=now, state=STATE_REGISTER, reason=reason).item()
            ],
        }
        if decision.tier is not None:
            item["tier"] = decision.tier.value
    return item


def result_for_new_job(job: JobRef, decision: Decision) -> RegistrationResult:
    if isinstance(decision, Accepted):
        return RegistrationResult(Outcome.ACCEPTED, job, (), decision.tenant, decision.plan)
    return RegistrationResult(Outcome.REJECTED, job, decision.reasons)


def result_for_existing_job(
    job: JobRef, existing: Job, decision: Decision, *, execution_arn: str
) -> RegistrationResult:
    """The job already existed. Another execution's claim makes this delivery a DUPLICATE; this
    execution's own claim (a retried invocation after a lost response) replays the original outcome,
    so a retry never strands a job as RECEIVED."""
    if existing.execution_arn != execution_arn:
        owner = existing.execution_arn or "an earlier execution"
        return RegistrationResult(
            Outcome.DUPLICATE,
            job,
            (f"this object version is already job {job.job_id}, registered by {owner}",),
        )
    if existing.status is JobStatus.REJECTED:
        return RegistrationResult(Outcome.REJECTED, job, tuple(existing.reasons))
    if isinstance(decision, Accepted):
        return RegistrationResult(Outcome.ACCEPTED, job, (), decision.tenant, decision.plan)
    raise RegistrationConflictError(
        f"job {job.job_id} was claimed as {existing.status.value} by this execution, "
        "but registering it again "
        f"now rejects it: {'; '.join(decision.reasons)}"
    )
