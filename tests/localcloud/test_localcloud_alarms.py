"""The emulator's alarms (localcloud.alarms) and SQS event sources' maximum concurrency, end to end.

Alarm periods are compressed to 1 s (LocalCloud(alarm_period_seconds=...)) so that a state change shows
within a second or two; what is evaluated is the template's own alarms, through moto's CloudWatch.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localcloud import LocalCloud, Stack, wait_for
from localcloud.alarms import emf_datapoints, metric_key

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(
        state_dir=tmp_path_factory.mktemp("localcloud-alarms"),
        alarm_period_seconds=1.0,
        alarm_interval_seconds=0.2,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def stack(cloud: LocalCloud) -> Stack:
    return cloud.deploy(FIXTURES / "alarms.yaml", "al")


def _state(cloud: LocalCloud, name: str) -> str:
    return str(cloud.client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["StateValue"])


def _notifications(cloud: LocalCloud, stack: Stack) -> list[dict[str, Any]]:
    sqs = cloud.client("sqs")
    messages = sqs.receive_message(QueueUrl=stack.ref("NotificationsQueue"), MaxNumberOfMessages=10).get(
        "Messages", []
    )
    for message in messages:
        sqs.delete_message(QueueUrl=stack.ref("NotificationsQueue"), ReceiptHandle=message["ReceiptHandle"])
    return [json.loads(message["Body"]) for message in messages]


def test_the_topic_its_key_policy_and_only_the_unconditional_subscription_are_created(
    cloud: LocalCloud, stack: Stack
) -> None:
    sns = cloud.client("sns")
    attributes = sns.get_topic_attributes(TopicArn=stack.ref("AlarmTopic"))["Attributes"]
    assert attributes["KmsMasterKeyId"] == stack.ref("TopicKey")
    assert json.loads(attributes["Policy"])["Statement"][0]["Effect"] == "Deny"
    protocols = [
        s["Protocol"]
        for s in sns.list_subscriptions_by_topic(TopicArn=stack.ref("AlarmTopic"))["Subscriptions"]
    ]
    assert protocols == ["sqs"]  # the e-mail one has its Condition false
    assert cloud.client("kms").get_key_rotation_status(KeyId=stack.ref("TopicKey"))["KeyRotationEnabled"]


def test_a_dead_letter_queue_alarm_fires_on_a_message_and_returns_to_ok_when_it_is_gone(
    cloud: LocalCloud, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "al-dlq-work"
    sqs = cloud.client("sqs")
    wait_for(lambda: cloud.alarms.state(name) == "OK", timeout=10, what="the first evaluation")
    _notifications(cloud, stack)
    sqs.send_message(QueueUrl=stack.ref("WorkDeadLetterQueue"), MessageBody=json.dumps({"jobId": "job-1"}))
    wait_for(lambda: cloud.alarms.state(name) == "ALARM", timeout=10, what="the DLQ alarm")
    assert _state(cloud, name) == "ALARM"  # set on moto's alarm too
    assert "localcloud alarm ALARM: al-dlq-work: The work DLQ holds messages." in capsys.readouterr().out

    (message,) = sqs.receive_message(QueueUrl=stack.ref("WorkDeadLetterQueue"))["Messages"]
    sqs.delete_message(QueueUrl=stack.ref("WorkDeadLetterQueue"), ReceiptHandle=message["ReceiptHandle"])
    wait_for(lambda: cloud.alarms.state(name) == "OK", timeout=10, what="the DLQ alarm back to OK")
    assert "localcloud alarm OK (was ALARM): al-dlq-work" in capsys.readouterr().out
    states = wait_for(
        lambda: (
            (found := [n["NewStateValue"] for n in _notifications(cloud, stack) if n["AlarmName"] == name])
            and len(found) >= 2
            and found
        ),
        timeout=5,
        what="both notifications on the topic",
    )
    assert states[-2:] == ["ALARM", "OK"]
    # The age alarm on the same queue saw a message only seconds old.
    assert cloud.alarms.state("al-queue-age-work") == "OK"


def test_metrics_printed_by_a_function_drive_its_alarms_through_emf(cloud: LocalCloud, stack: Stack) -> None:
    lambda_client = cloud.client("lambda")
    name = "al-jobs-overdue-basic"
    wait_for(lambda: cloud.alarms.state(name) == "OK", timeout=10, what="the first evaluation")
    lambda_client.invoke(
        FunctionName=stack.ref("EmitFunction"), Payload=json.dumps({"tier": "basic", "overdue": 1})
    )
    wait_for(lambda: cloud.alarms.state(name) == "ALARM", timeout=10, what="the overdue alarm")
    # One tier's 1 is below the metric-math alarm's threshold of 2; another tier's 1 makes the sum 2.
    assert cloud.alarms.state("al-jobs-overdue-any") == "OK"
    lambda_client.invoke(
        FunctionName=stack.ref("EmitFunction"), Payload=json.dumps({"tier": "premium", "overdue": 1})
    )
    wait_for(lambda: cloud.alarms.state("al-jobs-overdue-any") == "ALARM", timeout=10, what="the sum alarm")
    # Nothing emitted for a period: no data, treated as not breaching.
    wait_for(lambda: cloud.alarms.state(name) == "OK", timeout=10, what="the overdue alarm back to OK")


def test_an_alarm_on_a_metric_that_is_not_emulated_is_left_alone(cloud: LocalCloud, stack: Stack) -> None:
    time.sleep(0.5)
    assert cloud.alarms.state("al-function-errors") is None
    assert not [t for t in cloud.alarms.transitions if t.alarm_name == "al-function-errors"]


def test_an_sqs_event_source_never_runs_more_batches_than_its_maximum_concurrency(
    cloud: LocalCloud, stack: Stack
) -> None:
    sqs = cloud.client("sqs")
    for index in range(8):
        sqs.send_message(QueueUrl=stack.ref("WorkQueue"), MessageBody=json.dumps({"n": index}))

    def drained() -> bool:
        attributes = sqs.get_queue_attributes(
            QueueUrl=stack.ref("WorkQueue"),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return (
            attributes["ApproximateNumberOfMessages"]
            == attributes["ApproximateNumberOfMessagesNotVisible"]
            == "0"
        )

    wait_for(drained, timeout=20, what="the work queue to drain")
    queue_arn = sqs.get_queue_attributes(QueueUrl=stack.ref("WorkQueue"), AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    # Batches of one, each 0.5 s, four workers: concurrency is the mapping's limit, not the function's.
    assert cloud.sqs_event_sources.peak_concurrency(queue_arn) == 2


def test_emf_lines_become_datapoints_with_their_dimension_sets() -> None:
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1_700_000_000_000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "N",
                        "Dimensions": [["tier", "service"], ["service"]],
                        "Metrics": [{"Name": "M"}],
                    }
                ],
            },
            "tier": "basic",
            "service": "s",
            "M": [1.0, 2.0],
        }
    )
    points = emf_datapoints(line)
    assert [(key, value) for key, _, value in points] == [
        (metric_key("N", "M", {"tier": "basic", "service": "s"}), 1.0),
        (metric_key("N", "M", {"tier": "basic", "service": "s"}), 2.0),
        (metric_key("N", "M", {"service": "s"}), 1.0),
        (metric_key("N", "M", {"service": "s"}), 2.0),
    ]
    assert points[0][1] == 1_700_000_000.0
    assert emf_datapoints('{"level": "INFO", "message": "not a metric"}') == []
    assert emf_datapoints("START RequestId: x") == []
