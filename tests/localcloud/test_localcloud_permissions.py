"""The permission check without a server: the IAM evaluator, the call-to-action table, the recorder,
the report.

The SAM policy templates' expansion at deploy is here too. The emulator-wide checks (the demo flow
allowed, a removed statement denied) are in tests/integration/test_permissions.py and tests/permissions/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from localcloud.call_recording import CallRecorder
from localcloud.deploy import Deployer, DeployError
from localcloud.iam_actions import ROLE_PATH, RULES, Request, Where, requests_for
from localcloud.iam_policy import evaluate, parse_statements, resource_match, wildcard_match
from localcloud.permissions import NOT_EVALUATED, check_permissions
from localcloud.template import Resource, Template

WHERE = Where("us-east-1", "123456789012")
TABLE = "arn:aws:dynamodb:us-east-1:123456789012:table/jobs"


def _statements(*statements: dict[str, Any]) -> list[Any]:
    return parse_statements({"Version": "2012-10-17", "Statement": list(statements)}, "role/policy")


# ------------------------------------------------------------------------------------------ the evaluator


@pytest.mark.parametrize(
    ("pattern", "value", "ignore_case", "matches"),
    [
        ("dynamodb:GetItem", "dynamodb:GetItem", False, True),
        ("dynamodb:Get*", "dynamodb:GetItem", False, True),
        ("dynamodb:*", "dynamodb:Query", False, True),
        ("dynamodb:?etItem", "dynamodb:GetItem", False, True),
        ("dynamodb:?etItem", "dynamodb:BatchGetItem", False, False),
        ("DynamoDB:getitem", "dynamodb:GetItem", True, True),
        ("DynamoDB:getitem", "dynamodb:GetItem", False, False),
        ("s3:GetObject", "s3:GetObjectVersion", False, False),
        ("a.b", "axb", False, False),  # regex characters are literal
        # A policy variable's value is not known locally: it matches any text, as * would.
        ("role/t-${aws:RequestTag/mlaas:tenant}", "role/t-acme", False, True),
        ("role/t-${aws:RequestTag/mlaas:tenant}", "role/u-acme", False, False),
        ("a${*}b", "a*b", False, True),  # ${*} is a literal *
        ("a${*}b", "axb", False, False),
    ],
)
def test_wildcards_are_iams_star_and_question_mark(
    pattern: str, value: str, ignore_case: bool, matches: bool
) -> None:
    assert wildcard_match(pattern, value, ignore_case=ignore_case) is matches


@pytest.mark.parametrize(
    ("pattern", "resource", "matches"),
    [
        ("*", "arn:aws:s3:::b/k", True),
        ("arn:aws:s3:::b/tenants/*", "arn:aws:s3:::b/tenants/t1/uploads/x.csv", True),
        ("arn:aws:s3:::b/tenants/*", "arn:aws:s3:::b/other/x.csv", False),
        ("arn:aws:s3:::b", "arn:aws:s3:::b/k", False),
        (TABLE, TABLE, True),
        (TABLE, TABLE + "/index/by-tenant", False),  # an index needs its own resource
        (f"{TABLE}/index/*", TABLE + "/index/by-tenant", True),
        (
            "arn:aws:states:us-east-1:123456789012:execution:sm:*",
            "arn:aws:states:us-east-1:123456789012:execution:sm:e1",
            True,
        ),
        # Segment by segment: a * in the region cannot reach into the account.
        ("arn:aws:sqs:*:111111111111:q", "arn:aws:sqs:us-east-1:123456789012:q", False),
        ("arn:aws:sqs:*:123456789012:q", "arn:aws:sqs:us-east-1:123456789012:q", True),
        ("arn:aws:s3:::B/k", "arn:aws:s3:::b/k", False),  # resources are case-sensitive
    ],
)
def test_resources_match_with_wildcards_per_arn_segment(pattern: str, resource: str, matches: bool) -> None:
    assert resource_match(pattern, resource) is matches


def test_an_allow_allows_only_its_actions_on_its_resources() -> None:
    statements = _statements(
        {"Effect": "Allow", "Action": ["dynamodb:GetItem", "dynamodb:PutItem"], "Resource": TABLE}
    )
    assert evaluate(statements, "dynamodb:GetItem", TABLE).allowed
    assert evaluate(statements, "DYNAMODB:putitem", TABLE).allowed  # actions are case-insensitive
    refused = evaluate(statements, "dynamodb:DeleteItem", TABLE)
    assert not refused.allowed
    assert not refused.explicit_deny
    assert not evaluate(statements, "dynamodb:GetItem", TABLE + "2").allowed
    assert not evaluate([], "dynamodb:GetItem", TABLE).allowed


def test_an_explicit_deny_wins_over_any_allow() -> None:
    statements = _statements(
        {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
        {"Sid": "NoDeletes", "Effect": "Deny", "Action": "s3:Delete*", "Resource": "arn:aws:s3:::b/*"},
    )
    decision = evaluate(statements, "s3:DeleteObjectVersion", "arn:aws:s3:::b/k")
    assert not decision.allowed
    assert decision.explicit_deny
    assert [s.source for s in decision.statements] == ["role/policy#1 (NoDeletes)"]
    assert evaluate(statements, "s3:DeleteObject", "arn:aws:s3:::other/k").allowed


def test_not_action_and_not_resource_apply_to_everything_else() -> None:
    statements = _statements(
        {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "s3:GetObject", "NotResource": "arn:aws:s3:::public/*"},
    )
    assert evaluate(statements, "sqs:SendMessage", "arn:aws:sqs:us-east-1:1:q").allowed
    assert not evaluate(statements, "iam:CreateRole", "arn:aws:iam::1:role/r").allowed
    assert evaluate(statements, "s3:GetObject", "arn:aws:s3:::public/x").allowed
    assert evaluate(statements, "s3:GetObject", "arn:aws:s3:::private/x").explicit_deny


def test_conditions_are_not_evaluated_and_an_allow_resting_on_one_says_so() -> None:
    statements = _statements(
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
        {"Effect": "Allow", "Action": "iam:GetRole", "Resource": "*"},
    )
    passed = evaluate(statements, "iam:PassRole", "arn:aws:iam::1:role/r")
    assert passed.allowed
    assert passed.conditional
    assert not evaluate(statements, "iam:GetRole", "arn:aws:iam::1:role/r").conditional


def test_a_single_statement_object_and_string_fields_parse() -> None:
    statements = parse_statements(
        {"Statement": {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}}, "p"
    )
    assert len(statements) == 1
    assert statements[0].actions == ("sqs:SendMessage",)


# ------------------------------------------------------------------------------------------ the table


def _requests(service: str, operation: str, **params: Any) -> list[tuple[str, str]] | None:
    found = requests_for(service, operation, params, WHERE)
    return None if found is None else [(r.action, r.resource) for r in found]


@pytest.mark.parametrize(
    ("service", "operation", "params", "expected"),
    [
        ("dynamodb", "GetItem", {"TableName": "jobs"}, [("dynamodb:GetItem", TABLE)]),
        ("dynamodb", "UpdateItem", {"TableName": TABLE}, [("dynamodb:UpdateItem", TABLE)]),
        ("dynamodb", "Query", {"TableName": "jobs"}, [("dynamodb:Query", TABLE)]),
        (
            "dynamodb",
            "Query",
            {"TableName": "jobs", "IndexName": "tier-queue"},
            [("dynamodb:Query", f"{TABLE}/index/tier-queue")],
        ),
        (
            "dynamodb",
            "Scan",
            {"TableName": "jobs", "IndexName": "i"},
            [("dynamodb:Scan", f"{TABLE}/index/i")],
        ),
        (
            "dynamodb",
            "BatchGetItem",
            {"RequestItems": {"jobs": {}, "tiers": {}}},
            [("dynamodb:BatchGetItem", TABLE), ("dynamodb:BatchGetItem", TABLE.replace("jobs", "tiers"))],
        ),
        ("dynamodb", "BatchWriteItem", {"RequestItems": {"jobs": []}}, [("dynamodb:BatchWriteItem", TABLE)]),
        (
            "dynamodb",
            "TransactWriteItems",
            {
                "TransactItems": [
                    {"Put": {"TableName": "jobs"}},
                    {"Update": {"TableName": "tiers"}},
                    {"Delete": {"TableName": "leases"}},
                    {"ConditionCheck": {"TableName": "jobs"}},
                ]
            },
            [
                ("dynamodb:PutItem", TABLE),
                ("dynamodb:UpdateItem", TABLE.replace("jobs", "tiers")),
                ("dynamodb:DeleteItem", TABLE.replace("jobs", "leases")),
                ("dynamodb:ConditionCheckItem", TABLE),
            ],
        ),
        (
            "dynamodb",
            "TransactGetItems",
            {"TransactItems": [{"Get": {"TableName": "jobs"}}]},
            [("dynamodb:GetItem", TABLE)],
        ),
        (
            "sqs",
            "SendMessage",
            {"QueueUrl": "http://127.0.0.1:4566/123456789012/basic"},
            [("sqs:SendMessage", "arn:aws:sqs:us-east-1:123456789012:basic")],
        ),
        (
            "sqs",
            "DeleteMessageBatch",
            {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/123456789012/q"},
            [("sqs:DeleteMessage", "arn:aws:sqs:us-east-1:123456789012:q")],
        ),
        (
            "sqs",
            "GetQueueUrl",
            {"QueueName": "q"},
            [("sqs:GetQueueUrl", "arn:aws:sqs:us-east-1:123456789012:q")],
        ),
        ("s3", "GetObject", {"Bucket": "b", "Key": "k/x"}, [("s3:GetObject", "arn:aws:s3:::b/k/x")]),
        (
            "s3",
            "GetObject",
            {"Bucket": "b", "Key": "k", "VersionId": "v1"},
            [("s3:GetObjectVersion", "arn:aws:s3:::b/k")],
        ),
        ("s3", "HeadObject", {"Bucket": "b", "Key": "k"}, [("s3:GetObject", "arn:aws:s3:::b/k")]),
        (
            "s3",
            "HeadObject",
            {"Bucket": "b", "Key": "k", "VersionId": "v"},
            [("s3:GetObjectVersion", "arn:aws:s3:::b/k")],
        ),
        ("s3", "PutObject", {"Bucket": "b", "Key": "k"}, [("s3:PutObject", "arn:aws:s3:::b/k")]),
        (
            "s3",
            "PutObject",
            {"Bucket": "b", "Key": "k", "Tagging": "a=1"},
            [("s3:PutObject", "arn:aws:s3:::b/k"), ("s3:PutObjectTagging", "arn:aws:s3:::b/k")],
        ),
        ("s3", "ListObjectsV2", {"Bucket": "b", "Prefix": "p/"}, [("s3:ListBucket", "arn:aws:s3:::b")]),
        ("s3", "ListObjectVersions", {"Bucket": "b"}, [("s3:ListBucketVersions", "arn:aws:s3:::b")]),
        (
            "s3",
            "DeleteObject",
            {"Bucket": "b", "Key": "k", "VersionId": "v"},
            [("s3:DeleteObjectVersion", "arn:aws:s3:::b/k")],
        ),
        (
            "s3",
            "DeleteObjects",
            {"Bucket": "b", "Delete": {"Objects": [{"Key": "a", "VersionId": "v"}, {"Key": "c"}]}},
            [("s3:DeleteObjectVersion", "arn:aws:s3:::b/a"), ("s3:DeleteObject", "arn:aws:s3:::b/c")],
        ),
        (
            "s3",
            "CopyObject",
            {
                "CopySource": {"Bucket": "up", "Key": "t/x.csv", "VersionId": "v"},
                "Bucket": "art",
                "Key": "j/x.csv",
                "TaggingDirective": "REPLACE",
            },
            [
                ("s3:GetObjectVersion", "arn:aws:s3:::up/t/x.csv"),
                ("s3:PutObject", "arn:aws:s3:::art/j/x.csv"),
            ],
        ),
        (
            "s3",
            "CopyObject",
            {"CopySource": "/up/t/a%20b.csv", "Bucket": "art", "Key": "k", "Tagging": "a=1"},
            [
                ("s3:GetObject", "arn:aws:s3:::up/t/a b.csv"),
                ("s3:PutObject", "arn:aws:s3:::art/k"),
                ("s3:PutObjectTagging", "arn:aws:s3:::art/k"),
            ],
        ),
        (
            "s3",
            "CopyObject",
            {"CopySource": "up/k?versionId=v9", "Bucket": "art", "Key": "k"},
            [("s3:GetObjectVersion", "arn:aws:s3:::up/k"), ("s3:PutObject", "arn:aws:s3:::art/k")],
        ),
        (
            "stepfunctions",
            "SendTaskSuccess",
            {"taskToken": "t", "output": "{}"},
            [("states:SendTaskSuccess", "*")],
        ),
        ("stepfunctions", "SendTaskFailure", {"taskToken": "t"}, [("states:SendTaskFailure", "*")]),
        (
            "stepfunctions",
            "DescribeExecution",
            {"executionArn": "arn:aws:states:us-east-1:123456789012:execution:sm:e"},
            [("states:DescribeExecution", "arn:aws:states:us-east-1:123456789012:execution:sm:e")],
        ),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "offboard"},
            [("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:offboard")],
        ),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "offboard:live"},
            [("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:offboard:live")],
        ),
        (
            "lambda",
            "Invoke",
            {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:f"},
            [("lambda:InvokeFunction", "arn:aws:lambda:us-east-1:123456789012:function:f")],
        ),
        (
            "events",
            "PutEvents",
            {"Entries": [{"Source": "a"}, {"EventBusName": "custom"}]},
            [
                ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/custom"),
                ("events:PutEvents", "arn:aws:events:us-east-1:123456789012:event-bus/default"),
            ],
        ),
        (
            "sagemaker",
            "StartPipelineExecution",
            {"PipelineName": "Stack-Tenant-Training"},
            [
                (
                    "sagemaker:StartPipelineExecution",
                    "arn:aws:sagemaker:us-east-1:123456789012:pipeline/stack-tenant-training",
                )
            ],
        ),
        (
            "sagemaker",
            "StopPipelineExecution",
            {"PipelineExecutionArn": "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e"},
            [
                (
                    "sagemaker:StopPipelineExecution",
                    "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/e",
                )
            ],
        ),
        (
            "sagemaker",
            "CreatePipeline",
            {"PipelineName": "p", "RoleArn": "arn:aws:iam::123456789012:role/run", "Tags": [{"Key": "a"}]},
            [
                ("sagemaker:CreatePipeline", "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p"),
                ("sagemaker:AddTags", "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p"),
                ("iam:PassRole", "arn:aws:iam::123456789012:role/run"),
            ],
        ),
        (
            "sagemaker",
            "CreateModelPackageGroup",
            {"ModelPackageGroupName": "Acme-models"},
            [
                (
                    "sagemaker:CreateModelPackageGroup",
                    "arn:aws:sagemaker:us-east-1:123456789012:model-package-group/acme-models",
                )
            ],
        ),
        (
            "sagemaker",
            "ListModelPackages",
            {"ModelPackageGroupName": "g"},
            [("sagemaker:ListModelPackages", "*")],
        ),
        (
            "iam",
            "CreateRole",
            {"RoleName": "r", "Path": "/tenants/", "Tags": [{"Key": "t", "Value": "1"}]},
            [
                ("iam:CreateRole", "arn:aws:iam::123456789012:role/tenants/r"),
                ("iam:TagRole", "arn:aws:iam::123456789012:role/tenants/r"),
            ],
        ),
        (
            "iam",
            "DeleteRole",
            {"RoleName": "r"},
            [("iam:DeleteRole", f"arn:aws:iam::123456789012:role{ROLE_PATH}r")],
        ),
        ("sts", "GetCallerIdentity", {}, [("sts:GetCallerIdentity", "*")]),
        # API Gateway authorizes its management API as the HTTP method on the resource's path.
        (
            "apigateway",
            "GetApiKeys",
            {"nameQuery": "t-"},
            [("apigateway:GET", "arn:aws:apigateway:us-east-1::/apikeys")],
        ),
        (
            "apigateway",
            "DeleteUsagePlanKey",
            {"usagePlanId": "p1", "keyId": "k1"},
            [("apigateway:DELETE", "arn:aws:apigateway:us-east-1::/usageplans/p1/keys/k1")],
        ),
        (
            "apigateway",
            "CreateUsagePlanKey",
            {"usagePlanId": "p1", "keyId": "k1", "keyType": "API_KEY"},
            [("apigateway:POST", "arn:aws:apigateway:us-east-1::/usageplans/p1/keys")],
        ),
    ],
)
def test_calls_map_to_iams_actions_and_resources(
    service: str, operation: str, params: dict[str, Any], expected: list[tuple[str, str]]
) -> None:
    assert _requests(service, operation, **params) == expected


def test_an_operation_missing_from_the_table_is_unmapped_never_allowed() -> None:
    assert _requests("dynamodb", "DeleteTable", TableName="jobs") is None
    assert _requests("kinesis", "PutRecord", StreamName="s") is None


def test_every_rule_of_the_table_names_an_action_of_its_service() -> None:
    prefixes = {"stepfunctions": "states"}
    samples: Mapping[str, Any] = {
        "TableName": "t",
        "IndexName": None,
        "RequestItems": {"t": []},
        "TransactItems": [{"Put": {"TableName": "t"}}],
        "QueueUrl": "http://h/1/q",
        "QueueName": "q",
        "Bucket": "b",
        "Key": "k",
        "CopySource": "b/k",
        "Delete": {"Objects": [{"Key": "k"}]},
        "executionArn": "arn:e",
        "stateMachineArn": "arn:s",
        "FunctionName": "f",
        "Entries": [{}],
        "PipelineName": "p",
        "PipelineExecutionArn": "arn:x",
        "ModelPackageGroupName": "g",
        "ModelPackageName": "m",
        "ModelPackageArn": "arn:aws:sagemaker:us-east-1:123456789012:model-package/g/1",
        "ProcessingJobName": "pj",
        "TrainingJobName": "tj",
        "ResourceArn": "arn:r",
        "RoleName": "r",
        "RoleArn": "arn:aws:iam::1:role/r",
        "TopicArn": "arn:t",
        "apiKey": "k",
        "usagePlanId": "p",
        "keyId": "k",
    }
    for service, rules in RULES.items():
        for operation in rules:
            found = requests_for(service, operation, samples, WHERE)
            assert found, (service, operation)
            own = prefixes.get(service, service)
            assert found[0].action.startswith(f"{own}:"), (service, operation, found)
            assert all(isinstance(r, Request) and r.resource for r in found)


# ------------------------------------------------------------------------------------------ the recorder


def test_the_recorder_writes_each_call_as_its_iam_requests_before_it_is_sent(tmp_path: Path) -> None:
    recorder = CallRecorder(
        tmp_path / "calls.jsonl", requests_for, lambda region: Where(region, "123456789012")
    )
    client = boto3.client(
        "dynamodb", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    recorder.attach(client, {"principal": "GateFunction", "function": "gate"})
    with Stubber(client) as stub:
        stub.add_client_error("query", "ProvisionedThroughputExceededException")
        stub.add_response("describe_limits", {})
        with pytest.raises(client.exceptions.ProvisionedThroughputExceededException):
            client.query(TableName="jobs", IndexName="tier-queue", KeyConditionExpression="x = :x")
        client.describe_limits()  # not in the table
    recorder.close()
    lines = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert lines == [
        {
            "principal": "GateFunction",
            "function": "gate",
            "service": "dynamodb",
            "operation": "Query",
            "requests": [["dynamodb:Query", f"{TABLE}/index/tier-queue"]],
        },
        {
            "principal": "GateFunction",
            "function": "gate",
            "service": "dynamodb",
            "operation": "DescribeLimits",
            "requests": None,
        },
    ]


def test_a_call_whose_parameters_the_table_cannot_read_is_recorded_unmapped(tmp_path: Path) -> None:
    recorder = CallRecorder(tmp_path / "c.jsonl", requests_for, lambda region: WHERE)
    recorder.record({"role": "r"}, "dynamodb", "GetItem", {"Key": {}}, "us-east-1")
    recorder.close()
    line = json.loads((tmp_path / "c.jsonl").read_text())
    assert line["requests"] is None
    assert "TableName" in line["error"]


# ------------------------------------------------------------------------------------------ the report


class _Lambda:
    def __init__(self, roles: Mapping[str, str]) -> None:
        self._roles = roles

    def get_function_configuration(self, FunctionName: str) -> dict[str, str]:  # noqa: N803 - boto3's name
        return {"Role": self._roles[FunctionName]}


@pytest.fixture
def iam() -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("iam", region_name="us-east-1")


def _role(iam: Any, name: str, path: str, *statements: dict[str, Any]) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    arn: str = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=json.dumps(trust))["Role"][
        "Arn"
    ]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="p0",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": list(statements)}),
    )
    return arn


def _write(path: Path, *calls: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(call) + "\n" for call in calls))


def test_the_report_checks_each_call_against_its_principals_role(tmp_path: Path, iam: Any) -> None:
    gate = _role(iam, "gate-role", "/", {"Effect": "Allow", "Action": "dynamodb:GetItem", "Resource": TABLE})
    flow = _role(
        iam,
        "flow-role",
        "/",
        {
            "Effect": "Allow",
            "Action": "iam:DeleteRole",
            "Resource": "arn:aws:iam::123456789012:role/tenants/*",
        },
    )
    tenant = _role(iam, "t1", "/tenants/", {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"})
    get = {
        "principal": "Gate",
        "function": "gate",
        "service": "dynamodb",
        "operation": "GetItem",
        "requests": [["dynamodb:GetItem", TABLE]],
    }
    put = {**get, "operation": "PutItem", "requests": [["dynamodb:PutItem", TABLE]]}
    _write(
        tmp_path / "calls" / "Gate-1.jsonl",
        get,
        get,
        put,
        {**get, "operation": "DescribeLimits", "requests": None},
        {
            **get,
            "service": "sts",
            "operation": "GetCallerIdentity",
            "requests": [["sts:GetCallerIdentity", "*"]],
        },
    )
    _write(
        tmp_path / "calls" / "emulator.jsonl",
        # A role named only: its path comes from the role IAM knows.
        {
            "role": flow,
            "service": "iam",
            "operation": "DeleteRole",
            "requests": [["iam:DeleteRole", f"arn:aws:iam::123456789012:role{ROLE_PATH}t1"]],
        },
        {
            "role": "",
            "service": "sqs",
            "operation": "SendMessage",
            "requests": [["sqs:SendMessage", "arn:q"]],
        },
    )
    clients = {"iam": iam, "lambda": _Lambda({"gate": gate})}
    report = check_permissions(tmp_path / "calls", clients.__getitem__, {flow: "Flow"})

    assert report.calls_checked == 7
    assert [(d.principal, d.action, d.resource, d.calls) for d in report.denied] == [
        ("Gate", "dynamodb:PutItem", TABLE, 1),
        ("role (none)", "sqs:SendMessage", "arn:q", 1),
    ]
    assert [(u.principal, u.operation, u.calls) for u in report.unmapped] == [("Gate", "DescribeLimits", 1)]
    assert not report.ok
    assert report.denied_calls == 2
    assert report.unmapped_calls == 1
    by_name = {p.principal: p for p in report.principals}
    assert by_name["Gate"].calls == 5
    assert by_name["Gate"].denied_calls == 1
    assert by_name["Flow"].calls == 1
    assert by_name["Flow"].denied_calls == 0
    assert tenant.startswith("arn:aws:iam::123456789012:role/tenants/")
    text = "\n".join(report.summary_lines())
    assert "DENIED Gate: dynamodb:PutItem" in text
    assert "UNMAPPED Gate: dynamodb.DescribeLimits" in text
    assert all(note in report.not_evaluated for note in NOT_EVALUATED)


def test_the_report_lists_the_statements_whose_conditions_it_did_not_evaluate(
    tmp_path: Path, iam: Any
) -> None:
    role = _role(
        iam,
        "provision",
        "/",
        {
            "Effect": "Allow",
            "Action": "iam:PassRole",
            "Resource": "*",
            "Condition": {"StringEquals": {"iam:PassedToService": "sagemaker.amazonaws.com"}},
        },
    )
    _write(
        tmp_path / "calls" / "emulator.jsonl",
        {
            "role": role,
            "service": "sagemaker",
            "operation": "CreatePipeline",
            "requests": [["iam:PassRole", "arn:aws:iam::1:role/x"]],
        },
    )
    report = check_permissions(tmp_path / "calls", {"iam": iam}.__getitem__, {role: "Provision"})
    assert report.ok
    assert report.conditional_statements == ("provision/p0#0 (iam:PassRole) - relied on by a call",)


# ------------------------------------------------------------------------------------------ the deploy


def test_sam_policy_templates_are_expanded_to_resolved_statements_and_managed_policies_kept_aside() -> None:
    template = Template(Path(__file__).parent / "fixtures" / "template.yaml", stack_name="fx")
    deployer = Deployer(client=lambda _: None, lambda_runtime=None, log_dir=Path("."), response_endpoint=None)  # type: ignore[arg-type]
    owner = Resource("Flow", "AWS::Serverless::StateMachine", {}, (), None)
    expanded = deployer._policy_statements(
        template, owner, {"LambdaInvokePolicy": {"FunctionName": "fx-Fn-1"}}
    )
    assert expanded["Statement"] == [
        {
            "Action": ["lambda:InvokeFunction"],
            "Effect": "Allow",
            "Resource": f"arn:aws:lambda:{template.region}:{template.account_id}:function:fx-Fn-1*",
        }
    ]
    plain = {"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}
    assert deployer._policy_statements(template, owner, plain) is plain
    assert deployer._policy_statements(template, owner, "AmazonS3ReadOnlyAccess") is None
    assert deployer._unattached_policies == {"Flow": ["AmazonS3ReadOnlyAccess"]}
    with pytest.raises(DeployError, match="NoSuchPolicyTemplate"):
        deployer._policy_statements(template, owner, {"NoSuchPolicyTemplate": {}})
