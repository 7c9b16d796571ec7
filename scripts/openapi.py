"""Generate docs/openapi.json from the status API's routes and models (Powertools' OpenAPI generator).

    make openapi          # or: python -m scripts.openapi [--check]

A unit test fails when the committed document differs from what the code generates.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"
_SCHEMAS = "#/components/schemas/"

# Importing the handler validates its environment at "cold start"; placeholders suffice to read routes.
_PLACEHOLDER_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "tenant-build-control-plane",
    "POWERTOOLS_METRICS_NAMESPACE": "MLaaS/ControlPlane",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "AWS_DEFAULT_REGION": "us-east-1",
    "JOBS_TABLE_NAME": "jobs",
    "TENANTS_TABLE_NAME": "tenants",
    "TIERS_TABLE_NAME": "tiers",
    "SLOT_LEASES_TABLE_NAME": "slot-leases",
    "FAIR_SHARE_TABLE_NAME": "fair-share",
    "USAGE_TABLE_NAME": "usage",
    "UPLOADS_BUCKET_NAME": "uploads-bucket",
    "ARTIFACTS_BUCKET_NAME": "artifacts-bucket",
    "PIPELINE_NAME": "tenant-training",
    "TRAINING_IMAGE_URI": "image",
    "STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:training-job",
    "API_KEYS_TABLE_NAME": "api-keys",
}


def generate() -> str:
    for name, value in _PLACEHOLDER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    app = importlib.import_module("functions.api.app").app
    keys = importlib.import_module("controlplane.api.keys")
    text = app.get_openapi_json_schema(
        title="MLaaS tenant build control plane: status API",
        version="1.0.0",
        description=(
            "Tenant routes (jobs, keys) and operator routes (tiers, tenants, every key, the audit trail). "
            "Every request carries `Authorization: Bearer <API key>`; the REQUEST authorizer resolves the "
            "key to a role, its key id and, for tenants, the tenant id. Keys expire (tenant keys after 365 "
            "days, operator keys after 90, as deployed); a rotated key works until its grace period ends "
            f"(default 24 h). Revocation bound: {keys.REVOCATION_BOUND_SECONDS} s. API Gateway does not "
            f"cache the authorizer's result (ReauthorizeEvery {keys.REVOCATION_BOUND_SECONDS}) and the "
            "authorizer reads the key strongly consistently, so a revoked, "
            "expired or past-grace key is refused (401) from the next request on."
        ),
    )
    return json.dumps(_with_error_bodies(json.loads(text)), indent=2, sort_keys=True) + "\n"


def _with_error_bodies(document: dict[str, Any]) -> dict[str, Any]:
    """Describe the error bodies the API really sends (controlplane.api.problems): Powertools documents its
    own 422 shape, which the API's exception handler replaces, and no other 4xx."""
    problems = importlib.import_module("controlplane.api.problems")
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # Powertools' shapes: its 422 body, and a response-validation body no route of ours can answer with.
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(name, None)
    for model in (problems.Problem, problems.ValidationProblem):
        schema = model.model_json_schema(by_alias=True, ref_template=f"{_SCHEMAS}{{model}}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _error_response(
                    "The request does not match the route", "ValidationProblem"
                )
            responses["4XX"] = _error_response(
                "Refused: bad request (400), no or wrong credentials (401, 403), no such resource (404), "
                "conflict (409)",
                "Problem",
            )
            responses["429"] = _error_response(
                "Over the request rate of the caller's tier (per tenant; operators have a plan of their "
                "own): API Gateway's THROTTLED response. Send again after Retry-After seconds.",
                "Throttled",
            ) | {
                "headers": {
                    "Retry-After": {
                        "description": "Seconds to wait before sending again",
                        "schema": {"type": "integer", "minimum": 1},
                    }
                }
            }
    schemas["Throttled"] = {
        "title": "Throttled",
        "type": "object",
        "properties": {"message": {"type": "string", "title": "Message"}},
        "required": ["message"],
    }
    return document


def _error_response(description: str, schema: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": _SCHEMAS + schema}}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m scripts.openapi", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/openapi.json is stale")
    arguments = parser.parse_args()
    text = generate()
    if arguments.check:
        if not DOCUMENT.is_file() or DOCUMENT.read_text() != text:
            raise SystemExit("docs/openapi.json is stale: run `make openapi`")
        return
    DOCUMENT.write_text(text)
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
