"""Detection (invariant 7): every place a message or a job can come to rest unfinished raises an alarm on
the alarm topic; no asynchronous invocation is dropped; tier-queue messages are never dead-lettered for
lack of gate capacity."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TIERS = ("basic", "standard", "premium")
# Event types through which Lambda invokes a function asynchronously (SAM event source types).
ASYNC_EVENT_TYPES = frozenset(
    {"Schedule", "ScheduleV2", "EventBridgeRule", "CloudWatchEvent", "S3", "SNS", "IoTRule", "CloudWatchLogs"}
)


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def _get_att(value: Any, attribute: str = "Arn") -> str:
    """The logical id in {"Fn::GetAtt": [id, attribute]}."""
    assert isinstance(value, dict), value
    assert "Fn::GetAtt" in value, value
    logical_id, found = value["Fn::GetAtt"]
    assert found == attribute, value
    return str(logical_id)


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        statement
        for policy in resource["Properties"].get("Policies", [])
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def dead_letter_targets(resources: dict[str, Any]) -> dict[str, set[str]]:
    """Every SQS queue something dead-letters into, with what does: redrive policies, EventBridge targets'
    DeadLetterConfig (function and state machine events), Lambda on-failure destinations."""
    targets: dict[str, set[str]] = {}
    for name, resource in resources.items():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in props:
            targets.setdefault(_get_att(props["RedrivePolicy"]["deadLetterTargetArn"]), set()).add(name)
        if resource["Type"] in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            for event_name, event in props.get("Events", {}).items():
                dead_letter = event.get("Properties", {}).get("DeadLetterConfig")
                if dead_letter:
                    targets.setdefault(_get_att(dead_letter["Arn"]), set()).add(f"{name}.{event_name}")
            on_failure = props.get("EventInvokeConfig", {}).get("DestinationConfig", {}).get("OnFailure")
            if on_failure:
                targets.setdefault(_get_att(on_failure["Destination"]), set()).add(f"{name} (on failure)")
    return targets


def _alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in _of_type(resources, "AWS::CloudWatch::Alarm").items()}


def _visible_messages_alarms(resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Queue logical id -> its 'any message visible' alarm."""
    found: dict[str, dict[str, Any]] = {}
    for props in _alarms(resources).values():
        if (
            props.get("Namespace") == "AWS/SQS"
            and props.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        ):
            (dimension,) = props["Dimensions"]
            assert dimension["Name"] == "QueueName"
            found[_get_att(dimension["Value"], "QueueName")] = props
    return found


def test_every_queue_used_as_a_dead_letter_queue_has_an_alarm_on_any_visible_message(
    resources: dict[str, Any],
) -> None:
    targets = dead_letter_targets(resources)
    alarms = _visible_messages_alarms(resources)
    assert len(targets) >= 9, sorted(targets)  # three tier DLQs, three event DLQs, three invocation DLQs
    for queue, users in sorted(targets.items()):
        assert resources[queue]["Type"] == "AWS::SQS::Queue", queue
        assert queue in alarms, f"{queue} (dead-letter queue of {sorted(users)}) has no alarm"
        alarm = alarms[queue]
        assert alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["Threshold"] == 0
        assert alarm["EvaluationPeriods"] == 1
        assert int(alarm["Period"]) <= 300
        assert alarm["TreatMissingData"] == "notBreaching"
        # Retained as long as SQS allows: the alarm, not expiry, is what ends a message's stay.
        assert resources[queue]["Properties"]["MessageRetentionPeriod"] == 1209600, queue


def test_dead_letter_queues_are_named_so_and_only_they(resources: dict[str, Any]) -> None:
    """`mlaas dlq` finds a stack's dead-letter queues by their logical id's suffix."""
    targets = set(dead_letter_targets(resources))
    named = {name for name in _of_type(resources, "AWS::SQS::Queue") if name.endswith("DeadLetterQueue")}
    assert named == targets


