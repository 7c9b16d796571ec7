"""register_upload: turn an S3 "Object Created" event into exactly one job (or a recorded rejection).

In:  {"event": <S3 Object Created via EventBridge>, "executionArn": str}
Out: {"outcome": ACCEPTED|REJECTED|DUPLICATE, "reasons": [str], "job", "tenant", "plan"} (docs/contracts.md)
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from controlplane.admission import tier_store as tiers
from controlplane.core.model import utc_now
from controlplane.jobs import store as jobs
from controlplane.observability import bind_job, count, instrumented, logger
from controlplane.settings import get_settings
from controlplane.tenants import store as tenants
from controlplane.uploads.keys import (
    JOB_ID_REGEX,
    NULL_VERSION_ID,
    UNKNOWN_TENANT,
    KeyRejection,
    UploadKey,
    derive_job_id,
    read_event_key,
)
from controlplane.uploads.model import UploadedObject
from controlplane.uploads.registration import (
    decide_registration,
    decision_tenant_id,
    job_ref,
    new_job_item,
    result_for_existing_job,
    result_for_new_job,
)

settings = get_settings()  # Fail the cold start, naming the variable, when the configuration is wrong.


class RegisterUploadRequest(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    event: S3EventNotificationEventBridgeModel
    execution_arn: str = Field(alias="executionArn", min_length=1)
    # The id the state machine named the job with (States.Hash over the same fields): it records a failed
    # registration under it, so both must agree.
    job_id: str | None = Field(default=None, alias="jobId", pattern=JOB_ID_REGEX)


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    request = RegisterUploadRequest.model_validate(event)
    detail = request.event.detail
    if detail.object.size is None:
        raise ValueError("the S3 event does not report the object's size")
    raw_key = detail.object.key
    key, parsed = read_event_key(raw_key)
    upload = UploadedObject(
        bucket=detail.bucket.name,
        key=key,
        # S3 reports "null" (or nothing) for objects written while versioning was off.
        version_id=detail.object.version_id or NULL_VERSION_ID,
        size_bytes=int(detail.object.size),
        etag=detail.object.etag,
    )
    job_id = derive_job_id(upload.bucket, raw_key, upload.version_id)
    if request.job_id is not None and request.job_id != job_id:
        raise ValueError(f"the state machine named the job {request.job_id}, the upload derives {job_id}")
    if upload.bucket != settings.uploads_bucket_name:
        parsed = KeyRejection(UNKNOWN_TENANT, f"bucket {upload.bucket!r} is not the uploads bucket")
    bind_job(job_id=job_id, tenant_id=parsed.tenant_id)

    tenant_item = tenants.get(parsed.tenant_id) if isinstance(parsed, UploadKey) else None
    decision = decide_registration(
        job_id,
        parsed,
        tenant_item,
        lambda tier: tiers.get(tier.value),
        artifacts_bucket=settings.artifacts_bucket_name,
        training_image_uri=settings.training_image_uri,
        size_bytes=upload.size_bytes,
        parallel_validation_bytes=settings.parallel_validation_bytes,
    )
    tenant_id = decision_tenant_id(decision)
    item = new_job_item(job_id, upload, decision, execution_arn=request.execution_arn, now=utc_now())
    existing = jobs.claim(item)  # Conditional put: one job per object version, however often S3 delivers.
    ref = job_ref(job_id, tenant_id, upload)
    if existing is None:
        result = result_for_new_job(ref, decision)
    else:
        result = result_for_existing_job(ref, existing, decision, execution_arn=request.execution_arn)

    tier = item.get("tier")
    bind_job(tier=tier)
    count(f"Uploads{result.outcome.value.title()}", tier=tier)
    logger.info(
        "Upload registered",
        extra={"outcome": result.outcome.value, "reasons": list(result.reasons), "key": key},
    )
    return result.wire()
