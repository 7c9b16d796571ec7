"""scripts.cli (the mlaas command) against the status API's real handler: every command, readable
tables, API errors as exit status 1 with the API's message."""

from __future__ import annotations

import io
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from conftest import job_id_for, queued_job

from scripts import cli
from tests.unit import test_api
from tests.unit.test_api import OPERATOR, put_job, tenant
from tests.unit.test_models_api import register, sagemaker_updates_like_aws

api = test_api.api  # the status API fixture
__all__ = ["sagemaker_updates_like_aws"]  # autouse: UpdateModelPackage keeps what it is not asked to change
pytestmark = pytest.mark.usefixtures("aws")


def sender(api: Callable[..., tuple[int, Any]], caller: dict[str, str]) -> cli.Send:
    def send(method: str, path: str, query: dict[str, str] | None, body: Any) -> tuple[int, Any]:
        return api(method, path, caller=caller, query=query, body=body)

    return send


def run(api: Callable[..., tuple[int, Any]], caller: dict[str, str], *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(list(argv), send=sender(api, caller), out=out)
    return code, out.getvalue()


def test_operator_commands(api: Callable[..., tuple[int, Any]], stepfunctions: Any) -> None:
    code, text = run(
        api,
        OPERATOR,
        *("onboard", "initech", "--tier", "basic", "--target-column", "churned"),
        *("--problem-type", "binary_classification", "--metric-threshold", "0.7", "--feature-columns", "a,b"),
    )
    assert code == 0, text
    assert "initech" in text
    assert "API key (shown once): mlaas_" in text
    code, text = run(api, OPERATOR, "tenants")
    assert text.splitlines()[0].split() == ["tenant", "tier", "status", "threshold", "created"]
    assert text.splitlines()[1].split()[:3] == ["initech", "basic", "ACTIVE"]
    code, text = run(api, OPERATOR, "tier-limit", "basic", "5")
    assert code == 1  # 5 + 4 + 8 guaranteed would exceed the account cap of 16
    code, text = run(api, OPERATOR, "account-cap", "20")
    assert code == 0
    assert text.strip() == "account: cap 20, running 0, guaranteed 14"
    code, text = run(api, OPERATOR, "tier-limit", "basic", "5", "--borrow", "1")
    assert code == 0
    assert text.splitlines()[1].split()[:3] == ["basic", "5", "1"]
    code, text = run(api, OPERATOR, "tiers")
    assert len(text.splitlines()) == 5
    assert text.splitlines()[-1] == "account: cap 20, running 0, guaranteed 17"
    code, text = run(api, OPERATOR, "offboard", "initech")
    assert code == 0
    assert "data kept until" in text


def test_tenant_commands(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any], stepfunctions: Any
) -> None:
    done = put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z", status="FAILED", reasons=["bad rows"])
    queued_job(table, job_id_for(2), tenant_id="acme", queued_at="2024-05-02T00:00:00.000Z")
    code, text = run(api, tenant("acme"), "jobs")
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["job", "status", "tier", "upload", "created", "reason"]
    assert [line.split()[:2] for line in lines[1:]] == [[job_id_for(2), "QUEUED"], [done, "FAILED"]]
    assert "bad rows" in lines[2]
    code, text = run(api, tenant("acme"), "job", done)
    assert code == 0
    assert "RECEIVED" in text
    assert "Register the upload as a job" in text
    assert "failed step: Validate the dataset against the tenant's contract" in text  # it was RECEIVED
    code, text = run(api, tenant("acme"), "job", job_id_for(2))
    assert code == 0
    assert "position: 1 of 1 of the tenant's waiting jobs; 1 of 1 in tier basic" in text
    assert "held by NOTHING" in text
    code, text = run(api, OPERATOR, "job", job_id_for(2), "--tenant", "acme")
    assert code == 0, text
    assert "backlogged tenants ahead" in text
    code, text = run(api, OPERATOR, "job", job_id_for(2), "--tenant", "initech")
    assert code == 1  # another tenant's job is not found
    code, text = run(api, tenant("acme"), "cancel", job_id_for(2))
    assert code == 0
    assert "cancel requested" in text
    # Watch returns once every listed job has finished.
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": job_id_for(2)},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": "CANCELLED"},
    )
    code, text = run(api, tenant("acme"), "jobs", "--watch", "--interval", "0")
    assert code == 0
    assert "refreshing" not in text