def test_every_alarm_publishes_to_the_alarm_topic_both_ways(resources: dict[str, Any]) -> None:
    alarms = _alarms(resources)
    assert len(alarms) >= 9 + 3 + 3 + 1
    for name, props in alarms.items():
        assert props["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert props["OKActions"] == [{"Ref": "AlarmTopic"}], name
        assert props.get("ActionsEnabled", True) is True, name
        # The topic's and the key's policies admit only this stack's alarms, by name.
        assert props["AlarmName"]["Fn::Sub"].startswith("${AWS::StackName}-"), name
        assert props.get("TreatMissingData") in ("notBreaching", "breaching"), name
        assert props.get("AlarmDescription"), name


def test_the_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use_and_is_tls_only(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    topic = resources["AlarmTopic"]
    assert topic["Type"] == "AWS::SNS::Topic"
    key_id = topic["Properties"]["KmsMasterKeyId"]["Ref"]
    key = resources[key_id]
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True
    alarm_arns = "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:alarm:${AWS::StackName}-*"
    (cloudwatch_use,) = [
        s
        for s in key["Properties"]["KeyPolicy"]["Statement"]
        if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert sorted(cloudwatch_use["Action"]) == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch_use["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::Sub": alarm_arns}

    (policy,) = [
        p
        for p in _of_type(resources, "AWS::SNS::TopicPolicy").values()
        if p["Properties"]["Topics"] == [{"Ref": "AlarmTopic"}]
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny"
        and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
        and "sns:Publish" in _actions(s)
        for s in statements
    )
    (publish,) = [s for s in statements if s["Effect"] == "Allow"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert _actions(publish) == ["sns:Publish"]
    assert publish["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::Sub": alarm_arns}

    (subscription,) = _of_type(resources, "AWS::SNS::Subscription").values()
    assert subscription["Condition"] == "HasAlarmEmail"
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert subscription["Properties"]["Protocol"] == "email"
    assert template["Parameters"]["AlarmEmail"]["Default"] == ""
    assert template["Conditions"]["HasAlarmEmail"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    pattern = re.compile(template["Parameters"]["AlarmEmail"]["AllowedPattern"])
    assert pattern.match("")
    assert pattern.match("ops@example.com")
    assert not pattern.match("not an address")


def test_each_tier_queue_alarms_on_its_oldest_message_at_a_24th_of_the_tiers_queue_wait(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    alarms = _alarms(resources)
    for tier in TIERS:
        queue = f"{tier.capitalize()}Queue"
        (alarm,) = [
            props
            for props in alarms.values()
            if props.get("MetricName") == "ApproximateAgeOfOldestMessage"
            and _get_att(props["Dimensions"][0]["Value"], "QueueName") == queue
        ]
        wait = int(template["Mappings"]["TierDefaults"][tier]["QueueWaitSeconds"])
        assert alarm["Threshold"] == wait // 24, tier
        assert alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        # Above several visibility timeouts: one failed batch (retried after it) does not page anyone.
        assert alarm["Threshold"] >= 5 * int(resources[queue]["Properties"]["VisibilityTimeout"])


def _custom_metric_alarms(resources: dict[str, Any]) -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, metric, dimensions) of every metric an alarm reads outside AWS/*."""
    found = []
    for props in _alarms(resources).values():
        metrics = [item["MetricStat"]["Metric"] for item in props.get("Metrics", []) if "MetricStat" in item]
        if "MetricName" in props:
            metrics.append(props)
        for metric in metrics:
            if not metric["Namespace"].startswith("AWS/"):
                dimensions = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                found.append((metric["Namespace"], metric["MetricName"], dimensions))
    return found


def test_custom_metric_alarms_match_what_powertools_emits(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """CloudWatch matches a metric by its exact dimension set: Powertools adds `service` to every metric,
    and per-tier counts (observability.count(..., tier=)) carry `tier` too."""
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    found = _custom_metric_alarms(resources)
    names = {metric for _, metric, _ in found}
    assert {"JobsOverdue", "SweepErrors", "LostCompletionSweepErrors"} <= names
    for namespace, metric, dimensions in found:
        assert namespace == variables["POWERTOOLS_METRICS_NAMESPACE"], metric
        assert dimensions.get("service") == variables["POWERTOOLS_SERVICE_NAME"], metric
        assert set(dimensions) <= {"service", "tier"}, metric
        assert dimensions.get("tier", "basic") in TIERS, metric
    overdue = {dimensions["tier"] for _, metric, dimensions in found if metric == "JobsOverdue"}
    assert overdue == set(TIERS)


def test_every_metric_an_alarm_reads_is_emitted_by_the_code(resources: dict[str, Any]) -> None:
    """An alarm on a metric nobody emits never fires."""
    code = "\n".join(
        path.read_text() for folder in ("layers", "functions") for path in (ROOT / folder).rglob("*.py")
    )
    for _, metric, dimensions in _custom_metric_alarms(resources):
        assert re.search(rf"""["']{metric}["']""", code), f"no code emits {metric}"
        if "tier" in dimensions:
            assert re.search(rf"""count\(\s*["']{metric}["'],\s*tier=""", code), (
                f"{metric} is not counted per tier"
            )


def _asynchronously_invoked(resources: dict[str, Any], asl: dict[str, Any]) -> dict[str, str]:
    """Function logical id -> how it is invoked asynchronously."""
    functions = _of_type(resources, "AWS::Serverless::Function")
    found: dict[str, str] = {}
    for name, function in functions.items():
        for event_name, event in function["Properties"].get("Events", {}).items():
            if event["Type"] in ASYNC_EVENT_TYPES:
                found[name] = f"{event['Type']} event {event_name}"
    # CloudFormation invokes custom-resource functions asynchronously.
    for name, resource in resources.items():
        if (
            resource["Type"].startswith("Custom::")
            or resource["Type"] == "AWS::CloudFormation::CustomResource"
        ):
            found[_get_att(resource["Properties"]["ServiceToken"])] = f"custom resource {name}"
    # The state machine's lambda:invoke tasks with InvocationType Event.
    substitutions = resources["TrainingJobStateMachine"]["Properties"]["DefinitionSubstitutions"]

    def tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
        found_tasks = []
        for state in states.values():
            found_tasks.append(state)
            for branch in state.get("Branches", []):
                found_tasks += tasks(branch["States"])
            for key in ("Iterator", "ItemProcessor"):
                if key in state:
                    found_tasks += tasks(state[key]["States"])
        return found_tasks

    for state in tasks(asl["States"]):
        parameters = state.get("Parameters", {})
        if (
            state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke")
            and parameters.get("InvocationType") == "Event"
        ):
            placeholder = re.fullmatch(r"\$\{(\w+)\}", parameters["FunctionName"])
            assert placeholder, parameters["FunctionName"]
            found[_get_att(substitutions[placeholder.group(1)])] = "the state machine (InvocationType Event)"
    return found


def test_every_asynchronously_invoked_function_keeps_its_failed_events_in_an_alarmed_queue(
    resources: dict[str, Any], asl: dict[str, Any]
) -> None:
    invoked = _asynchronously_invoked(resources, asl)
    assert {
        "GateFunction",
        "OffboardTenantsFunction",
        "PipelineEventsFunction",
        "ExecutionEventsFunction",
        "ModelHandoffFunction",
        "SeedTiersFunction",
        "ProvisionPipelineFunction",
    } <= set(invoked)
    alarmed = _visible_messages_alarms(resources)
    for name, how in sorted(invoked.items()):
        props = resources[name]["Properties"]
        config = props.get("EventInvokeConfig")
        assert config, f"{name} is invoked asynchronously ({how}) but has no EventInvokeConfig"
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", name
        queue = _get_att(on_failure["Destination"])
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True, queue
        assert queue in alarmed, f"{name}'s on-failure destination {queue} has no alarm"
        # Lambda sends the record with the function's role: exactly that queue.
        sends = [s for s in _statements(resources[name]) if "sqs:SendMessage" in _actions(s)]
        assert [s["Resource"] for s in sends] == [on_failure["Destination"]], name


def test_every_eventbridge_target_has_retries_and_a_dead_letter_queue_it_may_write(
    resources: dict[str, Any],
) -> None:
    policies = _of_type(resources, "AWS::SQS::QueuePolicy")
    for name, resource in resources.items():
        if resource["Type"] not in ("AWS::Serverless::Function", "AWS::Serverless::StateMachine"):
            continue
        for event_name, event in resource["Properties"].get("Events", {}).items():
            if event["Type"] not in ("Schedule", "EventBridgeRule"):
                continue
            props = event["Properties"]
            assert "RetryPolicy" in props, f"{name}.{event_name}"
            queue = _get_att(props["DeadLetterConfig"]["Arn"])
            rule_name = (props.get("Name") or props.get("RuleName") or {}).get("Fn::Sub")
            allowed = [
                statement
                for policy in policies.values()
                if policy["Properties"]["Queues"] == [{"Ref": queue}]
                for statement in policy["Properties"]["PolicyDocument"]["Statement"]
                if statement["Principal"] == {"Service": "events.amazonaws.com"}
            ]
            assert allowed, f"EventBridge may not send {name}.{event_name}'s dead letters to {queue}"
            condition = allowed[0]["Condition"]
            source = (condition.get("ArnEquals") or condition.get("ArnLike"))["aws:SourceArn"]["Fn::Sub"]
            if "ArnEquals" in condition:
                assert rule_name, f"{name}.{event_name}: name the rule to scope its DLQ's policy"
                assert source.endswith(f":rule/{rule_name}"), f"{name}.{event_name}"


def test_the_gates_sqs_sources_never_exceed_its_reserved_concurrency(resources: dict[str, Any]) -> None:
    """Lambda's SQS scaling guidance: an event source ignores reserved concurrency unless given a
    MaximumConcurrency, and the sum over a function's sources must fit within its reserved concurrency;
    here with room left for its asynchronous invocations."""
    for name, function in _of_type(resources, "AWS::Serverless::Function").items():
        props = function["Properties"]
        sources = [e["Properties"] for e in props.get("Events", {}).values() if e["Type"] == "SQS"]
        if not sources:
            continue
        reserved = props.get("ReservedConcurrentExecutions")
        assert reserved is not None, f"{name}: an SQS-driven function with unbounded concurrency"
        maxima = [source["ScalingConfig"]["MaximumConcurrency"] for source in sources]
        assert all(2 <= maximum <= 1000 for maximum in maxima), name  # Lambda's bounds
        asynchronous = (
            any(e["Type"] in ASYNC_EVENT_TYPES for e in props["Events"].values()) or name == "GateFunction"
        )
        headroom = 2 if asynchronous else 0
        assert sum(maxima) + headroom <= reserved, f"{name}: {maxima} + {headroom} > {reserved}"
        timeout = int(props.get("Timeout", 30))
        for source in sources:
            queue = resources[_get_att(source["Queue"])]["Properties"]
            # Lambda: visibility timeout at least six times the function's timeout; maxReceiveCount >= 5.
            assert int(queue["VisibilityTimeout"]) >= 6 * timeout, name
            assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 10, name


def test_the_gate_sweep_alarm_and_dead_letter_queue_urls_are_outputs(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert outputs["AlarmTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
    assert json.dumps(outputs)  # plain data
