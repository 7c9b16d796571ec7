"""Structural checks of the committed pipeline/definition.json, read as data (no SageMaker SDK).

The definition is what SageMaker runs for every tenant, so what matters for isolation and cost is
checked here: each job's role and tags, where outputs go, the parameters the state machine passes.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pipeline_testing import definition as load_definition
from pipeline_testing import definition_text as load_definition_text

from controlplane.core import tags
from pipeline import build_definition

ROOT = Path(__file__).resolve().parents[2]
# The tag keys from their one definition; each value is the build's own parameter.
COST_TAGS = dict(zip(tags.BUILD_TAGS, ("TenantId", "Tier", "JobId"), strict=True))
# Every SageMaker Pipelines step type, by what it creates. A step that creates a taggable resource must
# carry the three build tags (Arguments.Tags); a RegisterModel step creates a model package version,
# which SageMaker refuses to tag ("Tags are not supported in Model Package versions"), so it carries them
# as CustomerMetadataProperties and no Tags. A step type not listed here fails the tags test until it is
# classified.
TAGGED_STEP_TYPES = {"Processing", "Training", "Tuning", "Transform", "Model", "AutoML", "EMR"}
METADATA_TAGGED_STEP_TYPES = {"RegisterModel"}
UNTAGGED_STEP_TYPES = {"Condition", "Fail", "Lambda", "Callback", "QualityCheck", "ClarifyCheck"}
EXPECTED_TYPES = {
    "MetricThreshold": "Float",
    "ProcessingInstanceCount": "Integer",
    "TrainingInstanceCount": "Integer",
    "MaxRuntimeSeconds": "Integer",
    "UseSpotInstances": "Boolean",
}


@pytest.fixture(scope="module")
def definition_text() -> str:
    text: str = load_definition_text()
    return text


@pytest.fixture(scope="module")
def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = load_definition()
    return loaded


def all_steps(steps: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for step in steps:
        yield step
        if step["Type"] == "Condition":
            yield from all_steps(step["Arguments"].get("IfSteps", []))
            yield from all_steps(step["Arguments"].get("ElseSteps", []))


def jobs(definition: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for step in all_steps(definition["Steps"]) if step["Type"] in {"Processing", "Training"}]


def get(parameter: str) -> dict[str, str]:
    return {"Get": f"Parameters.{parameter}"}


def under_model_output(value: Any) -> bool:
    """A Std:Join whose first part is the job-scoped ModelOutputUri."""
    join = value.get("Std:Join") if isinstance(value, dict) else None
    if not isinstance(join, dict):
        return False
    return bool(join["On"] == "" and join["Values"][0] == get("ModelOutputUri"))


def state_machine_parameter_names() -> list[str]:
    """The PipelineParameters names of the ASL's startPipelineExecution task."""

    def tasks(node: Any) -> Iterator[dict[str, Any]]:
        if isinstance(node, dict):
            if str(node.get("Resource", "")).endswith("sagemaker:startPipelineExecution"):
                yield node
            for child in node.values():
                yield from tasks(child)
        elif isinstance(node, list):
            for child in node:
                yield from tasks(child)

    asl = json.loads((ROOT / "statemachines" / "training_job.asl.json").read_text())
    found = list(tasks(asl))
    assert len(found) == 1, "expected one startPipelineExecution task in the state machine"
    return [item["Name"] for item in found[0]["Parameters"]["PipelineParameters"]]


def contract_parameter_names() -> list[str]:
    text = (ROOT / "docs" / "contracts.md").read_text()
    after_heading = text.split("## Pipeline parameters", 1)[1].split("\n", 1)[1]
    section = re.split(r"\n\s*\n|\n#", after_heading, maxsplit=1)[0]
    return [name.strip().rstrip(".") for name in section.replace("\n", " ").split(",") if name.strip()]


def test_parameters_are_exactly_the_ones_the_state_machine_passes(definition: dict[str, Any]) -> None:
    names = [parameter["Name"] for parameter in definition["Parameters"]]
    assert names == list(build_definition.PARAMETER_NAMES)
    assert sorted(names) == sorted(state_machine_parameter_names())
    assert names == contract_parameter_names()


def test_parameter_types_accept_the_strings_step_functions_sends(definition: dict[str, Any]) -> None:
    types = {parameter["Name"]: parameter["Type"] for parameter in definition["Parameters"]}
    assert types == {name: EXPECTED_TYPES.get(name, "String") for name in build_definition.PARAMETER_NAMES}
    problem_type = next(p for p in definition["Parameters"] if p["Name"] == "ProblemType")
    assert problem_type["EnumValues"] == ["binary_classification", "regression"]


