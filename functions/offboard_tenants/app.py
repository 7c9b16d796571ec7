"""offboard_tenants: delete offboarded tenants, the only function that holds the deletion permissions.

Invoked two ways (docs/contracts.md), each parsed by a pydantic model
(controlplane.tenants.offboarding_contract):
- {"trigger": "schedule"} (every hour): every tenant whose grace period is over (``deleteAfter`` <= now, a
  Query on the Tenants table's sparse ``offboarding-due`` index) is deleted. A tenant whose cancelled jobs are
  still ending, or whose deletion fails, stays due and is tried again on the next run; one tenant never
  stops the others. Failures are logged and counted per tenant, then the invocation fails at the end.
- {"trigger": "immediate", "tenantId": str} (the API, synchronously, for DELETE /tenants/{id}?immediate=true,
  after it suspended the tenant and cancelled its jobs): delete that tenant now and answer a DeletionResult
  (deleted with ``removed`` counts, not-found, not-offboarded or jobs-still-ending).

Deleting is idempotent (a missing thing counts as removed already, the tenant item goes last), so a
repeated or concurrent run changes nothing twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from controlplane.observability import bind_job, count, instrumented, logger
from controlplane.settings import get_api_settings, get_settings
from controlplane.tenants import offboarding
from controlplane.tenants.offboarding_contract import (
    DeletionOutcome,
    DeletionResult,
    ImmediateDeletion,
    OffboardingTrigger,
)

settings = get_settings()
api_settings = get_api_settings()


def _delete_now(request: ImmediateDeletion) -> dict[str, Any]:
    tenant_id = request.tenant_id
    bind_job(tenant_id=tenant_id)
    try:
        removed = offboarding.delete_offboarded(tenant_id)
    except offboarding.TenantNotFoundError:
        result = DeletionResult(
            outcome=DeletionOutcome.NOT_FOUND, tenant_id=tenant_id, message="no such tenant"
        )
    except offboarding.NotOffboardedError:
        result = DeletionResult(
            outcome=DeletionOutcome.NOT_OFFBOARDED,
            tenant_id=tenant_id,
            message="the tenant is not being offboarded: nothing was deleted",
        )
    except offboarding.JobsStillEndingError as ending:
        result = DeletionResult(
            outcome=DeletionOutcome.JOBS_STILL_ENDING,
            tenant_id=tenant_id,
            message=str(ending),
            job_ids=ending.job_ids,
        )
    else:
        result = DeletionResult(outcome=DeletionOutcome.DELETED, tenant_id=tenant_id, removed=removed)
    logger.info("Immediate deletion", extra={"outcome": result.outcome.value, "removed": result.removed})
    return result.model_dump(mode="json", by_alias=True)


def _sweep(context: LambdaContext) -> dict[str, Any]:
    report = offboarding.sweep(time_left=lambda: context.get_remaining_time_in_millis() / 1000)
    count("OffboardedTenantsDeleted", value=len(report.deleted))
    logger.info(
        "Offboarding sweep",
        extra={
            "deleted": report.deleted,
            "waiting": report.waiting,
            "failed": report.failed,
            "deferred": report.deferred,
        },
    )
    if report.failed:
        failed = ", ".join(sorted(report.failed))
        raise RuntimeError(
            f"deleting {len(report.failed)} offboarded tenant(s) failed ({failed}); "
            "they stay due and are tried again on the next run; see the log for each error"
        )
    return {
        "deleted": report.deleted,
        "waiting": report.waiting,
        "failed": report.failed,
        "deferred": report.deferred,
    }


@instrumented
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    trigger = OffboardingTrigger.validate_python(event)
    if isinstance(trigger, ImmediateDeletion):
        return _delete_now(trigger)
    return _sweep(context)
