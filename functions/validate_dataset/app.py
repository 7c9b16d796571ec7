"""validate_dataset: stream the uploaded version against the tenant's contract; snapshot it when valid.

In:  {"job", "tenant", "plan"} (register_upload's output)
Out: {"valid": bool, "reasons": [str], "stats": {...}, "trainingDataUri": str|null}

A dataset the plan says to validate in ranges (``plan.validateInRanges``) comes in three steps, each
with the same job, tenant and plan: "split" -> {"inRanges", "ranges", "names"}; "range" (one per Map
iteration, with its range and the names) -> {"index"}; "merge" (with the ranges and names) -> Out.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field, TypeAdapter

from controlplane.core.errors import IsolationError, JobClosedError, ObjectVersionNotFoundError
from controlplane.core.model import CamelModel, Tier, utc_now
from controlplane.jobs import store as jobs
from controlplane.jobs.lifecycle import JobRef
from controlplane.observability import bind_job, count, instrumented, logger, tracer
from controlplane.settings import get_settings
from controlplane.tenants.model import TenantContract
from controlplane.uploads import large_validation as large
from controlplane.uploads import object_store as objects
from controlplane.uploads.keys import is_gzip_key
from controlplane.uploads.model import BuildPlan
from controlplane.uploads.parallel import ByteRange
from controlplane.uploads.registration import model_output_uri, split_s3_uri, training_data_uri
from controlplane.uploads.validation import (
    DatasetRules,
    ValidationReport,
    validate_upload,
    version_gone_report,
)

settings = get_settings()


class TenantSummary(CamelModel):
    tenant_id: str
    tier: Tier
    role_arn: str
    model_package_group_name: str
    metric_threshold: float
    contract: TenantContract


class ValidateRequest(CamelModel):
    job: JobRef
    tenant: TenantSummary
    plan: BuildPlan


def _check_scope(request: ValidateRequest) -> None:
    """Tenant isolation: read only the tenant's own upload, write only under the job's own prefix."""
    job, plan = request.job, request.plan
    tenant = job.tenant_id
    if request.tenant.tenant_id != tenant:
        raise IsolationError(
            f"job {job.job_id} belongs to tenant {tenant!r}, not {request.tenant.tenant_id!r}"
        )
    if job.bucket != settings.uploads_bucket_name or not job.key.startswith(f"tenants/{tenant}/uploads/"):
        raise IsolationError(f"s3://{job.bucket}/{job.key} is not an upload of tenant {tenant!r}")
    expected = {
        "trainingDataUri": training_data_uri(
            settings.artifacts_bucket_name, tenant, job.job_id, gzipped=is_gzip_key(job.key)
        ),
        "modelOutputUri": model_output_uri(settings.artifacts_bucket_name, tenant, job.job_id),
    }
    actual = {"trainingDataUri": plan.training_data_uri, "modelOutputUri": plan.model_output_uri}
    for name, uri in expected.items():
        if actual[name] != uri:
            raise IsolationError(f"plan.{name} {actual[name]!r} is not the job's own location {uri!r}")


def _rules(request: ValidateRequest) -> DatasetRules:
    plan = request.plan
    return DatasetRules.from_contract(
        request.tenant.contract, max_bytes=plan.max_dataset_bytes, tier=plan.tier.value
    )


@tracer.capture_method(capture_response=False)
def _validate(request: ValidateRequest) -> ValidationReport:
    job = request.job

    def open_chunks() -> Iterator[bytes]:
        return objects.iter_version(job.bucket, job.key, job.version_id)

    try:
        return validate_upload(job.size_bytes, open_chunks, _rules(request), gzipped=is_gzip_key(job.key))
    except ObjectVersionNotFoundError:
        return version_gone_report()


class RangeModel(CamelModel):
    index: int = Field(ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=1)

    def byte_range(self) -> ByteRange:
        return ByteRange(self.index, self.start, self.end)


class SplitRequest(ValidateRequest):
    step: Literal["split"]


class RangeRequest(ValidateRequest):
    step: Literal["range"]
    range: RangeModel
    names: list[str]


class MergeRequest(ValidateRequest):
    step: Literal["merge"]
    ranges: list[RangeModel] = Field(min_length=1)
    names: list[str]


_Step = Annotated[SplitRequest | RangeRequest | MergeRequest, Field(discriminator="step")]
_Steps: TypeAdapter[SplitRequest | RangeRequest | MergeRequest] = TypeAdapter(_Step)


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Serial validation ({job, tenant, plan}), or one step of validating in ranges ("step": "split",
    "range", "merge": the state machine's Distributed Map); each step checks the same scope."""
    request = _Steps.validate_python(event) if "step" in event else ValidateRequest.model_validate(event)
    job, plan = request.job, request.plan
    bind_job(tenant_id=job.tenant_id, job_id=job.job_id, tier=plan.tier.value)
    _check_scope(request)
    artifacts = settings.artifacts_bucket_name
    if isinstance(request, SplitRequest):
        found = large.split(job, _rules(request), settings.validation_range_bytes)
        logger.info("Dataset split", extra={"ranges": len(found.ranges), "serialBecause": found.reason})
        return {
            "inRanges": found.names is not None,
            "ranges": [{"index": r.index, "start": r.start, "end": r.end} for r in found.ranges],
            "names": found.names,
        }
    if isinstance(request, RangeRequest):
        part = request.range.byte_range()
        large.validate_one_range(job, part, request.names, _rules(request), artifacts_bucket=artifacts)
        return {"index": part.index}
    if isinstance(request, MergeRequest):
        ranges = [model.byte_range() for model in request.ranges]
        report = large.merge_ranges(job, ranges, request.names, _rules(request), artifacts_bucket=artifacts)
    else:
        report = _validate(request)
    return _conclude(request, report)


def _conclude(request: ValidateRequest, report: ValidationReport) -> dict[str, Any]:
    """Snapshot a valid version for the job, record the verdict on the job."""
    job, plan = request.job, request.plan
    reasons = list(report.reasons)
    if report.valid:
        bucket, key = split_s3_uri(plan.training_data_uri)
        objects.copy_version(
            source_bucket=job.bucket,
            source_key=job.key,
            version_id=job.version_id,
            bucket=bucket,
            key=key,
            metadata={"tenant-id": job.tenant_id, "job-id": job.job_id, "source-version-id": job.version_id},
            content_type="application/gzip" if is_gzip_key(job.key) else "text/csv",
            size_bytes=job.size_bytes,
        )
    try:
        jobs.record_validation(
            job.job_id,
            valid=report.valid,
            reasons=reasons,
            stats=report.stats,
            training_data_uri=plan.training_data_uri if report.valid else None,
            model_output_uri=plan.model_output_uri if report.valid else None,
            now=utc_now(),
        )
    except JobClosedError as closed:
        # Cancelled (through the API) while validating: stop here, as for a rejection.
        logger.info("Job closed during validation", extra={"status": closed.status})
        return {
            "valid": False,
            "reasons": [f"the job is already {closed.status}"],
            "stats": report.stats,
            "trainingDataUri": None,
        }

    count("DatasetsValidated" if report.valid else "DatasetsRejected", tier=plan.tier.value)
    logger.info(
        "Dataset validated",
        extra={"valid": report.valid, "reasons": reasons, "rows": report.stats.get("rows")},
    )
    return {
        "valid": report.valid,
        "reasons": reasons,
        "stats": report.stats,
        "trainingDataUri": plan.training_data_uri if report.valid else None,
    }