def test_tenant_specific_parameters_have_no_default(definition: dict[str, Any]) -> None:
    """A start that forgets a tenant's value is rejected instead of training on a default."""
    defaults = {parameter["Name"] for parameter in definition["Parameters"] if "DefaultValue" in parameter}
    assert defaults == {
        "ProcessingInstanceType",
        "ProcessingInstanceCount",
        "TrainingInstanceType",
        "TrainingInstanceCount",
        "UseSpotInstances",
        "MaxRuntimeSeconds",
    }


def test_every_parameter_is_used_and_every_use_is_declared(
    definition_text: str, definition: dict[str, Any]
) -> None:
    declared = {parameter["Name"] for parameter in definition["Parameters"]}
    used = set(re.findall(r'"Get": "Parameters\.([A-Za-z]+)"', json.dumps(definition["Steps"])))
    assert used == declared


def test_every_job_runs_as_the_tenant_role(definition: dict[str, Any]) -> None:
    found = jobs(definition)
    assert {step["Type"] for step in found} == {"Processing", "Training"}
    for step in found:
        assert step["Arguments"]["RoleArn"] == get("TenantRoleArn"), step["Name"]


def test_every_job_carries_the_cost_tags_from_parameters(definition: dict[str, Any]) -> None:
    for step in jobs(definition):
        tags = {tag["Key"]: tag["Value"] for tag in step["Arguments"]["Tags"]}
        assert tags == {key: get(name) for key, name in COST_TAGS.items()}, step["Name"]


def test_every_step_that_creates_a_resource_carries_the_build_tags(definition: dict[str, Any]) -> None:
    """Tenant, tier and job on everything a build creates, from the build's own parameters."""
    expected = {key: get(name) for key, name in COST_TAGS.items()}
    seen = set()
    for step in all_steps(definition["Steps"]):
        kind, arguments = step["Type"], step.get("Arguments", {})
        seen.add(kind)
        if kind in TAGGED_STEP_TYPES:
            found = {tag["Key"]: tag["Value"] for tag in arguments.get("Tags", [])}
            assert {key: found.get(key) for key in expected} == expected, step["Name"]
        elif kind in METADATA_TAGGED_STEP_TYPES:
            assert "Tags" not in arguments, f"{step['Name']}: a model package version cannot be tagged"
            metadata = arguments.get("CustomerMetadataProperties", {})
            assert {key: metadata.get(key) for key in expected} == expected, step["Name"]
        else:
            assert kind in UNTAGGED_STEP_TYPES, (
                f"{step['Name']}: classify step type {kind!r} for the tags test"
            )
    assert {"Processing", "Training", "RegisterModel"} <= seen


def test_every_output_lands_under_the_job_scoped_model_output_uri(definition: dict[str, Any]) -> None:
    for step in jobs(definition):
        arguments = step["Arguments"]
        if step["Type"] == "Processing":
            for output in arguments["ProcessingOutputConfig"]["Outputs"]:
                assert under_model_output(output["S3Output"]["S3Uri"]), (step["Name"], output["OutputName"])
        else:
            assert under_model_output(arguments["OutputDataConfig"]["S3OutputPath"]), step["Name"]
            assert "CheckpointConfig" not in arguments
            assert arguments["ProfilerConfig"] == {"DisableProfiler": True}  # no shared profiler bucket


def test_inputs_are_the_tenant_dataset_the_code_or_earlier_outputs(definition: dict[str, Any]) -> None:
    for step in jobs(definition):
        arguments = step["Arguments"]
        if step["Type"] == "Processing":
            sources = [item["S3Input"]["S3Uri"] for item in arguments["ProcessingInputs"]]
        else:
            sources = [item["DataSource"]["S3DataSource"]["S3Uri"] for item in arguments["InputDataConfig"]]
        for source in sources:
            ok = (
                source == get("TrainingDataUri")
                or (isinstance(source, str) and source.startswith("${PipelineCodeUri}/"))
                or (isinstance(source, dict) and source.get("Get", "").startswith("Steps."))
            )
            assert ok, (step["Name"], source)


def test_placeholders_are_only_the_ones_deploy_fills_in(definition_text: str) -> None:
    assert set(re.findall(r"\$\{([^}]*)\}", definition_text)) == {"PipelineCodeUri", "Region"}
    assert "us-east-1" not in definition_text
    assert not re.search(r"\b\d{12}\b", definition_text), "no account id may be baked in"


