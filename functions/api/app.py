"""api: the status API (API Gateway REST, Lambda proxy integration, behind the key authorizer).

Tenant routes take the tenant id from the authorizer's context only, never from the request; another
tenant's job answers exactly as a missing one (404). Operator routes refuse tenant credentials (403).
Requests are validated against the models in controlplane.api.models (422 naming the field);
docs/openapi.json is generated from these routes (make openapi).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
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
from controlplane.api import audit, auditing
from controlplane.api.audit import Actor, AuditAction, before_of
from controlplane.api.key_lifecycle import (
    Issued,
    OwnerNotFoundError,
    Rotated,
    create_key,
    list_keys,
    revoke_key,
    rotate_key,
)
from controlplane.api.keys import (
    ApiKey,
    KeyNotChangeableError,
    KeyNotFoundError,
    KeyOwner,
    KeyRequestError,
    Role,
)
from controlplane.api.models import (
    DEFAULT_PAGE_SIZE,
    FORMATS,
    MAX_PAGE_SIZE,
    TIMESTAMP_PATTERN,
    AccountPatch,
    AccountView,
    AuditEventView,
    AuditPage,
    InvalidPageTokenError,
    JobPage,
    JobView,
    KeyCreate,
    KeyCreated,
    KeyPage,
    KeyRotate,
    KeyRotated,
    KeyView,
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
from controlplane.api.problems import Problem, describe
from controlplane.core import functions
from controlplane.core.errors import JobClosedError, JobNotFoundError
from controlplane.core.model import Tier, utc_now
from controlplane.jobs import explanations
from controlplane.jobs import store as jobs
from controlplane.jobs.cancelling import cancel_job
from controlplane.jobs.explaining import Audience
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.jobs.listing import JobListingError, tenant_jobs_page
from controlplane.models.versions import ModelVersionNotFoundError
from controlplane.observability import bind_job, instrumented, logger
from controlplane.settings import get_api_settings, get_settings
from controlplane.tenants import store as tenants
from controlplane.tenants.changing import TenantOffboardingError, change_tenant
from controlplane.tenants.identity_store import TenantRoleDriftError
from controlplane.tenants.offboarding import TenantNotFoundError, begin
from controlplane.tenants.offboarding_contract import DeletionOutcome, DeletionResult, ImmediateDeletion
from controlplane.tenants.onboarding import TenantExistsError, onboard
from controlplane.uploads.keys import JOB_ID_PATTERN

settings = get_settings()
api_settings = get_api_settings()

app = APIGatewayRestResolver(enable_validation=True)
# Routes of other features, each a Powertools Router in a module beside this one. On Lambda (and in the
# emulator) this folder is the import root; tests and scripts import the package functions.api.
for _routes in ("operator_jobs", "model_routes", "usage_routes"):
    app.include_router(importlib.import_module(f"{__package__}.{_routes}" if __package__ else _routes).router)

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


def _problem(status: int, message: str) -> Response[str]:
    body = Problem(status_code=status, message=message).model_dump_json(by_alias=True)
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


# Domain errors of the key and audit routes, mapped to HTTP in one place.
@app.exception_handler(KeyNotFoundError)  # type: ignore[untyped-decorator]
def _no_such_key(error: KeyNotFoundError) -> Response[str]:
    return _problem(404, "no such key")  # the same for another tenant's key


@app.exception_handler(OwnerNotFoundError)  # type: ignore[untyped-decorator]
def _no_such_owner(error: OwnerNotFoundError) -> Response[str]:
    return _problem(404, _TENANT_NOT_FOUND)


@app.exception_handler(KeyNotChangeableError)  # type: ignore[untyped-decorator]
def _key_not_changeable(error: KeyNotChangeableError) -> Response[str]:
    return _problem(409, str(error))


@app.exception_handler(JobListingError)  # type: ignore[untyped-decorator]
def _job_listing_refused(error: JobListingError) -> Response[str]:
    return _problem(400, str(error))


@app.exception_handler(KeyRequestError)  # type: ignore[untyped-decorator]
def _key_request_refused(error: KeyRequestError) -> Response[str]:
    return _problem(400, str(error))


@app.exception_handler(ModelVersionNotFoundError)  # type: ignore[untyped-decorator]
def _no_such_model_version(error: ModelVersionNotFoundError) -> Response[str]:
    return _problem(404, "no such model version")  # the same for another tenant's version


@app.exception_handler(InvalidPageTokenError)  # type: ignore[untyped-decorator]
def _bad_page_token(error: InvalidPageTokenError) -> Response[str]:
    return _problem(400, f"nextToken: {error}")


def _caller() -> Actor:
    context = app.current_event.request_context
    return Actor.of(context.authorizer, context.request_id)


def _tenant() -> str:
    """The calling tenant (from the authorizer's context, never from the request)."""
    caller = _caller()
    tenant_id = caller.tenant_id
    if caller.role is not Role.TENANT or not tenant_id:
        raise ForbiddenError("this route is for tenant credentials")
    bind_job(tenant_id=tenant_id)
    return tenant_id


def _operator() -> None:
    if _caller().role is not Role.OPERATOR:
        raise ForbiddenError("this route is for operator credentials")


def _actor() -> Actor:
    """Who is calling, for the audit trail: the key id, role and tenant the authorizer resolved."""
    return _caller()


def _my_keys() -> KeyOwner:
    """The keys the caller manages on /keys: a tenant its own, an operator the operators'."""
    if _caller().role is Role.OPERATOR:
        return KeyOwner.operators()
    return KeyOwner.tenant(_tenant())


def _tenant_keys(tenant_id: str) -> KeyOwner:
    _operator()
    return KeyOwner.tenant(tenant_id)


def _audit(
    action: AuditAction,
    target: str,
    *,
    now: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> None:
    auditing.record(audit.event(_actor(), action, target, now=now, before=before, after=after))


def _page_start(token: str | None, keys: frozenset[str]) -> dict[str, str] | None:
    if token is None:
        return None
    try:
        return decode_page_token(token, expected_keys=keys)
    except InvalidPageTokenError as error:
        raise BadRequestError(f"nextToken: {error}") from None


# ------------------------------------------------------------------ tenant routes


def _explained(job: Job, *, audience: Audience) -> JobView:
    """The job view with its explanation (controlplane.jobs.explanations): a tenant's view counts the other
    tenants ahead of it, an operator's names them."""
    return JobView.explained(job, explanations.explain(job, audience=audience))


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
    start = _page_start(next_token, jobs.TENANT_JOBS_PAGE_KEYS)
    found, last = tenant_jobs_page(
        _tenant(),
        status=status,
        created_after=created_after,
        created_before=created_before,
        limit=limit,
        start_key=start,
    )
    return JobPage(items=[JobView.of(job) for job in found], next_token=encode_page_token(last))


@app.get(
    "/jobs/<jobId>",
    summary="One of my jobs: status, reasons, timeline, statistics, and why it waits or failed (explanation)",
    tags=["tenant"],
)
def get_job(job_id: Annotated[str, Path(alias="jobId", max_length=128)]) -> JobView:
    tenant_id = _tenant()
    # Same answer for a malformed id, a missing job and another tenant's job: nothing leaks.
    job = jobs.get(job_id) if JOB_ID_PATTERN.fullmatch(job_id) else None
    if job is None or job.tenant_id != tenant_id:
        raise NotFoundError(_JOB_NOT_FOUND)
    bind_job(job_id=job_id)
    return _explained(job, audience=Audience.TENANT)


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


# ------------------------------------------------------------------ keys (tenants: their own; operators: any)

_KEY_ID = Path(alias="keyId", max_length=64, description="The key's public id (key-...), never its secret")
_TENANT_ID = Path(alias="tenantId", max_length=64)
_KEYS_LIMIT = Query(ge=1, le=MAX_PAGE_SIZE)
_KEYS_TOKEN = Query(alias="nextToken", max_length=2048)
_MY_KEYS = (
    "The caller's keys: a tenant's own keys; with an operator key, the operator keys. Revocation and expiry "
    "take effect on the next request (the authorizer's result is not cached)."
)


def _key_view(key: ApiKey) -> KeyView:
    return KeyView.of(key, now=utc_now(), policy=api_settings.key_policy())


def _page(found: tuple[list[ApiKey], str | None]) -> KeyPage:
    keys, token = found
    return KeyPage(items=[_key_view(key) for key in keys], next_token=token)


def _created(issued: Issued) -> tuple[KeyCreated, int]:
    return KeyCreated(key=_key_view(issued.key), api_key=issued.secret), 201


def _rotated(rotated: Rotated) -> tuple[KeyRotated, int]:
    new = rotated.new
    return KeyRotated(old_key=_key_view(rotated.old), key=_key_view(new.key), api_key=new.secret), 201


@app.get(
    "/keys",
    summary="My keys, newest first (id, prefix, created, last used, expiry)",
    tags=["keys"],
    description=_MY_KEYS,
)
def list_my_keys(
    limit: Annotated[int, _KEYS_LIMIT] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, _KEYS_TOKEN] = None,
) -> KeyPage:
    return _page(list_keys(_my_keys(), limit=limit, next_token=next_token))


@app.post("/keys", summary="Create a key (its secret is shown once)", tags=["keys"], description=_MY_KEYS)
def create_my_key(request: KeyCreate) -> tuple[KeyCreated, int]:
    return _created(
        create_key(_my_keys(), actor=_actor(), expires_in_seconds=request.expires_in_seconds, now=utc_now())
    )


@app.post(
    "/keys/<keyId>/rotate",
    summary="Rotate a key: a new key (shown once); the old one works until the grace period ends",
    tags=["keys"],
    description=_MY_KEYS,
)
def rotate_my_key(key_id: Annotated[str, _KEY_ID], request: KeyRotate) -> tuple[KeyRotated, int]:
    return _rotated(_rotate(_my_keys(), key_id, request))


@app.delete(
    "/keys/<keyId>",
    summary="Revoke a key (fails from the next request on)",
    tags=["keys"],
    description=_MY_KEYS,
)
def revoke_my_key(key_id: Annotated[str, _KEY_ID]) -> KeyView:
    return _key_view(revoke_key(_my_keys(), key_id, actor=_actor(), now=utc_now()))


def _rotate(owner: KeyOwner, key_id: str, request: KeyRotate) -> Rotated:
    return rotate_key(
        owner,
        key_id,
        actor=_actor(),
        grace_seconds=request.grace_seconds,
        expires_in_seconds=request.expires_in_seconds,
        now=utc_now(),
    )


@app.get("/tenants/<tenantId>/keys", summary="A tenant's keys, newest first", tags=["operator"])
def list_tenant_keys(
    tenant_id: Annotated[str, _TENANT_ID],
    limit: Annotated[int, _KEYS_LIMIT] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, _KEYS_TOKEN] = None,
) -> KeyPage:
    return _page(list_keys(_tenant_keys(tenant_id), limit=limit, next_token=next_token))


