"""Key lifecycle over HTTP on loopback (localcloud.api_gateway): the real authorizer and API functions in
their own workers, deployed from template.yaml.

A rotated key works during its grace period and then fails; an expired key fails; a revoked key fails from
the next request on (the revocation bound is 0 s: template.yaml's ReauthorizeEvery 0, and the emulator
never caches authorizer results either); a tenant cannot see or revoke another tenant's keys (404, as
for a missing key); operator actions land in the audit trail with who, what and when.

Nothing here depends on the machine's speed: grace periods and lifetimes are a few seconds, and a check
that a key still works counts only when its request ended before the key's expiry (the emulator shares this
machine's clock); otherwise it is repeated with twice the time. A request that started after the expiry must
be refused, however slow the machine.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from controlplane.core.model import format_timestamp
from scripts.api_keys import create_operator_key
from tests.integration.conftest import QUIET_SECONDS, Deployed
from tests.integration.test_status_api import _call, _onboard

pytestmark = pytest.mark.integration


def _now() -> str:
    return format_timestamp(datetime.now(UTC))


def _timed(deployed: Deployed, key: str) -> tuple[str, int, str]:
    """(start, status, end) of GET /keys with ``key``."""
    start = _now()
    status = _call(deployed, "GET", "/keys", key).status_code
    return start, status, _now()


def _works_then_fails(deployed: Deployed, key: str, expires_at: str) -> bool:
    """True when ``key`` was seen working before ``expires_at``; False when no request could end before it
    (a slow machine: inconclusive). Either way, asserts it is refused once the expiry has passed."""
    start, status, end = _timed(deployed, key)
    conclusive = end < expires_at
    if conclusive:
        assert status == 200, f"refused at {start}-{end}, before its expiry {expires_at}"
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        start, status, end = _timed(deployed, key)
        if start > expires_at:
            assert status == 401, f"a request started at {start}, after the expiry {expires_at}, got {status}"
            return conclusive
        assert status in {200, 401}
        time.sleep(0.2)
    raise AssertionError(f"no request started after {expires_at} within {QUIET_SECONDS} s")


def _create(deployed: Deployed, key: str, **body: Any) -> dict[str, Any]:
    response = _call(deployed, "POST", "/keys", key, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture(scope="module")
def operator(deployed: Deployed) -> str:
    return create_operator_key(deployed.cloud, deployed.outputs)


def _tenant(deployed: Deployed, operator: str) -> tuple[str, str]:
    tenant_id = f"keys-{uuid.uuid4().hex[:8]}"
    return tenant_id, _onboard(deployed, operator, tenant_id)


def test_a_rotated_key_works_during_its_grace_period_and_then_fails(
    deployed: Deployed, operator: str
) -> None:
    _, key = _tenant(deployed, operator)
    current = _create(deployed, key)  # a key of its own to rotate (the onboarding key stays as it is)
    secret, key_id = current["apiKey"], current["key"]["keyId"]
    for grace in (3, 6, 12, 24):
        response = _call(deployed, "POST", f"/keys/{key_id}/rotate", secret, json={"graceSeconds": grace})
        assert response.status_code == 201, response.text
        rotated = response.json()
        assert rotated["oldKey"]["state"] == "grace"
        conclusive = _works_then_fails(deployed, secret, rotated["oldKey"]["expiresAt"])
        new_secret = rotated["apiKey"]
        assert _call(deployed, "GET", "/keys", new_secret).status_code == 200  # the new key works on
        if conclusive:
            break
        secret, key_id = new_secret, rotated["key"]["keyId"]
    else:
        raise AssertionError("no request ended within a 24 s grace period")
    listed = {k["keyId"]: k for k in _call(deployed, "GET", "/keys", new_secret).json()["items"]}
    assert listed[rotated["oldKey"]["keyId"]]["state"] == "expired"
    assert listed[rotated["key"]["keyId"]]["state"] == "active"


def test_an_expired_key_fails(deployed: Deployed, operator: str) -> None:
    _, key = _tenant(deployed, operator)
    for lifetime in (3, 6, 12, 24):
        short = _create(deployed, key, expiresInSeconds=lifetime)
        if _works_then_fails(deployed, short["apiKey"], short["key"]["expiresAt"]):
            break
    else:
        raise AssertionError("no request ended within a 24 s lifetime")
    response = _call(deployed, "POST", "/keys", operator, json={"expiresInSeconds": 91 * 86400})
    assert response.status_code == 400
    assert "at most 7776000 for operator keys" in response.json()["message"]


def test_a_revoked_key_fails_from_the_next_request_on(deployed: Deployed, operator: str) -> None:
    tenant_id, key = _tenant(deployed, operator)
    spare = _create(deployed, key)
    assert _call(deployed, "GET", "/jobs", spare["apiKey"]).status_code == 200
    revoked = _call(deployed, "DELETE", f"/tenants/{tenant_id}/keys/{spare['key']['keyId']}", operator)
    assert (revoked.status_code, revoked.json()["state"]) == (200, "revoked")
    assert _call(deployed, "GET", "/jobs", spare["apiKey"]).status_code == 401  # the very next request
    assert _call(deployed, "GET", "/jobs", key).status_code == 200  # its other key is untouched
    # A tenant revokes one of its own keys with that key itself: the next request is refused.
    assert _call(deployed, "DELETE", f"/keys/{_key_id(deployed, key)}", key).status_code == 200
    assert _call(deployed, "GET", "/jobs", key).status_code == 401


def _key_id(deployed: Deployed, secret: str) -> str:
    """The id of the key ``secret`` (found by its display prefix in the caller's own listing)."""
    items = _call(deployed, "GET", "/keys", secret).json()["items"]
    (found,) = [item["keyId"] for item in items if secret.startswith(item["prefix"])]
    return str(found)


def test_a_tenant_cannot_list_rotate_or_revoke_another_tenants_keys(
    deployed: Deployed, operator: str
) -> None:
    _, acme = _tenant(deployed, operator)
    _, globex = _tenant(deployed, operator)
    acme_key = _key_id(deployed, acme)
    assert acme_key not in {item["keyId"] for item in _call(deployed, "GET", "/keys", globex).json()["items"]}
    missing = "key-0000000000000000000"
    for method, suffix in (("DELETE", ""), ("POST", "/rotate")):
        theirs = _call(deployed, method, f"/keys/{acme_key}{suffix}", globex, json={})
        nothing = _call(deployed, method, f"/keys/{missing}{suffix}", globex, json={})
        assert (
            (theirs.status_code, theirs.json())
            == (nothing.status_code, nothing.json())
            == (
                404,
                {"statusCode": 404, "message": "no such key"},
            )
        )
    assert _call(deployed, "GET", "/jobs", acme).status_code == 200  # acme's key still works
    # The operator routes for tenants' keys refuse tenant keys (the authorizer's policy: 403).
    assert _call(deployed, "GET", f"/tenants/{_tenant_id_of(deployed, acme)}/keys", globex).status_code == 403


def _tenant_id_of(deployed: Deployed, secret: str) -> str:
    items = _call(deployed, "GET", "/keys", secret).json()["items"]
    return str(items[0]["tenantId"])


def test_operator_actions_are_in_the_audit_trail_with_who_what_and_when(
    deployed: Deployed, operator: str
) -> None:
    operator_id = _key_id(deployed, operator)
    before = _now()
    tenant_id, key = _tenant(deployed, operator)
    changed = _call(deployed, "PATCH", f"/tenants/{tenant_id}", operator, json={"metricThreshold": 0.6})
    assert changed.status_code == 200, changed.text
    spare = _create(deployed, key)
    revoked = _call(deployed, "DELETE", f"/tenants/{tenant_id}/keys/{spare['key']['keyId']}", operator)
    assert revoked.status_code == 200
    after = _now()

    page = _call(deployed, "GET", "/audit", operator, params={"limit": "50"}).json()["items"]
    mine = [
        event for event in page if event["target"] in {f"tenant/{tenant_id}", f"key/{spare['key']['keyId']}"}
    ]
    assert [event["action"] for event in mine] == [
        "key.revoke",
        "key.create",
        "tenant.change",
        "tenant.onboard",
    ]
    assert all(before <= event["at"] <= after for event in mine)
    by_action = {event["action"]: event for event in mine}
    for action in ("key.revoke", "tenant.change", "tenant.onboard"):
        assert (by_action[action]["actorKeyId"], by_action[action]["actorRole"]) == (operator_id, "operator")
    assert (by_action["key.create"]["actorRole"], by_action["key.create"]["actorTenantId"]) == (
        "tenant",
        tenant_id,
    )
    assert by_action["tenant.change"]["before"] == {"metricThreshold": 0.5}
    assert by_action["tenant.change"]["after"] == {"metricThreshold": 0.6}
    assert by_action["key.revoke"]["after"] == {"status": "REVOKED"}
    assert key not in str(page)
    assert spare["apiKey"] not in str(page)
    # Newest first across the whole trail, and tenants may not read it.
    assert [event["eventId"] for event in page] == sorted((event["eventId"] for event in page), reverse=True)
    assert _call(deployed, "GET", "/audit", key).status_code == 403


def test_the_cli_manages_keys_over_http(
    deployed: Deployed, operator: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from scripts import cli  # noqa: PLC0415

    tenant_id, key = _tenant(deployed, operator)
    url = str(deployed.cloud.api_url(deployed.stack, "ControlPlaneApi"))
    assert cli.main(["--url", url, "--key", operator, "keys", "create", "--tenant", tenant_id]) == 0
    created = capsys.readouterr().out
    assert "API key (shown once): mlaas_" in created
    assert cli.main(["--url", url, "--key", key, "keys", "list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 3  # header, the onboarding key and the new one
    assert all(line.split()[2:5] == ["tenant", tenant_id, "active"] for line in listing[1:])
    new_id = listing[1].split()[0]
    assert cli.main(["--url", url, "--key", key, "keys", "revoke", new_id]) == 0
    assert "revoked at" in capsys.readouterr().out
