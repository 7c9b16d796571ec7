"""The status API's operator view of any tenant's jobs, and of one job's path through the state machine
(the operator console reads these; docs/openapi.json).

A job is read under the tenant the path names: another tenant's job is a 404 exactly like a missing one, so
a mistyped tenant never shows a job. No Scan: a tenant's jobs are one Query on ``tenant-jobs``.
"""

from __future__ import annotations

from typing import Annotated, Final, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import ForbiddenError, NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from controlplane.api.audit import Actor
from controlplane.api.keys import Role
from controlplane.api.models import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    TIMESTAMP_PATTERN,
    ExecutionPathView,
    JobPage,
    JobView,
    decode_page_token,
    encode_page_token,
)
from controlplane.jobs import explanations
from controlplane.jobs import store as jobs
from controlplane.jobs.explaining import Audience
from controlplane.jobs.following import execution_path
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.jobs.listing import tenant_jobs_page
from controlplane.observability import bind_job
from controlplane.uploads.keys import JOB_ID_PATTERN

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped

_TENANT_ID = Path(alias="tenantId", max_length=64)
_JOB_ID = Path(alias="jobId", max_length=128)
_NO_SUCH_JOB: Final = "no such job"


def _operator() -> None:
    """Operator credentials only (the authorizer's policy already refuses tenant keys: defence in depth)."""
    event = cast(APIGatewayProxyEvent, router.current_event)  # the app is an APIGatewayRestResolver
    if Actor.of(event.request_context.authorizer).role is not Role.OPERATOR:
        raise ForbiddenError("this route is for operator credentials")


def _tenant_job(tenant_id: str, job_id: str) -> Job:
    job = jobs.get(job_id) if JOB_ID_PATTERN.fullmatch(job_id) else None
    if job is None or job.tenant_id != tenant_id:
        raise NotFoundError(_NO_SUCH_JOB)
    bind_job(tenant_id=tenant_id, job_id=job_id, tier=job.tier)
    return job


@router.get("/tenants/<tenantId>/jobs", summary="A tenant's jobs, newest first", tags=["operator"])
def list_tenant_jobs(
    tenant_id: Annotated[str, _TENANT_ID],
    *,
    status: Annotated[JobStatus | None, Query(description="Only jobs with this status")] = None,
    created_after: Annotated[
        str | None,
        Query(alias="createdAfter", pattern=TIMESTAMP_PATTERN, description="ISO 8601 UTC, inclusive"),
    ] = None,
    created_before: Annotated[
        str | None,
        Query(alias="createdBefore", pattern=TIMESTAMP_PATTERN, description="ISO 8601 UTC, inclusive"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> JobPage:
    _operator()
    start = (
        None
        if next_token is None
        else decode_page_token(next_token, expected_keys=jobs.TENANT_JOBS_PAGE_KEYS)
    )
    found, last = tenant_jobs_page(
        tenant_id,
        status=status,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        start_key=start,
    )
    return JobPage(items=[JobView.of(job) for job in found], next_token=encode_page_token(last))


@router.get(
    "/tenants/<tenantId>/jobs/<jobId>",
    summary="One of a tenant's jobs: status, reasons, timeline, statistics, and its explanation: who is "
    "ahead of it in fair order and why",
    tags=["operator"],
)
def get_tenant_job(tenant_id: Annotated[str, _TENANT_ID], job_id: Annotated[str, _JOB_ID]) -> JobView:
    _operator()
    job = _tenant_job(tenant_id, job_id)
    return JobView.explained(job, explanations.explain(job, audience=Audience.OPERATOR))


@router.get(
    "/tenants/<tenantId>/jobs/<jobId>/execution",
    summary="The job's path through the state machine: every state its execution entered, in order "
    "(GetExecutionHistory)",
    tags=["operator"],
)
def get_tenant_job_execution(
    tenant_id: Annotated[str, _TENANT_ID], job_id: Annotated[str, _JOB_ID]
) -> ExecutionPathView:
    _operator()
    path = execution_path(_tenant_job(tenant_id, job_id))
    if path is None:
        raise NotFoundError("the job has no execution to show (none recorded, or its history has expired)")
    return ExecutionPathView.of(job_id, path)
