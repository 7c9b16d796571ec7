"""The hand-off: the template's model-approved rule matched by the emulator's (moto's) EventBridge matcher
against SageMaker's model package events, and the documented example events against their schema."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

from controlplane.models.versions import HANDOFF_DETAIL_TYPE, HANDOFF_SOURCE, HandoffDetail

ROOT = Path(__file__).resolve().parents[2]
SAGEMAKER_EVENT = json.loads((ROOT / "events" / "sagemaker_model_package_approved.json").read_text())
HANDOFF_EVENT = json.loads((ROOT / "events" / "model_version_approved.json").read_text())


@pytest.fixture(scope="module")
def rule(resources: dict[str, Any]) -> EventPattern:
    (approved,) = resources["ModelHandoffFunction"]["Properties"]["Events"].values()
    return EventPattern.load(json.dumps(approved["Properties"]["Pattern"]))


def changed(**detail: Any) -> dict[str, Any]:
    event = copy.deepcopy(SAGEMAKER_EVENT)
    event["detail"] |= detail
    return dict(event)


def test_an_approved_version_of_a_tenant_group_reaches_the_handoff(rule: EventPattern) -> None:
    assert rule.matches_event(changed())


@pytest.mark.parametrize(
    "detail",
    [
        {"ModelApprovalStatus": "PendingManualApproval"},  # registered, not approved
        {"ModelApprovalStatus": "Rejected"},
        {"ModelPackageGroupName": "someone-elses-group"},  # not a tenant group
    ],
)
def test_nothing_else_does(rule: EventPattern, detail: dict[str, Any]) -> None:
    assert not rule.matches_event(changed(**detail))


def test_the_example_handoff_event_is_the_documented_schema() -> None:
    assert (HANDOFF_EVENT["source"], HANDOFF_EVENT["detail-type"]) == (HANDOFF_SOURCE, HANDOFF_DETAIL_TYPE)
    detail = HandoffDetail.model_validate(HANDOFF_EVENT["detail"])
    assert detail.wire() == HANDOFF_EVENT["detail"]  # every field, nothing more
    assert set(detail.tags) == {"mlaas:tenant", "mlaas:tier", "mlaas:job"}
