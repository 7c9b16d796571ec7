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

ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "openapi.json"

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
    text = app.get_openapi_json_schema(
        title="MLaaS tenant build control plane: status API",
        version="1.0.0",
        description=(
            "Tenant routes (jobs) and operator routes (tiers, tenants). Every request carries "
            "`Authorization: Bearer <API key>`; the REQUEST authorizer resolves the key to a role "
            "and, for tenants, the tenant id."
        ),
    )
    return json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


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
