"""The status API's models for model versions and approvals (camelCase on the wire)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from controlplane.api.models import ApiModel, ResponseModel
from controlplane.models.versions import MAX_DESCRIPTION, Decision, DecisionResult, ModelVersion


class MetricsView(ResponseModel):
    name: str | None = Field(default=None, description="The metric the pipeline gated on (auc or r2)")
    value: float | None = None
    values: dict[str, float] = Field(
        default_factory=dict, description="Every metric of the evaluation report"
    )


class ModelVersionView(ResponseModel):
    version: int = Field(description="The version number in the tenant's model package group")
    model_package_arn: str
    approval_status: str = Field(description="PendingManualApproval, Approved or Rejected")
    approval_description: str | None = None
    job_id: str | None = Field(default=None, description="The job whose build registered it")
    tier: str | None = None
    metrics: MetricsView
    artifact_uri: str | None = Field(default=None, description="The trained model (model.tar.gz)")
    evaluation_report_uri: str | None = None
    created_at: str | None = None
    modified_at: str | None = None

    @classmethod
    def of(cls, version: ModelVersion) -> ModelVersionView:
        metrics = version.metrics
        return cls(
            version=version.version,
            model_package_arn=version.model_package_arn,
            approval_status=version.approval_status,
            approval_description=version.approval_description,
            job_id=version.job_id,
            tier=version.tier,
            metrics=MetricsView(name=metrics.name, value=metrics.value, values=dict(metrics.values)),
            artifact_uri=version.artifact_uri,
            evaluation_report_uri=version.evaluation_report_uri,
            created_at=version.created_at,
            modified_at=version.modified_at,
        )


class ModelVersionPage(ResponseModel):
    items: list[ModelVersionView]
    next_token: str | None = None


class ApprovalRequest(ApiModel):
    approval_status: Decision = Field(description="Approved hands the version off to deployment; Rejected")
    description: Annotated[str | None, Field(max_length=MAX_DESCRIPTION)] = Field(
        default=None, description="Why (stored as the version's ApprovalDescription)"
    )


class ApprovalView(ResponseModel):
    model: ModelVersionView
    previous_status: str
    changed: bool = Field(
        description="false when the version already had this status: nothing changed, no second hand-off"
    )

    @classmethod
    def of(cls, result: DecisionResult) -> ApprovalView:
        return cls(
            model=ModelVersionView.of(result.version),
            previous_status=result.previous_status,
            changed=result.changed,
        )
