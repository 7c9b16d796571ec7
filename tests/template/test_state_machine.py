"""Structural checks of the ASL that neither `sam validate` nor cfn-lint perform."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TERMINAL_TYPES = {"Succeed", "Fail"}
# Task states whose failure may end the execution without a Catch: none. Every task is caught.
SERVICE_RESOURCE = re.compile(r"^arn:aws:states:::(?P<service>[a-z-]+(:[a-zA-Z]+)?)")


def _targets(state: dict[str, Any]) -> set[str]:
    found = set()
    if "Next" in state:
        found.add(state["Next"])
    if "Default" in state:
        found.add(state["Default"])
    for choice in state.get("Choices", []):
        found.add(choice["Next"])
    for catcher in state.get("Catch", []):
        found.add(catcher["Next"])
    return found


def test_every_placeholder_has_a_substitution_and_every_substitution_is_used(
    asl_text: str, state_machine: dict[str, Any]
) -> None:
    placeholders = set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", asl_text))
    substitutions = set(state_machine["Properties"]["DefinitionSubstitutions"])
    assert placeholders - substitutions == set(), "placeholders without a substitution"
    assert substitutions - placeholders == set(), "substitutions the definition never uses"


def test_every_transition_targets_an_existing_state_and_every_state_is_reachable(asl: dict[str, Any]) -> None:
    states = asl["States"]
    assert asl["StartAt"] in states
    for name, state in states.items():
        missing = _targets(state) - set(states)
        assert not missing, f"{name!r} points at missing states {missing}"
    reachable, frontier = set(), [asl["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reachable:
            continue
        reachable.add(name)
        frontier.extend(_targets(states[name]))
    assert set(states) - reachable == set(), "unreachable states"


def test_every_non_terminal_state_moves_on(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] in TERMINAL_TYPES:
            continue
        assert state.get("End") or _targets(state), f"{name!r} is a dead end"


def test_state_names_read_as_sentences(asl: dict[str, Any]) -> None:
    for name in asl["States"]:
        words = name.rstrip("?").split()
        assert len(words) >= 3, f"{name!r}: name states as a short sentence"
        assert name[0].isupper(), f"{name!r}: start with a capital"
        assert not re.search(r"[a-z][A-Z]", name), f"{name!r}: no camelCase in state names"


def test_every_aws_task_retries_throttling_and_is_caught(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] != "Task":
            continue
        retried = {error for retrier in state.get("Retry", []) for error in retrier["ErrorEquals"]}
        assert retried, f"{name!r} has no Retry"
        assert any("Throttl" in e or "TooManyRequests" in e or "ThroughputExceeded" in e for e in retried), (
            f"{name!r} does not retry throttling"
        )
        assert state.get("Catch"), f"{name!r} has no Catch: a failure would not be recorded on the job"


def test_token_waits_are_bounded(asl: dict[str, Any]) -> None:
    for name, state in asl["States"].items():
        if state["Type"] == "Task" and state["Resource"].endswith(".waitForTaskToken"):
            assert "TimeoutSecondsPath" in state or "TimeoutSeconds" in state, f"{name!r} could wait forever"
            timeout_catchers = [c for c in state["Catch"] if "States.Timeout" in c["ErrorEquals"]]
            assert timeout_catchers, f"{name!r} does not handle its timeout"
    assert asl["TimeoutSeconds"] > 0


def test_pipeline_start_is_idempotent_on_the_job_id(asl: dict[str, Any]) -> None:
    (start,) = [
        s
        for s in asl["States"].values()
        if s.get("Resource", "").endswith("sagemaker:startPipelineExecution")
    ]
    assert start["Parameters"]["ClientRequestToken.$"] == "$.registration.job.jobId"


def test_pipeline_parameters_match_the_pipeline_definition(asl: dict[str, Any]) -> None:
    (start,) = [
        s
        for s in asl["States"].values()
        if s.get("Resource", "").endswith("sagemaker:startPipelineExecution")
    ]
    passed = [p["Name"] for p in start["Parameters"]["PipelineParameters"]]
    assert len(passed) == len(set(passed)), "a parameter is passed twice"
    definition = json.loads((ROOT / "pipeline" / "definition.json").read_text())
    declared = {p["Name"]: p for p in definition["Parameters"]}
    assert set(passed) - set(declared) == set(), "the state machine passes parameters the pipeline lacks"
    required = {name for name, p in declared.items() if "DefaultValue" not in p}
    assert required - set(passed) == set(), "parameters without a default that are never passed"


def test_cost_allocation_identity_reaches_the_pipeline(asl: dict[str, Any]) -> None:
    (start,) = [
        s
        for s in asl["States"].values()
        if s.get("Resource", "").endswith("sagemaker:startPipelineExecution")
    ]
    passed = {p["Name"] for p in start["Parameters"]["PipelineParameters"]}
    assert {"TenantId", "Tier", "JobId", "TenantRoleArn", "ModelPackageGroupName"} <= passed


def test_every_slot_release_path_goes_through_the_release_state(asl: dict[str, Any]) -> None:
    """After admission, every way out of the build passes 'Release the job's slot' (invariant 3)."""
    states = asl["States"]
    after_admission = ["Start the tenant's pipeline build", "Wait for the pipeline to finish"]
    release = "Release the job's slot"
    for start in [*after_admission, "Wait in the tier's queue for a free slot"]:
        # Every path from start to a terminal state must cross the release state.
        stack, seen = [start], set()
        while stack:
            name = stack.pop()
            if name in seen or name == release:
                continue
            seen.add(name)
            state = states[name]
            assert state["Type"] not in TERMINAL_TYPES, f"{start!r} can end at {name!r} without releasing"
            stack.extend(_targets(state))


