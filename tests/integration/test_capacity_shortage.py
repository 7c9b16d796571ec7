"""A SageMaker quota or capacity refusal of StartPipelineExecution is not the tenant's failure: the job gives
its slot back, waits 30 s, goes back in line (ADMITTED -> QUEUED, queueRound 1) and builds once admitted
again. And a redelivered queue message of its first wait (SQS is at-least-once) never replaces the live
wait's token: with it, admission would resume a spent callback and leave the execution waiting forever.

The refusal is injected into the emulator's SageMaker (moto's StartPipelineExecution raises
ResourceLimitExceeded once for this tenant, as the quota fault of localcloud.faults does); everything else
is the real template, state machine and handlers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer
from moto.sagemaker.exceptions import SagemakerClientError
from moto.sagemaker.models import SageMakerModelBackend
from moto.sqs.models import SQSBackend

from tests.integration.conftest import (
    QUIET_SECONDS,
    Deployed,
    set_tier,
    until_settled,
    upload,
    valid_csv,
    wait_for_jobs,
)
from tests.integration.test_execution_ends import holds_lease, running, wait_for_job

pytestmark = pytest.mark.integration
TIER = "premium"


class _ResourceLimitExceededError(SagemakerClientError):
    code = "ResourceLimitExceeded"


@contextmanager
def refused_once(monkeypatch: pytest.MonkeyPatch, tenant_id: str) -> Iterator[list[str]]:
    """StartPipelineExecution refuses the tenant's first build for lack of quota (yields what it refused)."""
    refused: list[str] = []
    original = SageMakerModelBackend.start_pipeline_execution

    def start(backend: Any, *args: Any, **kwargs: Any) -> Any:
        description = str(args[3] if len(args) > 3 else kwargs.get("pipeline_execution_description", ""))
        if f"tenant {tenant_id} " in description and not refused:
            refused.append(description)
            raise _ResourceLimitExceededError(
                "SIMULATED (test): the account-level service limit "
                "'Maximum number of concurrent pipeline executions' is exceeded"
            )
        return original(backend, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SageMakerModelBackend, "start_pipeline_execution", start)
        yield refused


@contextmanager
def queue_messages(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every tier-queue message body (those carrying a task token) sent while it is open."""
    sent: list[dict[str, Any]] = []
    original = SQSBackend.send_message

    def send(backend: Any, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        try:
            body = json.loads(message_body)
        except ValueError:
            body = None
        if isinstance(body, dict) and "taskToken" in body:
            sent.append(body)
        return original(backend, queue_name, message_body, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(SQSBackend, "send_message", send)
        yield sent


def test_a_refused_start_puts_the_job_back_in_line_and_a_stale_message_cannot_strand_it(
    deployed: Deployed, new_tenant: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    tenant = new_tenant(TIER)
    before = running(deployed, TIER)
    with queue_messages(monkeypatch) as sent, refused_once(monkeypatch, tenant.tenant_id) as refused:
        upload(deployed, tenant.tenant_id, "refused-once.csv", valid_csv(tenant))
        requeued = wait_for_job(
            deployed,
            tenant.tenant_id,
            lambda job: job["status"] == "ADMITTED" and "slotReleasedAt" in job,
            "given its slot back after the refusal",
            timeout=90,
        )
        assert refused, "the pipeline start was never refused"
        job_id = requeued["jobId"]
        assert not holds_lease(deployed, job_id)
        # Hold the second admission: the job waits in line in round 1 with its new token stored ...
        limits = set_tier(deployed, TIER, concurrencyLimit=0, borrowingLimit=0)
        try:
            waiting = wait_for_job(
                deployed,
                tenant.tenant_id,
                lambda job: job["status"] == "QUEUED" and "queueTaskToken" in job,
                "back in line with its second wait's token",
                timeout=90,
            )
            mine = [body for body in sent if body["jobId"] == job_id]
            assert [body["queueRound"] for body in mine] == [0, 1]
            assert waiting["queueRound"] == 1
            assert waiting["queueTaskToken"] == mine[1]["taskToken"]
            # ... when SQS delivers the first wait's message once more.
            queue_url = deployed.stack.ref("PremiumQueue")
            deployed.client("sqs").send_message(QueueUrl=queue_url, MessageBody=json.dumps(mine[0]))
            _until_queue_is_empty(deployed, queue_url)
            assert _job(deployed, job_id)["queueTaskToken"] == mine[1]["taskToken"]
        finally:
            set_tier(deployed, TIER, **limits)
        # The slot it gets now resumes the live wait: the build runs and succeeds.
        deployed.client("lambda").invoke(
            FunctionName=deployed.stack.ref("GateFunction"),
            InvocationType="Event",
            Payload=json.dumps({"trigger": "slot-released", "tier": TIER, "jobId": job_id}).encode(),
        )
        (job,) = wait_for_jobs(deployed, tenant.tenant_id, 1, timeout=120)

    assert job["status"] == "SUCCEEDED", job.get("reasons")
    statuses = [entry["status"] for entry in job["timeline"]]
    assert statuses.count("QUEUED") == 2, statuses
    assert statuses.count("ADMITTED") == 2, statuses
    back_in_line = [entry for entry in job["timeline"] if entry["status"] == "QUEUED"][1]
    assert "lack of quota or capacity" in back_in_line["reason"]
    assert "SageMaker.ResourceLimitExceeded" in back_in_line["reason"]
    assert not holds_lease(deployed, job_id)
    assert running(deployed, TIER) == before


def _job(deployed: Deployed, job_id: str) -> dict[str, Any]:
    item = deployed.client("dynamodb").get_item(
        TableName=deployed.outputs["JobsTableName"], Key={"jobId": {"S": job_id}}, ConsistentRead=True
    )["Item"]
    return {key: TypeDeserializer().deserialize(value) for key, value in item.items()}


def _until_queue_is_empty(deployed: Deployed, queue_url: str) -> None:
    def counts() -> tuple[int, int]:
        attributes = deployed.client("sqs").get_queue_attributes(
            QueueUrl=queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]), int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    until_settled(
        counts, lambda pair: pair == (0, 0), quiet_seconds=QUIET_SECONDS, what="the gate to take the message"
    )
