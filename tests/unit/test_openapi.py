"""docs/openapi.json is what the code generates (regenerate with `make openapi`)."""

from __future__ import annotations

import json
import re

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
        "/keys",
        "/keys/{keyId}",
        "/keys/{keyId}/rotate",
        "/tenants/{tenantId}/keys",
        "/tenants/{tenantId}/keys/{keyId}",
        "/tenants/{tenantId}/keys/{keyId}/rotate",
        "/audit",
        "/tenants/{tenantId}/jobs",
        "/tenants/{tenantId}/jobs/{jobId}",
        "/tenants/{tenantId}/jobs/{jobId}/execution",
        "/models",
        "/models/{version}",
        "/models/{version}/approval",
        "/tenants/{tenantId}/models",
        "/tenants/{tenantId}/models/{version}",
        "/tenants/{tenantId}/models/{version}/approval",
        "/usage",
        "/tenants/{tenantId}/usage",
    }
    assert (
        {"post"}
        == set(paths["/models/{version}/approval"])
        == set(paths["/tenants/{tenantId}/models/{version}/approval"])
    )
    assert "ApprovalRequest" in document["components"]["schemas"]
    assert {"get"} == set(paths["/usage"]) == set(paths["/tenants/{tenantId}/usage"])
    assert {"month", "limit", "nextToken"} <= {p["name"] for p in paths["/usage"]["get"]["parameters"]}
    job = document["components"]["schemas"]["JobView"]["properties"]
    assert {"modelPackageArn", "metrics", "billableSeconds", "costUsd", "results", "cost"} <= set(job)
    explanation = document["components"]["schemas"]["ExplanationView"]["properties"]
    assert {"summary", "waiting", "slot", "failure"} <= set(explanation)
    assert {"get"} == set(paths["/jobs"]) == set(paths["/jobs/{jobId}"])
    assert {"get"} == set(paths["/tenants/{tenantId}/jobs"]) == set(paths["/tenants/{tenantId}/jobs/{jobId}"])
    assert {"get"} == set(paths["/tenants/{tenantId}/jobs/{jobId}/execution"])
    assert {"visits", "current", "status"} <= set(
        document["components"]["schemas"]["ExecutionPathView"]["properties"]
    )
    assert {"post"} == set(paths["/jobs/{jobId}/cancel"])
    assert {"get", "post"} == set(paths["/tenants"])
    assert {"get", "patch", "delete"} == set(paths["/tenants/{tenantId}"])
    assert "TenantCreate" in document["components"]["schemas"]
    assert "metricThreshold" in document["components"]["schemas"]["TenantCreate"]["properties"]
    assert {"get", "post"} == set(paths["/keys"]) == set(paths["/tenants/{tenantId}/keys"])
    assert {"delete"} == set(paths["/keys/{keyId}"]) == set(paths["/tenants/{tenantId}/keys/{keyId}"])
    listed = set(document["components"]["schemas"]["KeyView"]["properties"])
    assert {"keyId", "prefix", "createdAt", "lastUsedAt", "expiresAt", "state"} <= listed
    assert not listed & {"keyHash", "apiKey", "secret"}
    assert "Revocation bound: 0 s" in document["info"]["description"]


def test_every_operation_documents_the_error_bodies_the_api_sends() -> None:
    """4xx bodies are controlplane.api.problems' models (tests/unit/test_api.py validates real answers
    against them), with no reference left to a schema the document lacks."""
    document = json.loads(DOCUMENT.read_text())
    schemas = document["components"]["schemas"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            where = f"{method.upper()} {path}"
            assert responses["4XX"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Problem"
            }, where
            if "422" in responses:
                assert responses["422"]["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ValidationProblem"
                }, where
    assert set(schemas["FieldProblem"]["required"]) == {"location", "field", "message", "type"}
    referenced = set(re.findall(r"#/components/schemas/(\w+)", json.dumps(document)))
    assert referenced <= set(schemas), referenced - set(schemas)
