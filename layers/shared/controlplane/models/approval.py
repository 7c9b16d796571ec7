"""Use cases: a tenant's versions, one version, a decision on one, and the hand-off of an approved one.

Why the hand-off is not sent by the approval itself: PutEvents after UpdateModelPackage could fail (or
the function time out) with the version approved and no event, and a retried request would then find the
version approved and change nothing. SageMaker itself emits ``SageMaker Model Package State Change`` on
the default bus for every change of a version, whoever made it (this API, the console, the CLI); the
model_handoff function turns each one into Approved into the documented event, and a failure there is
retried by Lambda and EventBridge, then kept in a dead-letter queue that raises an alarm.
"""

from __future__ import annotations

from controlplane.core.errors import ConfigurationError
from controlplane.models import registry_store as registry
from controlplane.models.versions import (
    ApprovalStatus,
    Decision,
    DecisionResult,
    HandoffDetail,
    ModelVersion,
    ModelVersionNotFoundError,
    handoff_detail,
    needs_update,
    version_arn,
)
from controlplane.observability import logger
from controlplane.tenants.access_policy import model_package_group_name


def list_versions(tenant_id: str, *, limit: int, token: str | None) -> tuple[list[ModelVersion], str | None]:
    """The tenant's versions, newest first. Only its own group is ever listed."""
    versions, next_token = registry.page(model_package_group_name(tenant_id), limit=limit, token=token)
    return [version for version in versions if version.owned_by(tenant_id)], next_token


def get_version(tenant_id: str, version: int, *, arn_prefix: str | None) -> ModelVersion:
    """Version N of the tenant's group; ModelVersionNotFoundError for a missing one and for anything not
    the tenant's (the ARN is built from the tenant's own group, and the version must say it is its)."""
    if not arn_prefix:
        raise ConfigurationError("environment variable SAGEMAKER_ARN_PREFIX is not set")
    found = registry.describe(version_arn(arn_prefix, tenant_id, version))
    if found is None or not found.owned_by(tenant_id):
        raise ModelVersionNotFoundError(tenant_id, version)
    return found


def decide(
    tenant_id: str, version: int, decision: Decision, description: str | None, *, arn_prefix: str | None
) -> DecisionResult:
    """Approve or reject a version. Idempotent: the status it already has changes nothing (no update, so
    no second hand-off); otherwise UpdateModelPackage, and SageMaker's change event drives the hand-off."""
    current = get_version(tenant_id, version, arn_prefix=arn_prefix)
    if not needs_update(current.approval_status, decision):
        return DecisionResult(version=current, previous_status=current.approval_status, changed=False)
    registry.set_approval(current.model_package_arn, decision.value, description)
    updated = registry.describe(current.model_package_arn) or current
    logger.info(
        "Model version decided",
        extra={"modelPackageArn": current.model_package_arn, "from": current.approval_status, "to": decision},
    )
    return DecisionResult(version=updated, previous_status=current.approval_status, changed=True)


def hand_off(model_package_arn: str, *, artifacts_bucket: str) -> HandoffDetail | None:
    """Announce an approved version (called for SageMaker's change event of a tenant group's version).

    The registry is read again, so a stale or replayed event cannot announce a version that is no longer
    approved; a version not built by a tenant build of this stack (its model not in ``artifacts_bucket``,
    no tenant metadata, or a group not its tenant's) is not handed off. Returns the detail sent, or None
    when there is nothing to announce."""
    found = registry.describe(model_package_arn, reports_bucket=artifacts_bucket)
    if found is None or found.approval_status != ApprovalStatus.APPROVED:
        logger.info("Nothing to hand off", extra={"modelPackageArn": model_package_arn})
        return None
    if not found.built_in(artifacts_bucket):
        # Every stack of the account hears SageMaker's events: the version's own stack announces it.
        logger.info("Ignored: another stack's model version", extra={"modelPackageArn": model_package_arn})
        return None
    if found.tenant_id is None or not found.owned_by(found.tenant_id):
        logger.warning(
            "Approved version outside a tenant group", extra={"modelPackageArn": model_package_arn}
        )
        return None
    detail = handoff_detail(found)
    event_id = registry.publish(detail, resources=[model_package_arn])
    logger.info("Model version handed off", extra={"eventId": event_id, "handoffId": detail.handoff_id})
    return detail