@app.post("/tenants/<tenantId>/keys", summary="Create a key for a tenant (shown once)", tags=["operator"])
def create_tenant_key(tenant_id: Annotated[str, _TENANT_ID], request: KeyCreate) -> tuple[KeyCreated, int]:
    owner = _tenant_keys(tenant_id)
    return _created(
        create_key(owner, actor=_actor(), expires_in_seconds=request.expires_in_seconds, now=utc_now())
    )


@app.post(
    "/tenants/<tenantId>/keys/<keyId>/rotate",
    summary="Rotate a tenant's key: a new key (shown once); the old one works until the grace period ends",
    tags=["operator"],
)
def rotate_tenant_key(
    tenant_id: Annotated[str, _TENANT_ID], key_id: Annotated[str, _KEY_ID], request: KeyRotate
) -> tuple[KeyRotated, int]:
    return _rotated(_rotate(_tenant_keys(tenant_id), key_id, request))


@app.delete("/tenants/<tenantId>/keys/<keyId>", summary="Revoke a tenant's key", tags=["operator"])
def revoke_tenant_key(tenant_id: Annotated[str, _TENANT_ID], key_id: Annotated[str, _KEY_ID]) -> KeyView:
    return _key_view(revoke_key(_tenant_keys(tenant_id), key_id, actor=_actor(), now=utc_now()))


