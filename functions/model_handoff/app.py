"""model_handoff: announce an approved model version, the hand-off point of a deployment workflow.

In: EventBridge "SageMaker Model Package State Change" of a version in a tenant group (<tenant>-models)
whose ModelApprovalStatus is Approved (the rule's pattern). Out: one "Model Version Approved" event
(source mlaas.controlplane) on the default bus, built from the registry as it is now (controlplane.models).
A refused PutEvents raises, so Lambda retries the invocation and then keeps it in the DLQ (alarmed).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.parser import parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, ConfigDict, Field

from controlplane.models.approval import hand_off
from controlplane.observability import bind_job, instrumented
from controlplane.settings import get_settings

settings = get_settings()


class ModelPackageStateDetail(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    model_package_arn: str = Field(alias="ModelPackageArn")
    model_package_group_name: str | None = Field(default=None, alias="ModelPackageGroupName")
    model_approval_status: str | None = Field(default=None, alias="ModelApprovalStatus")


class ModelPackageStateChangeEvent(EventBridgeModel):  # type: ignore[misc]
    detail: ModelPackageStateDetail  # type: ignore[assignment]


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    change = parse(event=event, model=ModelPackageStateChangeEvent)
    sent = hand_off(change.detail.model_package_arn, artifacts_bucket=settings.artifacts_bucket_name)
    if sent is None:
        return {"handedOff": False, "modelPackageArn": change.detail.model_package_arn}
    bind_job(tenant_id=sent.tenant_id, job_id=sent.job_id, tier=sent.tier)
    return {"handedOff": True, "handoffId": sent.handoff_id, "modelPackageArn": sent.model_package_arn}
