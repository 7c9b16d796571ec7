"""The authorizer's tenant policy (controlplane.api.authorization.TENANT_ROUTES) against the API's routes
(docs/openapi.json, generated from the handler): a tenant may invoke every tenant and key route and no
operator route. API Gateway matches the policy's resources with IAM wildcards (a ``*`` spans ``/``)."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase

from controlplane.api.authorization import TENANT_ROUTES
from scripts.openapi import DOCUMENT

_PARAMETER = re.compile(r"\{[^}]+\}")


def _allowed(method: str, path: str) -> bool:
    resource = f"{method}/{_PARAMETER.sub('x', path).lstrip('/')}"
    return any(fnmatchcase(resource, f"{m}/{p}") for m, p in TENANT_ROUTES)


def test_tenant_keys_reach_exactly_the_tenant_and_key_routes() -> None:
    paths = json.loads(DOCUMENT.read_text())["paths"]
    checked = 0
    for path, operations in paths.items():
        for method, operation in operations.items():
            tags = set(operation.get("tags", []))
            assert tags & {"tenant", "operator", "keys"}, (method, path)
            expected = bool(tags & {"tenant", "keys"})
            assert _allowed(method.upper(), path) == expected, (method, path, tags)
            checked += 1
    assert _allowed("POST", "/models/{version}/approval")
    assert not _allowed("POST", "/tenants/{tenantId}/models/{version}/approval")
    assert checked >= 20
