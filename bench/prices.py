"""Published AWS prices used by ``bench.stack`` for the control plane's cost per 1,000 jobs.

Region us-east-1, on-demand list prices, no free tier, USD. AS OF: the AWS pricing pages below as published
in 2025 (DynamoDB on-demand after its 1 November 2024 50% cut). The build machine has no live access to
the AWS pricing pages: Step Functions, Lambda, DynamoDB, SQS and EventBridge were cross-checked against stored
copies of public pages (AWS's "How AWS Pricing Works" whitepaper for Lambda; third-party pricing guides
dated 2025-2026 for the others), which agree with the figures here. The S3 request prices were NOT
cross-checked. Re-check every figure on those pages before quoting a bill.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

AS_OF: Final = "2025 (AWS pricing pages; checked offline against stored copies, not live)"
REGION: Final = "us-east-1"


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
    "pipeline's processing and training jobs are the data plane, not measured here",
    "Step Functions API calls (SendTaskSuccess, DescribeExecution): not billed; Standard bills transitions",
    "CloudWatch Logs ingestion and X-Ray traces: depend on log level and sampling, not measured",
    "S3 storage and the tenant's own upload PUT (counted as a request but it is the tenant's)",
)

# Local Lambda durations (a worker process on a busy 2-core machine, moto behind every call) say nothing
# about Lambda's: the cost uses these ASSUMED billed durations per invocation instead, in milliseconds.
ASSUMED_DURATION_MS: Final = {"ValidateDatasetFunction": 300.0}
DEFAULT_ASSUMED_DURATION_MS: Final = 100.0


def price_table() -> list[dict[str, str | float]]:
    return [{"item": p.key, "usd": p.usd, "per": p.per, "source": p.source, "note": p.note} for p in PRICES]
