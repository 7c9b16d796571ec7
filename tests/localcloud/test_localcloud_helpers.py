"""The emulator's AWS rules that need no server: target inputs, batch failures, names, schedules."""

from __future__ import annotations

import json

import pytest

from localcloud.custom_resources import cloudformation_properties
from localcloud.deploy import physical_name
from localcloud.event_delivery import target_input
from localcloud.patches import delivered_event
from localcloud.schedules import UnsupportedScheduleError, rate_seconds
from localcloud.sqs_event_sources import failed_message_ids

RULE = "arn:aws:events:us-east-1:123456789012:rule/uploads"
EVENT = {
    "id": "e-1",
    "source": "aws.s3",
    "detail-type": "Object Created",
    "detail": {"bucket": {"name": "b"}, "object": {"key": "k/1.csv", "size": 3}},
}


def test_target_input_follows_input_input_path_and_input_transformer() -> None:
    assert target_input(RULE, {"Input": '{"trigger": "schedule"}'}, EVENT) == '{"trigger": "schedule"}'
    assert json.loads(target_input(RULE, {"InputPath": "$.detail.object"}, EVENT)) == {
        "key": "k/1.csv",
        "size": 3,
    }
    assert json.loads(target_input(RULE, {}, EVENT)) == EVENT
    transformer = {
        "InputPathsMap": {
            "key": "$.detail.object.key",
            "size": "$.detail.object.size",
            "type": "$.detail-type",
        },
        "InputTemplate": '{"key": "<key>", "size": <size>, "what": "<type>", '
        '"rule": "<aws.events.rule-name>"}',
    }
    assert json.loads(target_input(RULE, {"InputTransformer": transformer}, EVENT)) == {
        "key": "k/1.csv",
        "size": 3,
        "what": "Object Created",
        "rule": "uploads",
    }


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (b"null", set()),
        (b'{"batchItemFailures": []}', set()),
        (b'{"batchItemFailures": [{"itemIdentifier": "m2"}]}', {"m2"}),
        (b'{"batchItemFailures": [{"itemIdentifier": "unknown"}]}', {"m1", "m2"}),
        (b'{"batchItemFailures": [{"itemIdentifier": ""}]}', {"m1", "m2"}),
        (b'{"batchItemFailures": [{"wrongKey": "m1"}]}', {"m1", "m2"}),
        (b"not json", {"m1", "m2"}),
    ],
)
def test_batch_item_failures_follow_lambdas_rules(response: bytes, failed: set[str]) -> None:
    assert failed_message_ids(response, {"m1", "m2"}) == failed


def test_custom_resource_properties_arrive_as_strings() -> None:
    assert cloudformation_properties(
        {"Count": 3, "On": True, "Ratio": 0.5, "Nested": [{"N": 1}], "S": "x"}
    ) == {
        "Count": "3",
        "On": "true",
        "Ratio": "0.5",
        "Nested": [{"N": "1"}],
        "S": "x",
    }


def test_physical_names_look_like_cloudformations_and_fit() -> None:
    bucket = physical_name("Stack", "UploadsBucket", max_length=63, lowercase=True)
    long_name = physical_name("a-very-long-stack-name" * 3, "AVeryLongLogicalId" * 3, max_length=64)

    assert bucket.startswith("stack-uploadsbucket-")
    assert bucket == bucket.lower()
    assert len(long_name) <= 64


def test_schedules_are_rates_only() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(2 hours)") == 7200
    with pytest.raises(UnsupportedScheduleError):
        rate_seconds("cron(0 12 * * ? *)")


def test_delivered_s3_events_look_like_eventbridges() -> None:
    moto_event = {
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "time": 1_700_000_000.5,
        "ingestion-time": 1_700_000_000.6,
        "source": "aws.s3",
        "detail": {"object": {"key": "k", "eTag": "abc"}},
    }

    delivered = delivered_event(moto_event)

    assert delivered["time"] == "2023-11-14T22:13:20Z"
    assert "ingestion-time" not in delivered
    assert delivered["detail"]["object"] == {"key": "k", "etag": "abc"}
    assert delivered["id"] == moto_event["id"] != "17793124-05d4-b198-2fde-7ededc63b103"
