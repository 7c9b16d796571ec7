"""The permission check can fail: template.yaml with one statement removed from one function's role, deployed
into an emulator of its own, and the call that statement allowed is reported denied (issue 12, item 5).

The copy differs from template.yaml by that one statement (and absolute code paths, since it is written
elsewhere); everything else, the flow and the check, is what the demo and tests/integration run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud import LocalCloud
from localcloud.deploy import Stack
from localcloud.template import load_template_body
from scripts.jobs import tenant_jobs

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CODE_LOCATIONS = ("CodeUri", "ContentUri", "DefinitionUri")
# register_upload reads the upload's tenant (and its tier) with this statement.
FUNCTION = "RegisterUploadFunction"
REMOVED = {
    "Effect": "Allow",
    "Action": "dynamodb:GetItem",
    "Resource": [{"Fn::GetAtt": ["TenantsTable", "Arn"]}, {"Fn::GetAtt": ["TiersTable", "Arn"]}],
}


def _without_statement(directory: Path) -> Path:
    body = load_template_body(ROOT / "template.yaml")
    for resource in body["Resources"].values():
        properties = resource.get("Properties") or {}
        for key in CODE_LOCATIONS:
            if isinstance(properties.get(key), str):
                properties[key] = str((ROOT / properties[key]).resolve())
    (policy,) = body["Resources"][FUNCTION]["Properties"]["Policies"]
    policy["Statement"].remove(REMOVED)  # ValueError if template.yaml no longer has it
    path = directory / "template-without-a-statement.json"
    path.write_text(json.dumps(body, indent=1))
    return path


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCloud, Stack]]:
    directory = tmp_path_factory.mktemp("permissions")
    with LocalCloud(
        state_dir=directory / "state", schedule_interval_seconds=3600, lambda_timeout_scale=5.0
    ) as cloud:
        yield cloud, cloud.deploy(_without_statement(directory), stack_name="mlaas-perm")


def _job_of(cloud: LocalCloud, stack: Stack, tenant_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        jobs = tenant_jobs(cloud.client("dynamodb"), stack.outputs["JobsTableName"], tenant_id)
        if jobs and jobs[0]["status"] == "REJECTED":
            return jobs[0]
        time.sleep(0.5)
    raise AssertionError(f"no job of {tenant_id} was recorded")


def test_the_call_a_removed_statement_allowed_is_reported_denied(deployed: tuple[LocalCloud, Stack]) -> None:
    cloud, stack = deployed
    before = cloud.permission_report()
    assert before.denied == (), "\n".join(before.summary_lines())  # the deploy's own calls are allowed

    # An upload of a tenant that was never onboarded: register_upload looks the tenant up, and rejects it.
    cloud.client("s3").put_object(
        Bucket=stack.outputs["UploadsBucketName"], Key="tenants/nobody/uploads/x.csv", Body=b"a,b\n1,2\n"
    )
    job = _job_of(cloud, stack, "nobody")
    assert "nobody" in " ".join(job["reasons"])  # moto does not enforce IAM: the function still ran

    report = cloud.permission_report()
    tenants_table = stack.attribute("TenantsTable", "Arn")
    denied = [(d.principal, d.action, d.resource, d.operation) for d in report.denied]
    assert (FUNCTION, "dynamodb:GetItem", tenants_table, "GetItem") in denied, "\n".join(
        report.summary_lines()
    )
    assert {d.principal for d in report.denied} == {FUNCTION}  # nothing else lost a permission
    assert not report.ok
    assert f"DENIED {FUNCTION}: dynamodb:GetItem on {tenants_table}" in "\n".join(report.summary_lines())
