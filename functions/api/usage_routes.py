"""The usage routes of the status API (a Powertools Router that app.py includes).

- tenant ``GET /usage``: its months, newest first (jobs, instance-hours, cost);
- operator ``GET /usage?month=YYYY-MM``: every tenant's usage of that month, most expensive first;
- operator ``GET /tenants/{tenantId}/usage``: one tenant's months.
A tenant's view is read under its own key only (from the authorizer's context, never from the request), so
it can never show another tenant's usage. Paginated with nextToken; no Scan (controlplane.usage.store).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, cast

from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.exceptions import BadRequestError, ForbiddenError, NotFoundError
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from controlplane.api.audit import Actor
from controlplane.api.keys import Role
from controlplane.api.models import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    InvalidPageTokenError,
    decode_page_token,
    encode_page_token,
)
from controlplane.api.usage_models import UsageMonthView, UsagePage
from controlplane.observability import bind_job
from controlplane.tenants import store as tenants
from controlplane.usage import store as usage
from controlplane.usage.cost import MONTH_PATTERN

router = Router()  # type: ignore[no-untyped-call]  # Powertools leaves it untyped


def _caller() -> Actor:
    # The app that includes this router is an APIGatewayRestResolver.
    context = cast(APIGatewayProxyEvent, router.current_event).request_context
    return Actor.of(context.authorizer, context.request_id)


def _start(token: str | None, keys: frozenset[str]) -> dict[str, Any] | None:
    if token is None:
        return None
    try:
        start: dict[str, Any] = decode_page_token(token, expected_keys=keys)
    except InvalidPageTokenError as error:
        raise BadRequestError(f"nextToken: {error}") from None
    if "costUsd" in start:
        try:
            start["costUsd"] = Decimal(start["costUsd"])
        except ArithmeticError:
            raise BadRequestError("nextToken: not a token this API issued for this listing") from None
    return start


def _token(last: dict[str, Any] | None) -> str | None:
    return encode_page_token({key: str(value) for key, value in last.items()} if last else None)


def _tenant_page(tenant_id: str, limit: int, next_token: str | None) -> UsagePage:
    start = _start(next_token, usage.TENANT_PAGE_KEYS)
    if start is not None and start["scope"] != f"tenant#{tenant_id}":
        raise BadRequestError("nextToken: not a token this API issued for this listing")
    months, last = usage.tenant_months(tenant_id, limit=limit, start_key=start)
    return UsagePage(items=[UsageMonthView.of(month) for month in months], next_token=_token(last))


@router.get(
    "/usage",
    summary="Usage by month: a tenant's own months; operators: every tenant of ?month=, costliest first",
    tags=["tenant"],  # operators too, with ?month= (one tag: Powertools orders a set of tags at random)
)
def get_usage(
    month: Annotated[
        str | None,
        Query(
            pattern=MONTH_PATTERN, description="YYYY-MM; required with an operator key, a filter for tenants"
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> UsagePage:
    caller = _caller()
    tenant_id = caller.tenant_id
    if caller.role is Role.TENANT and tenant_id:
        bind_job(tenant_id=tenant_id)
        if month is None:
            return _tenant_page(tenant_id, limit, next_token)
        months, _ = usage.tenant_months(tenant_id, limit=MAX_PAGE_SIZE)
        return UsagePage(items=[UsageMonthView.of(item) for item in months if item.month == month])
    if caller.role is not Role.OPERATOR:
        raise ForbiddenError("this route is for tenant or operator credentials")
    if month is None:
        raise BadRequestError(
            "month is required with an operator key (YYYY-MM); a tenant's months: "
            "GET /tenants/{tenantId}/usage"
        )
    start = _start(next_token, usage.MONTH_PAGE_KEYS)
    if start is not None and start["usageMonth"] != month:
        raise BadRequestError("nextToken: not a token this API issued for this listing")
    found, last = usage.month_by_cost(month, limit=limit, start_key=start)
    return UsagePage(items=[UsageMonthView.of(item) for item in found], next_token=_token(last))


@router.get("/tenants/<tenantId>/usage", summary="A tenant's usage by month, newest first", tags=["operator"])
def get_tenant_usage(
    tenant_id: Annotated[str, Path(alias="tenantId", max_length=64)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    next_token: Annotated[str | None, Query(alias="nextToken", max_length=2048)] = None,
) -> UsagePage:
    if _caller().role is not Role.OPERATOR:
        raise ForbiddenError("this route is for operator credentials")
    page = _tenant_page(tenant_id, limit, next_token)
    if not page.items and next_token is None and tenants.get(tenant_id) is None:
        raise NotFoundError("no such tenant")
    return page