def test_release_gives_back_every_counter_the_take_charged(asl: dict[str, Any]) -> None:
    """The take (controlplane.admission.slot_store) charges the tier, the account and the tenant's share; the
    release must give back all three in the transaction whose lease delete makes it happen once."""
    items = asl["States"]["Release the job's slot"]["Parameters"]["TransactItems"]
    assert "Delete" in items[0]
    assert items[0]["Delete"]["ConditionExpression"] == "attribute_exists(jobId)"
    updates = [item["Update"] for item in items[1:]]
    decremented = {
        (update["TableName"], json.dumps(update["Key"], sort_keys=True))
        for update in updates
        if "#running" in update["UpdateExpression"]
    }
    assert decremented == {
        ("${TiersTableName}", json.dumps({"tier": {"S.$": "$.registration.plan.tier"}})),
        ("${TiersTableName}", json.dumps({"tier": {"S": "account"}})),
        (
            "${FairShareTableName}",
            json.dumps(
                {
                    "shareId": {
                        "S.$": "States.Format('{}#{}', $.registration.plan.tier, $.registration.job.tenantId)"
                    }
                }
            ),
        ),
    }


def test_every_way_out_of_the_waiting_room_leaves_both_waiting_room_indexes(asl: dict[str, Any]) -> None:
    """A job leaves the tier-queue and share-queue indexes together, or admission could pick a job that is
    no longer waiting (or miss one that is)."""
    removals = 0
    for name, state in asl["States"].items():
        expression = state.get("Parameters", {}).get("UpdateExpression", "")
        if "#queueTier" in expression or "#queueShare" in expression:
            removed = expression.split(" REMOVE ", 1)[1] if " REMOVE " in expression else ""
            assert "#queueTier" in removed, name
            assert "#queueShare" in removed, name
            removals += 1
    # The first queueing, the requeue after a capacity shortage, and the six Record states.
    assert removals == 8


def test_large_datasets_are_validated_by_a_distributed_map_of_the_validate_function(
    asl: dict[str, Any],
) -> None:
    states = asl["States"]
    choice = states["Is the dataset large enough to validate in ranges?"]
    assert choice["Choices"][0]["Variable"] == "$.registration.plan.validateInRanges"
    assert choice["Default"] == "Validate the dataset against the tenant's contract"
    mapped = states["Validate every range of the dataset"]
    assert mapped["Type"] == "Map"
    assert mapped["ItemProcessor"]["ProcessorConfig"]["Mode"] == "DISTRIBUTED"
    assert mapped["ItemSelector"]["step"] == "range"
    assert mapped["Catch"], "a failed range must be recorded on the job"
    assert mapped["Next"] == "Merge the ranges into the serial verdict"
    for name, inner in mapped["ItemProcessor"]["States"].items():
        assert len(name.split()) >= 3, name
        assert inner["Parameters"]["FunctionName"] == "${ValidateDatasetFunctionArn}"
        retried = {error for retrier in inner["Retry"] for error in retrier["ErrorEquals"]}
        assert "Lambda.TooManyRequestsException" in retried, "a burst of ranges is throttled, then retried"
    assert states["Merge the ranges into the serial verdict"]["Next"] == "Is the dataset valid?"