@app.get(
    "/audit", summary="The audit trail of operator actions and key changes, newest first", tags=["operator"]
)
def read_audit_trail(
    limit: Annotated[int, _KEYS_LIMIT] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, _KEYS_TOKEN] = None,
) -> AuditPage:
    _operator()
    events, token = auditing.trail(limit=limit, next_token=next_token)
    return AuditPage(items=[AuditEventView.of(event) for event in events], next_token=token)


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
    account, tier_items = tiers.capacity_items()
    if patch.concurrency_limit is not None:
        planned = guarantees(tier_items) | {tier.value: patch.concurrency_limit}
        problem = guarantees_fit(int(account["accountCap"]), planned) if account else None
        if problem:
            raise _conflict(f"{problem}: raise the account cap first (PATCH /account)")
    now = utc_now()
    item = tiers.update(tier.value, patch.changes(), now=now)
    if item is None:
        raise NotFoundError("no such tier")
    logger.info("Tier changed", extra={"tier": tier.value, "changes": patch.changes()})
    before = before_of(tier_items.get(tier.value), patch.changes())
    _audit(AuditAction.TIER_CHANGED, f"tier/{tier.value}", now=now, before=before, after=patch.changes())
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
    now = utc_now()
    updated = tiers.update(ACCOUNT_KEY, {"accountCap": patch.account_cap}, now=now)
    if updated is None:
        raise NotFoundError("the account has no settings yet (deploying the stack seeds them)")
    logger.info("Account cap changed", extra={"accountCap": patch.account_cap})
    change = {"accountCap": patch.account_cap}
    _audit(AuditAction.ACCOUNT_CHANGED, "account", now=now, before=before_of(account, change), after=change)
    return _account_view(updated, tier_items)


