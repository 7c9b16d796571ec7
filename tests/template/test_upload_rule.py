"""Which uploads start a job: the template's upload rule, matched by the emulator's (moto's) EventBridge
pattern matcher, against S3 "Object Created" events. Folder markers start none."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from moto.events.models import EventPattern

ROOT = Path(__file__).resolve().parents[2]
BUCKET = "mlaas-uploads-123"
SAMPLE = json.loads((ROOT / "events" / "register_upload_input.json").read_text())["event"]


@pytest.fixture(scope="module")
def rule(state_machine: dict[str, Any]) -> EventPattern:
    (upload_rule,) = [
        e for e in state_machine["Properties"]["Events"].values() if e["Type"] == "EventBridgeRule"
    ]
    pattern = copy.deepcopy(upload_rule["Properties"]["Pattern"])
    assert pattern["detail"]["bucket"]["name"] == [{"Ref": "UploadsBucket"}]
    pattern["detail"]["bucket"]["name"] = [BUCKET]  # as CloudFormation resolves it
    return EventPattern.load(json.dumps(pattern))


def event(
    key: str, size: int, *, bucket: str = BUCKET, detail_type: str = "Object Created"
) -> dict[str, Any]:
    sent = copy.deepcopy(SAMPLE)
    sent["detail-type"] = detail_type
    sent["detail"]["bucket"]["name"] = bucket
    sent["detail"]["object"] |= {"key": key, "size": size}
    return dict(sent)


@pytest.mark.parametrize(
    ("key", "size"),
    [
        ("tenants/acme/uploads/churn.csv", 1024),
        ("tenants/acme/uploads/churn.csv.gz", 512),
        ("tenants/acme/uploads/empty.csv", 0),  # rejected by registration: "the file is empty"
        ("tenants/acme/uploads/notes.txt", 12),  # rejected by registration with the reason
        ("tenants/acme/elsewhere/x.csv", 3),
        ("tenants/acme/uploads/folder-with-content/", 7),  # rejected by registration: a folder
    ],
)
def test_uploads_under_tenants_start_a_job(rule: EventPattern, key: str, size: int) -> None:
    assert rule.matches_event(event(key, size))


@pytest.mark.parametrize(
    "key",
    ["tenants/", "tenants/acme/", "tenants/acme/uploads/", "tenants/acme/uploads/2026/", "tenants/x.csv/"],
)
def test_folder_markers_start_no_job(rule: EventPattern, key: str) -> None:
    assert not rule.matches_event(event(key, 0))


def test_other_buckets_prefixes_and_event_types_start_no_job(rule: EventPattern) -> None:
    assert not rule.matches_event(event("elsewhere/x.csv", 10))
    assert not rule.matches_event(event("tenants/acme/uploads/x.csv", 10, bucket="another"))
    assert not rule.matches_event(event("tenants/acme/uploads/x.csv", 10, detail_type="Object Tags Added"))