def test_watch_started_before_the_upload_is_registered_waits_for_its_job(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    calls = 0
    send_to_api = sender(api, tenant("acme"))

    def send(method: str, path: str, query: dict[str, str] | None, body: Any) -> tuple[int, Any]:
        nonlocal calls
        calls += 1
        if calls == 2:  # the job appears between the first and the second refresh, already finished
            put_job(table, 1, "acme", "2024-05-01T00:00:00.000Z", status="SUCCEEDED")
        return send_to_api(method, path, query, body)

    out = io.StringIO()
    code = cli.main(["jobs", "--watch", "--interval", "0"], send=send, out=out)

    assert code == 0
    assert calls == 2
    assert "no job yet; refreshing" in out.getvalue()
    assert job_id_for(1) in out.getvalue()


def test_api_errors_exit_1_with_the_message(
    api: Callable[..., tuple[int, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(api, tenant("acme"), "job", job_id_for(9))
    assert code == 1
    assert "HTTP 404: no such job" in capsys.readouterr().err
    code, _ = run(api, tenant("acme"), "tenants")
    assert code == 1


def test_a_refused_request_is_printed_field_by_field(
    api: Callable[..., tuple[int, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = run(api, tenant("acme"), "jobs", "--status", "DONE")
    assert code == 1
    err = capsys.readouterr().err
    assert "mlaas: HTTP 422: the request was refused:\n  status (query): must be one of 'RECEIVED'" in err
    assert "[{" not in err
    assert "'loc'" not in err


def test_url_and_key_are_required_without_a_sender(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MLAAS_API_URL", raising=False)
    monkeypatch.delenv("MLAAS_API_KEY", raising=False)
    assert cli.main(["tiers"]) == 2
    assert "MLAAS_API_URL" in capsys.readouterr().err


def test_table_formats_missing_values_lists_and_long_text() -> None:
    text = cli.table([{"a": None, "b": ["x", "y"], "c": "z" * 100}], (("A", "a"), ("B", "b"), ("C", "c")))
    _header, row = text.splitlines()
    assert row.split()[:2] == ["-", "x;"]
    assert row.endswith("…")


def test_onboard_sets_the_tenants_fair_share(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any]
) -> None:
    code, text = run(
        api,
        OPERATOR,
        *("onboard", "hooli", "--tier", "standard", "--target-column", "y", "--problem-type", "regression"),
        *("--metric-threshold", "0.5", "--fair-share-weight", "2.5", "--max-running-jobs", "3"),
    )
    assert code == 0, text
    item = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "hooli"})["Item"]
    assert (item["fairShareWeight"], item["maxRunningJobs"]) == (Decimal("2.5"), 3)


def test_key_commands_print_tables_and_each_secret_once(
    api: Callable[..., tuple[int, Any]], put_tenant: Callable[..., dict[str, Any]]
) -> None:
    put_tenant("acme")
    operator = {"role": "operator", "keyId": "key-ops"}
    code, text = run(api, operator, "keys", "create", "--tenant", "acme", "--expires-in-days", "30")
    assert code == 0, text
    header, row, secret_line = text.splitlines()
    assert header.split() == [
        "key",
        "prefix",
        "role",
        "tenant",
        "state",
        "created",
        "last",
        "used",
        "expires",
    ]
    key_id, prefix = row.split()[:2]
    assert row.split()[2:5] == ["tenant", "acme", "active"]
    assert secret_line.startswith(f"API key (shown once): {prefix}")
    code, text = run(api, tenant("acme"), "keys", "list")
    assert (code, text.splitlines()[1].split()[0]) == (0, key_id)
    assert "mlaas_" not in text.replace(prefix, "")  # the prefix only, never the secret
    code, text = run(api, tenant("acme"), "keys", "rotate", key_id, "--grace-seconds", "60")
    assert code == 0, text
    assert text.startswith(f"{key_id} rotated: it keeps working until ")
    assert "API key (shown once): mlaas_" in text
    code, text = run(api, operator, "keys", "list", "--tenant", "acme")
    assert [line.split()[4] for line in text.splitlines()[1:]] == ["active", "grace"]
    code, text = run(api, operator, "keys", "revoke", key_id, "--tenant", "acme")
    assert code == 0
    assert text.startswith(f"{key_id} ({prefix}…) revoked at ")
    code, text = run(api, tenant("globex"), "keys", "revoke", key_id)
    assert code == 1  # another tenant's key: "no such key"
    code, text = run(api, operator, "keys", "create")
    assert code == 0
    assert text.splitlines()[1].split()[2:4] == ["operator", "-"]


def test_the_audit_command_shows_who_did_what_and_when(api: Callable[..., tuple[int, Any]]) -> None:
    operator = {"role": "operator", "keyId": "key-ops"}
    assert run(api, operator, "account-cap", "20")[0] == 0
    assert run(api, operator, "tier-limit", "basic", "3")[0] == 0
    code, text = run(api, OPERATOR, "audit")
    assert code == 0
    lines = text.splitlines()
    assert lines[0].split() == ["at", "action", "target", "by", "change"]
    assert lines[1].split()[1:6] == ["tier.change", "tier/basic", "key-ops", "(operator)", "concurrencyLimit"]
    assert lines[1].endswith("concurrencyLimit 2 -> 3")
    assert lines[2].endswith("accountCap 16 -> 20")
    code, text = run(api, OPERATOR, "audit", "--all", "--limit", "1")
    assert len(text.splitlines()) == 3


def test_onboard_declares_the_targets_values(
    api: Callable[..., tuple[int, Any]], table: Callable[[str], Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = run(
        api,
        OPERATOR,
        *(
            "onboard",
            "pied",
            "--tier",
            "basic",
            "--target-column",
            "y",
            "--problem-type",
            "binary_classification",
        ),
        *("--metric-threshold", "0.5", "--target-values", "yes,no", "--positive-class", "yes"),
        "--non-finite-as-missing",
    )
    assert code == 0, text
    contract = table("TENANTS_TABLE_NAME").get_item(Key={"tenantId": "pied"})["Item"]["contract"]
    assert (contract["targetValues"], contract["positiveClass"], contract["nonFiniteAsMissing"]) == (
        ["yes", "no"],
        "yes",
        True,
    )
    code, text = run(
        api,
        OPERATOR,
        *("onboard", "pied2", "--tier", "basic", "--target-column", "y", "--problem-type", "regression"),
        *("--metric-threshold", "0.5", "--positive-class", "yes"),
    )
    assert code == 1
    assert "for binary_classification only" in capsys.readouterr().err


def test_models_approve_and_reject(api: Callable[..., tuple[int, Any]], table: Any) -> None:
    register("acme", 1, auc=0.8123)
    register("acme", 2, auc=0.9)
    code, text = run(api, tenant("acme"), "models")
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].split() == ["version", "approval", "metric", "job", "created", "note"]
    assert lines[1].split()[:4] == ["2", "PendingManualApproval", "auc=0.900", job_id_for(2)]
    assert lines[2].split()[:3] == ["1", "PendingManualApproval", "auc=0.812"]
    code, text = run(api, tenant("acme"), "approve", "2", "--description", "ship it")
    assert code == 0, text
    assert "PendingManualApproval -> Approved (hand-off event: Model Version Approved" in text
    code, text = run(api, tenant("acme"), "approve", "2")
    assert text.strip().endswith("already Approved: nothing changed")
    code, text = run(api, tenant("globex"), "approve", "2")
    assert code == 1  # another tenant's version: a 404
    table("TENANTS_TABLE_NAME").put_item(Item={"tenantId": "acme", "tier": "basic", "status": "ACTIVE"})
    code, text = run(api, OPERATOR, "reject", "1", "--tenant", "acme", "--description", "too weak")
    assert code == 0, text
    assert "PendingManualApproval -> Rejected" in text
    code, text = run(api, OPERATOR, "models", "--tenant", "acme")
    assert [line.split()[1] for line in text.splitlines()[1:]] == ["Approved", "Rejected"]
