"""THE price table: every published AWS price the project uses, with its source (one definition).

``bench.stack`` prices the control plane's own requests with it (``make bench``: cost per 1,000 jobs) and
``controlplane.usage.cost`` prices each job's build (instance-seconds of its SageMaker jobs) plus the control
plane's share per job.

Region us-east-1, on-demand list prices, no free tier, USD. AS OF: the AWS pricing pages below as published
in 2025 (DynamoDB on-demand after its 1 November 2024 50% cut). The build machine has no live access to
the AWS pricing pages: Step Functions, Lambda, DynamoDB, SQS and EventBridge were cross-checked against stored
copies of public pages (AWS's "How AWS Pricing Works" whitepaper for Lambda; third-party pricing guides
dated 2025-2026 for the others), which agree with the figures here. The S3 request prices and the SageMaker
instance prices were NOT cross-checked. Re-check every figure on those pages before quoting a bill:
the estimate is a reconciliation aid, the bill is Cost Explorer's and the CUR's (README, "Cost per job").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

AS_OF: Final = "2025 (AWS pricing pages; checked offline against stored copies, not live)"
REGION: Final = "us-east-1"
SAGEMAKER_PRICING: Final = "Amazon SageMaker AI pricing page"


@dataclass(frozen=True)
class Price:
    key: str
    usd: float
    per: str
    source: str
    note: str = ""


STEP_FUNCTIONS_STANDARD: Final = Price(
    "stepfunctions_transition",
    0.025 / 1_000,
    "state transition (Standard workflows: $0.025 per 1,000)",
    "AWS Step Functions pricing page",
)
LAMBDA_REQUEST: Final = Price(
    "lambda_request",
    0.20 / 1_000_000,
    "request ($0.20 per 1M)",
    "AWS Lambda pricing page",
)
LAMBDA_GB_SECOND: Final = Price(
    "lambda_gb_second",
    0.0000166667,
    "GB-second, x86_64, first pricing tier",
    "AWS Lambda pricing page",
    "the template's Globals set Architectures [x86_64]",
)
DYNAMODB_WRITE: Final = Price(
    "dynamodb_wru",
    0.625 / 1_000_000,
    "write request unit, on-demand ($0.625 per 1M)",
    "Amazon DynamoDB on-demand pricing page",
    "1 WRU per write of up to 1 KB; a transactional write costs 2 WRU per item",
)
DYNAMODB_READ: Final = Price(
    "dynamodb_rru",
    0.125 / 1_000_000,
    "read request unit, on-demand ($0.125 per 1M)",
    "Amazon DynamoDB on-demand pricing page",
    "1 RRU per strongly consistent read of up to 4 KB, 0.5 eventually consistent, 2 transactional",
)
SQS_STANDARD: Final = Price(
    "sqs_request",
    0.40 / 1_000_000,
    "request, standard queue ($0.40 per 1M, each 64 KB chunk is a request)",
    "Amazon SQS pricing page",
)
EVENTBRIDGE_CUSTOM: Final = Price(
    "eventbridge_custom_event",
    1.00 / 1_000_000,
    "custom event published ($1.00 per 1M); AWS service events on the default bus are free",
    "Amazon EventBridge pricing page",
)
S3_PUT_CLASS: Final = Price(
    "s3_put_request",
    0.005 / 1_000,
    "PUT, COPY, POST, LIST request, S3 Standard ($0.005 per 1,000)",
    "Amazon S3 pricing page",
)
S3_GET_CLASS: Final = Price(
    "s3_get_request",
    0.0004 / 1_000,
    "GET, HEAD and other request, S3 Standard ($0.0004 per 1,000)",
    "Amazon S3 pricing page",
)

# The control plane's requests (what ``make bench`` prices per 1,000 jobs).
PRICES: Final = (
    STEP_FUNCTIONS_STANDARD,
    LAMBDA_REQUEST,
    LAMBDA_GB_SECOND,
    DYNAMODB_WRITE,
    DYNAMODB_READ,
    SQS_STANDARD,
    EVENTBRIDGE_CUSTOM,
    S3_PUT_CLASS,
    S3_GET_CLASS,
)
NOT_PRICED: Final = (
    "SageMaker Pipelines API calls (StartPipelineExecution, Describe/Stop): no charge for the API; the "
    "pipeline's processing and training jobs are priced per job by controlplane.usage.cost, not by the bench",
    "Step Functions API calls (SendTaskSuccess, DescribeExecution): not billed; Standard bills transitions",
    "CloudWatch Logs ingestion and X-Ray traces: depend on log level and sampling, not measured",
    "S3 storage and the tenant's own upload PUT (counted as a request but it is the tenant's)",
)

# Local Lambda durations (a worker process on a busy 2-core machine, moto behind every call) say nothing
# about Lambda's: the cost uses these ASSUMED billed durations per invocation instead, in milliseconds.
ASSUMED_DURATION_MS: Final = {"ValidateDatasetFunction": 300.0}
DEFAULT_ASSUMED_DURATION_MS: Final = 100.0


# --------------------------------------------------------------------------- SageMaker instances

# On-demand price per instance-hour of SageMaker training and processing jobs, for the instance types the
# tiers use (template.yaml, Mappings.TierDefaults) and their neighbours an operator may switch a tier to
# (PATCH /tiers/{tier}). Training and processing list the same price for these general-purpose types.
# Managed spot training is not a separate price: SageMaker reports it as fewer BillableTimeInSeconds.
INSTANCE_USD_PER_HOUR: Final[Mapping[str, float]] = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
}


def instance_price(instance_type: str) -> Price | None:
    """The per-second price of one instance of ``instance_type`` (None: not in the table)."""
    hourly = INSTANCE_USD_PER_HOUR.get(instance_type)
    if hourly is None:
        return None
    return Price(
        f"sagemaker_{instance_type}",
        hourly / 3600,
        f"instance-second of {instance_type}, training or processing (${hourly} per hour)",
        SAGEMAKER_PRICING,
        "on-demand; managed spot savings come as fewer billable seconds (DescribeTrainingJob)",
    )


# --------------------------------------------------------------------------- the control plane, per job

# What one job costs the control plane itself, from the figures ``make bench`` measured for the real stack
# in the emulator (README, "The real stack in the emulator": 17 state transitions, 24.5 RRU, 54.9 WRU,
# 3.1 SQS requests per job; 5 Lambda invocations: four of 256 MB at an assumed 100 ms, validate_dataset's
# 1769 MB at an assumed 300 ms). Re-measure with ``make bench`` and update these when the flow changes.
CONTROL_PLANE_PER_JOB: Final[Mapping[str, float]] = {
    "state_transitions": 17.0,
    "dynamodb_rru": 24.5,
    "dynamodb_wru": 54.9,
    "sqs_requests": 3.1,
    "eventbridge_custom_events": 0.0,
    "s3_put_requests": 1.0,  # the validated copy
    "s3_get_requests": 1.0,  # the validator's read
    "lambda_requests": 5.0,
    "lambda_gb_seconds": 4 * 256 / 1024 * 0.1 + 1769 / 1024 * 0.3,
}


def control_plane_usd(per_job: Mapping[str, float] = CONTROL_PLANE_PER_JOB) -> float:
    """USD of the control plane's requests for one job (the figures above, priced by this table)."""
    return (
        per_job.get("state_transitions", 0.0) * STEP_FUNCTIONS_STANDARD.usd
        + per_job.get("lambda_requests", 0.0) * LAMBDA_REQUEST.usd
        + per_job.get("lambda_gb_seconds", 0.0) * LAMBDA_GB_SECOND.usd
        + per_job.get("dynamodb_rru", 0.0) * DYNAMODB_READ.usd
        + per_job.get("dynamodb_wru", 0.0) * DYNAMODB_WRITE.usd
        + per_job.get("sqs_requests", 0.0) * SQS_STANDARD.usd
        + per_job.get("eventbridge_custom_events", 0.0) * EVENTBRIDGE_CUSTOM.usd
        + per_job.get("s3_put_requests", 0.0) * S3_PUT_CLASS.usd
        + per_job.get("s3_get_requests", 0.0) * S3_GET_CLASS.usd
    )


def price_table() -> list[dict[str, str | float]]:
    every = [*PRICES, *filter(None, (instance_price(name) for name in INSTANCE_USD_PER_HOUR))]
    return [{"item": p.key, "usd": p.usd, "per": p.per, "source": p.source, "note": p.note} for p in every]
