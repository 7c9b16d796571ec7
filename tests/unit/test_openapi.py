"""docs/openapi.json is what the code generates (regenerate with `make openapi`)."""

from __future__ import annotations

import json

from scripts.openapi import DOCUMENT, generate


def test_the_committed_openapi_document_is_current() -> None:
    assert DOCUMENT.read_text() == generate(), "docs/openapi.json is stale: run `make openapi`"


def test_the_document_describes_every_route_and_names_request_fields() -> None:
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.")
    paths = document["paths"]
    assert set(paths) == {
        "/jobs",
        "/jobs/{jobId}",
        "/jobs/{jobId}/cancel",
        "/tiers",
        "/account",
        "/tiers/{tier}",
        "/tenants",
        "/tenants/{tenantId}",
    }
    assert {"get"} == set(paths["/jobs"]) == set(paths["/jobs/{jobId}"])
    assert {"post"} == set(paths["/jobs/{jobId}/cancel"])
    assert {"get", "post"} == set(paths["/tenants"])
    assert {"get", "patch", "delete"} == set(paths["/tenants/{tenantId}"])
    assert "TenantCreate" in document["components"]["schemas"]
    assert "metricThreshold" in document["components"]["schemas"]["TenantCreate"]["properties"]
