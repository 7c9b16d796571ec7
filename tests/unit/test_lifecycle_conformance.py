"""Every writer of a job's status, Python or ASL, conforms to the one transitions table.

- The ASL: every state that SETs a job's status has exactly the condition ``status_condition`` gives
  for its status (``make asl`` writes them; a stale definition fails here), and does what
  ``status_update`` does for that status (timeline, finishedAt, open-jobs index, waiting attributes).
- Python: no UpdateExpression outside ``jobs.lifecycle`` SETs the status, and the store's transition
  applies exactly when the table allows it, from every status to every status, on the real table.
- The job id the state machine computes with States.Hash is the one register_upload derives.
"""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from controlplane.jobs import store as jobs
from controlplane.jobs.lifecycle import (
    SOURCES,
    TERMINAL_STATUSES,
    JobStatus,
    can_transition,
    status_condition,
    status_update,
)
from controlplane.uploads.keys import derive_job_id
from scripts import asl_conditions

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "statemachines" / "training_job.asl.json"
ASL = json.loads(DEFINITION.read_text())
NOW = "2024-05-01T12:00:00.000Z"


def _attributes(expression: str, clause: str) -> set[str]:
    """The attribute placeholders a SET or REMOVE clause of an UpdateExpression writes."""
    match = re.search(rf"\b{clause}\b(.*?)(?:\b(?:SET|REMOVE|ADD|DELETE)\b|$)", expression)
    if match is None:
        return set()
    return {part.split("=")[0].strip() for part in match.group(1).split(",") if part.strip()}


STATUS_WRITES = [
    (name, parameters, asl_conditions.written_status(parameters))
    for name, parameters in asl_conditions.job_writes(ASL["States"])
    if asl_conditions.written_status(parameters) is not None
]


def test_the_committed_state_machine_has_the_generated_conditions() -> None:
    generated = asl_conditions.render(asl_conditions.conform(json.loads(DEFINITION.read_text())))
    assert generated == DEFINITION.read_text(), "run `make asl` and commit statemachines/"


def test_every_status_the_asl_writes_is_covered() -> None:
    written = {target for _, _, target in STATUS_WRITES}
    # The gate admits (Python) and validation validates or rejects (Python); the state machine does the rest.
    assert written == set(JobStatus) - {
        JobStatus.RECEIVED,
        JobStatus.VALIDATED,
        JobStatus.ADMITTED,
        JobStatus.REJECTED,
    }


@pytest.mark.parametrize(("name", "parameters", "target"), STATUS_WRITES, ids=[w[0] for w in STATUS_WRITES])
def test_asl_status_writes_follow_the_table(name: str, parameters: dict[str, Any], target: JobStatus) -> None:
    creating = name in asl_conditions.CREATING_STATES
    condition = status_condition(target, creating=creating, owned=creating)
    assert parameters["ConditionExpression"] == condition.expression
    values = parameters["ExpressionAttributeValues"]
    for placeholder, status in condition.values.items():
        assert values[placeholder] == {"S": status}
    assert {key for key in values if key.startswith(":from")} == set(condition.values)
    # The timeline entry names the same status.
    assert values[":entry"]["L"][0]["M"]["status"] == {"S": target.value}
    # It does what the Python writer does for that status.
    reference = status_update(target, at=NOW, state=name)
    expression = parameters["UpdateExpression"]
    assert {s.split("=")[0].strip() for s in reference.sets} <= _attributes(expression, "SET"), name
    assert set(reference.removes) <= _attributes(expression, "REMOVE"), name
    for placeholder, attribute in reference.names.items():
        assert parameters["ExpressionAttributeNames"].get(placeholder) == attribute


def test_asl_writes_that_set_no_status_never_touch_it() -> None:
    others = [
        (name, parameters)
        for name, parameters in asl_conditions.job_writes(ASL["States"])
        if asl_conditions.written_status(parameters) is None
    ]
    assert others, "the release stamps slotReleasedAt"
    for name, parameters in others:
        assert "#status" not in parameters.get("UpdateExpression", ""), name


