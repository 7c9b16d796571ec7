"""Configuration errors name the variable; names match template.yaml; the functions' outputs match what
the state machine reads from them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import ASL, ENVIRONMENT, load_template

from controlplane.core.errors import ConfigurationError
from controlplane.jobs import lifecycle
from controlplane.settings import Settings, get_settings

APP_VARIABLES = {
    name for name in ENVIRONMENT if not name.startswith(("AWS_", "POWERTOOLS_TRACE", "POWERTOOLS_LOG"))
}


def test_settings_load_from_the_environment() -> None:
    settings = get_settings()
    assert settings.jobs_table_name == "test-jobs"
    assert settings.pipeline_name == "MLaaS-Test-tenant-training"


def test_missing_variable_is_named() -> None:
    environ = {name: ENVIRONMENT[name] for name in APP_VARIABLES if name != "JOBS_TABLE_NAME"}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ(environ)
    assert (
        str(raised.value) == "invalid function configuration: environment variable JOBS_TABLE_NAME is not set"
    )


def test_invalid_variables_are_named_with_their_value() -> None:
    environ = {name: ENVIRONMENT[name] for name in APP_VARIABLES} | {
        "STATE_MACHINE_ARN": "training-job",
        "UPLOADS_BUCKET_NAME": "Not_A_Bucket",
    }
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ(environ)
    message = str(raised.value)
    assert "environment variable STATE_MACHINE_ARN='training-job' is invalid" in message
    assert "environment variable UPLOADS_BUCKET_NAME='Not_A_Bucket' is invalid" in message
    assert "JOBS_TABLE_NAME" not in message


def test_settings_cover_exactly_the_template_globals() -> None:
    variables = set(load_template()["Globals"]["Function"]["Environment"]["Variables"]) - {
        "POWERTOOLS_LOG_LEVEL"
    }
    aliases = {field.alias for field in Settings.model_fields.values()}
    assert aliases == variables


def test_functions_exist_for_every_template_function() -> None:
    resources = load_template()["Resources"]
    code_uris = {
        resource["Properties"]["CodeUri"].rstrip("/")
        for resource in resources.values()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    # Every function folder is deployed, and every deployed function has its folder.
    root = Path(__file__).resolve().parents[2]
    folders = {f"functions/{app.parent.name}" for app in (root / "functions").glob("*/app.py")}
    assert code_uris == folders
    assert {"functions/register_upload", "functions/gate", "functions/provision_pipeline"} <= code_uris


def test_timeline_state_names_are_states_of_the_state_machine() -> None:
    states = json.loads(ASL.read_text())["States"]
    for name in (
        lifecycle.STATE_REGISTER,
        lifecycle.STATE_VALIDATE,
        lifecycle.STATE_QUEUE_WAIT,
        lifecycle.STATE_PIPELINE_WAIT,
    ):
        assert name in states


def _selected_payload_fields(state: dict[str, object]) -> set[str]:
    selector = state["ResultSelector"]
    assert isinstance(selector, dict)
    return {match for value in selector.values() for match in re.findall(r"^\$\.Payload\.(\w+)$", str(value))}


def test_state_machine_reads_only_what_the_functions_return() -> None:
    states = json.loads(ASL.read_text())["States"]
    assert _selected_payload_fields(states["Register the upload as a job"]) == {
        "outcome",
        "reasons",
        "job",
        "tenant",
        "plan",
    }
    assert _selected_payload_fields(states["Validate the dataset against the tenant's contract"]) == {
        "valid",
        "reasons",
        "stats",
        "trainingDataUri",
    }
    # Validated in ranges: the merge answers as the serial validation does.
    assert _selected_payload_fields(states["Merge the ranges into the serial verdict"]) == {
        "valid",
        "reasons",
        "stats",
        "trainingDataUri",
    }
    assert _selected_payload_fields(states["Split the dataset into ranges at line starts"]) == {
        "inRanges",
        "ranges",
        "names",
    }
    plan_fields = set(re.findall(r"\$\.registration\.plan\.(\w+)", ASL.read_text()))
    assert plan_fields <= {
        "tier",
        "queueUrl",
        "queueWaitSeconds",
        "trainingInstanceType",
        "trainingInstanceCount",
        "processingInstanceType",
        "processingInstanceCount",
        "useSpotInstances",
        "maxRuntimeSeconds",
        "pipelineWaitSeconds",
        "maxDatasetBytes",
        "trainingImageUri",
        "trainingDataUri",
        "modelOutputUri",
        "validateInRanges",
    }
    tenant_fields = set(re.findall(r"\$\.registration\.tenant\.(\w+)", ASL.read_text()))
    assert tenant_fields <= {
        "tenantId",
        "tier",
        "roleArn",
        "modelPackageGroupName",
        "metricThreshold",
        "contract",
    }
