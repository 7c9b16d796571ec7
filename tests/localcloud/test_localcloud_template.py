"""Template loading and intrinsic resolution, without any server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localcloud.template import Template, TemplateError, load_template_body

FIXTURE = Path(__file__).parent / "fixtures" / "template.yaml"


class FakeResources:
    """Ref/GetAtt answers as a deploy would give them, made up from the logical id."""

    def ref(self, logical_id: str) -> Any:
        return f"ref-of-{logical_id}"

    def get_att(self, logical_id: str, attribute: str) -> Any:
        return f"{attribute}-of-{logical_id}"


RESOURCES = FakeResources()


@pytest.fixture
def template() -> Template:
    return Template(FIXTURE, stack_name="fx")


def test_short_form_tags_become_intrinsic_functions() -> None:
    body = load_template_body(FIXTURE)
    policy = body["Resources"]["UploadsBucketPolicy"]["Properties"]["PolicyDocument"]

    assert policy["Version"] == "2012-10-17"  # a string, not a YAML date
    assert policy["Statement"][0]["Resource"] == [
        {"Fn::GetAtt": ["UploadsBucket", "Arn"]},
        {"Fn::Sub": "${UploadsBucket.Arn}/*"},
    ]
    assert body["Conditions"]["IsNotProduction"] == {"Fn::Not": [{"Condition": "IsProduction"}]}


def test_parameters_take_defaults_and_validated_overrides() -> None:
    assert Template(FIXTURE, stack_name="fx").parameters == {"Greeting": "hello", "Stage": "test"}
    assert (
        Template(FIXTURE, stack_name="fx", parameter_overrides={"Greeting": "hi"}).parameters["Greeting"]
        == "hi"
    )
    with pytest.raises(TemplateError, match="not one of"):
        Template(FIXTURE, stack_name="fx", parameter_overrides={"Greeting": "hey"})
    with pytest.raises(TemplateError, match="undeclared"):
        Template(FIXTURE, stack_name="fx", parameter_overrides={"Nope": "x"})


def test_globals_merge_into_every_function(template: Template) -> None:
    record = template.resources["RecordFunction"].properties
    red = template.resources["RedFunction"].properties

    assert record["Environment"]["Variables"] == {
        "RECORDS_TABLE": {"Ref": "RecordsTable"},
        "STAGE": {"Ref": "Stage"},
        "COLOR": {"Fn::FindInMap": ["Colors", "first", "Value"]},
    }
    assert record["Layers"] == [{"Ref": "SharedLayer"}]
    assert (record["Timeout"], red["Timeout"]) == (10, 2)
    assert record["Runtime"] == "python3.11"


def test_sub_resolves_pseudo_parameters_attributes_and_its_variables(template: Template) -> None:
    assert template.resolve({"Fn::Sub": "${AWS::StackName}-${AWS::Region}-${AWS::AccountId}"}, RESOURCES) == (
        "fx-us-east-1-123456789012"
    )
    assert template.resolve({"Fn::Sub": "${UploadsBucket.Arn}/x/${!Literal}"}, RESOURCES) == (
        "Arn-of-UploadsBucket/x/${Literal}"
    )
    assert template.resolve(
        {"Fn::Sub": ["${Name}:${Stage}", {"Name": {"Ref": "RecordsTable"}}]}, RESOURCES
    ) == ("ref-of-RecordsTable:test")


def test_list_functions_mappings_and_conditions(template: Template) -> None:
    assert template.resolve({"Fn::Join": ["-", {"Fn::Split": [",", "a,b,c"]}]}, RESOURCES) == "a-b-c"
    assert template.resolve({"Fn::Select": [1, ["x", "y", "z"]]}, RESOURCES) == "y"
    assert template.resolve({"Fn::FindInMap": ["Colors", "second", "Value"]}, RESOURCES) == "blue"
    assert template.resolve({"Fn::If": ["IsProduction", "yes", "no"]}, RESOURCES) == "no"
    assert template.resolve({"Fn::Equals": [{"Ref": "Stage"}, "test"]}, RESOURCES) is True
    resolved = template.resolve(
        {"Keep": 1, "Drop": {"Fn::If": ["IsProduction", 2, {"Ref": "AWS::NoValue"}]}}, RESOURCES
    )
    assert resolved == {"Keep": 1}


def test_conditions_decide_which_resources_exist() -> None:
    testing = Template(FIXTURE, stack_name="fx")
    production = Template(FIXTURE, stack_name="fx", parameter_overrides={"Stage": "prod"})

    assert not testing.is_created(testing.resources["ProductionOnlyQueue"])
    assert production.is_created(production.resources["ProductionOnlyQueue"])


def test_dependencies_come_from_every_reference(template: Template) -> None:
    assert template.dependencies(template.resources["FlowStateMachine"]) == {
        "RecordFunction",
        "RecordsTable",
        "UploadsBucket",
        "FlowDeadLetterQueue",
        "FlowLogs",
    }
    # Globals count too: every function needs the layer and the table.
    assert template.dependencies(template.resources["BlueFunction"]) == {"SharedLayer", "RecordsTable"}


def test_what_cannot_be_resolved_fails_by_name(template: Template) -> None:
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        template.resolve({"Fn::ImportValue": "elsewhere"}, RESOURCES)
    with pytest.raises(TemplateError, match="Nowhere"):
        template.resolve({"Ref": "Nowhere"}, RESOURCES)
    with pytest.raises(TemplateError, match="no 'third'"):
        template.resolve({"Fn::FindInMap": ["Colors", "third", "Value"]}, RESOURCES)
