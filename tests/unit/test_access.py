"""Data-access details: error mapping, endpoints from the environment, number conversion, streaming."""

from __future__ import annotations

import math
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from conftest import aws_client

from controlplane.builds import pipeline_store as pipelines
from controlplane.core import clients, dynamo
from controlplane.core.errors import AwsServiceError, ObjectVersionNotFoundError, TaskTokenDeadError
from controlplane.jobs import execution_store as executions
from controlplane.jobs.execution_end import ExecutionEnd
from controlplane.uploads import object_store as objects


@pytest.fixture
def stubbed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Real clients with a botocore Stubber: no mock backend, no network."""
    made: dict[str, Any] = {}

    def client(service: str) -> Any:
        if service not in made:
            made[service] = boto3.client(service, region_name="us-east-1")
            made[f"{service}-stubber"] = Stubber(made[service]).__enter__()
        return made[service]

    monkeypatch.setattr(executions, "client", client)
    monkeypatch.setattr(pipelines, "client", client)

    def stubber(service: str) -> Stubber:
        client(service)
        stub: Stubber = made[f"{service}-stubber"]
        return stub

    yield stubber
    for name, value in made.items():
        if name.endswith("-stubber"):
            value.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_dead_tokens_map_to_one_domain_error(stubbed: Any, code: str) -> None:
    stubbed("stepfunctions").add_client_error(
        "send_task_success", service_error_code=code, service_message="gone"
    )
    with pytest.raises(TaskTokenDeadError) as raised:
        executions.send_task_success("token", {"a": 1})
    assert raised.value.code == code


def test_other_errors_are_not_mistaken_for_dead_tokens(stubbed: Any) -> None:
    stubbed("stepfunctions").add_client_error("send_task_failure", service_error_code="ThrottlingException")
    with pytest.raises(AwsServiceError):
        executions.send_task_failure("token", error="E", cause="c")


def test_send_task_success_sends_json(stubbed: Any) -> None:
    stubbed("stepfunctions").add_response(
        "send_task_success", {}, {"taskToken": "token", "output": '{"admittedAt": "T", "tier": "basic"}'}
    )
    executions.send_task_success("token", {"admittedAt": "T", "tier": "basic"})


def test_execution_status(stubbed: Any) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:one"
    stub = stubbed("stepfunctions")
    stub.add_response(
        "describe_execution",
        {
            "executionArn": arn,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
            "status": "ABORTED",
            "startDate": "2024-05-14T00:00:00Z",
        },
        {"executionArn": arn},
    )
    stub.add_client_error("describe_execution", service_error_code="ExecutionDoesNotExist")
    assert executions.execution_status(arn) == "ABORTED"
    assert executions.execution_status(arn) is None


def test_execution_end_reports_the_error_of_a_failed_execution(stubbed: Any) -> None:
    arn = "arn:aws:states:us-east-1:123456789012:execution:sm:two"
    stubbed("stepfunctions").add_response(
        "describe_execution",
        {
            "executionArn": arn,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:sm",
            "status": "FAILED",
            "startDate": "2024-05-14T00:00:00Z",
            "error": "States.Runtime",
            "cause": "no such path",
        },
        {"executionArn": arn},
    )
    assert executions.execution_end(arn) == ExecutionEnd("FAILED", "States.Runtime", "no such path")


def test_pipeline_status_and_stop(stubbed: Any) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc"
    stub = stubbed("sagemaker")
    stub.add_response(
        "describe_pipeline_execution", {"PipelineExecutionStatus": "Executing"}, {"PipelineExecutionArn": arn}
    )
    stub.add_response(
        "stop_pipeline_execution",
        {"PipelineExecutionArn": arn},
        {
            "PipelineExecutionArn": arn,
            "ClientRequestToken": "stop-job-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        },
    )
    assert pipelines.status(arn) == "Executing"
    pipelines.stop(
        arn, client_request_token="stop-job-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )


def test_pipeline_failure_reason(stubbed: Any) -> None:
    arn = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p/execution/abc"
    stub = stubbed("sagemaker")
    stub.add_response(
        "describe_pipeline_execution", {"FailureReason": "Step Train failed"}, {"PipelineExecutionArn": arn}
    )
    stub.add_response("describe_pipeline_execution", {}, {"PipelineExecutionArn": arn})
    assert pipelines.failure_reason(arn) == "Step Train failed"
    assert pipelines.failure_reason(arn) is None


def test_clients_honour_aws_endpoint_url(monkeypatch: pytest.MonkeyPatch) -> None:
    clients.reset()
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    try:
        assert clients.client("dynamodb").meta.endpoint_url == "http://127.0.0.1:4566"
        assert clients.client("dynamodb") is clients.client("dynamodb")
    finally:
        clients.reset()


def test_numbers_round_trip_through_dynamodb_format() -> None:
    stats = {"min": 0.1, "max": 1e300, "tiny": 1e-300, "nan": math.nan, "rows": 3, "ok": True, "none": None}
    item = dynamo.to_item({"stats": stats})
    assert item["stats"]["M"]["min"] == {"N": "0.1"}
    assert item["stats"]["M"]["max"] == {"NULL": True}  # beyond DynamoDB's range
    assert item["stats"]["M"]["tiny"] == {"N": "0"}
    assert item["stats"]["M"]["nan"] == {"NULL": True}
    back = dynamo.from_item(item)
    assert back == {
        "stats": {"min": 0.1, "max": None, "tiny": 0, "nan": None, "rows": 3, "ok": True, "none": None}
    }
    assert dynamo.from_item({"n": {"N": "2"}, "s": {"SS": ["b", "a"]}}) == {"n": 2, "s": ["a", "b"]}
    assert isinstance(dynamo.serialize(Decimal("1.5")), dict)


@pytest.mark.usefixtures("aws")
def test_streaming_read_of_one_version_stops_early() -> None:
    s3 = aws_client("s3")
    first = s3.put_object(Bucket="test-uploads-bucket", Key="tenants/acme/uploads/a.csv", Body=b"x" * 100_000)
    s3.put_object(Bucket="test-uploads-bucket", Key="tenants/acme/uploads/a.csv", Body=b"newer")
    chunks = objects.iter_version(
        "test-uploads-bucket", "tenants/acme/uploads/a.csv", first["VersionId"], chunk_bytes=4096
    )
    assert next(chunks) == b"x" * 4096
    chunks.close()
    assert (
        b"".join(
            objects.iter_version("test-uploads-bucket", "tenants/acme/uploads/a.csv", first["VersionId"])
        )
        == b"x" * 100_000
    )
    with pytest.raises(ObjectVersionNotFoundError):
        next(objects.iter_version("test-uploads-bucket", "tenants/acme/uploads/a.csv", "no-such-version"))
    with pytest.raises(ObjectVersionNotFoundError):
        next(
            objects.iter_version(
                "test-uploads-bucket", "tenants/acme/uploads/missing.csv", first["VersionId"]
            )
        )
