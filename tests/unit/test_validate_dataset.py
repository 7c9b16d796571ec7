from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest
from conftest import LambdaContext, aws_client, load_event

from controlplane.core.errors import IsolationError
from controlplane.jobs.lifecycle import Job, JobStatus
from controlplane.uploads import object_store as objects

pytestmark = pytest.mark.usefixtures("aws")
UPLOADS = "test-uploads-bucket"
ARTIFACTS = "test-artifacts-bucket"
KEY = "tenants/acme/uploads/churn.csv"
VALID = b"age,income,churned\n34,52000,1\n41,61000,0\n29,48000,1\n"


@pytest.fixture
def registered(
    load_app: Callable[[str], ModuleType], put_tenant: Callable[..., Any], context: LambdaContext
) -> Callable[..., dict[str, Any]]:
    """Upload ``body`` and register it; returns register_upload's output (validate_dataset's input)."""
    register = load_app("register_upload")

    def upload(body: bytes = VALID, key: str = KEY) -> dict[str, Any]:
        put = aws_client("s3").put_object(Bucket=UPLOADS, Key=key, Body=body)
        payload = load_event("register_upload_input.json")
        payload["event"]["detail"]["object"] |= {
            "key": key,
            "size": len(body),
            "version-id": put["VersionId"],
        }
        result: dict[str, Any] = register.lambda_handler(payload, context)
        assert result["outcome"] == "ACCEPTED", result["reasons"]
        return {"job": result["job"], "tenant": result["tenant"], "plan": result["plan"]}

    put_tenant()
    return upload


