"""The gate's fair-share bookkeeping as plain data: DynamoDB items in, scheduling snapshots and writes out.

The scheduling policy itself is :mod:`controlplane.admission.scheduling`; this module maps the stored state
onto it (docs/contracts.md, "Fair share"):

- the **account item** (Tiers table, ``tier = "account"``): ``accountCap`` and ``running``;
- each **tier item**: ``concurrencyLimit`` (guaranteed slots), ``borrowingLimit``, ``running`` and
  ``fairClock`` (the tier's virtual time);
- one **share item** per (tier, tenant) (FairShare table, ``shareId = tier#tenant``): ``running``,
  ``usage`` as of ``usageAt`` (decays with the half-life), ``tag``, ``weight``, optional ``cap``,
  ``version`` (every write is a compare-and-set on it) and, while the tenant may have jobs waiting,
  ``backlogTier`` (the sparse ``tier-backlog`` index, sorted by ``tag``) with ``backlogSince``.

A share is marked backlogged in the same transaction that stores a job's queue token, so a waiting job
is always reachable from the index. It is unmarked lazily: when the gate picks the tenant and finds no
waiting job (admitted, cancelled or expired meanwhile), and only once ``lastEnqueuedAt`` is older than
the index's propagation margin, so a job stored a moment ago is never missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from controlplane.admission.scheduling import (
    FairSharePolicy,
    Snapshot,
    TenantState,
    TierState,
    WaitingJob,
    decay,
    tag_on_backlogged,
)
from controlplane.core.model import Tier, parse_timestamp

ACCOUNT_KEY: Final = "account"
# A share is unmarked as backlogged only when nothing was enqueued for it for this long: far above the
# propagation delay of a DynamoDB global secondary index (normally well under a second).
BACKLOG_SETTLE: Final = timedelta(seconds=30)
# Backlogged tenants per tier read into one snapshot (lowest tags first).
SNAPSHOT_TENANTS_PER_TIER: Final = 50
DEFAULT_WEIGHT: Final = 1.0


def share_id(tier: str, tenant_id: str) -> str:
    return f"{tier}#{tenant_id}"


def _number(item: Mapping[str, Any], name: str, default: float = 0.0) -> float:
    value = item.get(name)
    return default if value is None else float(value)


def _seconds(timestamp: str | None) -> float:
    if not timestamp:
        return 0.0
    try:
        return parse_timestamp(timestamp).timestamp()
    except ValueError:
        return 0.0


@dataclass(frozen=True, slots=True)
class Share:
    """One (tier, tenant) share item as read."""

    tier: str
    tenant_id: str
    running: int = 0
    usage: float = 0.0
    usage_at: str | None = None
    tag: float = 0.0
    weight: float = DEFAULT_WEIGHT
    cap: int | None = None
    version: int = 0  # 0: the item does not exist yet
    backlogged: bool = False
    backlog_since: str | None = None
    last_enqueued_at: str | None = None

    @property
    def share_id(self) -> str:
        return share_id(self.tier, self.tenant_id)

    def usage_at_time(self, now: datetime, policy: FairSharePolicy) -> float:
        """Usage decayed from ``usageAt`` to ``now``."""
        if not self.usage_at:
            return self.usage
        elapsed = now.timestamp() - _seconds(self.usage_at)
        return decay(self.usage, elapsed, policy.half_life_seconds)


def share_from_item(item: Mapping[str, Any]) -> Share:
    tier, _, tenant = str(item.get("shareId", "")).partition("#")
    cap = item.get("cap")
    return Share(
        tier=str(item.get("tier") or tier),
        tenant_id=str(item.get("tenantId") or tenant),
        running=int(_number(item, "running")),
        usage=_number(item, "usage"),
        usage_at=str(item["usageAt"]) if item.get("usageAt") else None,
        tag=_number(item, "tag"),
        weight=_number(item, "weight", DEFAULT_WEIGHT) or DEFAULT_WEIGHT,
        cap=None if cap is None else int(cap),
        version=int(_number(item, "version")),
        backlogged=bool(item.get("backlogTier")),
        backlog_since=str(item["backlogSince"]) if item.get("backlogSince") else None,
        last_enqueued_at=str(item["lastEnqueuedAt"]) if item.get("lastEnqueuedAt") else None,
    )


@dataclass(frozen=True, slots=True)
class Enqueue:
    """What storing one more waiting job writes to its share."""

    tag: float
    backlog_since: str
    newly_backlogged: bool


def on_enqueue(share: Share, *, tier_clock: float, now: str, policy: FairSharePolicy) -> Enqueue:
    """A share that was not backlogged starts at the tier's clock plus its recent usage (capped by the
    usage debt): idle time banks no credit. One already backlogged keeps its place."""
    if share.backlogged:
        return Enqueue(tag=share.tag, backlog_since=share.backlog_since or now, newly_backlogged=False)
    usage = share.usage_at_time(parse_timestamp(now), policy)
    tag = tag_on_backlogged(usage, share.weight, tier_clock, policy, tag=share.tag)
    return Enqueue(tag=tag, backlog_since=now, newly_backlogged=True)


def may_unmark_backlog(share: Share, now: datetime) -> bool:
    """True when no job was enqueued for the share within the index's propagation margin."""
    if not share.last_enqueued_at:
        return True
    try:
        return now - parse_timestamp(share.last_enqueued_at) >= BACKLOG_SETTLE
    except ValueError:
        return True