def test_spot_capacity_is_chosen_by_the_parameter(definition: dict[str, Any]) -> None:
    """MaxWaitTimeInSeconds is only valid (and then required) with managed spot training."""
    choose = next(step for step in definition["Steps"] if step["Type"] == "Condition")
    assert choose["Arguments"]["Conditions"] == [
        {"Type": "Equals", "LeftValue": get("UseSpotInstances"), "RightValue": True}
    ]
    spot = next(s for s in all_steps(choose["Arguments"]["IfSteps"]) if s["Type"] == "Training")
    on_demand = next(s for s in all_steps(choose["Arguments"]["ElseSteps"]) if s["Type"] == "Training")
    assert spot["Arguments"]["EnableManagedSpotTraining"] is True
    assert spot["Arguments"]["StoppingCondition"]["MaxWaitTimeInSeconds"] == get("MaxRuntimeSeconds")
    assert on_demand["Arguments"].get("EnableManagedSpotTraining", False) is False
    assert "MaxWaitTimeInSeconds" not in on_demand["Arguments"]["StoppingCondition"]
    for step in (spot, on_demand):
        assert step["Arguments"]["StoppingCondition"]["MaxRuntimeInSeconds"] == get("MaxRuntimeSeconds")
        assert step["Arguments"]["ResourceConfig"]["InstanceType"] == get("TrainingInstanceType")
        assert step["Arguments"]["ResourceConfig"]["InstanceCount"] == get("TrainingInstanceCount")


def test_both_branches_run_the_same_tail(definition: dict[str, Any]) -> None:
    choose = next(step for step in definition["Steps"] if step["Type"] == "Condition")

    def normalized(steps: list[dict[str, Any]], suffix: str) -> str:
        copied = json.loads(json.dumps(steps))
        for step in all_steps(copied):
            step.pop("Description", None)
            if step["Type"] == "Training":
                step["Arguments"].pop("EnableManagedSpotTraining", None)
                step["Arguments"]["StoppingCondition"].pop("MaxWaitTimeInSeconds", None)
        return json.dumps(copied, sort_keys=True).replace(suffix, "<branch>")

    spot = normalized(choose["Arguments"]["IfSteps"], "Spot")
    on_demand = normalized(choose["Arguments"]["ElseSteps"], "OnDemand")
    assert spot == on_demand


def test_registration_is_pending_approval_in_the_tenants_group_with_metrics(
    definition: dict[str, Any],
) -> None:
    registers = [step for step in all_steps(definition["Steps"]) if step["Type"] == "RegisterModel"]
    assert len(registers) == 2
    for step in registers:
        arguments = step["Arguments"]
        assert arguments["ModelApprovalStatus"] == "PendingManualApproval"
        assert arguments["ModelPackageGroupName"] == get("ModelPackageGroupName")
        statistics = arguments["ModelMetrics"]["ModelQuality"]["Statistics"]
        assert statistics["ContentType"] == "application/json"
        assert statistics["S3Uri"]["Std:Join"]["Values"][-1] == "evaluation.json"
        assert arguments["CustomerMetadataProperties"] == {key: get(name) for key, name in COST_TAGS.items()}


def test_metric_check_compares_the_validation_metric_with_the_threshold(definition: dict[str, Any]) -> None:
    checks = [
        step
        for step in all_steps(definition["Steps"])
        if step["Type"] == "Condition" and step["Name"].startswith("CheckMetric")
    ]
    assert len(checks) == 2
    for check in checks:
        (condition,) = check["Arguments"]["Conditions"]
        assert condition["Type"] == "GreaterThanOrEqualTo"
        assert condition["LeftValue"]["Std:JsonGet"]["Path"] == "validation_metric.value"
        assert condition["RightValue"] == get("MetricThreshold")
        (register,) = check["Arguments"]["IfSteps"]
        (fail,) = check["Arguments"]["ElseSteps"]
        assert (register["Type"], fail["Type"]) == ("RegisterModel", "Fail")
        message = json.dumps(fail["Arguments"]["ErrorMessage"])
        for part in ("validation_metric.name", "validation_metric.value", "Parameters.MetricThreshold"):
            assert part in message


def test_the_file_is_in_its_canonical_form(definition_text: str, definition: dict[str, Any]) -> None:
    assert definition_text == json.dumps(definition, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert definition["Version"] == "2020-12-01"


@pytest.mark.parametrize("script", ["preprocess.py", "train.py", "evaluate.py"])
def test_step_scripts_parse_as_python_3_9(script: str) -> None:
    """The scikit-learn 1.2-1 container runs Python 3.9 (a grammar check; the scripts were also run
    under CPython 3.9 with scikit-learn 1.2.1, see pipeline/README.md)."""
    source = (ROOT / "pipeline" / "steps" / script).read_text()
    ast.parse(source, filename=script, feature_version=(3, 9))
