"""authorizer: API Gateway REQUEST authorizer for the status API.

In: the request's ``Authorization: Bearer <key>`` header. The key's SHA-256 is looked up in the ApiKeys
table; an active key yields a policy (tenants: the tenant routes only; operators: every route) and the
context ``{"role", "tenantId"?}`` the API handler reads. Anything else is "Unauthorized" (API Gateway's
401). The key is never logged; the principal id is a prefix of its hash.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from controlplane.api import key_store as api_key_table
from controlplane.api.authorization import allow_policy
from controlplane.api.keys import KeyStatus, Role, hash_key, key_from_header
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
    key = key_from_header(_header(event, "authorization"))
    item = api_key_table.get(hash_key(key)) if key else None
    if item is None or item.get("status") != KeyStatus.ACTIVE.value or item.get("role") not in set(Role):
        count("ApiRequestsUnauthorized")
        logger.info("Unauthorized", extra={"keyPresented": key is not None})
        raise UnauthorizedError("Unauthorized")
    role = Role(item["role"])
    tenant_id = item.get("tenantId") if role is Role.TENANT else None
    if role is Role.TENANT and not tenant_id:
        raise UnauthorizedError("Unauthorized")
    logger.info("Authorized", extra={"role": role.value, "tenantId": tenant_id})
    return allow_policy(
        str(item["keyHash"])[:16], str(event.get("methodArn", "")), role=role, tenant_id=tenant_id
    )
