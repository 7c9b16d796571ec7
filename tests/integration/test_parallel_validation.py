"""A real upload above the parallel threshold goes through the state machine's Distributed Map (split,
one child execution per range running the real validate_dataset handler, merge) and ends with exactly the
verdict one serial run gives: for a valid file, and for an invalid one with errors on range boundaries.

A stack of its own, deployed with the threshold and the range size made tiny (template parameters), beside
the package's stack in the same emulator.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from controlplane.tenants.model import TenantContract
from controlplane.uploads.validation import DatasetRules, validate_csv
from scripts.sample_data import SampleTenant
from tests.integration.conftest import ROOT, Deployed, make_tenant_factory, upload, valid_csv, wait_for_jobs

pytestmark = pytest.mark.integration

THRESHOLD = 64 * 1024
RANGE = 96 * 1024


@pytest.fixture(scope="module")
def ranged(deployed: Deployed) -> Deployed:
    stack = deployed.cloud.deploy(
        ROOT / "template.yaml",
        stack_name="mlaas-ranges",
        parameter_overrides={"ParallelValidationBytes": str(THRESHOLD), "ValidationRangeBytes": str(RANGE)},
    )
    return Deployed(deployed.cloud, stack)


def serial_verdict(
    tenant: SampleTenant, body: bytes, max_bytes: int
) -> tuple[bool, list[str], dict[str, Any]]:
    contract = TenantContract.model_validate(
        {
            "targetColumn": tenant.target_column,
            "featureColumns": list(tenant.feature_columns),
            "problemType": tenant.problem_type,
            "minRows": tenant.min_rows,
        }
    )
    rules = DatasetRules.from_contract(contract, max_bytes=max_bytes, tier=tenant.tier)
    report = validate_csv([body], rules)
    return report.valid, list(report.reasons), json.loads(json.dumps(report.stats))


def map_runs(deployed: Deployed, job: dict[str, Any]) -> list[str]:
    """The states the job's execution entered, from its history."""
    sfn = deployed.client("stepfunctions")
    events = sfn.get_execution_history(executionArn=job["executionArn"], maxResults=1000)["events"]
    return [
        event["stateEnteredEventDetails"]["name"] for event in events if "stateEnteredEventDetails" in event
    ]


def check(ranged: Deployed, tenant: SampleTenant, name: str, body: bytes) -> dict[str, Any]:
    assert len(body) > 2 * RANGE
    upload(ranged, tenant.tenant_id, name, body)
    (job,) = wait_for_jobs(
        ranged,
        tenant.tenant_id,
        1,
        statuses={"REJECTED", "QUEUED", "ADMITTED", "RUNNING", "SUCCEEDED", "FAILED"},
    )
    entered = map_runs(ranged, job)
    assert "Validate every range of the dataset" in entered, entered
    assert "Merge the ranges into the serial verdict" in entered
    assert "Validate the dataset against the tenant's contract" not in entered
    # DynamoDB keeps numbers as Decimal: compared as JSON numbers.
    stats = json.loads(json.dumps(job["stats"], default=float))
    assert stats.pop("ranges") == len(body) // RANGE + 1
    valid, reasons, expected = serial_verdict(tenant, body, 100 * 1024 * 1024)
    assert (job["status"] != "REJECTED", job.get("reasons", [])) == (valid, reasons)
    assert stats == expected
    return job


def test_a_valid_large_upload_is_validated_in_ranges_with_the_serial_verdict(ranged: Deployed) -> None:
    tenant = make_tenant_factory(ranged)("standard")
    job = check(ranged, tenant, "large.csv", valid_csv(tenant, rows=9000))
    assert job["status"] != "REJECTED"


def test_an_invalid_large_upload_has_the_serial_reasons_rows_and_lines(ranged: Deployed) -> None:
    tenant = make_tenant_factory(ranged)("standard")
    lines = valid_csv(tenant, rows=9000).split(b"\n")
    starts, offset = [], 0
    for number, line in enumerate(lines, start=1):
        starts.append((offset, number))
        offset += len(line) + 1
    # Errors on the lines just before and after each nominal range boundary.
    for boundary in range(RANGE, offset, RANGE):
        number = next(n for start, n in starts if start >= boundary)
        for bad in (number - 2, number - 1):
            lines[bad] = lines[bad].replace(b",", b",x", 1) if bad % 2 else lines[bad].rsplit(b",", 1)[0]
    job = check(ranged, tenant, "large-bad.csv", b"\n".join(lines))
    assert job["status"] == "REJECTED"
    assert len(job["reasons"]) >= 3
