"""Fixtures giving the template (CloudFormation tags decoded) and the state machine definition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    decoded, problems = decode(str(ROOT / "template.yaml"))
    assert not problems, problems
    assert decoded is not None
    return dict(decoded)


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, Any]:
    return dict(template["Resources"])


@pytest.fixture(scope="session")
def state_machine(resources: dict[str, Any]) -> dict[str, Any]:
    return dict(resources["TrainingJobStateMachine"])


@pytest.fixture(scope="session")
def asl_text(state_machine: dict[str, Any]) -> str:
    return (ROOT / state_machine["Properties"]["DefinitionUri"]).read_text()


@pytest.fixture(scope="session")
def asl(asl_text: str) -> dict[str, Any]:
    return dict(json.loads(asl_text))
