"""Lazily created, process-wide boto3 clients.

Created on first use (not at import) so cold starts only pay for the clients a function needs, and so
tests can start their AWS mock first. Endpoints are never set here: boto3 itself honours
AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE>, which the local emulator uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache, wraps
from typing import Any, ParamSpec, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from controlplane.core.errors import AwsServiceError

_P = ParamSpec("_P")
_R = TypeVar("_R")

# Standard retry mode backs off on throttling and transient errors. Short timeouts make a hung connection
# fail and be retried rather than eat the invocation (functions time out after 30 s; S3 streaming reads by
# the validator, which has 300 s, get a longer read timeout between chunks).
_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=5)
_S3_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=3, read_timeout=30)
# Synchronous invocations (the API asking offboard_tenants to delete a tenant) wait for the function's work,
# bounded by API Gateway's 29 s; not retried (a retry would run the work again while the first may go on).
_LAMBDA_CONFIG = Config(retries={"mode": "standard", "max_attempts": 1}, connect_timeout=3, read_timeout=28)


_LOCK = threading.Lock()
_CLIENTS: dict[str, Any] = {}


@cache
def _session() -> boto3.session.Session:
    # One session for every client: its loader caches the service models, so each further client is cheap.
    return boto3.session.Session()


def client(service: str) -> Any:
    """The shared client for ``service`` (a boto3 service name). Clients are thread-safe; creating them
    from one session is not, hence the lock (taken only on a miss)."""
    found = _CLIENTS.get(service)
    if found is not None:
        return found
    with _LOCK:
        if service not in _CLIENTS:
            config = {"s3": _S3_CONFIG, "lambda": _LAMBDA_CONFIG}.get(service, _CONFIG)
            _CLIENTS[service] = _session().client(service, config=config)  # type: ignore[call-overload]
        return _CLIENTS[service]


def reset() -> None:
    """Forget every client (tests switch AWS mocks and environments between cases)."""
    with _LOCK:
        _CLIENTS.clear()


def translated(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """Let a store function raise AwsServiceError, not botocore's errors, for whatever it does not handle
    itself (its own domain errors, such as TaskTokenDeadError, pass through)."""

    @wraps(function)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return function(*args, **kwargs)
        except ClientError as error:
            details = error.response.get("Error", {})
            raise AwsServiceError(
                error.operation_name or function.__name__,
                str(details.get("Code", "ClientError")),
                str(details.get("Message", error)),
            ) from error
        except BotoCoreError as error:
            raise AwsServiceError(function.__name__, type(error).__name__, str(error)) from error

    return call
