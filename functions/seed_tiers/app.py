"""seed_tiers: CloudFormation custom resource writing the tiers' deploy-time defaults.

Create/Update write the account item (``accountCap``) and every tier with if_not_exists on every tunable
attribute (``running`` and the fair clock start at 0), so a limit changed at run time survives redeploys.
The tiers' guaranteed slots must fit in the account cap, or the request fails naming both. Delete does
nothing: the table is retained and so is its data. Every request is answered on ResponseURL, FAILED with
the reason on any error and also shortly before the function would time out, so a stack never waits an
hour for a response.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final

from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from controlplane.admission import tier_store as tiers
from controlplane.admission.tiers import TierSettings
from controlplane.core import custom_resources as cloudformation
from controlplane.core.model import Tier, utc_now
from controlplane.observability import instrumented, logger
from controlplane.settings import get_settings

settings = get_settings()

# Answer FAILED this long before the Lambda timeout if the work has not finished by then.
TIMEOUT_MARGIN_SECONDS: Final = 3.0

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
    BorrowingLimit: int = 0
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
            borrowing_limit=self.BorrowingLimit,
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

    AccountCap: int = Field(ge=1)
    Tiers: dict[Tier, TierDefaults]

    @model_validator(mode="after")
    def _guarantees_fit_the_cap(self) -> TierSettingsProperties:
        guaranteed = sum(defaults.ConcurrencyLimit for defaults in self.Tiers.values())
        if guaranteed > self.AccountCap:
            raise ValueError(
                f"the tiers' ConcurrencyLimit (guaranteed slots) add up to {guaranteed}, above AccountCap "
                f"{self.AccountCap}: raise AccountConcurrencyCap or lower a tier's ConcurrencyLimit"
            )
        return self


def physical_resource_id(event: Mapping[str, Any]) -> str:
    """Stable across updates: Update/Delete echo the id; Create derives it from the stack and resource,
    so a retried Create answers with the same id (a new id on Update would make CloudFormation Delete)."""
    if event.get("PhysicalResourceId"):
        return str(event["PhysicalResourceId"])
    stack = str(event.get("StackId", "")).split("/")
    stack_name = stack[1] if len(stack) > 1 else "stack"
    return f"{stack_name}-{event.get('LogicalResourceId', 'TierSettings')}"


def _apply(event: Mapping[str, Any]) -> dict[str, str]:
    request = Request.validate_python(event)
    if isinstance(request, CloudFormationCustomResourceDeleteModel):
        logger.info("Delete: nothing to do, the tiers table and its data are retained")
        return {}
    properties = TierSettingsProperties.model_validate(request.resource_properties or {})
    now = utc_now()
    tiers.seed_account(properties.AccountCap, now=now)
    for tier, defaults in properties.Tiers.items():
        tiers.seed(defaults.settings(tier), now=now)
    names = ",".join(tier.value for tier in properties.Tiers)
    logger.info("Tier defaults seeded", extra={"tiers": names, "requestType": request.request_type})
    return {"Tiers": names}


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return cloudformation.answer(
        event,
        context,
        _apply,
        physical_id=lambda request, _status: physical_resource_id(request),
        name="seed_tiers",
        timeout_margin_seconds=TIMEOUT_MARGIN_SECONDS,
    )