@app.post("/tenants", summary="Onboard a tenant (returns its API key once)", tags=["operator"])
def create_tenant(request: TenantCreate) -> tuple[TenantCreated, int]:
    _operator()
    now, actor = utc_now(), _actor()
    try:
        onboarded = onboard(request, now=now, created_by=actor.key_id)
    except (TenantExistsError, TenantRoleDriftError) as error:
        raise _conflict(str(error)) from None
    logger.info("Tenant onboarded", extra={"tenantId": request.tenant_id, "tier": request.tier.value})
    after = {
        "tier": request.tier.value,
        "keyId": onboarded.key.key_id,
        "keyExpiresAt": onboarded.key.expires_at,
    }
    _audit(AuditAction.TENANT_ONBOARDED, f"tenant/{request.tenant_id}", now=now, after=after)
    tenant = TenantView.model_validate(onboarded.tenant)
    return TenantCreated(tenant=tenant, key=_key_view(onboarded.key), api_key=onboarded.api_key), 201


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
    now = utc_now()
    try:
        change = change_tenant(tenant_id, patch, now=now)
    except TenantOffboardingError as error:
        raise _conflict(str(error)) from None
    except TenantNotFoundError:
        raise NotFoundError(_TENANT_NOT_FOUND) from None
    current, item = change.before, change.after
    logger.info("Tenant changed", extra={"tenantId": tenant_id, "changes": patch.changes()})
    before = before_of(current, patch.changes())
    _audit(AuditAction.TENANT_CHANGED, f"tenant/{tenant_id}", now=now, before=before, after=patch.changes())
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
    after = {
        "deleted": report.deleted,
        "deleteAfter": report.delete_after,
        "cancelledJobs": len(report.cancelled_jobs),
    }
    _audit(AuditAction.TENANT_OFFBOARDED, f"tenant/{tenant_id}", now=utc_now(), after=after)
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
