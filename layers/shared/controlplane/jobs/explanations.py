"""The use case behind a job view's ``explanation``: read what the rules of controlplane.jobs.explaining
need, with bounded queries only (no Scan, nothing that grows with the number of tenants), and apply them.

A QUEUED job costs at most nine reads: the account and tier items (one BatchGetItem), the tenant's share
(GetItem), four COUNT queries on the waiting-room indexes (tier-queue, share-queue), two on the tier-backlog
index and, for operators, one page of the next tenants in fair order. The other statuses read nothing more.
"""

from __future__ import annotations

from datetime import UTC, datetime

from controlplane.admission import share_store, tier_store
from controlplane.admission.fair_share import share_id, tier_state
from controlplane.admission.run_times import run_times_from_item
from controlplane.jobs import store as jobs
from controlplane.jobs.explaining import (
    EXPLAINED_ENDINGS,
    NEXT_IN_LINE,
    Audience,
    Explanation,
    LogPlaces,
    QueueFacts,
    explain_ending,
    explain_slot,
    explain_waiting,
    fair_key_of,
)
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.settings import get_api_settings, get_settings


def log_places() -> LogPlaces:
    """Where this deployment's logs are (the API function's environment: template.yaml or the emulator)."""
    api = get_api_settings()
    return LogPlaces(log_groups=dict(api.job_log_groups), local_log_dir=api.local_log_dir)


def explain(job: Job, *, audience: Audience, now: datetime | None = None) -> Explanation | None:
    """Why the job is where it is, for a job that waits, holds a slot, failed or was stopped; else None."""
    if job.status is JobStatus.QUEUED:
        return _waiting(job, audience, now or datetime.now(UTC))
    if job.status in {JobStatus.ADMITTED, JobStatus.RUNNING}:
        return explain_slot(job)
    if job.status in EXPLAINED_ENDINGS:
        return explain_ending(job, log_places())
    return None


def _waiting(job: Job, audience: Audience, now: datetime) -> Explanation | None:
    known = job.queue_tier or job.tier
    tier = known.value if known is not None else None
    account, tier_items = tier_store.capacity_items()
    if tier is None or account is None or tier not in tier_items:
        return None
    tier_now = tier_state(tier, tier_items[tier])
    share = share_store.get(tier, job.tenant_id)
    share_key = job.queue_share or share_id(tier, job.tenant_id)
    queued_at = job.queued_at or ""
    mine = fair_key_of(share, tier_now.clock)
    facts = QueueFacts(
        tier=tier_now,
        account_cap=int(account.get("accountCap", 0)),
        account_running=int(account.get("running", 0)),
        share=share,
        tenant_ahead=jobs.count_waiting_in_share(share_key, queued_before=queued_at),
        tenant_waiting=jobs.count_waiting_in_share(share_key),
        tier_ahead=jobs.count_waiting_in_tier(tier, queued_before=queued_at),
        tier_waiting=jobs.count_waiting_in_tier(tier),
        tenants_ahead=share_store.count_ahead(
            tier,
            key=mine,
            backlog_since=share.backlog_since or queued_at,
            strictly_lower=share.tag > tier_now.clock,
        ),
        backlogged_tenants=share_store.count_backlogged(tier),
        next_in_line=share_store.backlog(tier, limit=NEXT_IN_LINE + 1)
        if audience is Audience.OPERATOR
        else [],
        run_times=run_times_from_item(tier_items[tier]),
        usage=share.usage_at_time(now, get_settings().fair_share_policy()),
    )
    return explain_waiting(facts, audience=audience, now=now)