@pytest.fixture
def validate(
    load_app: Callable[[str], ModuleType], context: LambdaContext
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    app = load_app("validate_dataset")

    def invoke(payload: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = app.lambda_handler(payload, context)
        json.dumps(result)
        return result

    return invoke


def job(table: Callable[[str], Any], job_id: str) -> dict[str, Any]:
    return dict(table("JOBS_TABLE_NAME").get_item(Key={"jobId": job_id})["Item"])


def test_valid_dataset_is_snapshotted_at_the_validated_version(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
) -> None:
    payload = registered(VALID)
    # The tenant overwrites the key after uploading: the job must train on the version it validated.
    aws_client("s3").put_object(Bucket=UPLOADS, Key=KEY, Body=b"age,churned\nnot,valid\n")
    result = validate(payload)
    plan = payload["plan"]
    assert result["valid"] is True
    assert result["reasons"] == []
    assert result["trainingDataUri"] == plan["trainingDataUri"]
    assert result["stats"]["rows"] == 3
    assert result["stats"]["features"]["income"] == {"min": 48000.0, "max": 61000.0, "missing": 0}

    key = plan["trainingDataUri"].removeprefix(f"s3://{ARTIFACTS}/")
    copied = aws_client("s3").get_object(Bucket=ARTIFACTS, Key=key)
    assert copied["Body"].read() == VALID
    assert copied["Metadata"] == {
        "tenant-id": "acme",
        "job-id": payload["job"]["jobId"],
        "source-version-id": payload["job"]["versionId"],
    }

    item = job(table, payload["job"]["jobId"])
    assert item["status"] == "VALIDATED"
    assert item["trainingDataUri"] == plan["trainingDataUri"]
    assert item["modelOutputUri"] == plan["modelOutputUri"]
    assert item["stats"]["rows"] == 3
    assert [entry["status"] for entry in item["timeline"]] == ["RECEIVED", "VALIDATED"]
    assert item["timeline"][-1]["state"] == "Validate the dataset against the tenant's contract"
    parsed = Job.model_validate(item)  # the item matches the documented Jobs schema
    assert parsed.status is JobStatus.VALIDATED
    assert not parsed.is_terminal


def test_invalid_dataset_is_rejected_with_reasons_and_not_copied(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
) -> None:
    payload = registered(b"age,churned\n1,0\nabc,1\n3,1\n")
    result = validate(payload)
    assert result == {
        "valid": False,
        "reasons": ["column 'age' is not numeric in 1 row, first at row 2 (line 3): 'abc'"],
        "stats": result["stats"],
        "trainingDataUri": None,
    }
    item = job(table, payload["job"]["jobId"])
    assert item["status"] == "REJECTED"
    assert item["reasons"] == result["reasons"]
    assert item["timeline"][-1]["reason"] == result["reasons"][0]
    assert "finishedAt" in item
    assert aws_client("s3").list_objects_v2(Bucket=ARTIFACTS).get("KeyCount", 0) == 0


def test_a_retried_validation_replays_and_a_closed_job_is_not_reopened(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[..., dict[str, Any]],
    table: Callable[[str], Any],
) -> None:
    payload = registered(VALID)
    assert validate(payload)["valid"] is True
    assert validate(payload)["valid"] is True  # the same result again: accepted
    assert [entry["status"] for entry in job(table, payload["job"]["jobId"])["timeline"]] == [
        "RECEIVED",
        "VALIDATED",
    ]

    other = registered(VALID, key="tenants/acme/uploads/other.csv")
    table("JOBS_TABLE_NAME").update_item(
        Key={"jobId": other["job"]["jobId"]},
        UpdateExpression="SET #s = :c",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":c": "CANCELLED"},
    )
    result = validate(other)
    assert (result["valid"], result["reasons"]) == (False, ["the job is already CANCELLED"])
    assert job(table, other["job"]["jobId"])["status"] == "CANCELLED"


def test_too_big_is_rejected_without_reading(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    payload = registered(VALID)
    payload["plan"]["maxDatasetBytes"] = 16

    def never(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the object must not be read")

    monkeypatch.setattr(objects, "iter_version", never)
    result = validate(payload)
    assert result["reasons"] == [f"the file is {len(VALID)} bytes; the basic tier allows at most 16 bytes"]


def test_deleted_version_is_rejected(
    registered: Callable[..., dict[str, Any]], validate: Callable[..., dict[str, Any]]
) -> None:
    payload = registered(VALID)
    aws_client("s3").delete_object(Bucket=UPLOADS, Key=KEY, VersionId=payload["job"]["versionId"])
    result = validate(payload)
    assert result["valid"] is False
    assert result["reasons"] == [
        "the uploaded object version no longer exists (it was deleted before it could be validated)"
    ]


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("job", "key", "tenants/globex/uploads/theirs.csv"),
        ("job", "bucket", "another-bucket"),
        ("plan", "trainingDataUri", "s3://test-artifacts-bucket/tenants/globex/jobs/x/input/dataset.csv"),
        ("plan", "modelOutputUri", "s3://elsewhere/model/"),
        ("tenant", "tenantId", "globex"),
    ],
)
def test_requests_outside_the_tenants_prefixes_are_refused(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[..., dict[str, Any]],
    section: str,
    field: str,
    value: str,
) -> None:
    payload = registered(VALID)
    payload[section][field] = value
    with pytest.raises(IsolationError):
        validate(payload)


def test_sample_input_is_a_request_within_the_tenants_scope(load_app: Callable[[str], ModuleType]) -> None:
    app = load_app("validate_dataset")
    request = app.ValidateRequest.model_validate(load_event("validate_dataset_input.json"))
    app._check_scope(request)
    assert request.plan.training_data_uri.endswith(f"/jobs/{request.job.job_id}/input/dataset.csv")


def test_a_gzip_upload_is_validated_and_copied_compressed_for_the_pipeline(
    registered: Callable[..., dict[str, Any]], validate: Callable[..., dict[str, Any]]
) -> None:
    packed = gzip.compress(VALID)
    payload = registered(packed, key="tenants/acme/uploads/churn.csv.gz")
    plan = payload["plan"]
    assert plan["trainingDataUri"].endswith("/input/dataset.csv.gz")
    result = validate(payload)
    assert result["valid"] is True, result["reasons"]
    assert result["stats"]["rows"] == 3
    assert result["stats"]["compressedBytes"] == len(packed)
    copied = aws_client("s3").get_object(
        Bucket=ARTIFACTS, Key=plan["trainingDataUri"].removeprefix(f"s3://{ARTIFACTS}/")
    )
    assert copied["ContentType"] == "application/gzip"
    assert gzip.decompress(copied["Body"].read()) == VALID


def test_a_truncated_gzip_upload_is_rejected_with_a_reason(
    registered: Callable[..., dict[str, Any]], validate: Callable[..., dict[str, Any]]
) -> None:
    packed = gzip.compress(VALID * 50)[:-10]
    result = validate(registered(packed, key="tenants/acme/uploads/cut.csv.gz"))
    assert result["valid"] is False
    assert "the upload is truncated" in result["reasons"][0]
    assert aws_client("s3").list_objects_v2(Bucket=ARTIFACTS).get("KeyCount", 0) == 0


def _in_ranges(
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    request: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    load_app: Callable[[str], ModuleType],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the state machine's Distributed Map does: split (ranges of ~40 bytes), every range, merge."""
    app = load_app("validate_dataset")
    monkeypatch.setattr(app, "settings", app.settings.model_copy(update={"validation_range_bytes": 40}))
    split = validate(request | {"step": "split"})
    assert split["inRanges"] is True
    for part in split["ranges"]:
        assert validate(request | {"step": "range", "range": part, "names": split["names"]}) == {
            "index": part["index"]
        }
    merged = validate(request | {"step": "merge", "ranges": split["ranges"], "names": split["names"]})
    return split, merged


def test_a_dataset_validated_in_ranges_gets_the_serial_verdict_and_snapshot(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    load_app: Callable[[str], ModuleType],
) -> None:
    body = b"age,income,churned\n" + b"".join(f"{20 + i},{50000 + i},{i % 2}\n".encode() for i in range(30))
    body += b"33,x,1\n34,52000\n"
    request = registered(body)
    serial = validate(dict(request))  # the one-function path, for the same version
    _, merged = _in_ranges(validate, request, monkeypatch, load_app)
    stats = dict(merged["stats"])
    assert stats.pop("ranges") > 5
    assert (merged["valid"], merged["reasons"], stats) == (
        serial["valid"],
        serial["reasons"],
        serial["stats"],
    )
    assert "row 31 (line 32): 'x'" in merged["reasons"][0]


def test_a_valid_dataset_validated_in_ranges_is_copied_for_the_job(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    load_app: Callable[[str], ModuleType],
) -> None:
    body = b"age,income,churned\n" + b"".join(f"{20 + i},{50000 + i},{i % 2}\n".encode() for i in range(30))
    request = registered(body)
    _, merged = _in_ranges(validate, request, monkeypatch, load_app)
    assert merged["valid"], merged["reasons"]
    bucket, key = merged["trainingDataUri"].removeprefix("s3://").split("/", 1)
    assert aws_client("s3").get_object(Bucket=bucket, Key=key)["Body"].read() == body


def test_a_range_step_outside_the_tenants_scope_is_refused(
    registered: Callable[..., dict[str, Any]], validate: Callable[[dict[str, Any]], dict[str, Any]]
) -> None:
    request = registered()
    request["job"]["key"] = "tenants/other/uploads/churn.csv"
    with pytest.raises(IsolationError):
        validate(request | {"step": "range", "range": {"index": 1, "start": 19, "end": 40}, "names": ["a"]})


def test_a_version_deleted_after_the_split_is_rejected_as_a_serial_run_rejects_it(
    registered: Callable[..., dict[str, Any]],
    validate: Callable[[dict[str, Any]], dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    load_app: Callable[[str], ModuleType],
) -> None:
    body = b"age,income,churned\n" + b"".join(f"{20 + i},{50000 + i},{i % 2}\n".encode() for i in range(30))
    request = registered(body)
    app = load_app("validate_dataset")
    monkeypatch.setattr(app, "settings", app.settings.model_copy(update={"validation_range_bytes": 40}))
    split = validate(request | {"step": "split"})
    aws_client("s3").delete_object(Bucket=UPLOADS, Key=KEY, VersionId=request["job"]["versionId"])
    for part in split["ranges"]:
        validate(request | {"step": "range", "range": part, "names": split["names"]})
    merged = validate(request | {"step": "merge", "ranges": split["ranges"], "names": split["names"]})
    assert merged["valid"] is False
    assert merged["reasons"] == [
        "the uploaded object version no longer exists (it was deleted before it could be validated)"
    ]