def tier_state(tier: str, item: Mapping[str, Any]) -> TierState:
    return TierState(
        name=tier,
        guaranteed=int(_number(item, "concurrencyLimit")),
        borrowing_limit=int(_number(item, "borrowingLimit")),
        running=int(_number(item, "running")),
        clock=_number(item, "fairClock"),
    )


def tenant_state(share: Share, now: datetime, policy: FairSharePolicy) -> TenantState:
    """The share as the scheduler sees it. Its head job is a stand-in (``job_id`` empty) ordered by when the
    tenant became backlogged: the gate looks the real head up only for the tenant it picks."""
    return TenantState(
        tenant_id=share.tenant_id,
        tier=share.tier,
        running=share.running,
        usage=share.usage_at_time(now, policy),
        tag=share.tag,
        weight=share.weight,
        cap=share.cap,
        head=WaitingJob(job_id="", queued_at=_seconds(share.backlog_since)) if share.backlogged else None,
    )


@dataclass(frozen=True, slots=True)
class Capacity:
    """The account item and the tier items as read (what the take transaction compares against)."""

    account_cap: int
    account_running: int
    tiers: Mapping[str, Mapping[str, Any]]

    def tier_states(self) -> list[TierState]:
        return [tier_state(name, item) for name, item in sorted(self.tiers.items())]


def capacity_from_items(
    account: Mapping[str, Any] | None, tiers: Mapping[str, Mapping[str, Any]]
) -> Capacity | None:
    """None without an account item (seeded at deploy by the TierSettings custom resource): nothing is
    admitted until it exists, since the take transaction's account condition could never hold."""
    if account is None:
        return None
    known = {tier.value for tier in Tier}
    return Capacity(
        account_cap=int(_number(account, "accountCap")),
        account_running=int(_number(account, "running")),
        tiers={name: item for name, item in tiers.items() if name in known},
    )


def snapshot(capacity: Capacity, shares: Iterable[Share], now: datetime, policy: FairSharePolicy) -> Snapshot:
    return Snapshot(
        account_cap=capacity.account_cap,
        tiers=capacity.tier_states(),
        tenants=[tenant_state(share, now, policy) for share in shares],
    )


def guarantees(tier_items: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Each tier's guaranteed slots (``concurrencyLimit``), from the tier items."""
    return {name: int(_number(item, "concurrencyLimit")) for name, item in tier_items.items()}


def guarantees_fit(account_cap: int, guarantees: Mapping[str, int]) -> str | None:
    """Why a set of guarantees cannot be accepted under ``account_cap``, or None when they fit."""
    total = sum(guarantees.values())
    if total > account_cap:
        detail = ", ".join(f"{tier} {limit}" for tier, limit in sorted(guarantees.items()))
        return (
            f"the tiers' guaranteed slots (concurrencyLimit: {detail}) would add up to {total}, above the "
            f"account cap of {account_cap}"
        )
    return None
