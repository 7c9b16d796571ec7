"""Offboarding a tenant (DELETE /tenants/{tenantId}), in an order that a retry can resume.

1. Suspend: the tenant item becomes SUSPENDED with ``offboarding {requestedAt, deleteAfter}`` (new
   uploads are REJECTED from here on, as for any suspended tenant).
2. Cancel its open jobs (services.cancelling): waiting ones end CANCELLED, running builds are stopped.
3. Default: stop here. The tenant's data is kept for the grace period (``deleteAfter``); the operator
   deletes it with ``?immediate=true`` (the scheduled sweep that would do it at ``deleteAfter`` is pending).
4. ``immediate``: once none of its jobs is still ending (else JobsStillEndingError: repeat the request),
   remove every object version under ``tenants/<id>/`` in both buckets, its model versions and model
   package group, its IAM role and inline policies, its API keys, its job items and, last, its tenant
   item (so an interrupted offboarding is found and finished by the next request).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from controlplane.access import jobs, tenants
from controlplane.access import offboarding as removal
from controlplane.domain.errors import JobClosedError, JobNotFoundError
from controlplane.domain.models import TenantStatus, format_timestamp, is_terminal
from controlplane.observability import count, logger
from controlplane.services.cancelling import cancel_job
from controlplane.settings import get_api_settings, get_settings

GRACE_PERIOD: Final = timedelta(days=30)
_EARLIEST: Final = "0000-01-01T00:00:00.000Z"
_LATEST: Final = "9999-12-31T23:59:59.999Z"


class TenantNotFoundError(Exception):
    pass


class JobsStillEndingError(Exception):
    def __init__(self, job_ids: list[str]) -> None:
        super().__init__(
            f"{len(job_ids)} of the tenant's jobs are still ending after their cancellation; "
            "repeat the request in a few seconds"
        )
        self.job_ids = job_ids


@dataclass
class OffboardingReport:
    tenant_id: str
    deleted: bool
    delete_after: str
    cancelled_jobs: list[str] = field(default_factory=list)
    removed: dict[str, int] = field(default_factory=dict)


def _all_jobs(tenant_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    start: dict[str, Any] | None = None
    while True:
        page, start = jobs.list_for_tenant(
            tenant_id, created_from=_EARLIEST, created_to=_LATEST, status=None, limit=100, start_key=start
        )
        found += page
        if not start:
            return found


def _cancel_open_jobs(tenant_id: str) -> list[str]:
    cancelled = []
    for job in _all_jobs(tenant_id):
        if is_terminal(str(job.get("status", ""))):
            continue
        try:
            cancel_job(str(job["jobId"]))
        except (JobClosedError, JobNotFoundError):
            continue
        cancelled.append(str(job["jobId"]))
    return cancelled


def offboard(tenant_id: str, *, immediate: bool, now: datetime | None = None) -> OffboardingReport:
    moment = now or datetime.now(UTC)
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotFoundError(tenant_id)
    marker = tenant.get("offboarding") or {
        "requestedAt": format_timestamp(moment),
        "deleteAfter": format_timestamp(moment + GRACE_PERIOD),
    }
    if tenant.get("status") != TenantStatus.SUSPENDED.value or not tenant.get("offboarding"):
        tenants.update(
            tenant_id,
            {"status": TenantStatus.SUSPENDED.value, "offboarding": marker},
            now=format_timestamp(moment),
        )
    report = OffboardingReport(tenant_id=tenant_id, deleted=False, delete_after=str(marker["deleteAfter"]))
    report.cancelled_jobs = _cancel_open_jobs(tenant_id)
    logger.info("Tenant offboarding", extra={"tenantId": tenant_id, "cancelled": len(report.cancelled_jobs)})
    if not immediate:
        return report

    open_jobs = [str(job["jobId"]) for job in _all_jobs(tenant_id) if not is_terminal(str(job.get("status")))]
    if open_jobs:
        raise JobsStillEndingError(open_jobs)
    settings, api_settings = get_settings(), get_api_settings()
    prefix = removal.tenant_prefix(tenant_id)
    removed = report.removed
    removed["uploadObjectVersions"] = removal.delete_object_versions(settings.uploads_bucket_name, prefix)
    removed["artifactObjectVersions"] = removal.delete_object_versions(settings.artifacts_bucket_name, prefix)
    group = str(tenant.get("modelPackageGroupName") or "")
    versions, groups = removal.delete_model_packages(group) if group else (0, 0)
    removed["modelPackages"], removed["modelPackageGroups"] = versions, groups
    removed["rolePolicies"], removed["roles"] = removal.delete_tenant_role(tenant_id)
    key_hashes = removal.tenant_key_hashes(api_settings.api_keys_table_name, tenant_id)
    removed["apiKeys"] = removal.delete_items(api_settings.api_keys_table_name, "keyHash", key_hashes)
    job_ids = removal.tenant_job_ids(settings.jobs_table_name, jobs.TENANT_JOBS_INDEX, tenant_id)
    removed["jobs"] = removal.delete_items(settings.jobs_table_name, "jobId", job_ids)
    removed["tenants"] = removal.delete_items(settings.tenants_table_name, "tenantId", [tenant_id])
    report.deleted = True
    count("TenantsOffboarded")
    logger.warning("Tenant offboarded: data deleted", extra={"tenantId": tenant_id, "removed": removed})
    return report
