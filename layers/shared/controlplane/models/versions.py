"""Model versions and their approval: plain rules and shapes (no AWS SDK).

A tenant's model versions are the model packages in its group (``<tenant>-models``, access_policy), one
per successful build, registered PendingManualApproval. The tenant (or an operator) approves or rejects
a version; approval is the hand-off to deployment: every transition into Approved is announced on the
default bus as ``mlaas.controlplane`` / ``Model Version Approved`` (schema: HandoffDetail, README).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from pydantic import Field

from controlplane.core.errors import ControlPlaneError
from controlplane.core.model import CamelModel
from controlplane.core.tags import JOB_TAG, TENANT_TAG, TIER_TAG, build_tags
from controlplane.tenants.access_policy import model_package_group_name

HANDOFF_SOURCE: Final = "mlaas.controlplane"
HANDOFF_DETAIL_TYPE: Final = "Model Version Approved"
HANDOFF_SCHEMA_VERSION: Final = "1"
# SageMaker's own event for every change of a model package (creation, approval), on the default bus.
PACKAGE_STATE_CHANGE: Final = "SageMaker Model Package State Change"
MAX_DESCRIPTION: Final = 1024  # SageMaker's ApprovalDescription limit


class ApprovalStatus(StrEnum):
    PENDING = "PendingManualApproval"
    APPROVED = "Approved"
    REJECTED = "Rejected"


class Decision(StrEnum):
    """What a tenant or operator may set (a version never goes back to pending)."""

    APPROVED = "Approved"
    REJECTED = "Rejected"


class ModelVersionNotFoundError(ControlPlaneError):
    """No such version in the tenant's group: also the answer for another tenant's version."""

    def __init__(self, tenant_id: str, version: int) -> None:
        super().__init__(f"tenant {tenant_id} has no model version {version}")


class HandoffNotSentError(ControlPlaneError):
    """EventBridge did not accept the hand-off event (raised so that the invocation is retried)."""


@dataclass(frozen=True)
class Metrics:
    """What the pipeline's evaluation report says: the metric it gated on and every other one."""

    name: str | None = None
    value: float | None = None
    values: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version as the registry describes it."""

    model_package_arn: str
    group: str
    version: int
    approval_status: str
    created_at: str | None
    modified_at: str | None
    tenant_id: str | None
    tier: str | None
    job_id: str | None
    artifact_uri: str | None
    image_uri: str | None
    evaluation_report_uri: str | None
    approval_description: str | None = None
    metrics: Metrics = field(default_factory=Metrics)

    def owned_by(self, tenant_id: str) -> bool:
        """In the tenant's group and built for it: anything else is answered as missing."""
        return self.group == model_package_group_name(tenant_id) and self.tenant_id == tenant_id

    def built_in(self, artifacts_bucket: str) -> bool:
        """Built by the stack whose artifacts bucket this is. Group names are per tenant, not per stack, and
        SageMaker's change events reach every stack of the account: another stack's version is not ours."""
        return in_bucket(self.artifact_uri, artifacts_bucket)


def in_bucket(uri: str | None, bucket: str) -> bool:
    return bool(uri) and str(uri).startswith(f"s3://{bucket}/")


@dataclass(frozen=True)
class DecisionResult:
    """What a decision did: the version as it is now, its status before, and whether anything changed."""

    version: ModelVersion
    previous_status: str
    changed: bool


def metrics_of(report: dict[str, Any]) -> Metrics:
    """The evaluation report's metrics (pipeline/steps/evaluate.py writes it): ``validation_metric`` and
    each ``*_metrics`` section's ``{name: {"value": v}}``."""
    gate = report.get("validation_metric") or {}
    values: dict[str, float] = {}
    for section, entries in report.items():
        if section.endswith("_metrics") and isinstance(entries, dict):
            for name, entry in entries.items():
                if isinstance(entry, dict) and isinstance(entry.get("value"), int | float):
                    values[name] = float(entry["value"])
    value = gate.get("value")
    return Metrics(
        name=str(gate["name"]) if gate.get("name") else None,
        value=float(value) if isinstance(value, int | float) else None,
        values=values,
    )


def version_arn(sagemaker_arn_prefix: str, tenant_id: str, version: int) -> str:
    """The ARN of version N in the tenant's group (``arn:<partition>:sagemaker:<region>:<account>``)."""
    return f"{sagemaker_arn_prefix}:model-package/{model_package_group_name(tenant_id)}/{version}"


def needs_update(current: str, decision: Decision) -> bool:
    """Idempotent decisions: the status a version already has changes nothing (not even its description),
    so approving twice hands the version off once: any update of an approved version would make SageMaker
    announce it again."""
    return current != decision.value


# ------------------------------------------------------------------ the hand-off event


class HandoffMetrics(CamelModel):
    name: str | None = Field(default=None, description="The metric the pipeline gated on: auc or r2")
    value: float | None = None
    values: dict[str, float] = Field(default_factory=dict, description="Every metric the evaluation wrote")


class HandoffDetail(CamelModel):
    """The ``detail`` of the ``Model Version Approved`` event (schema version 1)."""

    schema_version: str = HANDOFF_SCHEMA_VERSION
    handoff_id: str = Field(description="Same for every delivery of one approval: deduplicate on it")
    tenant_id: str
    tier: str
    job_id: str
    model_package_arn: str
    model_package_group_name: str
    version: int
    approval_status: str
    approval_description: str | None = None
    approved_at: str | None = Field(default=None, description="The version's LastModifiedTime (ISO 8601)")
    artifact_uri: str = Field(description="model.tar.gz of the trained model")
    image_uri: str | None = Field(default=None, description="The inference container image")
    evaluation_report_uri: str | None = None
    metrics: HandoffMetrics
    tags: dict[str, str] = Field(description="Put these tags on what the deployment creates")


def handoff_id(model_package_arn: str, approved_at: str | None) -> str:
    return hashlib.sha256(f"{model_package_arn}|{approved_at or ''}".encode()).hexdigest()[:32]


class IncompleteVersionError(ControlPlaneError):
    """The version lacks what a deployment needs (its tenant, tier, job or artifact)."""


def handoff_detail(version: ModelVersion) -> HandoffDetail:
    """The hand-off event of an approved version (IncompleteVersionError when it cannot be deployed)."""
    missing = [
        name
        for name, value in (
            (TENANT_TAG, version.tenant_id),
            (TIER_TAG, version.tier),
            (JOB_TAG, version.job_id),
            ("ModelDataUrl", version.artifact_uri),
        )
        if not value
    ]
    if missing:
        raise IncompleteVersionError(f"{version.model_package_arn} has no {', '.join(missing)}")
    assert version.tenant_id
    assert version.tier
    assert version.job_id
    assert version.artifact_uri
    return HandoffDetail(
        handoff_id=handoff_id(version.model_package_arn, version.modified_at),
        tenant_id=version.tenant_id,
        tier=version.tier,
        job_id=version.job_id,
        model_package_arn=version.model_package_arn,
        model_package_group_name=version.group,
        version=version.version,
        approval_status=version.approval_status,
        approval_description=version.approval_description,
        approved_at=version.modified_at,
        artifact_uri=version.artifact_uri,
        image_uri=version.image_uri,
        evaluation_report_uri=version.evaluation_report_uri,
        metrics=HandoffMetrics(
            name=version.metrics.name, value=version.metrics.value, values=dict(version.metrics.values)
        ),
        tags=build_tags(version.tenant_id, version.tier, version.job_id),
    )
