"""Offboarding a tenant (DELETE /tenants/{tenantId}), in an order that a retry can resume.

1. Suspend: the tenant item becomes SUSPENDED with ``offboarding {requestedAt, deleteAfter}`` (new
   uploads are REJECTED from here on, as for any suspended tenant) and enters the sparse ``offboarding-due``
   index (``offboardingDue = "due"``, top-level ``deleteAfter``).
2. Cancel its open jobs (services.cancelling): waiting ones end CANCELLED, running builds are stopped.
3. Default: stop here. The tenant's data is kept for the grace period (``GRACE_PERIOD``, until
   ``deleteAfter``); the offboard_tenants function's hourly sweep (``sweep``) deletes it once that has passed.
4. Deletion (``delete_offboarded``: the sweep, or ``?immediate=true`` through the offboard_tenants function),
   only of a tenant offboarded as above, once none of its jobs is still ending (else JobsStillEndingError:
   repeat later): remove every object version under ``tenants/<id>/`` in both buckets, its model versions and
   model package group, its IAM role and inline policies, its API keys, its job items and, last, its tenant
   item (so an interrupted deletion is found and finished by the next request or sweep).

A job is still ending while it is not terminal, or while it is CANCELLED (recently) but its execution still
runs: a job cancelled while RECEIVED / VALIDATED is CANCELLED at once, but its validation may still copy the
dataset into the artifacts bucket; deleting before its execution ended could leave that copy behind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from controlplane.admission import share_store as fair_share
from controlplane.api import usage_store
from controlplane.core.errors import JobClosedError, JobNotFoundError
from controlplane.core.model import format_timestamp
from controlplane.jobs import execution_store as executions
from controlplane.jobs import store as jobs
from controlplane.jobs.cancelling import cancel_job
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.observability import count, logger
from controlplane.settings import get_api_settings, get_settings
from controlplane.tenants import removal_store as removal
from controlplane.tenants import store as tenants
from controlplane.tenants.model import TenantStatus
from controlplane.tenants.offboarding_contract import (
    DELETE_AFTER_ATTRIBUTE,
    OFFBOARDING_DUE,
    OFFBOARDING_DUE_ATTRIBUTE,
)

GRACE_PERIOD: Final = timedelta(days=30)
SWEEP_LIMIT: Final = 100  # tenants per sweep run at most; the rest are due again on the next run
SWEEP_RESERVE_SECONDS: Final = 120.0  # no new deletion starts with less time left in the invocation
# A CANCELLED job updated longer ago than this has no running execution worth asking about.
_CANCELLED_EXECUTION_WINDOW: Final = timedelta(days=1)
_RUNNING_EXECUTION: Final = frozenset({"RUNNING", "PENDING_REDRIVE"})
_EARLIEST: Final = "0000-01-01T00:00:00.000Z"
_LATEST: Final = "9999-12-31T23:59:59.999Z"


class TenantNotFoundError(Exception):
    pass


class NotOffboardedError(Exception):
    """Deletion refused: the tenant was never offboarded (DELETE /tenants/{tenantId} suspends it first)."""


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


def _all_jobs(tenant_id: str) -> list[Job]:
    found: list[Job] = []
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
        if job.is_terminal:
            continue
        try:
            cancel_job(job.job_id)
        except (JobClosedError, JobNotFoundError):
            continue
        cancelled.append(job.job_id)
    return cancelled


def begin(tenant_id: str, *, now: datetime | None = None) -> OffboardingReport:
    """Steps 1 and 2: suspend the tenant (stamping its grace period once) and cancel its open jobs."""
    moment = now or datetime.now(UTC)
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotFoundError(tenant_id)
    marker = tenant.get("offboarding") or {
        "requestedAt": format_timestamp(moment),
        "deleteAfter": format_timestamp(moment + GRACE_PERIOD),
    }
    due = {OFFBOARDING_DUE_ATTRIBUTE: OFFBOARDING_DUE, DELETE_AFTER_ATTRIBUTE: str(marker["deleteAfter"])}
    enrolled = all(tenant.get(name) == value for name, value in due.items())
    if tenant.get("status") != TenantStatus.SUSPENDED.value or not tenant.get("offboarding") or not enrolled:
        # A tenant offboarded before the sweep existed gets its index attributes on a repeated request.
        tenants.update(
            tenant_id,
            {"status": TenantStatus.SUSPENDED.value, "offboarding": marker, **due},
            now=format_timestamp(moment),
        )
    report = OffboardingReport(tenant_id=tenant_id, deleted=False, delete_after=str(marker["deleteAfter"]))
    report.cancelled_jobs = _cancel_open_jobs(tenant_id)
    logger.info("Tenant offboarding", extra={"tenantId": tenant_id, "cancelled": len(report.cancelled_jobs)})
    return report


def _still_ending(job: Job, moment: datetime) -> bool:
    if not job.is_terminal:
        return True
    if job.status is not JobStatus.CANCELLED or not job.execution_arn:
        return False
    if job.updated_at and job.updated_at < format_timestamp(moment - _CANCELLED_EXECUTION_WINDOW):
        return False  # its execution ended long ago (validation times out after 15 minutes)
    return executions.execution_status(job.execution_arn) in _RUNNING_EXECUTION


def delete_offboarded(tenant_id: str, *, now: datetime | None = None) -> dict[str, int]:
    """Step 4: delete everything of an offboarded tenant; returns what was removed, counted per kind.

    Raises TenantNotFoundError (nothing left), NotOffboardedError (never offboarded: nothing is deleted) and
    JobsStillEndingError (repeat later)."""
    moment = now or datetime.now(UTC)
    tenant = tenants.get(tenant_id)
    if tenant is None:
        raise TenantNotFoundError(tenant_id)
    if tenant.get("status") != TenantStatus.SUSPENDED.value or not tenant.get("offboarding"):
        raise NotOffboardedError(tenant_id)
    ending = [job.job_id for job in _all_jobs(tenant_id) if _still_ending(job, moment)]
    if ending:
        raise JobsStillEndingError(ending)
    settings, api_settings = get_settings(), get_api_settings()
    prefix = removal.tenant_prefix(tenant_id)
    removed: dict[str, int] = {}
    removed["uploadObjectVersions"] = removal.delete_object_versions(settings.uploads_bucket_name, prefix)
    removed["artifactObjectVersions"] = removal.delete_object_versions(settings.artifacts_bucket_name, prefix)
    group = str(tenant.get("modelPackageGroupName") or "")
    versions, groups = removal.delete_model_packages(group) if group else (0, 0)
    removed["modelPackages"], removed["modelPackageGroups"] = versions, groups
    removed["rolePolicies"], removed["roles"] = removal.delete_tenant_role(tenant_id)
    usage_key_id = str(tenant.get("usageKeyId") or "")
    removed["usageKeys"] = int(usage_store.delete_usage_key(usage_key_id)) if usage_key_id else 0
    key_hashes = removal.tenant_key_hashes(api_settings.api_keys_table_name, tenant_id)
    removed["apiKeys"] = removal.delete_items(api_settings.api_keys_table_name, "keyHash", key_hashes)
    job_ids = removal.tenant_job_ids(settings.jobs_table_name, jobs.TENANT_JOBS_INDEX, tenant_id)
    removed["jobs"] = removal.delete_items(settings.jobs_table_name, "jobId", job_ids)
    share_ids = fair_share.tenant_share_ids(tenant_id)
    removed["fairShares"] = removal.delete_items(settings.fair_share_table_name, "shareId", share_ids)
    removed["tenants"] = removal.delete_items(settings.tenants_table_name, "tenantId", [tenant_id])
    count("TenantsOffboarded")
    logger.warning("Tenant offboarded: data deleted", extra={"tenantId": tenant_id, "removed": removed})
    return removed


def offboard(tenant_id: str, *, immediate: bool, now: datetime | None = None) -> OffboardingReport:
    """Steps 1-2, and with ``immediate`` step 4 in the same process (the API delegates step 4 to the
    offboard_tenants function instead, which holds the deletion permissions)."""
    report = begin(tenant_id, now=now)
    if immediate:
        report.removed = delete_offboarded(tenant_id, now=now)
        report.deleted = True
    return report


@dataclass
class SweepReport:
    deleted: dict[str, dict[str, int]] = field(default_factory=dict)
    waiting: dict[str, list[str]] = field(default_factory=dict)  # tenant -> jobs still ending
    failed: dict[str, str] = field(default_factory=dict)  # tenant -> error
    deferred: list[str] = field(default_factory=list)  # due, left for the next run (out of time)


def sweep(
    *, now: datetime | None = None, limit: int = SWEEP_LIMIT, time_left: Callable[[], float] | None = None
) -> SweepReport:
    """Delete every offboarded tenant whose grace period is over (a Query on the offboarding-due index, never
    a Scan). One tenant's failure does not stop the others: it is reported, and tried again on the next run,
    as is a tenant whose jobs are still ending. ``time_left`` (seconds) stops starting new deletions when
    fewer than SWEEP_RESERVE_SECONDS remain."""
    moment = now or datetime.now(UTC)
    report = SweepReport()
    due = tenants.due_for_deletion(format_timestamp(moment), limit=limit)
    for index, tenant_id in enumerate(due):
        if time_left is not None and time_left() < SWEEP_RESERVE_SECONDS:
            report.deferred = due[index:]
            break
        logger.append_keys(tenantId=tenant_id)
        try:
            report.deleted[tenant_id] = delete_offboarded(tenant_id, now=moment)
        except TenantNotFoundError:
            continue  # deleted meanwhile (an immediate request)
        except JobsStillEndingError as ending:
            report.waiting[tenant_id] = ending.job_ids
            logger.warning(
                "Offboarded tenant not deleted yet: jobs still ending", extra={"jobs": ending.job_ids}
            )
            count("OffboardingDeletionsWaiting")
        except Exception as error:
            report.failed[tenant_id] = f"{type(error).__name__}: {error}"
            logger.exception("Deleting an offboarded tenant failed")
            count("OffboardingDeletionsFailed")
        finally:
            logger.remove_keys(["tenantId"])
    return report
