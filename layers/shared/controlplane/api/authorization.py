"""What an API caller may invoke: the policy a REQUEST authorizer returns for a verified key.

Tenants may only call the tenant routes (their jobs: GET /jobs, GET /jobs/{jobId}, POST /jobs/{jobId}/cancel;
their keys: GET and POST /keys, POST /keys/{keyId}/rotate, DELETE /keys/{keyId}; their model versions: GET
/models, GET /models/{version}, POST /models/{version}/approval; their usage: GET /usage); operators every
route.
The handler checks the role again (defence in depth), and the tenant id reaches it only through the
authorizer's context, with the caller's key id (``keyId``: who, in the audit trail).
"""

from __future__ import annotations

from typing import Any, Final

from controlplane.api.keys import Role

TENANT_ROUTES: Final = (
    ("GET", "jobs"),
    ("GET", "jobs/*"),
    ("POST", "jobs/*/cancel"),
    ("GET", "keys"),
    ("POST", "keys"),
    ("POST", "keys/*/rotate"),
    ("DELETE", "keys/*"),
    ("GET", "models"),
    ("GET", "models/*"),
    ("POST", "models/*/approval"),
    # Its own usage by month (the handler reads only the caller's tenant; ?month= alone is for operators).
    ("GET", "usage"),
)


def api_prefix(method_arn: str) -> str:
    """``arn:aws:execute-api:<region>:<account>:<apiId>/<stage>`` of a method ARN."""
    arn, _, path = method_arn.partition("/")
    stage = path.split("/", 1)[0]
    return f"{arn}/{stage}"


def allow_policy(
    key_id: str, method_arn: str, *, role: Role, tenant_id: str | None, usage_key: str | None = None
) -> dict[str, Any]:
    prefix = api_prefix(method_arn)
    if role is Role.OPERATOR:
        resources = [f"{prefix}/*"]
    else:
        resources = [f"{prefix}/{method}/{path}" for method, path in TENANT_ROUTES]
    context = {"role": role.value, "keyId": key_id}
    if tenant_id is not None:
        context["tenantId"] = tenant_id
    policy: dict[str, Any] = {
        "principalId": key_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": resources}],
        },
        "context": context,
    }
    if usage_key is not None:
        # The caller's usage plan (rate limits): API Gateway reads it with ApiKeySourceType AUTHORIZER.
        policy["usageIdentifierKey"] = usage_key
    return policy
