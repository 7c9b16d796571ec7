from __future__ import annotations

import hashlib

import pytest

from controlplane.uploads.keys import (
    KeyRejection,
    UploadKey,
    decode_event_key,
    derive_job_id,
    is_job_id,
    parse_upload_key,
    read_event_key,
)


@pytest.mark.parametrize(
    ("key", "tenant", "name"),
    [
        ("tenants/acme/uploads/data.csv", "acme", "data.csv"),
        ("tenants/a1/uploads/x.csv", "a1", "x.csv"),
        ("tenants/acme-eu-2/uploads/churn 2024 (final).csv", "acme-eu-2", "churn 2024 (final).csv"),
        ("tenants/acme/uploads/données-été.csv", "acme", "données-été.csv"),
        ("tenants/acme/uploads/report.v2.csv", "acme", "report.v2.csv"),
        ("tenants/acme/uploads/big.csv.gz", "acme", "big.csv.gz"),
    ],
)
def test_well_formed_keys(key: str, tenant: str, name: str) -> None:
    parsed = parse_upload_key(key)
    assert parsed == UploadKey(tenant_id=tenant, file_name=name)
    assert parsed.gzipped is name.endswith(".gz")


@pytest.mark.parametrize(
    ("key", "tenant", "fragment"),
    [
        ("tenants//uploads/data.csv", "unknown", "names no tenant"),
        ("tenants/", "unknown", "names no tenant"),
        ("tenants/Acme/uploads/data.csv", "unknown", "tenant ids are lowercase"),
        ("tenants/ACME/uploads/data.csv", "unknown", "not a valid tenant id"),
        ("tenants/a/uploads/data.csv", "unknown", "not a valid tenant id"),
        ("tenants/-acme/uploads/data.csv", "unknown", "not a valid tenant id"),
        ("tenants/acme_corp/uploads/data.csv", "unknown", "not a valid tenant id"),
        ("tenants/" + "a" * 64 + "/uploads/data.csv", "unknown", "not a valid tenant id"),
        ("tenants/acme", "acme", "directly under the tenant"),
        ("tenants/acme/data.csv", "acme", "in folder 'data.csv'"),
        ("tenants/acme/models/data.csv", "acme", "in folder 'models'"),
        ("tenants/acme/uploads/", "acme", "is a folder"),
        ("tenants/acme/uploads", "acme", "is a folder"),
        ("tenants/acme/uploads/2024/05/data.csv", "acme", "sub-folder of uploads/"),
        ("tenants/acme/uploads/sub/", "acme", "sub-folder of uploads/"),
        ("tenants/acme/uploads/data.parquet", "acme", "does not end in '.csv'"),
        ("tenants/acme/uploads/data.csv.zip", "acme", "does not end in '.csv' or '.csv.gz'"),
        ("tenants/acme/uploads/data.CSV.GZ", "acme", "lowercase '.csv.gz'"),
        ("tenants/acme/uploads/.csv.gz", "acme", "nothing before '.csv.gz'"),
        ("tenants/acme/uploads/data", "acme", "does not end in '.csv'"),
        ("tenants/acme/uploads/DATA.CSV", "acme", "lowercase '.csv'"),
        ("tenants/acme/uploads/.csv", "acme", "nothing before '.csv'"),
        ("tenants/acme/uploads/bad\nname.csv", "acme", "control characters"),
        ("tenants/acme/uploads/zero\u200bwidth.csv", "acme", "control characters"),
        ("uploads/acme/data.csv", "unknown", "outside tenants/"),
    ],
)
def test_odd_keys_are_rejected_with_a_precise_reason(key: str, tenant: str, fragment: str) -> None:
    result = parse_upload_key(key)
    assert isinstance(result, KeyRejection)
    assert result.tenant_id == tenant
    assert fragment in result.reason


def test_overlong_key_is_rejected() -> None:
    result = parse_upload_key("tenants/acme/uploads/" + "x" * 1100 + ".csv")
    assert isinstance(result, KeyRejection)
    assert "longer than 1024 bytes" in result.reason


@pytest.mark.parametrize(
    ("raw", "decoded"),
    [
        ("tenants/acme/uploads/churn+2024.csv", "tenants/acme/uploads/churn 2024.csv"),
        ("tenants/acme/uploads/a%2Bb.csv", "tenants/acme/uploads/a+b.csv"),
        ("tenants/acme/uploads/donn%C3%A9es.csv", "tenants/acme/uploads/données.csv"),
        ("tenants/acme/uploads/%E6%95%B0%E6%8D%AE.csv", "tenants/acme/uploads/数据.csv"),
        ("tenants/acme/uploads/plain.csv", "tenants/acme/uploads/plain.csv"),
    ],
)
def test_event_keys_are_url_decoded(raw: str, decoded: str) -> None:
    assert decode_event_key(raw) == decoded
    key, parsed = read_event_key(raw)
    assert key == decoded
    assert isinstance(parsed, UploadKey)


def test_url_encoded_slash_is_a_path_separator_after_decoding() -> None:
    key, parsed = read_event_key("tenants/acme/uploads/sub%2Fdata.csv")
    assert key == "tenants/acme/uploads/sub/data.csv"
    assert isinstance(parsed, KeyRejection)
    assert "sub-folder" in parsed.reason


def test_key_that_is_not_valid_url_encoded_utf8() -> None:
    key, parsed = read_event_key("tenants/acme/uploads/bad%FF.csv")
    assert key == "tenants/acme/uploads/bad%FF.csv"
    assert isinstance(parsed, KeyRejection)
    assert "not valid URL-encoded UTF-8" in parsed.reason


def test_job_id_is_deterministic_and_well_formed() -> None:
    first = derive_job_id("bucket", "tenants/acme/uploads/a.csv", "v1")
    assert first == derive_job_id("bucket", "tenants/acme/uploads/a.csv", "v1")
    expected = hashlib.sha256(b"bucket v1 tenants/acme/uploads/a.csv").hexdigest()
    assert first == f"job-{expected}"
    # A valid SageMaker ClientRequestToken (32-128 chars) and display name (at most 82 characters of
    # [a-zA-Z0-9](-*[a-zA-Z0-9])*).
    assert len(first) == 68
    assert is_job_id(first)


@pytest.mark.parametrize(
    ("bucket", "key", "version"),
    [
        ("other-bucket", "tenants/acme/uploads/a.csv", "v1"),
        ("bucket", "tenants/acme/uploads/b.csv", "v1"),
        ("bucket", "tenants/acme/uploads/a.csv", "v2"),
        ("bucket", "tenants/acme/uploads/a.csv", "null"),
    ],
)
def test_any_change_of_bucket_key_or_version_changes_the_job_id(bucket: str, key: str, version: str) -> None:
    assert derive_job_id(bucket, key, version) != derive_job_id("bucket", "tenants/acme/uploads/a.csv", "v1")


def test_separator_prevents_concatenation_collisions() -> None:
    # Bucket names and version ids hold no spaces and event keys are URL-encoded (no spaces either).
    assert derive_job_id("ab", "c", "d") != derive_job_id("a", "bc", "d")
    assert derive_job_id("b", "k", "v1") != derive_job_id("b", "1 k", "v")


def test_job_id_pattern() -> None:
    assert not is_job_id("job-XYZ")
    assert not is_job_id("job-" + "0" * 31)
    assert is_job_id("job-" + "0123456789abcdef" * 4)
