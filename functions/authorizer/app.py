"""authorizer: API Gateway REQUEST authorizer for the status API.

In: the request's ``Authorization: Bearer <key>`` header. The key's SHA-256 is looked up in the ApiKeys
table; an active key yields a policy (tenants: the tenant routes only; operators: every route) and the
context ``{"role", "keyId", "tenantId"?}`` the API handler reads. A key works only while it is active and
not expired (a rotated key until its grace period ends), a tenant key only while its tenant is ACTIVE
(controlplane.api.authorizing). Anything else is "Unauthorized" (API Gateway's 401). The key is never
logged; the principal id is the key's public id.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from controlplane.api.authorization import allow_policy
from controlplane.api.authorizing import Refusal, authorize
from controlplane.core.model import utc_now
from controlplane.observability import count, instrumented, logger
from controlplane.settings import get_api_settings

api_settings = get_api_settings()


class UnauthorizedError(Exception):
    """Raised with the message "Unauthorized": API Gateway's REQUEST authorizer contract for a 401."""


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name and isinstance(value, str):
            return value
    return None


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    grant = authorize(_header(event, "authorization"), now=utc_now())
    if isinstance(grant, Refusal):
        count("ApiRequestsUnauthorized")
        logger.info("Unauthorized", extra={"why": grant.value})
        raise UnauthorizedError("Unauthorized")
    logger.info(
        "Authorized", extra={"role": grant.role.value, "tenantId": grant.tenant_id, "keyId": grant.key_id}
    )
    return allow_policy(
        grant.key_id,
        str(event.get("methodArn", "")),
        role=grant.role,
        tenant_id=grant.tenant_id,
        usage_key=grant.usage_key,
    )
