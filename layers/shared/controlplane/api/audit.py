"""The audit trail of operator actions (and of every key change): who, what, when, before and after.

An event is written by the use case (or route) that made the change, after it succeeded: who (the caller's
key id and role, from the authorizer), what (an action, its target such as ``tenant/acme``, and the changed
fields before and after where the route has them at no extra cost), when, and the API request id that
ties it to the access log line. Plain rules: no AWS here (controlplane.api.audit_store stores them).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from controlplane.api.keys import Role
from controlplane.core.model import CamelModel

# Every event is in one partition of the trail: operator actions are a handful an hour, far below one
# partition's 1,000 writes a second, and "newest first" is then one Query.
TRAIL: Final = "control-plane"


class AuditAction(StrEnum):
    TENANT_ONBOARDED = "tenant.onboard"
    TENANT_CHANGED = "tenant.change"
    TENANT_OFFBOARDED = "tenant.offboard"
    TIER_CHANGED = "tier.change"
    ACCOUNT_CHANGED = "account.change"
    KEY_CREATED = "key.create"
    KEY_ROTATED = "key.rotate"
    KEY_REVOKED = "key.revoke"
    MODEL_DECIDED = "model.approval"


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is calling: the key's public id, its role and, for a tenant key, its tenant."""

    key_id: str
    role: Role | None
    tenant_id: str | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, authorizer: Mapping[str, Any], request_id: str | None = None) -> Actor:
        """The caller as the authorizer resolved it (its context; never what the request claims). One
        reading for the API's app and every router beside it."""
        role = str(authorizer.get("role") or "")
        tenant_id = authorizer.get("tenantId") or None
        key_id = authorizer.get("keyId") or authorizer.get("principalId") or "unknown"
        return cls(
            key_id=str(key_id),
            role=Role(role) if role in set(Role) else None,
            tenant_id=str(tenant_id) if tenant_id else None,
            request_id=request_id,
        )


class AuditEvent(CamelModel):
    trail: str = TRAIL
    event_id: str
    at: str
    action: AuditAction
    target: str
    actor_key_id: str
    actor_role: str
    actor_tenant_id: str | None = None
    request_id: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None

    def stored(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def event(
    actor: Actor,
    action: AuditAction,
    target: str,
    *,
    now: str,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """A new event; its id sorts by time (``<at>#<random>``), so the trail reads newest first."""
    return AuditEvent(
        event_id=f"{now}#{secrets.token_hex(4)}",
        at=now,
        action=action,
        target=target,
        actor_key_id=actor.key_id,
        actor_role=actor.role.value if actor.role else "unknown",
        actor_tenant_id=actor.tenant_id,
        request_id=actor.request_id,
        before=dict(before) if before is not None else None,
        after=dict(after) if after is not None else None,
    )


def before_of(item: Mapping[str, Any] | None, changes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The values ``changes`` replaced, as they were in ``item`` (read just before the change)."""
    if item is None:
        return None
    return {name: item.get(name) for name in changes}
