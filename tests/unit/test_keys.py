"""The key lifecycle's rules (controlplane.api.keys): expiry, rotation grace, last use, ids; no AWS."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.api.keys import (
    DISPLAY_PREFIX_LENGTH,
    ApiKey,
    KeyOwner,
    KeyPolicy,
    KeyRefusal,
    KeyRequestError,
    KeyStatus,
    Role,
    enrolment,
    grace_end,
    hash_key,
    is_key_id,
    issue,
    last_use_cutoff,
    new_key_id,
    rotation_refusal,
    use_due,
)

NOW = "2024-05-01T12:00:00.000Z"
POLICY = KeyPolicy()
ACME = KeyOwner.tenant("acme")


def _issued(owner: KeyOwner = ACME, *, days: int = 365) -> tuple[str, ApiKey]:
    return issue(owner, now=NOW, lifetime=timedelta(days=days), created_by="key-op")


def test_an_issued_key_stores_its_hash_id_prefix_owner_and_expiry_never_its_secret() -> None:
    secret, key = _issued()
    assert secret.startswith("mlaas_")
    assert key.key_hash == hash_key(secret)
    assert key.prefix == secret[:DISPLAY_PREFIX_LENGTH]
    assert key.key_id is not None
    assert is_key_id(key.key_id)
    assert (key.owner, key.role, key.tenant_id, key.status) == ("tenant#acme", Role.TENANT, "acme", "ACTIVE")
    assert key.expires_at == "2025-05-01T12:00:00.000Z"
    assert secret not in str(key.stored())
    assert secret[DISPLAY_PREFIX_LENGTH:] not in str(key.stored())


def test_operator_keys_are_one_pool_and_tenant_owners_are_apart() -> None:
    assert KeyOwner.operators().partition == "operator"
    assert KeyOwner.tenant("operator").partition == "tenant#operator"  # a tenant named operator: no clash


def test_key_ids_sort_by_creation_time() -> None:
    earlier, later = new_key_id("2024-05-01T00:00:00.000Z"), new_key_id("2024-05-01T00:00:00.001Z")
    assert earlier < later
    assert is_key_id(earlier)
    assert not is_key_id("key-../../etc")


def test_default_lifetimes_and_shorter_ones_on_request_never_longer() -> None:
    assert POLICY.lifetime(Role.TENANT) == timedelta(days=365)
    assert POLICY.lifetime(Role.OPERATOR) == timedelta(days=90)
    assert POLICY.requested_lifetime(Role.OPERATOR, None) == timedelta(days=90)
    assert POLICY.requested_lifetime(Role.OPERATOR, 60) == timedelta(seconds=60)
    with pytest.raises(KeyRequestError, match="at most 7776000 for operator keys"):
        POLICY.requested_lifetime(Role.OPERATOR, 90 * 86400 + 1)
    assert KeyPolicy(operator_lifetime_days=7).lifetime(Role.OPERATOR) == timedelta(days=7)


def test_a_key_works_until_it_expires_or_is_revoked() -> None:
    _, key = _issued(days=1)
    assert key.refusal(NOW, POLICY) is None
    assert key.refusal("2024-05-02T11:59:59.999Z", POLICY) is None
    assert key.refusal("2024-05-02T12:00:00.000Z", POLICY) is KeyRefusal.EXPIRED
    revoked = key.model_copy(update={"status": KeyStatus.REVOKED})
    assert revoked.refusal(NOW, POLICY) is KeyRefusal.REVOKED


def test_a_tenant_key_without_a_tenant_never_works() -> None:
    _, key = _issued()
    assert key.model_copy(update={"tenant_id": None}).refusal(NOW, POLICY) is KeyRefusal.NO_TENANT


def test_rotation_grace_ends_the_old_key_but_never_extends_it() -> None:
    _, key = _issued(days=2)
    assert grace_end(key, NOW, timedelta(hours=1), POLICY) == "2024-05-01T13:00:00.000Z"
    assert grace_end(key, NOW, timedelta(0), POLICY) == NOW
    assert grace_end(key, NOW, timedelta(days=30), POLICY) == key.expires_at
    rotated = key.model_copy(update={"expires_at": "2024-05-01T13:00:00.000Z", "replaced_by": "key-new"})
    assert rotated.refusal("2024-05-01T12:59:59.000Z", POLICY) is None
    assert rotated.refusal("2024-05-01T13:00:00.000Z", POLICY) is KeyRefusal.GRACE_OVER


def test_only_an_active_unexpired_key_not_rotated_before_can_be_rotated() -> None:
    _, key = _issued(days=1)
    assert rotation_refusal(key, NOW, POLICY) is None
    assert "already rotated" in str(
        rotation_refusal(key.model_copy(update={"replaced_by": "key-x"}), NOW, POLICY)
    )
    revoked = key.model_copy(update={"status": KeyStatus.REVOKED})
    assert "the key is revoked" in str(rotation_refusal(revoked, NOW, POLICY))
    assert "expired" in str(rotation_refusal(key, "2024-06-01T00:00:00.000Z", POLICY))


def test_last_use_is_recorded_at_most_every_five_minutes() -> None:
    _, key = _issued()
    assert use_due(key, NOW)
    used = key.model_copy(update={"last_used_at": NOW})
    assert not use_due(used, "2024-05-01T12:04:59.999Z")
    assert use_due(used, "2024-05-01T12:05:00.000Z")
    assert last_use_cutoff(NOW) == "2024-05-01T11:55:00.000Z"


def test_a_key_from_before_the_lifecycle_expires_a_lifetime_after_creation_and_is_enrolled() -> None:
    secret, issued = _issued()
    legacy = ApiKey(key_hash=issued.key_hash, role=Role.OPERATOR, status=KeyStatus.ACTIVE, created_at=NOW)
    assert legacy.expiry(POLICY) == "2024-07-30T12:00:00.000Z"  # 90 days
    assert legacy.refusal("2024-07-30T12:00:00.000Z", POLICY) is KeyRefusal.EXPIRED
    missing = enrolment(legacy, secret, "2024-05-02T00:00:00.000Z", POLICY)
    assert set(missing) == {"keyId", "owner", "prefix", "expiresAt"}
    assert (missing["owner"], missing["prefix"], missing["expiresAt"]) == (
        "operator",
        secret[:DISPLAY_PREFIX_LENGTH],
        "2024-07-30T12:00:00.000Z",
    )
    assert enrolment(issued, secret, NOW, POLICY) == {}
