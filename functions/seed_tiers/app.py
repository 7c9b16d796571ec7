"""seed_tiers: CloudFormation custom resource writing the tiers' deploy-time defaults.

Create/Update write every tier with if_not_exists on every tunable attribute (``running`` starts at 0),
so a limit changed at run time survives redeploys. Delete does nothing: the table is retained and so is
its data. Every request is answered on ResponseURL, FAILED with the reason on any error and also shortly
before the function would time out, so a stack never waits an hour for a response.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Mapping
from typing import Annotated, Any, Final

from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from controlplane.access import tiers
from controlplane.domain.models import Tier, TierSettings, utc_now
from controlplane.observability import instrumented, logger
from controlplane.settings import get_settings

settings = get_settings()

SUCCESS: Final = "SUCCESS"
FAILED: Final = "FAILED"
# Answer FAILED this long before the Lambda timeout if the work has not finished by then.
TIMEOUT_MARGIN_SECONDS: Final = 3.0
_MAX_REASON_CHARS: Final = 1000  # the whole response body must stay under 4 KiB
_HTTP_TIMEOUT_SECONDS: Final = 10

Request: TypeAdapter[
    CloudFormationCustomResourceCreateModel
    | CloudFormationCustomResourceUpdateModel
    | CloudFormationCustomResourceDeleteModel
] = TypeAdapter(
    Annotated[
        CloudFormationCustomResourceCreateModel
        | CloudFormationCustomResourceUpdateModel
        | CloudFormationCustomResourceDeleteModel,
        Field(discriminator="request_type"),
    ]
)


class TierDefaults(BaseModel):
    """One tier as the template passes it. CloudFormation sends every property value as a string."""

    model_config = ConfigDict(extra="forbid")

    QueueUrl: str
    ConcurrencyLimit: int
    TrainingInstanceType: str
    TrainingInstanceCount: int
    ProcessingInstanceType: str
    ProcessingInstanceCount: int
    MaxDatasetBytes: int
    QueueWaitSeconds: int
    UseSpotInstances: bool
    MaxRuntimeSeconds: int

    def settings(self, tier: Tier) -> TierSettings:
        return TierSettings(
            tier=tier,
            concurrency_limit=self.ConcurrencyLimit,
            queue_url=self.QueueUrl,
            training_instance_type=self.TrainingInstanceType,
            training_instance_count=self.TrainingInstanceCount,
            processing_instance_type=self.ProcessingInstanceType,
            processing_instance_count=self.ProcessingInstanceCount,
            max_dataset_bytes=self.MaxDatasetBytes,
            queue_wait_seconds=self.QueueWaitSeconds,
            use_spot_instances=self.UseSpotInstances,
            max_runtime_seconds=self.MaxRuntimeSeconds,
        )


class TierSettingsProperties(BaseModel):
    model_config = ConfigDict(extra="ignore")

    Tiers: dict[Tier, TierDefaults]


def physical_resource_id(event: Mapping[str, Any]) -> str:
    """Stable across updates: Update/Delete echo the id; Create derives it from the stack and resource,
    so a retried Create answers with the same id (a new id on Update would make CloudFormation Delete)."""
    if event.get("PhysicalResourceId"):
        return str(event["PhysicalResourceId"])
    stack = str(event.get("StackId", "")).split("/")
    stack_name = stack[1] if len(stack) > 1 else "stack"
    return f"{stack_name}-{event.get('LogicalResourceId', 'TierSettings')}"


class _Responder:
    """Sends the one response CloudFormation waits for (the first of: result, error, timeout watchdog)."""

    def __init__(self, event: Mapping[str, Any], context: LambdaContext) -> None:
        self._event = event
        self._context = context
        self._lock = threading.Lock()
        self._sent = False

    def send(self, status: str, reason: str, data: Mapping[str, str] | None = None) -> bool:
        with self._lock:
            if self._sent:
                return False
            self._sent = True
        body = json.dumps(
            {
                "Status": status,
                "Reason": reason[:_MAX_REASON_CHARS],
                "PhysicalResourceId": physical_resource_id(self._event),
                "StackId": self._event.get("StackId"),
                "RequestId": self._event.get("RequestId"),
                "LogicalResourceId": self._event.get("LogicalResourceId"),
                "NoEcho": False,
                "Data": dict(data or {}),
            }
        ).encode()
        # The raw ResponseURL (not a parsed/normalised one): it is a presigned S3 URL whose signature
        # covers the exact text. Content-Type must be empty, as the URL was signed without one.
        url = str(self._event["ResponseURL"])
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"ResponseURL is not an HTTP(S) URL: {url[:40]!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
        )
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            logger.info("Answered CloudFormation", extra={"status": status, "httpStatus": response.status})
        return True


def _apply(event: Mapping[str, Any]) -> dict[str, str]:
    request = Request.validate_python(event)
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        logger.info("Delete: nothing to do, the tiers table and its data are retained")
        return {}
    properties = TierSettingsProperties.model_validate(request.resource_properties or {})
    now = utc_now()
    for tier, defaults in properties.Tiers.items():
        tiers.seed(defaults.settings(tier), now=now)
    names = ",".join(tier.value for tier in properties.Tiers)
    logger.info("Tier defaults seeded", extra={"tiers": names, "requestType": request.request_type})
    return {"Tiers": names}


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    responder = _Responder(event, context)
    seconds_left = context.get_remaining_time_in_millis() / 1000 - TIMEOUT_MARGIN_SECONDS
    watchdog = threading.Timer(
        max(seconds_left, 0.0), responder.send, args=(FAILED, "seed_tiers timed out before finishing")
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        data = _apply(event)
    except Exception as error:
        logger.exception("Custom resource request failed")
        status, reason, data = FAILED, f"{type(error).__name__}: {error}", {}
    else:
        status, reason = SUCCESS, f"See the log stream {context.log_stream_name}"
    finally:
        watchdog.cancel()
    responder.send(status, reason, data)
    return {"Status": status, "Reason": reason}
