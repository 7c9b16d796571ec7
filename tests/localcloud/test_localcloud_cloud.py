"""The emulator end to end: the fixture template deployed into moto and exercised through AWS APIs.

One LocalCloud for the module (one per process at a time); every test uses its own keys and ids.

Nothing here depends on how fast the machine is: Lambda Timeouts are scaled (``TIMEOUT_SCALE``) except in
the tests about timeouts, waits are bounded generously (``EVENTUALLY``: how long a failure may take to show,
not how fast the emulator must be), and concurrency is proved by a barrier, not by a stopwatch.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from localcloud import DeployError, LocalCloud, Stack, wait_for

FIXTURES = Path(__file__).parent / "fixtures"
STATUS_CHANGE = "SageMaker Model Building Pipeline Execution Status Change"
# Function Timeouts (and the Init limit) are this many times the template's, except in tests about them.
TIMEOUT_SCALE = 10.0
# How long a wait for something that must happen may take before the test fails.
EVENTUALLY = 120.0


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCloud]:
    with LocalCloud(
        state_dir=tmp_path_factory.mktemp("localcloud"),
        lambda_timeout_scale=TIMEOUT_SCALE,
        schedule_interval_seconds=1.0,
        pipeline_delay_seconds=0.3,
        event_retry_base_delay_seconds=0.05,
        event_retry_max_delay_seconds=0.1,
    ) as running:
        yield running


@pytest.fixture(scope="module")
def stack(cloud: LocalCloud) -> Stack:
    return cloud.deploy(FIXTURES / "template.yaml", "fx")


def _records(cloud: LocalCloud, stack: Stack, kind: str) -> list[dict[str, Any]]:
    table = cloud.client("dynamodb")
    response = table.query(
        TableName=stack.ref("RecordsTable"),
        IndexName="by-kind",
        KeyConditionExpression="kind = :kind",
        ExpressionAttributeValues={":kind": {"S": kind}},
    )
    return [{name: next(iter(value.values())) for name, value in item.items()} for item in response["Items"]]


def _finished_execution(cloud: LocalCloud, state_machine_arn: str, key: str) -> dict[str, Any]:
    """The execution started for the upload of `key`, once it has finished."""
    stepfunctions = cloud.client("stepfunctions")

    def finished() -> dict[str, Any] | None:
        for summary in stepfunctions.list_executions(stateMachineArn=state_machine_arn)["executions"]:
            execution = stepfunctions.describe_execution(executionArn=summary["executionArn"])
            if json.loads(execution["input"])["detail"]["object"]["key"] == key:
                return execution if execution["status"] != "RUNNING" else None
        return None

    return wait_for(finished, timeout=EVENTUALLY, what=f"the execution for {key}")


def _invoke(
    cloud: LocalCloud, function_name: str, event: dict[str, Any]
) -> tuple[str | None, dict[str, Any]]:
    response = cloud.client("lambda").invoke(FunctionName=function_name, Payload=json.dumps(event))
    return response.get("FunctionError"), json.loads(response["Payload"].read())


# ------------------------------------------------------------------------------------------ deploy


def test_tables_queues_and_buckets_are_created_as_the_template_declares(
    cloud: LocalCloud, stack: Stack
) -> None:
    table = cloud.client("dynamodb").describe_table(TableName=stack.ref("RecordsTable"))["Table"]
    assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    assert [(index["IndexName"], index["KeySchema"]) for index in table["GlobalSecondaryIndexes"]] == [
        (
            "by-kind",
            [{"AttributeName": "kind", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}],
        )
    ]
    backups = cloud.client("dynamodb").describe_continuous_backups(TableName=stack.ref("RecordsTable"))
    assert backups["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"][
        "PointInTimeRecoveryStatus"
    ] == ("ENABLED")

    attributes = cloud.client("sqs").get_queue_attributes(
        QueueUrl=stack.ref("WorkQueue"), AttributeNames=["All"]
    )
    assert attributes["Attributes"]["VisibilityTimeout"] == "1"
    assert json.loads(attributes["Attributes"]["RedrivePolicy"]) == {
        "deadLetterTargetArn": stack.attribute("WorkDeadLetterQueue", "Arn"),
        "maxReceiveCount": 2,
    }

    bucket = stack.output("UploadsBucketName")
    assert bucket.startswith("fx-uploadsbucket-")
    assert bucket == bucket.lower()
    s3 = cloud.client("s3")
    assert s3.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    # The aws:SecureTransport deny would block every plain-HTTP call in moto: kept, not applied.
    assert "UploadsBucketPolicy" in stack.unapplied_policies
    s3.put_object(Bucket=bucket, Key="not-a-trigger.txt", Body=b"plain http works")

    log_groups = cloud.client("logs").describe_log_groups(logGroupNamePrefix="/aws/vendedlogs/states/fx-flow")
    assert log_groups["logGroups"][0]["retentionInDays"] == 7
    assert (
        cloud.client("sagemaker")
        .describe_pipeline(PipelineName="fx-pipeline")["PipelineArn"]
        .endswith(":pipeline/fx-pipeline")
    )


def test_conditions_and_outputs_are_resolved(stack: Stack) -> None:
    assert "ProductionOnlyQueue" not in stack.physical_ids
    assert "ProductionQueueUrl" not in stack.outputs
    assert stack.output("StageKind") == "not-production"
    assert stack.output("FlowArn") == "arn:aws:states:us-east-1:123456789012:stateMachine:fx-flow"


def test_functions_get_the_globals_and_their_own_settings(cloud: LocalCloud, stack: Stack) -> None:
    lambda_client = cloud.client("lambda")
    record = lambda_client.get_function_configuration(FunctionName=stack.ref("RecordFunction"))
    assert record["Environment"]["Variables"] == {
        "RECORDS_TABLE": stack.ref("RecordsTable"),
        "STAGE": "test",
        "COLOR": "red",
    }
    assert [layer["Arn"] for layer in record["Layers"]] == [stack.ref("SharedLayer")]
    assert record["Timeout"] == 10
    assert lambda_client.get_function_configuration(FunctionName=stack.ref("RedFunction"))["Timeout"] == 2
    assert stack.functions["BlueFunction"].environment["COLOR"] == "blue"
    assert stack.functions["BlueFunction"].code_dir == (FIXTURES / "functions" / "color").resolve()
    assert stack.functions["BlueFunction"].layer_dirs == ((FIXTURES / "layer").resolve(),)
    mappings = lambda_client.list_event_source_mappings(FunctionName=stack.attribute("BatchFunction", "Arn"))
    assert [mapping["EventSourceArn"] for mapping in mappings["EventSourceMappings"]] == [
        stack.attribute("WorkQueue", "Arn")
    ]


def test_state_machine_and_its_rule_come_from_the_template(cloud: LocalCloud, stack: Stack) -> None:
    machine = cloud.client("stepfunctions").describe_state_machine(
        stateMachineArn=stack.ref("FlowStateMachine")
    )
    assert machine["name"] == "fx-flow"
    assert stack.attribute("RecordFunction", "Arn") in machine["definition"]
    assert "${" not in machine["definition"]

    events = cloud.client("events")
    rule = events.describe_rule(Name="fx-uploads")
    assert json.loads(rule["EventPattern"])["detail"]["object"]["key"] == [{"prefix": "incoming/"}]
    (target,) = events.list_targets_by_rule(Rule="fx-uploads")["Targets"]
    assert target["Arn"] == stack.ref("FlowStateMachine")
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60}
    assert target["DeadLetterConfig"] == {"Arn": stack.attribute("FlowDeadLetterQueue", "Arn")}

    schedules = [rule for rule in events.list_rules()["Rules"] if rule.get("ScheduleExpression")]
    assert [rule["ScheduleExpression"] for rule in schedules] == ["rate(1 minute)"]
    (schedule_target,) = events.list_targets_by_rule(Rule=schedules[0]["Name"])["Targets"]
    assert schedule_target["Arn"] == stack.attribute("RecordFunction", "Arn")
    assert json.loads(schedule_target["Input"]) == {"kind": "schedule"}


def test_custom_resource_answers_through_its_response_url(stack: Stack) -> None:
    # CloudFormation hands custom resources every scalar as a string: Count 3 arrives as "3".
    assert stack.output("SeedMessage") == "hello 3 (str)"
    assert stack.ref("Seed") == "seed-hello"
    assert stack.attribute("Seed", "Enabled") == "true"


def test_a_failed_custom_resource_fails_the_deploy_with_its_reason(cloud: LocalCloud) -> None:
    with pytest.raises(
        DeployError, match=r"RefusedSeed \(Custom::Seed\) failed to create: the seed was refused"
    ):
        cloud.deploy(FIXTURES / "custom_resource_failure.yaml", "fx-refused")


def test_an_unknown_resource_type_fails_the_deploy_by_name(cloud: LocalCloud) -> None:
    with pytest.raises(DeployError, match="Alerts: resource type AWS::Kinesis::Stream is not emulated"):
        cloud.deploy(FIXTURES / "unsupported.yaml", "fx-unsupported")


# ------------------------------------------------------------------------------------------ flows


def test_s3_upload_runs_the_state_machine_and_its_real_handler(cloud: LocalCloud, stack: Stack) -> None:
    bucket = stack.output("UploadsBucketName")
    key = f"incoming/{uuid.uuid4()}.csv"
    etag = cloud.client("s3").put_object(Bucket=bucket, Key=key, Body=b"a,b\n1,2\n")["ETag"].strip('"')

    execution = _finished_execution(cloud, stack.ref("FlowStateMachine"), key)

    assert execution["status"] == "SUCCEEDED", execution.get("cause")
    delivered = json.loads(execution["input"])
    assert delivered["detail"]["object"]["etag"] == etag
    assert delivered["time"].endswith("Z")
    item = cloud.client("dynamodb").get_item(TableName=stack.ref("RecordsTable"), Key={"pk": {"S": key}})[
        "Item"
    ]
    assert item["color"]["S"] == "red"
    assert item["shared"]["S"] == "from the layer"
    (record,) = [
        record for record in _records(cloud, stack, "upload") if json.loads(record["event"])["key"] == key
    ]
    assert record["functionName"] == stack.ref("RecordFunction")
    assert 0 < int(record["remainingMillis"]) <= 10_000 * TIMEOUT_SCALE


def test_function_errors_reach_the_state_machine_by_their_type(cloud: LocalCloud, stack: Stack) -> None:
    key = f"incoming/explode-{uuid.uuid4()}.csv"
    cloud.client("s3").put_object(Bucket=stack.output("UploadsBucketName"), Key=key, Body=b"x")

    execution = _finished_execution(cloud, stack.ref("FlowStateMachine"), key)

    assert execution["status"] == "FAILED"
    assert execution["error"] == "Exploded"
    cause = json.loads(execution["cause"])
    assert cause["errorType"] == "FixtureExplosionError"
    assert cause["errorMessage"] == "boom, as requested"


def test_unhandled_exception_is_a_lambda_function_error(cloud: LocalCloud, stack: Stack) -> None:
    function_error, payload = _invoke(cloud, stack.ref("RecordFunction"), {"explode": True})

    assert function_error == "Unhandled"
    assert payload["errorType"] == "FixtureExplosionError"
    assert payload["errorMessage"] == "boom, as requested"
    assert any("raise FixtureExplosionError" in line for line in payload["stackTrace"])
    log = stack.functions["RecordFunction"].log_path.read_text()
    assert "[ERROR] FixtureExplosionError: boom, as requested" in log


def test_a_failing_asynchronous_invocation_ends_in_its_on_failure_destination(
    cloud: LocalCloud, stack: Stack
) -> None:
    name = stack.ref("AsyncFailingFunction")
    queue_arn = stack.attribute("AsyncFailuresQueue", "Arn")
    config = cloud.client("lambda").get_function_event_invoke_config(FunctionName=name)
    assert config["MaximumRetryAttempts"] == 1
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == queue_arn
    event = {"explode": True, "id": str(uuid.uuid4())}

    response = cloud.client("lambda").invoke(
        FunctionName=name, InvocationType="Event", Payload=json.dumps(event)
    )
    assert response["StatusCode"] == 202

    sqs = cloud.client("sqs")

    def delivered() -> list[dict[str, Any]]:
        return sqs.receive_message(QueueUrl=stack.ref("AsyncFailuresQueue"), WaitTimeSeconds=1).get(
            "Messages", []
        )

    (message,) = wait_for(
        delivered, timeout=EVENTUALLY, what="the failed event in the on-failure destination"
    )
    record = json.loads(message["Body"])
    assert record["requestPayload"] == event
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == 2  # the first attempt and one retry
    assert record["requestContext"]["functionArn"].startswith(stack.attribute("AsyncFailingFunction", "Arn"))
    assert record["responseContext"]["functionError"] == "Unhandled"
    assert record["responsePayload"]["errorType"] == "FixtureExplosionError"
    log = stack.functions["AsyncFailingFunction"].log_path.read_text()
    assert log.count("START RequestId") == 2
    # Lambda sends to the destination by its ARN with the function's role: SendMessage is the one call the
    # function's role answers for (finding the queue's URL is the emulator's business, not the function's).
    (failing,) = [p for p in cloud.permission_report().principals if p.principal == "AsyncFailingFunction"]
    assert failing.actions == ("sqs:SendMessage",)


def test_missing_code_directory_fails_at_invoke_time(cloud: LocalCloud, stack: Stack) -> None:
    function_error, payload = _invoke(cloud, stack.ref("MissingCodeFunction"), {})

    assert function_error == "Unhandled"
    assert payload["errorType"] == "Runtime.ImportModuleError"
    assert "functions/does_not_exist" in payload["errorMessage"]


def test_template_timeout_ends_the_invocation(cloud: LocalCloud, stack: Stack) -> None:
    with cloud.lambda_runtime.scaled_timeouts(1.0):
        started = time.monotonic()
        function_error, payload = _invoke(cloud, stack.ref("RedFunction"), {"sleep": 4})
        elapsed = time.monotonic() - started
        after = _invoke(cloud, stack.ref("RedFunction"), {})

    assert function_error == "Unhandled"
    assert payload["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 2.00 seconds" in payload["errorMessage"]
    assert elapsed >= 2
    # Ended by the Timeout, not after the 4 s sleep: the worker was killed before the handler returned
    # (however slow the machine, a killed handler never logs its END).
    request_id = payload["errorMessage"].split()[1]
    log = stack.functions["RedFunction"].log_path.read_text()
    assert f"START RequestId: {request_id}" in log
    assert f"END RequestId: {request_id}" not in log
    assert after[1]["color"] == "red"


def test_the_init_phase_is_not_part_of_the_timeout(cloud: LocalCloud, stack: Stack) -> None:
    # Its module takes 2 s to import and its Timeout is 1 s: as on Lambda, Init has a limit of its own (10 s).
    with cloud.lambda_runtime.scaled_timeouts(1.0):
        function_error, payload = _invoke(cloud, stack.ref("SlowInitFunction"), {})

    assert function_error is None, payload
    assert payload["imported"] is True
    assert 0 < payload["remainingMillis"] <= 1000
    report = [
        line
        for line in stack.functions["SlowInitFunction"].log_path.read_text().splitlines()
        if line.startswith("REPORT")
    ]
    assert "Init Duration" in report[0]


def test_functions_run_concurrently_each_with_its_own_environment(
    cloud: LocalCloud, stack: Stack, tmp_path: Path
) -> None:
    names = [stack.ref("RedFunction"), stack.ref("BlueFunction")] * 2
    results: list[dict[str, Any]] = [{} for _ in names]
    # Each invocation waits at a barrier for all four: only invocations running at the same time meet there.
    barrier = {"dir": str(tmp_path), "parties": len(names)}

    def invoke(index: int) -> None:
        results[index] = _invoke(cloud, names[index], {"barrier": barrier})[1]

    threads = [threading.Thread(target=invoke, args=(index,)) for index in range(len(names))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [result.get("sawParties") for result in results] == [4] * 4, f"not all at once: {results}"
    for name, result in zip(names, results, strict=True):
        assert result["functionName"] == name
        assert result["color"] == ("red" if name == stack.ref("RedFunction") else "blue")
        assert result["endpoint"] == cloud.endpoint_url
        assert result["memoryMb"] == 128
    assert results[0]["pid"] != results[2]["pid"], "two concurrent invocations shared one worker"


def test_sqs_mapping_deletes_successes_and_redrives_reported_failures(
    cloud: LocalCloud, stack: Stack
) -> None:
    sqs = cloud.client("sqs")
    run = uuid.uuid4().hex
    # A warm worker first: on a busy machine a cold start (boto3's import) outlasts the queue's 1 s visibility
    # timeout, and SQS then rightly delivers a message again, until the dead-letter queue takes it.
    assert _invoke(cloud, stack.ref("BatchFunction"), {"Records": []}) == (None, {"batchItemFailures": []})
    for body in ({"id": f"{run}-a"}, {"id": f"{run}-b"}, {"id": f"{run}-c", "fail": True}):
        sqs.send_message(QueueUrl=stack.ref("WorkQueue"), MessageBody=json.dumps(body))

    def dead_lettered() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = sqs.receive_message(
            QueueUrl=stack.ref("WorkDeadLetterQueue"), WaitTimeSeconds=1
        ).get("Messages", [])
        return messages

    (dead,) = wait_for(dead_lettered, timeout=EVENTUALLY, what="the failed message in the dead-letter queue")

    assert json.loads(dead["Body"])["id"] == f"{run}-c"
    succeeded = {record["pk"] for record in _records(cloud, stack, "sqs")}
    assert {f"{run}-a", f"{run}-b"} <= succeeded
    attempts = {
        record["pk"] for record in _records(cloud, stack, "sqs-failure") if record["pk"].startswith(run)
    }
    assert attempts == {f"{run}-c#attempt1", f"{run}-c#attempt2"}
    queue = sqs.get_queue_attributes(QueueUrl=stack.ref("WorkQueue"), AttributeNames=["All"])["Attributes"]
    assert (queue["ApproximateNumberOfMessages"], queue["ApproximateNumberOfMessagesNotVisible"]) == (
        "0",
        "0",
    )


def test_undeliverable_event_goes_to_the_targets_dead_letter_queue(cloud: LocalCloud, stack: Stack) -> None:
    events = cloud.client("events")
    missing_machine = "arn:aws:states:us-east-1:123456789012:stateMachine:fx-missing"
    events.put_rule(
        Name="fx-orphans",
        EventPattern=json.dumps(
            {"source": ["aws.s3"], "detail": {"object": {"key": [{"prefix": "orphan/"}]}}}
        ),
    )
    events.put_targets(
        Rule="fx-orphans",
        Targets=[
            {
                "Id": "missing",
                "Arn": missing_machine,
                "RetryPolicy": {"MaximumRetryAttempts": 3},
                "DeadLetterConfig": {"Arn": stack.attribute("FlowDeadLetterQueue", "Arn")},
            }
        ],
    )
    key = f"orphan/{uuid.uuid4()}.csv"
    cloud.client("s3").put_object(Bucket=stack.output("UploadsBucketName"), Key=key, Body=b"x")

    def dead_lettered() -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = (
            cloud.client("sqs")
            .receive_message(
                QueueUrl=stack.ref("FlowDeadLetterQueue"), WaitTimeSeconds=1, MessageAttributeNames=["All"]
            )
            .get("Messages", [])
        )
        return messages

    (message,) = wait_for(dead_lettered, timeout=EVENTUALLY, what="the undeliverable event")

    assert json.loads(message["Body"])["detail"]["object"]["key"] == key
    attributes = {name: value["StringValue"] for name, value in message["MessageAttributes"].items()}
    assert attributes["TARGET_ARN"] == missing_machine
    assert attributes["RULE_ARN"].endswith(":rule/fx-orphans")
    assert attributes["ERROR_CODE"] == "StateMachineDoesNotExist"


def test_schedule_rule_delivers_its_input_to_the_function(cloud: LocalCloud, stack: Stack) -> None:
    records = wait_for(
        lambda: _records(cloud, stack, "schedule"), timeout=EVENTUALLY, what="a scheduled invocation"
    )

    assert json.loads(records[0]["event"]) == {"kind": "schedule"}


def test_a_cancelled_transaction_changes_nothing_and_a_successful_one_everything(
    cloud: LocalCloud, stack: Stack
) -> None:
    dynamodb, table = cloud.client("dynamodb"), stack.ref("RecordsTable")
    run = uuid.uuid4().hex
    kept, deleted, created = (f"{run}-{name}" for name in ("kept", "deleted", "created"))
    for pk in (kept, deleted):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": pk}, "n": {"N": "1"}})

    def items() -> dict[str, dict[str, Any]]:
        return {
            pk: dynamodb.get_item(TableName=table, Key={"pk": {"S": pk}}, ConsistentRead=True).get("Item", {})
            for pk in (kept, deleted, created)
        }

    before = items()
    writes: list[dict[str, Any]] = [
        {
            "Update": {
                "TableName": table,
                "Key": {"pk": {"S": kept}},
                "UpdateExpression": "SET n = n + :one",
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
        },
        {"Delete": {"TableName": table, "Key": {"pk": {"S": deleted}}}},
        {"Put": {"TableName": table, "Item": {"pk": {"S": created}, "n": {"N": "7"}}}},
    ]
    refused = {
        "ConditionCheck": {
            "TableName": table,
            "Key": {"pk": {"S": f"{run}-absent"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException) as cancelled:
        dynamodb.transact_write_items(TransactItems=[*writes, refused])
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "None", "None", "ConditionalCheckFailed"]
    assert items() == before

    dynamodb.transact_write_items(TransactItems=writes)
    after = items()
    assert after[kept]["n"] == {"N": "2"}
    assert after[deleted] == {}
    assert after[created]["n"] == {"N": "7"}


# ------------------------------------------------------------------------------------------ pipelines


def test_start_pipeline_execution_is_idempotent_per_client_request_token(
    cloud: LocalCloud, stack: Stack
) -> None:
    sagemaker = cloud.client("sagemaker")
    token = f"job-{uuid.uuid4().hex}"
    request = {
        "PipelineName": stack.ref("Pipeline"),
        "PipelineExecutionDisplayName": token,
        "PipelineParameters": [{"Name": "TenantId", "Value": "tenant-idempotent"}],
        "ClientRequestToken": token,
    }

    first = sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"]
    second = sagemaker.start_pipeline_execution(**request)["PipelineExecutionArn"]
    other = sagemaker.start_pipeline_execution(**{**request, "ClientRequestToken": f"job-{uuid.uuid4().hex}"})

    assert first == second
    assert other["PipelineExecutionArn"] != first
    summaries = sagemaker.list_pipeline_executions(PipelineName=stack.ref("Pipeline"))[
        "PipelineExecutionSummaries"
    ]
    assert [summary["PipelineExecutionArn"] for summary in summaries].count(first) == 1


def _status_changes(cloud: LocalCloud, stack: Stack, execution_arn: str) -> list[dict[str, Any]]:
    return [
        json.loads(record["event"])["detail"]
        for record in _records(cloud, stack, STATUS_CHANGE)
        if json.loads(record["event"])["detail"]["pipelineExecutionArn"] == execution_arn
    ]


def test_simulated_pipeline_failure_reaches_a_lambda_through_its_rule(
    cloud: LocalCloud, stack: Stack
) -> None:
    tenant = f"tenant-{uuid.uuid4().hex[:8]}"
    cloud.pipeline_runner.set_outcome(tenant_id=tenant, status="Failed", reason="the dataset was rejected")
    sagemaker = cloud.client("sagemaker")

    execution_arn = sagemaker.start_pipeline_execution(
        PipelineName=stack.ref("Pipeline"),
        PipelineParameters=[{"Name": "TenantId", "Value": tenant}],
        ClientRequestToken=f"job-{uuid.uuid4().hex}",
    )["PipelineExecutionArn"]

    assert sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)[
        "PipelineExecutionStatus"
    ] == ("Executing")
    (change,) = wait_for(
        lambda: _status_changes(cloud, stack, execution_arn),
        timeout=EVENTUALLY,
        what="the status-change event",
    )
    assert change["currentPipelineExecutionStatus"] == "Failed"
    assert change["previousPipelineExecutionStatus"] == "Executing"
    assert (
        change["pipelineArn"] == f"arn:aws:sagemaker:us-east-1:123456789012:pipeline/{stack.ref('Pipeline')}"
    )
    assert {"executionStartTime", "executionEndTime", "pipelineExecutionDisplayName"} <= set(change)
    described = sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
    assert (described["PipelineExecutionStatus"], described["FailureReason"]) == (
        "Failed",
        "the dataset was rejected",
    )


def test_stop_pipeline_execution_goes_through_stopping_to_stopped(cloud: LocalCloud, stack: Stack) -> None:
    job = f"job-{uuid.uuid4().hex}"
    cloud.pipeline_runner.set_outcome(job_id=job, status="Executing")
    sagemaker = cloud.client("sagemaker")
    execution_arn = sagemaker.start_pipeline_execution(
        PipelineName=stack.ref("Pipeline"), PipelineExecutionDisplayName=job, ClientRequestToken=job
    )["PipelineExecutionArn"]

    sagemaker.stop_pipeline_execution(PipelineExecutionArn=execution_arn, ClientRequestToken=f"stop-{job}")

    assert sagemaker.describe_pipeline_execution(PipelineExecutionArn=execution_arn)[
        "PipelineExecutionStatus"
    ] in (
        "Stopping",
        "Stopped",
    )
    (change,) = wait_for(
        lambda: _status_changes(cloud, stack, execution_arn), timeout=EVENTUALLY, what="the Stopped event"
    )
    assert (change["previousPipelineExecutionStatus"], change["currentPipelineExecutionStatus"]) == (
        "Stopping",
        "Stopped",
    )
    with pytest.raises(sagemaker.exceptions.ConflictException):
        sagemaker.stop_pipeline_execution(
            PipelineExecutionArn=execution_arn, ClientRequestToken=f"again-{job}"
        )


# ------------------------------------------------------------------------------------------ execution ends

EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"


def _execution_changes(cloud: LocalCloud, stack: Stack, execution_arn: str) -> list[dict[str, Any]]:
    """Every Step Functions status-change event the record function got for one execution."""
    return [
        event
        for event in (
            json.loads(record["event"]) for record in _records(cloud, stack, EXECUTION_STATUS_CHANGE)
        )
        if event["detail"]["executionArn"] == execution_arn
    ]


def _start(cloud: LocalCloud, state_machine_arn: str, payload: dict[str, Any]) -> str:
    arn: str = cloud.client("stepfunctions").start_execution(
        stateMachineArn=state_machine_arn, name=f"x-{uuid.uuid4().hex}", input=json.dumps(payload)
    )["executionArn"]
    return arn


def test_stopping_an_execution_emits_an_aborted_status_change_event(cloud: LocalCloud, stack: Stack) -> None:
    stepfunctions = cloud.client("stepfunctions")
    execution_arn = _start(cloud, stack.ref("SlowStateMachine"), {"job": "to be stopped"})
    assert stepfunctions.describe_execution(executionArn=execution_arn)["status"] == "RUNNING"

    stepfunctions.stop_execution(executionArn=execution_arn)

    (event,) = wait_for(
        lambda: _execution_changes(cloud, stack, execution_arn), timeout=EVENTUALLY, what="the ABORTED event"
    )
    assert (event["source"], event["detail-type"]) == ("aws.states", EXECUTION_STATUS_CHANGE)
    assert event["resources"] == [execution_arn]
    assert event["time"].endswith("Z")
    detail = event["detail"]
    described = stepfunctions.describe_execution(executionArn=execution_arn)
    assert described["status"] == "ABORTED"
    assert detail == {
        "executionArn": execution_arn,
        "stateMachineArn": stack.ref("SlowStateMachine"),
        "name": execution_arn.rsplit(":", 1)[1],
        "status": "ABORTED",
        "startDate": int(described["startDate"].timestamp() * 1000),
        "stopDate": detail["stopDate"],
        "input": '{"job":"to be stopped"}',
        "inputDetails": {"included": True},
        "output": None,
        "outputDetails": None,
        "error": None,
        "cause": None,
    }
    assert detail["startDate"] <= detail["stopDate"] <= int(time.time() * 1000)


def test_every_way_an_execution_ends_is_announced(cloud: LocalCloud, stack: Stack) -> None:
    flow = stack.ref("FlowStateMachine")
    key = f"incoming/{uuid.uuid4()}.csv"
    succeeded = _start(cloud, flow, {"time": "t", "detail": {"object": {"key": key, "etag": "e"}}})
    failed = _start(cloud, flow, {"detail": {"object": {"key": f"incoming/explode-{uuid.uuid4()}.csv"}}})
    timed_out = _start(cloud, stack.ref("HastyStateMachine"), {})

    details = {
        arn: wait_for(lambda arn=arn: _execution_changes(cloud, stack, arn), timeout=EVENTUALLY, what=arn)[0][
            "detail"
        ]
        for arn in (succeeded, failed, timed_out)
    }

    assert details[succeeded]["status"] == "SUCCEEDED"
    assert json.loads(details[succeeded]["output"])["record"]["result"]["color"] == "red"
    assert details[succeeded]["outputDetails"] == {"included": True}
    assert details[failed]["status"] == "FAILED"
    assert details[failed]["error"] == "Exploded"
    assert json.loads(details[failed]["cause"])["errorType"] == "FixtureExplosionError"
    assert details[failed]["output"] is None
    assert details[timed_out]["status"] == "TIMED_OUT"
    assert details[timed_out]["stateMachineArn"] == stack.ref("HastyStateMachine")
    # One event per ending, not per status-change of any other kind.
    assert all(len(_execution_changes(cloud, stack, arn)) == 1 for arn in details)


def test_stopping_an_execution_that_waits_for_its_task_token_aborts_it_at_once(
    cloud: LocalCloud, stack: Stack
) -> None:
    stepfunctions = cloud.client("stepfunctions")
    execution_arn = _start(cloud, stack.ref("ParkedStateMachine"), {})
    (parked,) = wait_for(
        lambda: [
            json.loads(record["event"])
            for record in _records(cloud, stack, "parked")
            if json.loads(record["event"])["execution"] == execution_arn
        ],
        timeout=EVENTUALLY,
        what="the parked task token",
    )

    stopped_at = time.monotonic()
    stepfunctions.stop_execution(executionArn=execution_arn)

    (event,) = wait_for(
        lambda: _execution_changes(cloud, stack, execution_arn), timeout=EVENTUALLY, what="the ABORTED event"
    )
    assert event["detail"]["status"] == "ABORTED"
    assert time.monotonic() - stopped_at < 600  # not at the task's 3600 s timeout
    assert stepfunctions.describe_execution(executionArn=execution_arn)["status"] == "ABORTED"
    # Nobody waits for the token any more, as on AWS.
    with pytest.raises(stepfunctions.exceptions.ClientError) as raised:
        stepfunctions.send_task_success(taskToken=parked["token"], output="{}")
    assert raised.value.response["Error"]["Code"] in {"InvalidToken", "TaskDoesNotExist", "TaskTimedOut"}
    time.sleep(0.5)
    assert len(_execution_changes(cloud, stack, execution_arn)) == 1


def test_model_packages_are_announced_kept_and_untaggable_as_on_sagemaker(cloud: LocalCloud) -> None:
    """Seam 22: a state change event on the default bus after each create and update; an update keeps
    what it does not name; Tags on a version in a group are refused as SageMaker refuses them."""
    sagemaker, sqs, events = cloud.client("sagemaker"), cloud.client("sqs"), cloud.client("events")
    group = f"t{uuid.uuid4().hex[:8]}-models"
    sagemaker.create_model_package_group(ModelPackageGroupName=group)
    url = sqs.create_queue(QueueName=f"changes-{group}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {
        "detail-type": ["SageMaker Model Package State Change"],
        "detail": {"ModelPackageGroupName": [group]},
    }
    events.put_rule(Name=f"changes-{group}", EventPattern=json.dumps(pattern))
    events.put_targets(Rule=f"changes-{group}", Targets=[{"Id": "q", "Arn": queue_arn}])
    request: dict[str, Any] = {
        "ModelPackageGroupName": group,
        "ModelApprovalStatus": "PendingManualApproval",
        "InferenceSpecification": {
            "Containers": [{"Image": "image", "ModelDataUrl": "s3://bucket/model.tar.gz"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "CustomerMetadataProperties": {"mlaas:job": "job-1"},
    }
    with pytest.raises(ClientError, match="Tags are not supported in Model Package versions"):
        sagemaker.create_model_package(**request, Tags=[{"Key": "mlaas:tenant", "Value": "t"}])
    arn = sagemaker.create_model_package(**request)["ModelPackageArn"]
    sagemaker.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    package = sagemaker.describe_model_package(ModelPackageName=arn)
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"] == {"mlaas:job": "job-1"}

    statuses: list[str] = []
    deadline = time.monotonic() + 30
    while len(statuses) < 2 and time.monotonic() < deadline:
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
            event = json.loads(message["Body"])
            assert event["source"] == "aws.sagemaker"
            assert event["resources"] == [arn]
            statuses.append(event["detail"]["ModelApprovalStatus"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    assert statuses == ["PendingManualApproval", "Approved"]
