"""Invoking another of the stack's Lambda functions synchronously (RequestResponse)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from controlplane.core.clients import client


class FunctionFailedError(RuntimeError):
    """The invoked function raised (Lambda's FunctionError); the message carries its error payload."""


def invoke(function_name: str, payload: Mapping[str, Any]) -> Any:
    """Invoke ``function_name`` with ``payload`` and wait for its result (the decoded JSON it returned)."""
    response = client("lambda").invoke(
        FunctionName=function_name,
        InvocationType="RequestResponse",
        Payload=json.dumps(dict(payload)).encode(),
    )
    body = response["Payload"].read()
    if response.get("FunctionError"):
        raise FunctionFailedError(f"{function_name} failed ({response['FunctionError']}): {body[:1000]!r}")
    return json.loads(body) if body else None
