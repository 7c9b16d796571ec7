"""The bench prices the control plane with the project's one price table (``controlplane.usage.prices``)."""

from __future__ import annotations

from controlplane.usage.prices import (
    AS_OF,
    ASSUMED_DURATION_MS,
    DEFAULT_ASSUMED_DURATION_MS,
    DYNAMODB_READ,
    DYNAMODB_WRITE,
    EVENTBRIDGE_CUSTOM,
    LAMBDA_GB_SECOND,
    LAMBDA_REQUEST,
    NOT_PRICED,
    PRICES,
    REGION,
    S3_GET_CLASS,
    S3_PUT_CLASS,
    SQS_STANDARD,
    STEP_FUNCTIONS_STANDARD,
    Price,
    price_table,
)

__all__ = [
    "ASSUMED_DURATION_MS",
    "AS_OF",
    "DEFAULT_ASSUMED_DURATION_MS",
    "DYNAMODB_READ",
    "DYNAMODB_WRITE",
    "EVENTBRIDGE_CUSTOM",
    "LAMBDA_GB_SECOND",
    "LAMBDA_REQUEST",
    "NOT_PRICED",
    "PRICES",
    "REGION",
    "S3_GET_CLASS",
    "S3_PUT_CLASS",
    "SQS_STANDARD",
    "STEP_FUNCTIONS_STANDARD",
    "Price",
    "price_table",
]