def _update_expressions(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        values: list[ast.AST] = []
        if isinstance(node, ast.keyword) and node.arg == "UpdateExpression":
            values.append(node.value)
        elif isinstance(node, ast.Dict):
            values += [
                v
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and k.value == "UpdateExpression"
            ]
        for value in values:
            found += [
                c.value for c in ast.walk(value) if isinstance(c, ast.Constant) and isinstance(c.value, str)
            ]
    return found


PYTHON_SOURCES = sorted(
    [*(ROOT / "layers" / "shared").rglob("*.py"), *(ROOT / "functions").rglob("app.py")], key=str
)


@pytest.mark.parametrize("path", PYTHON_SOURCES, ids=lambda path: str(path.relative_to(ROOT)))
def test_no_python_writer_sets_a_status_by_hand(path: Path) -> None:
    if path.name == "lifecycle.py":
        return
    for text in _update_expressions(ast.parse(path.read_text())):
        assert not re.search(r"#status\s*=", text), f"{path}: {text!r} sets the status outside status_update"


def test_status_update_is_the_python_writer() -> None:
    update = status_update(JobStatus.SUCCEEDED, at=NOW, state="x")
    assert update.expression.startswith("SET #status = :status")
    assert update.condition == status_condition(JobStatus.SUCCEEDED).expression


@pytest.mark.parametrize("target", sorted(JobStatus), ids=str)
def test_the_store_transitions_exactly_as_the_table_allows(
    target: JobStatus, aws: None, table: Callable[[str], Any]
) -> None:
    jobs_table = table("JOBS_TABLE_NAME")
    for current in JobStatus:
        job_id = f"job-{current.value.lower()}-{target.value.lower()}"
        jobs_table.put_item(
            Item={"jobId": job_id, "tenantId": "acme", "status": current.value, "timeline": []}
        )
        result = jobs.transition(job_id, target, state="a test", now=NOW, reason="because")
        assert result.applied is can_transition(current, target), (current, target)
        stored = jobs_table.get_item(Key={"jobId": job_id})["Item"]
        assert stored["status"] == (target if result.applied else current).value
        assert result.item is not None
        assert result.item.status is (target if result.applied else current)
        if result.applied and target in TERMINAL_STATUSES:
            assert "openStatus" not in stored
            assert stored["finishedAt"] == NOW
        elif result.applied:
            assert stored["openStatus"] == target.value
            assert stored["sweepAt"] == NOW


def test_a_terminal_status_is_never_left() -> None:
    for status in TERMINAL_STATUSES:
        assert not any(status in sources for sources in SOURCES.values())


def test_the_state_machine_names_the_job_as_register_upload_does() -> None:
    """Runs the definition's first states in moto's Step Functions interpreter on a tricky key."""
    first = ASL["StartAt"]
    # Every state from the start up to registration (both branches of the Choice), then stop.
    states: dict[str, Any] = {}
    pending = [first]
    while pending:
        name = pending.pop()
        if name in states or name in {"Register the upload as a job", "Named"}:
            continue
        state = dict(ASL["States"][name])
        if state.get("Next") == "Register the upload as a job":
            state["Next"] = "Named"
        states[name] = state
        pending += [choice["Next"] for choice in state.get("Choices", [])]
        pending += [state[key] for key in ("Next", "Default") if key in state]
    states["Named"] = {"Type": "Succeed"}
    definition = {"StartAt": first, "States": states}
    events = [
        {
            "detail": {
                "bucket": {"name": "uploads-bkt"},
                "object": {
                    "key": "tenants/acme/uploads/red+flower%21.csv",
                    "version-id": "3HL4kqtJlcpXroDTDmjVBH40Nrjfkd",
                },
            }
        },
        {"detail": {"bucket": {"name": "uploads-bkt"}, "object": {"key": "tenants/acme/uploads/a.csv"}}},
    ]
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        arn = sfn.create_state_machine(
            name="naming", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        for number, event in enumerate(events):
            execution = sfn.start_execution(stateMachineArn=arn, name=f"e{number}", input=json.dumps(event))[
                "executionArn"
            ]
            deadline = time.monotonic() + 60
            while (described := sfn.describe_execution(executionArn=execution))["status"] == "RUNNING":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert described["status"] == "SUCCEEDED", described
            obj = event["detail"]["object"]
            expected = derive_job_id("uploads-bkt", obj["key"], obj.get("version-id", "null"))
            assert json.loads(described["output"])["naming"]["jobId"] == expected


def _resolved(node: Any, paths: dict[str, str]) -> Any:
    """The state's parameters with each ``"S.$": <path>`` replaced by the value the test gives that path."""
    if isinstance(node, list):
        return [_resolved(item, paths) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        key.removesuffix(".$"): (paths[value] if key.endswith(".$") else _resolved(value, paths))
        for key, value in node.items()
    }


@pytest.mark.parametrize("status", ["RECEIVED", "QUEUED", "RUNNING"])
def test_a_duplicate_delivery_whose_registration_failed_never_ends_another_executions_job(
    status: str, aws: None, table: Callable[[str], Any]
) -> None:
    """The soak once ended with a slot held by a RUNNING execution whose job was FAILED "could not be
    registered": a second delivery of the same upload failed to register and its record ended the job the
    first delivery was running (and removed its wait tokens). The record now needs the job to be its own."""
    from tests.unit.conftest import ENVIRONMENT, aws_client  # noqa: PLC0415

    state = ASL["States"]["Record that the upload could not be registered"]
    assert state["Catch"][0] == {
        "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
        "ResultPath": "$.recordError",
        "Next": "Ignore the duplicate delivery",
    }
    job_id = "job-dup"
    table("JOBS_TABLE_NAME").put_item(
        Item={
            "jobId": job_id,
            "status": status,
            "executionArn": "arn:first",
            "tenantId": "acme",
            "timeline": [],
        }
    )

    def record(execution_arn: str) -> Any:
        parameters = dict(state["Parameters"]) | {"TableName": ENVIRONMENT["JOBS_TABLE_NAME"]}
        paths = {
            "$.naming.jobId": job_id,
            "$$.State.EnteredTime": NOW,
            "$$.State.Name": "Record that the upload could not be registered",
            "$$.Execution.Id": execution_arn,
            "$.unregistered.tenantId": "acme",
            "$.upload.bucket": "b",
            "$.upload.key": "tenants/acme/uploads/x.csv",
            "$.upload.versionId": "v1",
        }
        paths |= {
            path: "reason" for path in re.findall(r'"S\.\$": "(States\.Format[^"]*)"', json.dumps(parameters))
        }
        return aws_client("dynamodb").update_item(**_resolved(parameters, paths))

    with pytest.raises(aws_client("dynamodb").exceptions.ConditionalCheckFailedException):
        record("arn:second")
    assert table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]["status"] == status
    if status == "RECEIVED":  # its own execution's failed registration does end it
        record("arn:first")
        assert table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"]["status"] == "FAILED"
