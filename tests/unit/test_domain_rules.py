"""Registration decisions, statuses, admission rules and pipeline outcomes: plain Python, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import tenant_item, tier_defaults
from pydantic import ValidationError

from controlplane.admission.decisions import (
    QueuedJob,
    TakeOutcome,
    classify_take_failure,
    lease_is_leaked,
    order_candidates,
    queued_job_from,
    should_redeliver_admission,
)
from controlplane.builds.outcome import (
    is_our_pipeline,
    outcome_from_status,
    pipeline_name_from_arn,
    resume_decision,
)
from controlplane.core.errors import RegistrationConflictError
from controlplane.core.model import Tier, format_timestamp
from controlplane.jobs.execution_end import ExecutionEnd, failure_reason
from controlplane.jobs.lifecycle import (
    TERMINAL_STATUSES,
    FailureReason,
    Job,
    JobStatus,
    can_transition,
    is_terminal,
)
from controlplane.tenants.model import Tenant, TenantContract
from controlplane.uploads.keys import KeyRejection, UploadKey, derive_job_id
from controlplane.uploads.model import UploadedObject
from controlplane.uploads.registration import (
    Accepted,
    Outcome,
    Rejected,
    decide_registration,
    job_ref,
    new_job_item,
    pipeline_wait_seconds,
    result_for_existing_job,
    result_for_new_job,
    split_s3_uri,
)

UPLOAD = UploadedObject(
    bucket="uploads", key="tenants/acme/uploads/a.csv", version_id="v1", size_bytes=10, etag="e"
)
JOB_ID = derive_job_id(UPLOAD.bucket, UPLOAD.key, UPLOAD.version_id)
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:sm:one"


def decide(tenant: dict[str, Any] | None, tier: dict[str, Any] | None = None, key: Any = None) -> Any:
    parsed = key or UploadKey("acme", "a.csv")
    return decide_registration(
        JOB_ID,
        parsed,
        tenant,
        lambda name: tier if tier is not None else tier_defaults(name.value),
        artifacts_bucket="artifacts",
        training_image_uri="image:1",
    )


# ---------------------------------------------------------------- registration
def test_accepted_upload_gets_a_complete_plan() -> None:
    decision = decide(tenant_item())
    assert isinstance(decision, Accepted)
    plan = decision.plan
    assert plan.tier is Tier.BASIC
    assert plan.training_data_uri == f"s3://artifacts/tenants/acme/jobs/{JOB_ID}/input/dataset.csv"
    assert plan.model_output_uri == f"s3://artifacts/tenants/acme/jobs/{JOB_ID}/model/"
    assert plan.pipeline_wait_seconds == pipeline_wait_seconds(3600, True) == 3 * 3600 + 3600 + 3 * 900
    assert plan.training_image_uri == "image:1"
    wire = plan.wire()
    assert set(wire) == {
        "tier",
        "queueUrl",
        "queueWaitSeconds",
        "trainingInstanceType",
        "trainingInstanceCount",
        "processingInstanceType",
        "processingInstanceCount",
        "useSpotInstances",
        "maxRuntimeSeconds",
        "pipelineWaitSeconds",
        "maxDatasetBytes",
        "trainingImageUri",
        "trainingDataUri",
        "modelOutputUri",
        "validateInRanges",
    }
    assert decision.tenant.summary()["contract"] == {
        "targetColumn": "churned",
        "problemType": "binary_classification",
        "minRows": 3,
    }


@pytest.mark.parametrize(("runtime", "spot", "expected"), [(3600, True, 17100), (14400, False, 45900)])
def test_pipeline_wait_covers_every_step(runtime: int, spot: bool, expected: int) -> None:
    assert pipeline_wait_seconds(runtime, spot) == expected
    assert pipeline_wait_seconds(runtime, spot) > 3 * runtime


def test_rejections() -> None:
    assert decide(None) == Rejected("acme", ("tenant 'acme' is not onboarded",))
    suspended = decide(tenant_item(status="SUSPENDED"))
    assert suspended == Rejected("acme", ("tenant 'acme' is suspended",), Tier.BASIC)
    odd = decide(tenant_item(), key=KeyRejection("unknown", "no tenant"))
    assert odd == Rejected("unknown", ("no tenant",))


def test_invalid_tenant_record_is_rejected_with_the_field() -> None:
    decision = decide(tenant_item(contract={"targetColumn": "y", "problemType": "clustering", "minRows": 1}))
    assert isinstance(decision, Rejected)
    assert "contract.problemType" in decision.reasons[0]
    assert "an operator must correct it" in decision.reasons[0]


def test_missing_or_invalid_tier() -> None:
    def no_tier(_: Tier) -> None:
        return None

    missing = decide_registration(
        JOB_ID,
        UploadKey("acme", "a.csv"),
        tenant_item(),
        no_tier,
        artifacts_bucket="a",
        training_image_uri="i",
    )
    assert missing == Rejected(
        "acme", ("tier 'basic' has no settings; an operator must seed the tiers table",), Tier.BASIC
    )
    invalid = decide(tenant_item(), tier=tier_defaults("basic") | {"maxDatasetBytes": 0})
    assert isinstance(invalid, Rejected)
    assert "maxDatasetBytes" in invalid.reasons[0]


def test_new_job_items() -> None:
    accepted = new_job_item(JOB_ID, UPLOAD, decide(tenant_item()), execution_arn=EXECUTION, now="T")
    assert accepted["status"] == "RECEIVED"
    assert accepted["tier"] == "basic"
    assert accepted["timeline"] == [
        {"status": "RECEIVED", "at": "T", "state": "Register the upload as a job"}
    ]
    assert accepted["executionArn"] == EXECUTION
    rejected = new_job_item(JOB_ID, UPLOAD, decide(None), execution_arn=EXECUTION, now="T")
    assert rejected["status"] == "REJECTED"
    assert rejected["reasons"] == ["tenant 'acme' is not onboarded"]
    assert rejected["finishedAt"] == "T"
    assert rejected["timeline"][0]["reason"] == "tenant 'acme' is not onboarded"
    assert "tier" not in rejected


def test_existing_job_from_another_execution_is_a_duplicate() -> None:
    decision = decide(tenant_item())
    ref = job_ref(JOB_ID, "acme", UPLOAD)
    existing = Job.model_validate(new_job_item(JOB_ID, UPLOAD, decision, execution_arn="arn:other", now="T"))
    result = result_for_existing_job(ref, existing, decision, execution_arn=EXECUTION)
    assert result.outcome is Outcome.DUPLICATE
    assert result.wire()["plan"] is None


def test_retried_registration_replays_its_own_outcome() -> None:
    decision = decide(tenant_item())
    ref = job_ref(JOB_ID, "acme", UPLOAD)
    existing = Job.model_validate(new_job_item(JOB_ID, UPLOAD, decision, execution_arn=EXECUTION, now="T"))
    assert result_for_existing_job(ref, existing, decision, execution_arn=EXECUTION) == result_for_new_job(
        ref, decision
    )
    rejected = Job.model_validate(
        new_job_item(JOB_ID, UPLOAD, decide(None), execution_arn=EXECUTION, now="T")
    )
    replay = result_for_existing_job(ref, rejected, decision, execution_arn=EXECUTION)
    assert (replay.outcome, replay.reasons) == (Outcome.REJECTED, ("tenant 'acme' is not onboarded",))
    with pytest.raises(RegistrationConflictError):
        result_for_existing_job(ref, existing, decide(None), execution_arn=EXECUTION)


def test_split_s3_uri() -> None:
    assert split_s3_uri("s3://b/k/x.csv") == ("b", "k/x.csv")
    with pytest.raises(ValueError, match="needs a bucket and a key"):
        split_s3_uri("s3://b/")
    with pytest.raises(ValueError, match="not an s3"):
        split_s3_uri("https://b/k")


# ---------------------------------------------------------------- models
def test_terminal_statuses_never_change() -> None:
    assert {status.value for status in TERMINAL_STATUSES} == {
        "SUCCEEDED",
        "FAILED",
        "STOPPED",
        "REJECTED",
        "EXPIRED",
        "CANCELLED",
    }
    for terminal in TERMINAL_STATUSES:
        assert is_terminal(terminal.value)
        assert not any(can_transition(terminal, target) for target in JobStatus)


@pytest.mark.parametrize(
    ("current", "target", "allowed"),
    [
        (None, JobStatus.RECEIVED, True),
        (None, JobStatus.QUEUED, False),
        (JobStatus.RECEIVED, JobStatus.VALIDATED, True),
        (JobStatus.RECEIVED, JobStatus.QUEUED, False),
        (JobStatus.VALIDATED, JobStatus.QUEUED, True),
        (JobStatus.QUEUED, JobStatus.ADMITTED, True),
        (JobStatus.QUEUED, JobStatus.EXPIRED, True),
        (JobStatus.ADMITTED, JobStatus.RUNNING, True),
        (JobStatus.RUNNING, JobStatus.SUCCEEDED, True),
        (JobStatus.RUNNING, JobStatus.QUEUED, False),
        (JobStatus.QUEUED, JobStatus.CANCELLED, True),
    ],
)
def test_transitions(current: JobStatus | None, target: JobStatus, allowed: bool) -> None:
    assert can_transition(current, target) is allowed


@pytest.mark.parametrize(
    ("contract", "message"),
    [
        ({"featureColumns": []}, "must not be an empty list"),
        ({"featureColumns": ["a", "a"]}, "lists a more than once"),
        ({"featureColumns": ["churned", "a"]}, "also listed as a feature"),
        ({"minRows": 0}, "greater than or equal to 1"),
    ],
)
def test_contract_validation(contract: dict[str, Any], message: str) -> None:
    base = {"targetColumn": "churned", "problemType": "regression", "minRows": 5}
    with pytest.raises(ValidationError, match=message):
        TenantContract.model_validate(base | contract)


def test_tenant_parses_dynamodb_numbers_and_strings() -> None:
    tenant = Tenant.model_validate(tenant_item(metricThreshold="0.8"))
    assert tenant.metric_threshold == 0.8
    assert format_timestamp(datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)) == "2024-05-01T12:00:00.123Z"


# ---------------------------------------------------------------- admission
def queued(job_id: str, at: str) -> QueuedJob:
    return QueuedJob(job_id, "acme", "basic", at, f"token-{job_id}", "arn:exec")


def test_candidates_oldest_first_with_stable_ties() -> None:
    jobs = [
        queued("job-b", "2024-01-01T00:00:02.000Z"),
        queued("job-c", "2024-01-01T00:00:01.000Z"),
        queued("job-a", "2024-01-01T00:00:02.000Z"),
    ]
    assert [job.job_id for job in order_candidates(jobs)] == ["job-c", "job-a", "job-b"]


def test_queued_job_from_index_item() -> None:
    item = {
        "jobId": "job-1",
        "status": "QUEUED",
        "queueTier": "basic",
        "queueTaskToken": "t",
        "queuedAt": "T",
        "tenantId": "acme",
        "executionArn": "arn",
    }
    assert queued_job_from(Job.model_validate(item)) == QueuedJob("job-1", "acme", "basic", "T", "t", "arn")
    assert queued_job_from(Job.model_validate(item | {"status": "ADMITTED"})) is None
    assert (
        queued_job_from(Job.model_validate({k: v for k, v in item.items() if k != "queueTaskToken"})) is None
    )


@pytest.mark.parametrize(
    ("codes", "outcome"),
    [
        # Items: account, tier, lease, job, share.
        (["ConditionalCheckFailed", None, None, None, None], TakeOutcome.ACCOUNT_FULL),
        (
            ["ConditionalCheckFailed", "ConditionalCheckFailed", None, "ConditionalCheckFailed", None],
            TakeOutcome.ACCOUNT_FULL,
        ),
        ([None, "ConditionalCheckFailed", None, None, None], TakeOutcome.STALE),
        ([None, None, None, None, "ConditionalCheckFailed"], TakeOutcome.STALE),
        ([None, "ConditionalCheckFailed", None, "ConditionalCheckFailed", None], TakeOutcome.NOT_QUEUED),
        ([None, None, "ConditionalCheckFailed", None, None], TakeOutcome.NOT_QUEUED),
        ([None, None, None, "ConditionalCheckFailed", None], TakeOutcome.NOT_QUEUED),
        ([None, "TransactionConflict", None, None, None], TakeOutcome.RETRY),
        ([], TakeOutcome.RETRY),
    ],
)
def test_take_cancellations(codes: list[str | None], outcome: TakeOutcome) -> None:
    assert classify_take_failure(codes) is outcome


def test_leaks() -> None:
    assert lease_is_leaked(None)
    assert lease_is_leaked("ABORTED")
    assert lease_is_leaked("TIMED_OUT")
    assert not lease_is_leaked("RUNNING")


def test_redelivery_only_for_stale_admitted_jobs_with_a_token() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    old = format_timestamp(now - timedelta(minutes=5))
    fresh = format_timestamp(now - timedelta(seconds=10))
    item = {"jobId": "job-1", "tenantId": "acme", "status": "ADMITTED", "queueTaskToken": "t"}
    job = Job.model_validate(item)
    assert should_redeliver_admission(job, old, now)
    assert not should_redeliver_admission(job, fresh, now)
    untokened = Job.model_validate({k: v for k, v in item.items() if k != "queueTaskToken"})
    assert not should_redeliver_admission(untokened, old, now)
    assert not should_redeliver_admission(Job.model_validate(item | {"status": "RUNNING"}), old, now)
    assert not should_redeliver_admission(None, old, now)


# ---------------------------------------------------------------- pipeline outcomes
ARN = "arn:aws:sagemaker:us-east-1:123456789012:pipeline/mlaas-test-tenant-training/execution/abc"


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        ("Succeeded", JobStatus.SUCCEEDED, ""),
        ("Stopped", JobStatus.STOPPED, "the pipeline execution was stopped"),
        ("Failed", JobStatus.FAILED, "the pipeline failed: ClientError: AlgorithmError"),
    ],
)
def test_outcomes(status: str, expected: JobStatus, reason: str) -> None:
    outcome = outcome_from_status(
        status, pipeline_execution_arn=ARN, at="T", failure_reason="ClientError: AlgorithmError"
    )
    assert outcome is not None
    assert outcome.resume_payload() == {
        "status": expected.value,
        "reason": reason,
        "pipelineExecutionArn": ARN,
    }


def test_failed_without_reason_and_non_terminal_statuses() -> None:
    outcome = outcome_from_status("Failed", pipeline_execution_arn=ARN, at="T")
    assert outcome is not None
    assert outcome.reason == "the pipeline failed (SageMaker gave no reason)"
    assert outcome_from_status("Executing", pipeline_execution_arn=ARN, at="T") is None
    assert outcome_from_status("Stopping", pipeline_execution_arn=ARN, at="T") is None


def test_resume_needs_token_and_outcome_and_no_claim() -> None:
    outcome = {"status": "SUCCEEDED", "reason": "", "at": "T", "pipelineExecutionArn": ARN}
    item = {
        "jobId": "job-1",
        "tenantId": "acme",
        "status": "RUNNING",
        "pipelineTaskToken": "tok",
        "pipelineOutcome": outcome,
    }
    decision = resume_decision(Job.model_validate(item))
    assert decision is not None
    assert (decision.job_id, decision.task_token) == ("job-1", "tok")
    assert decision.outcome.wire() == outcome
    assert (
        resume_decision(Job.model_validate({k: v for k, v in item.items() if k != "pipelineOutcome"})) is None
    )
    assert (
        resume_decision(Job.model_validate({k: v for k, v in item.items() if k != "pipelineTaskToken"}))
        is None
    )
    assert resume_decision(Job.model_validate(item | {"resumedAt": "T"})) is None
    assert resume_decision(None) is None


def test_pipeline_names_compare_case_insensitively() -> None:
    assert pipeline_name_from_arn(ARN) == "mlaas-test-tenant-training"
    assert is_our_pipeline(ARN.rsplit("/execution", 1)[0], "MLaaS-Test-tenant-training")
    assert not is_our_pipeline(
        "arn:aws:sagemaker:us-east-1:1:pipeline/other-pipeline", "MLaaS-Test-tenant-training"
    )


def test_every_ending_of_an_execution_maps_to_one_of_a_few_failure_reasons() -> None:
    endings = ["ABORTED", "TIMED_OUT", "FAILED", None, "SUCCEEDED", "SOMETHING_NEW"]
    reasons = [failure_reason(ExecutionEnd(status, error="x", cause="free text")) for status in endings]
    assert [reason.value for reason in reasons] == [
        "ExecutionAborted",
        "ExecutionTimedOut",
        "ExecutionFailed",
        "ExecutionMissing",
        "ExecutionEnded",
        "ExecutionEnded",
    ]
    assert len(FailureReason) == 6  # the reason dimension's cardinality (README: "Dashboard")
