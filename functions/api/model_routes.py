"""Model versions and their approval: tenant routes under /models, operator routes under
/tenants/{tenantId}/models (a Powertools Router included by app.py, whose exception handlers apply).

A tenant reaches only its own model package group: the group and every version ARN are built from the
tenant id the authorizer resolved, and a version must name that tenant; another tenant's version is a
404 exactly like a missing one.
"""

from __future__ import annotations

from typing import Annotated, Final, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, ForbiddenError, NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from controlplane.api import audit, auditing
from controlplane.api.audit import Actor, AuditAction
from controlplane.api.keys import Role
from controlplane.api.models import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidPageTokenError,
    decode_page_token,
    encode_page_token,
)
from controlplane.core.model import utc_now
from controlplane.models import approval
from controlplane.models.versions import DecisionResult
from controlplane.models.views import ApprovalRequest, ApprovalView, ModelVersionPage, ModelVersionView
from controlplane.observability import bind_job
from controlplane.settings import get_api_settings
from controlplane.tenants import store as tenants

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped

_PAGE_KEYS: Final = frozenset({"tenantId", "registryToken"})
_VERSION = Path(alias="version", ge=1, le=1_000_000, description="The version number in the tenant's group")
_TENANT_ID = Path(alias="tenantId", max_length=64)
_LIMIT = Query(ge=1, le=MAX_PAGE_SIZE)
_TOKEN = Query(alias="nextToken", max_length=2048)
_APPROVAL = (
    "Approve or reject the version (ModelApprovalStatus). Idempotent: the status it already has changes "
    "nothing (`changed: false`). Each change into Approved emits one `Model Version Approved` event "
    "(source `mlaas.controlplane`) on the default bus, the hand-off to deployment (README, events/)."
)


def _caller() -> Actor:
    # The app that includes this router is an APIGatewayRestResolver.
    context = cast(APIGatewayProxyEvent, router.current_event).request_context
    return Actor.of(context.authorizer, context.request_id)


def _tenant() -> str:
    caller = _caller()
    tenant_id = caller.tenant_id
    if caller.role is not Role.TENANT or not tenant_id:
        raise ForbiddenError("this route is for tenant credentials")
    bind_job(tenant_id=tenant_id)
    return tenant_id


def _operator_for(tenant_id: str) -> str:
    if _caller().role is not Role.OPERATOR:
        raise ForbiddenError("this route is for operator credentials")
    if tenants.get(tenant_id) is None:
        raise NotFoundError("no such tenant")
    bind_job(tenant_id=tenant_id)
    return tenant_id


def _page(tenant_id: str, limit: int, next_token: str | None) -> ModelVersionPage:
    start = None
    if next_token is not None:
        try:
            decoded = decode_page_token(next_token, expected_keys=_PAGE_KEYS)
        except InvalidPageTokenError as error:
            raise BadRequestError(f"nextToken: {error}") from None
        if decoded["tenantId"] != tenant_id:
            raise BadRequestError("nextToken: not a token this API issued for this listing")
        start = decoded["registryToken"]
    versions, token = approval.list_versions(tenant_id, limit=limit, token=start)
    return ModelVersionPage(
        items=[ModelVersionView.of(version) for version in versions],
        next_token=encode_page_token({"tenantId": tenant_id, "registryToken": token} if token else None),
    )


def _one(tenant_id: str, version: int) -> ModelVersionView:
    return ModelVersionView.of(
        approval.get_version(tenant_id, version, arn_prefix=get_api_settings().sagemaker_arn_prefix)
    )


def _decide(tenant_id: str, version: int, request: ApprovalRequest) -> ApprovalView:
    result = approval.decide(
        tenant_id,
        version,
        request.approval_status,
        request.description,
        arn_prefix=get_api_settings().sagemaker_arn_prefix,
    )
    if result.changed:
        _audit(result, request)
    return ApprovalView.of(result)


def _audit(result: DecisionResult, request: ApprovalRequest) -> None:
    actor = _caller()
    after = {"approvalStatus": request.approval_status.value, "description": request.description}
    event = audit.event(
        actor,
        AuditAction.MODEL_DECIDED,
        result.version.model_package_arn,
        now=utc_now(),
        before={"approvalStatus": result.previous_status},
        after=after,
    )
    auditing.record(event)


# ------------------------------------------------------------------ tenant routes


@router.get(
    "/models", summary="My model versions, newest first: metrics, approval, building job", tags=["tenant"]
)
def list_my_models(
    limit: Annotated[int, _LIMIT] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, _TOKEN] = None,
) -> ModelVersionPage:
    return _page(_tenant(), limit, next_token)


@router.get("/models/<version>", summary="One of my model versions", tags=["tenant"])
def get_my_model(version: Annotated[int, _VERSION]) -> ModelVersionView:
    return _one(_tenant(), version)


@router.post(
    "/models/<version>/approval",
    summary="Approve or reject one of my model versions",
    description=_APPROVAL,
    tags=["tenant"],
)
def decide_my_model(version: Annotated[int, _VERSION], request: ApprovalRequest) -> ApprovalView:
    return _decide(_tenant(), version, request)


# ------------------------------------------------------------------ operator routes


@router.get(
    "/tenants/<tenantId>/models", summary="A tenant's model versions, newest first", tags=["operator"]
)
def list_tenant_models(
    tenant_id: Annotated[str, _TENANT_ID],
    limit: Annotated[int, _LIMIT] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, _TOKEN] = None,
) -> ModelVersionPage:
    return _page(_operator_for(tenant_id), limit, next_token)


@router.get(
    "/tenants/<tenantId>/models/<version>", summary="One of a tenant's model versions", tags=["operator"]
)
def get_tenant_model(
    tenant_id: Annotated[str, _TENANT_ID], version: Annotated[int, _VERSION]
) -> ModelVersionView:
    return _one(_operator_for(tenant_id), version)


@router.post(
    "/tenants/<tenantId>/models/<version>/approval",
    summary="Approve or reject a tenant's model version",
    description=_APPROVAL,
    tags=["operator"],
)
def decide_tenant_model(
    tenant_id: Annotated[str, _TENANT_ID], version: Annotated[int, _VERSION], request: ApprovalRequest
) -> ApprovalView:
    return _decide(_operator_for(tenant_id), version, request)
