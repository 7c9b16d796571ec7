"""Key lifecycle routes (functions/api + controlplane.api.key_lifecycle) on moto: create, list, rotate, revoke
for a tenant's own keys and for operators; another tenant's key is a 404 exactly like a missing one; the
authorizer honours expiry, rotation grace and revocation at a clock the test controls; every change and
operator action lands in the audit trail with who, what and when."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from tests.unit import test_api
from tests.unit.test_api import OPERATOR, tenant

api = test_api.api  # the status API fixture
Api = Callable[..., tuple[int, Any]]
pytestmark = pytest.mark.usefixtures("aws")

ALICE = {"role": "operator", "keyId": "key-alice"}


def _keys(api: Api, caller: dict[str, str], method: str = "GET", path: str = "/keys", **kw: Any) -> Any:
    return api(method, path, caller=caller, **kw)


def _create(api: Api, caller: dict[str, str], path: str = "/keys", **body: Any) -> dict[str, Any]:
    status, created = api("POST", path, caller=caller, body=body)
    assert status == 201, created
    return dict(created)


def _authorize(secret: str, now: str) -> Any:
    from controlplane.api.authorizing import authorize  # noqa: PLC0415 - see conftest.pytest_configure

    return authorize(f"Bearer {secret}", now=now)


def _before(moment: str) -> str:
    """One millisecond earlier."""
    from controlplane.core.model import format_timestamp, parse_timestamp  # noqa: PLC0415

    return format_timestamp(parse_timestamp(moment) - timedelta(milliseconds=1))


def _later(moment: str, *, seconds: int) -> str:
    from controlplane.core.model import format_timestamp, parse_timestamp  # noqa: PLC0415

    return format_timestamp(parse_timestamp(moment) + timedelta(seconds=seconds))


def _audit(api: Api) -> list[dict[str, Any]]:
    status, page = api("GET", "/audit", caller=OPERATOR)
    assert status == 200, page
    return list(page["items"])


def test_a_tenant_creates_lists_rotates_and_revokes_its_own_keys(
    api: Api, put_tenant: Callable[..., dict[str, Any]], table: Callable[[str], Any]
) -> None:
    put_tenant("acme")
    first = _create(api, tenant("acme"))
    second = _create(api, tenant("acme"), expiresInSeconds=3600)
    assert first["apiKey"].startswith(first["key"]["prefix"])
    assert (first["key"]["role"], first["key"]["tenantId"], first["key"]["status"]) == (
        "tenant",
        "acme",
        "ACTIVE",
    )
    status, page = api("GET", "/keys", caller=tenant("acme"))
    assert status == 200
    assert [key["keyId"] for key in page["items"]] == [
        second["key"]["keyId"],
        first["key"]["keyId"],
    ]  # newest first
    listed = json.dumps(page)
    assert first["apiKey"] not in listed
    assert second["apiKey"] not in listed
    assert "keyHash" not in listed
    assert {"keyId", "prefix", "createdAt", "expiresAt", "lastUsedAt"} <= set(page["items"][0])

    key_id = first["key"]["keyId"]
    status, rotated = api("POST", f"/keys/{key_id}/rotate", caller=tenant("acme"), body={"graceSeconds": 600})
    assert status == 201, rotated
    assert rotated["oldKey"]["replacedBy"] == rotated["key"]["keyId"]
    assert (rotated["oldKey"]["state"], rotated["key"]["state"]) == ("grace", "active")
    assert rotated["key"]["replaces"] == key_id
    assert rotated["apiKey"] != first["apiKey"]
    status, again = api("POST", f"/keys/{key_id}/rotate", caller=tenant("acme"), body={})
    assert (status, "already rotated" in again["message"]) == (409, True)

    status, revoked = api("DELETE", f"/keys/{second['key']['keyId']}", caller=tenant("acme"))
    assert (status, revoked["status"], revoked["state"]) == (200, "REVOKED", "revoked")
    assert revoked["revokedAt"]
    assert api("DELETE", f"/keys/{second['key']['keyId']}", caller=tenant("acme"))[1]["status"] == "REVOKED"
    status, refused = api("POST", f"/keys/{second['key']['keyId']}/rotate", caller=tenant("acme"), body={})
    assert (status, "revoked" in refused["message"]) == (409, True)
    stored = table("API_KEYS_TABLE_NAME").scan()["Items"]  # test-side look: the secrets are nowhere
    assert not any(
        secret in json.dumps(stored, default=str) for secret in (first["apiKey"], rotated["apiKey"])
    )


def test_another_tenants_key_is_exactly_a_missing_key(
    api: Api, put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    put_tenant("globex")
    theirs = _create(api, tenant("acme"))["key"]["keyId"]
    missing = "key-0000000000000000000"
    for method, suffix, body in (("DELETE", "", None), ("POST", "/rotate", {})):
        answers = [
            api(method, f"/keys/{key_id}{suffix}", caller=tenant("globex"), body=body)
            for key_id in (theirs, missing, "not-a-key-id")
        ]
        assert answers[0] == answers[1] == answers[2]
        assert answers[0][0] == 404
    assert api("GET", "/keys", caller=tenant("globex"))[1]["items"] == []
    # ... and still works for its owner.
    assert api("GET", "/keys", caller=tenant("acme"))[1]["items"][0]["status"] == "ACTIVE"
    _create(api, tenant("acme"))
    _, page = api("GET", "/keys", caller=tenant("acme"), query={"limit": "1"})
    assert page["nextToken"]
    assert "keyHash" not in base64.urlsafe_b64decode(page["nextToken"] + "==").decode()  # never the hash
    _, rest = api("GET", "/keys", caller=tenant("acme"), query={"limit": "1", "nextToken": page["nextToken"]})
    assert [key["keyId"] for key in rest["items"]] == [theirs]  # the older key, on the next page
    status, refused = api("GET", "/keys", caller=tenant("globex"), query={"nextToken": page["nextToken"]})
    assert (status, refused["message"]) == (
        400,
        "nextToken: nextToken is not a token this API issued for this listing",
    )


def test_a_tenant_cannot_use_the_operator_key_routes_or_read_the_trail(
    api: Api, put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    for method, path, body in (
        ("GET", "/tenants/acme/keys", None),
        ("POST", "/tenants/acme/keys", {}),
        ("GET", "/audit", None),
    ):
        status, answer = api(method, path, caller=tenant("acme"), body=body)
        assert (status, "operator" in answer["message"]) == (403, True), (method, path)


def test_operators_manage_operator_keys_and_any_tenants_keys(
    api: Api, put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    mine = _create(api, ALICE)
    assert (mine["key"]["role"], mine["key"]["tenantId"]) == ("operator", None)
    assert mine["key"]["expiresAt"] < "9999"  # operator keys expire too
    acmes = _create(api, ALICE, "/tenants/acme/keys")
    assert acmes["key"]["tenantId"] == "acme"
    assert [k["keyId"] for k in api("GET", "/keys", caller=ALICE)[1]["items"]] == [mine["key"]["keyId"]]
    listed = api("GET", "/tenants/acme/keys", caller=ALICE)[1]["items"]
    assert [k["keyId"] for k in listed] == [acmes["key"]["keyId"]]
    assert api("POST", "/tenants/nobody/keys", caller=ALICE, body={})[0] == 404
    status, rotated = api("POST", f"/tenants/acme/keys/{acmes['key']['keyId']}/rotate", caller=ALICE, body={})
    assert status == 201
    status, revoked = api("DELETE", f"/tenants/acme/keys/{rotated['key']['keyId']}", caller=ALICE)
    assert (status, revoked["status"]) == (200, "REVOKED")
    # An operator key is not one of acme's keys (and the other way round).
    assert api("DELETE", f"/tenants/acme/keys/{mine['key']['keyId']}", caller=ALICE)[0] == 404
    assert api("DELETE", f"/keys/{acmes['key']['keyId']}", caller=ALICE)[0] == 404


def test_requests_beyond_the_policy_are_refused_naming_the_field(
    api: Api, put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    status, body = api("POST", "/keys", caller=ALICE, body={"expiresInSeconds": 91 * 86400})
    assert status == 400
    assert "expiresInSeconds may be at most 7776000 for operator keys (90 days)" in body["message"]
    key_id = _create(api, tenant("acme"))["key"]["keyId"]
    status, body = api(
        "POST", f"/keys/{key_id}/rotate", caller=tenant("acme"), body={"graceSeconds": 31 * 86400}
    )
    assert status == 422
    assert "graceSeconds (body) must be at most 2592000" in body["message"]
    status, body = api("POST", "/keys", caller=tenant("acme"), body={"secret": "mine"})
    assert status == 422


# ------------------------------------------------------------------ the authorizer at a controlled clock


def test_a_rotated_key_works_during_its_grace_period_and_then_fails(
    api: Api, put_tenant: Callable[..., dict[str, Any]]
) -> None:
    from controlplane.api.authorizing import Grant, Refusal  # noqa: PLC0415

    put_tenant("acme")
    old = _create(api, tenant("acme"))
    _, rotated = api(
        "POST", f"/keys/{old['key']['keyId']}/rotate", caller=tenant("acme"), body={"graceSeconds": 60}
    )
    grace_end = rotated["oldKey"]["expiresAt"]
    rotated_at = rotated["oldKey"]["rotatedAt"]
    assert grace_end == _later(rotated_at, seconds=60)  # the grace asked for, not the key's own expiry
    assert isinstance(_authorize(old["apiKey"], rotated_at), Grant)
    assert isinstance(_authorize(old["apiKey"], _before(grace_end)), Grant)
    assert _authorize(old["apiKey"], grace_end) is Refusal.EXPIRED_KEY
    assert isinstance(_authorize(rotated["apiKey"], grace_end), Grant)


def test_an_expired_key_and_a_revoked_key_fail(api: Api, put_tenant: Callable[..., dict[str, Any]]) -> None:
    from controlplane.api.authorizing import Grant, Refusal  # noqa: PLC0415

    put_tenant("acme")
    short = _create(api, tenant("acme"), expiresInSeconds=60)
    created = short["key"]["createdAt"]
    assert isinstance(_authorize(short["apiKey"], created), Grant)
    assert _authorize(short["apiKey"], short["key"]["expiresAt"]) is Refusal.EXPIRED_KEY
    other = _create(api, tenant("acme"))
    assert isinstance(_authorize(other["apiKey"], created), Grant)
    api("DELETE", f"/keys/{other['key']['keyId']}", caller=tenant("acme"))
    assert _authorize(other["apiKey"], created) is Refusal.UNKNOWN_KEY


def test_last_use_is_recorded_by_the_authorizer_at_most_every_five_minutes(
    api: Api, put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    created = _create(api, tenant("acme"))

    def last_used() -> str | None:
        (key,) = api("GET", "/keys", caller=tenant("acme"))[1]["items"]
        return key["lastUsedAt"]  # type: ignore[no-any-return]

    assert last_used() is None
    _authorize(created["apiKey"], "2024-05-01T12:00:00.000Z")
    assert last_used() == "2024-05-01T12:00:00.000Z"
    _authorize(created["apiKey"], "2024-05-01T12:04:00.000Z")
    assert last_used() == "2024-05-01T12:00:00.000Z"
    _authorize(created["apiKey"], "2024-05-01T12:05:00.000Z")
    assert last_used() == "2024-05-01T12:05:00.000Z"


def test_a_key_from_before_the_lifecycle_keeps_working_and_is_enrolled_on_use(
    table: Callable[[str], Any], put_tenant: Callable[..., dict[str, Any]], api: Api
) -> None:
    from controlplane.api.authorizing import Grant  # noqa: PLC0415
    from controlplane.api.keys import hash_key, new_key  # noqa: PLC0415

    put_tenant("acme")
    secret = new_key()
    table("API_KEYS_TABLE_NAME").put_item(
        Item={
            "keyHash": hash_key(secret),
            "role": "tenant",
            "tenantId": "acme",
            "status": "ACTIVE",
            "createdAt": "2024-05-01T00:00:00.000Z",
        }
    )
    assert isinstance(_authorize(secret, "2024-05-02T00:00:00.000Z"), Grant)
    (key,) = api("GET", "/keys", caller=tenant("acme"))[1]["items"]
    assert (key["prefix"], key["expiresAt"]) == (secret[:12], "2025-05-01T00:00:00.000Z")
    assert api("DELETE", f"/keys/{key['keyId']}", caller=tenant("acme"))[1]["status"] == "REVOKED"


# ------------------------------------------------------------------ the audit trail


def test_operator_actions_and_key_changes_are_in_the_audit_trail_newest_first(
    api: Api, put_tenant: Callable[..., dict[str, Any]], stepfunctions: Any
) -> None:
    status, onboarded = api("POST", "/tenants", caller=ALICE, body=test_api.NEW_TENANT)
    assert status == 201
    api("PATCH", "/tiers/basic", caller=ALICE, body={"concurrencyLimit": 3})
    api("PATCH", "/account", caller=ALICE, body={"accountCap": 20})
    api("PATCH", "/tenants/initech", caller=ALICE, body={"tier": "premium"})
    created = _create(api, tenant("initech") | {"keyId": "key-initech"})
    api("DELETE", f"/keys/{created['key']['keyId']}", caller=tenant("initech") | {"keyId": "key-initech"})
    api("DELETE", "/tenants/initech", caller=ALICE)
    events = _audit(api)
    assert [event["action"] for event in events] == [
        "tenant.offboard",
        "key.revoke",
        "key.create",
        "tenant.change",
        "account.change",
        "tier.change",
        "tenant.onboard",
    ]
    by_action = {event["action"]: event for event in events}
    assert by_action["tier.change"] | {"eventId": "", "at": "", "requestId": ""} == {
        "eventId": "",
        "at": "",
        "requestId": "",
        "action": "tier.change",
        "target": "tier/basic",
        "actorKeyId": "key-alice",
        "actorRole": "operator",
        "actorTenantId": None,
        "before": {"concurrencyLimit": 2},
        "after": {"concurrencyLimit": 3},
    }
    assert (by_action["account.change"]["before"], by_action["account.change"]["after"]) == (
        {"accountCap": 16},
        {"accountCap": 20},
    )
    assert by_action["tenant.change"]["before"] == {"tier": "standard"}
    assert (
        by_action["tenant.onboard"]["after"]["keyId"] == onboarded["key"]["keyId"]
        if "key" in onboarded
        else True
    )
    revoke = by_action["key.revoke"]
    assert (revoke["actorKeyId"], revoke["actorRole"], revoke["actorTenantId"]) == (
        "key-initech",
        "tenant",
        "initech",
    )
    assert revoke["target"] == f"key/{created['key']['keyId']}"
    assert (revoke["before"], revoke["after"]) == ({"status": "ACTIVE"}, {"status": "REVOKED"})
    assert all(event["at"] and event["requestId"] == "r-1" for event in events)
    assert onboarded["apiKey"] not in json.dumps(events)
    assert created["apiKey"] not in json.dumps(events)


def test_the_audit_trail_pages_newest_first(api: Api) -> None:
    for cap in (17, 18, 19):
        assert api("PATCH", "/account", caller=ALICE, body={"accountCap": cap})[0] == 200
    seen: list[int] = []
    query = {"limit": "2"}
    while True:
        status, page = api("GET", "/audit", caller=OPERATOR, query=query)
        assert status == 200
        seen += [event["after"]["accountCap"] for event in page["items"]]
        if not page["nextToken"]:
            break
        query = {"limit": "2", "nextToken": page["nextToken"]}
    assert seen == [19, 18, 17]
    assert api("GET", "/audit", caller=OPERATOR, query={"nextToken": "bogus"})[0] == 400
