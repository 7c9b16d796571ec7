"""api: the status API (API Gateway REST, Lambda proxy integration, behind the key authorizer).

Tenant routes take the tenant id from the authorizer's context only, never from the request; another
tenant's job answers exactly as a missing one (404). Operator routes refuse tenant credentials (403).
Requests are validated against the models in controlplane.api.models (422 naming the field);
docs/openapi.json is generated from these routes (make openapi).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import (
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ServiceError,
)
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from controlplane.admission import tier_store as tiers
from controlplane.admission.fair_share import ACCOUNT_KEY, guarantees, guarantees_fit
from controlplane.api.keys import Role
from controlplane.api.models import (
    DEFAULT_PAGE_SIZE,
    FORMATS,
    MAX_PAGE_SIZE,
    TIMESTAMP_PATTERN,
    AccountPatch,
    AccountView,
    InvalidPageTokenError,
    JobPage,
    JobView,
    OffboardingView,
    TenantCreate,
    TenantCreated,
    TenantPage,
    TenantPatch,
    TenantView,
    TierList,
    TierPatch,
    TierView,
    decode_page_token,
    encode_page_token,
)
from controlplane.api.problems import describe
from controlplane.core import functions
from controlplane.core.errors import JobClosedError, JobNotFoundError
from controlplane.core.model import Tier, utc_now
from controlplane.jobs import store as jobs
from controlplane.jobs.cancelling import cancel_job
from controlplane.jobs.lifecycle import JobStatus
from controlplane.observability import bind_job, instrumented, logger
from controlplane.settings import get_api_settings, get_settings
from controlplane.tenants import store as tenants
from controlplane.tenants.changing import TenantOffboardingError, change_tenant
from controlplane.tenants.offboarding import TenantNotFoundError, begin
from controlplane.tenants.offboarding_contract import DeletionOutcome, DeletionResult, ImmediateDeletion
from controlplane.tenants.onboarding import TenantExistsError, onboard
from controlplane.uploads.keys import JOB_ID_PATTERN

settings = get_settings()
api_settings = get_api_settings()

app = APIGatewayRestResolver(enable_validation=True)

_EARLIEST: Final = "0000-01-01T00:00:00.000Z"
_LATEST: Final = "9999-12-31T23:59:59.999Z"
_JOB_NOT_FOUND: Final = "no such job"
_TENANT_NOT_FOUND: Final = "no such tenant"


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
def _invalid_request(error: RequestValidationError) -> Response[str]:
    """Every 422: each refused field, where it is and what it allows (controlplane.api.problems)."""
    problem = describe(error.errors(), formats=FORMATS)
    logger.info("Request refused", extra={"errors": [p.model_dump() for p in problem.errors]})
    return Response(
        status_code=problem.status_code,
        content_type=content_types.APPLICATION_JSON,
        body=problem.model_dump_json(by_alias=True),
    )


def _caller() -> tuple[str, str | None]:
    authorizer = app.current_event.request_context.authorizer
    role = str(authorizer.get("role") or "")
    tenant_id = authorizer.get("tenantId") or None
    return role, (str(tenant_id) if tenant_id else None)


def _tenant() -> str:
    """The calling tenant (from the authorizer's context, never from the request)."""
    role, tenant_id = _caller()
    if role != Role.TENANT.value or not tenant_id:
        raise ForbiddenError("this route is for tenant credentials")
    bind_job(tenant_id=tenant_id)
    return tenant_id


def _operator() -> None:
    role, _ = _caller()
    if role != Role.OPERATOR.value:
        raise ForbiddenError("this route is for operator credentials")


def _page_start(token: str | None, keys: frozenset[str]) -> dict[str, str] | None:
    if token is None:
        return None
    try:
        return decode_page_token(token, expected_keys=keys)
    except InvalidPageTokenError as error:
        raise BadRequestError(f"nextToken: {error}") from None


# ------------------------------------------------------------------ tenant routes


@app.get("/jobs", summary="My jobs, newest first", tags=["tenant"])
def list_jobs(
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
    tenant_id = _tenant()
    start = _page_start(next_token, jobs.TENANT_JOBS_PAGE_KEYS)
    if start is not None and start["tenantId"] != tenant_id:
        raise BadRequestError("nextToken: not a token this API issued for this listing")
    created_from, created_to = created_after or _EARLIEST, created_before or _LATEST
    if created_from > created_to:
        raise BadRequestError("createdAfter is later than createdBefore")
    found, last = jobs.list_for_tenant(
        tenant_id,
        created_from=created_from,
        created_to=created_to,
        status=status.value if status else None,
        limit=limit,
        start_key=start,
    )
    return JobPage(items=[JobView.of(job) for job in found], next_token=encode_page_token(last))


@app.get("/jobs/<jobId>", summary="One of my jobs: status, reasons, timeline, statistics", tags=["tenant"])
def get_job(job_id: Annotated[str, Path(alias="jobId", max_length=128)]) -> JobView:
    tenant_id = _tenant()
    # Same answer for a malformed id, a missing job and another tenant's job: nothing leaks.
    job = jobs.get(job_id) if JOB_ID_PATTERN.fullmatch(job_id) else None
    if job is None or job.tenant_id != tenant_id:
        raise NotFoundError(_JOB_NOT_FOUND)
    bind_job(job_id=job_id)
    return JobView.of(job)


@app.post(
    "/jobs/<jobId>/cancel",
    summary="Cancel one of my jobs: a waiting job never starts (CANCELLED), a running build is stopped "
    "(STOPPED); 409 when it has already ended",
    tags=["tenant"],
)
def cancel_my_job(job_id: Annotated[str, Path(alias="jobId", max_length=128)]) -> tuple[JobView, int]:
    tenant_id = _tenant()
    job = jobs.get(job_id) if JOB_ID_PATTERN.fullmatch(job_id) else None
    if job is None or job.tenant_id != tenant_id:
        raise NotFoundError(_JOB_NOT_FOUND)
    bind_job(job_id=job_id, tier=job.tier)
    try:
        cancellation = cancel_job(job_id)
    except JobNotFoundError:
        raise NotFoundError(_JOB_NOT_FOUND) from None
    except JobClosedError as closed:
        raise _conflict(f"the job has already ended: {closed.status}") from None
    logger.info("Job cancel requested", extra={"action": cancellation.action})
    return JobView.of(cancellation.job), 202


# ------------------------------------------------------------------ operator routes


def _tier_view(tier: str, item: dict[str, Any]) -> TierView:
    return TierView.model_validate(item | {"tier": tier, "queued": tiers.queued_count(tier)})


def _account_view(account: dict[str, Any], tier_items: dict[str, dict[str, Any]]) -> AccountView:
    guaranteed = sum(guarantees(tier_items).values())
    return AccountView.model_validate(account | {"guaranteed": guaranteed})


@app.get(
    "/tiers",
    summary="Every tier (guaranteed and borrowable slots, running, queued, tunables) and the account cap",
    tags=["operator"],
)
def list_tiers() -> TierList:
    _operator()
    account, tier_items = tiers.capacity_items()
    views = [
        _tier_view(tier.value, item) for tier in Tier if (item := tier_items.get(tier.value)) is not None
    ]
    return TierList(items=views, account=_account_view(account, tier_items) if account else None)


@app.patch("/tiers/<tier>", summary="Change a tier's limit or other tunables at run time", tags=["operator"])
def patch_tier(tier: Annotated[Tier, Path()], patch: TierPatch) -> TierView:
    _operator()
    if patch.concurrency_limit is not None:
        account, tier_items = tiers.capacity_items()
        planned = guarantees(tier_items) | {tier.value: patch.concurrency_limit}
        problem = guarantees_fit(int(account["accountCap"]), planned) if account else None
        if problem:
            raise _conflict(f"{problem}: raise the account cap first (PATCH /account)")
    item = tiers.update(tier.value, patch.changes(), now=utc_now())
    if item is None:
        raise NotFoundError("no such tier")
    logger.info("Tier changed", extra={"tier": tier.value, "changes": patch.changes()})
    return _tier_view(tier.value, item)


@app.patch(
    "/account", summary="Change the account cap (pipelines running at once across tiers)", tags=["operator"]
)
def patch_account(patch: AccountPatch) -> AccountView:
    _operator()
    account, tier_items = tiers.capacity_items()
    if account is None:
        raise NotFoundError("the account has no settings yet (deploying the stack seeds them)")
    problem = guarantees_fit(patch.account_cap, guarantees(tier_items))
    if problem:
        raise _conflict(f"{problem}: lower a tier's concurrencyLimit first")
    updated = tiers.update(ACCOUNT_KEY, {"accountCap": patch.account_cap}, now=utc_now())
    if updated is None:
        raise NotFoundError("the account has no settings yet (deploying the stack seeds them)")
    logger.info("Account cap changed", extra={"accountCap": patch.account_cap})
    return _account_view(updated, tier_items)


@app.post("/tenants", summary="Onboard a tenant (returns its API key once)", tags=["operator"])
def create_tenant(request: TenantCreate) -> tuple[TenantCreated, int]:
    _operator()
    try:
        onboarded = onboard(request, now=utc_now())
    except TenantExistsError as error:
        raise _conflict(str(error)) from None
    logger.info("Tenant onboarded", extra={"tenantId": request.tenant_id, "tier": request.tier.value})
    return TenantCreated(tenant=TenantView.model_validate(onboarded.tenant), api_key=onboarded.api_key), 201


@app.get("/tenants", summary="Tenants by id", tags=["operator"])
def list_tenants(
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> TenantPage:
    _operator()
    items, last = tenants.list_page(limit=limit, start_key=_page_start(next_token, tenants.PAGE_KEYS))
    return TenantPage(
        items=[TenantView.model_validate(item) for item in items], next_token=encode_page_token(last)
    )


@app.get("/tenants/<tenantId>", summary="One tenant", tags=["operator"])
def get_tenant(tenant_id: Annotated[str, Path(alias="tenantId", max_length=64)]) -> TenantView:
    _operator()
    item = tenants.get(tenant_id)
    if item is None:
        raise NotFoundError(_TENANT_NOT_FOUND)
    return TenantView.model_validate(item)


@app.patch("/tenants/<tenantId>", summary="Change a tenant's tier, suspend or resume it", tags=["operator"])
def patch_tenant(
    tenant_id: Annotated[str, Path(alias="tenantId", max_length=64)], patch: TenantPatch
) -> TenantView:
    _operator()
    try:
        item = change_tenant(tenant_id, patch, now=utc_now())
    except TenantOffboardingError as error:
        raise _conflict(str(error)) from None
    except TenantNotFoundError:
        raise NotFoundError(_TENANT_NOT_FOUND) from None
    logger.info("Tenant changed", extra={"tenantId": tenant_id, "changes": patch.changes()})
    return TenantView.model_validate(item)


@app.delete(
    "/tenants/<tenantId>",
    summary="Offboard a tenant: suspend it, cancel its open jobs; with immediate=true also delete its data, "
    "models, role, keys and records (default: kept for the grace period, until deleteAfter)",
    tags=["operator"],
)
def delete_tenant(
    tenant_id: Annotated[str, Path(alias="tenantId", max_length=64)],
    immediate: Annotated[
        bool, Query(description="Delete everything now instead of after the grace period")
    ] = False,
) -> tuple[OffboardingView, int]:
    _operator()
    try:
        report = begin(tenant_id)
    except TenantNotFoundError:
        raise NotFoundError(_TENANT_NOT_FOUND) from None
    if immediate:
        report.removed = _delete_now(tenant_id)
        report.deleted = True
    logger.info("Tenant offboarding", extra={"tenantId": tenant_id, "deleted": report.deleted})
    view = OffboardingView(
        tenant_id=report.tenant_id,
        deleted=report.deleted,
        delete_after=report.delete_after,
        cancelled_jobs=report.cancelled_jobs,
        removed=report.removed,
    )
    return view, 200 if report.deleted else 202


def _delete_now(tenant_id: str) -> dict[str, int]:
    """Ask offboard_tenants (which alone holds the deletion permissions) to delete the tenant now."""
    function_name = api_settings.offboard_tenants_function_name
    if not function_name:
        raise ServiceError(500, "immediate deletion is not configured (OFFBOARD_TENANTS_FUNCTION_NAME)")
    request = ImmediateDeletion(trigger="immediate", tenant_id=tenant_id)
    result = DeletionResult.model_validate(
        functions.invoke(function_name, request.model_dump(mode="json", by_alias=True))
    )
    if result.outcome is DeletionOutcome.NOT_FOUND:
        raise NotFoundError(_TENANT_NOT_FOUND)
    if result.outcome is not DeletionOutcome.DELETED:
        raise _conflict(result.message)
    return result.removed


def _conflict(message: str) -> ServiceError:
    return ServiceError(409, message)


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
