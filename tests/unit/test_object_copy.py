"""The validated version is copied to the job's folder in one CopyObject up to 5 GiB and in parts
(UploadPartCopy) above: tested against moto with the threshold made small, since moto holds no 5 GiB."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from conftest import ENVIRONMENT, aws_client

from controlplane.uploads import object_store

UPLOADS, ARTIFACTS = ENVIRONMENT["UPLOADS_BUCKET_NAME"], ENVIRONMENT["ARTIFACTS_BUCKET_NAME"]
PART = 5 * 1024 * 1024  # S3's (and moto's) smallest part but the last


def upload(body: bytes) -> str:
    s3 = aws_client("s3")
    version = s3.put_object(Bucket=UPLOADS, Key="tenants/acme/uploads/big.csv", Body=body)["VersionId"]
    s3.put_object(Bucket=UPLOADS, Key="tenants/acme/uploads/big.csv", Body=b"overwritten,later\n")
    return str(version)


def copy(version: str, size: int, **options: Any) -> str | None:
    return object_store.copy_version(
        source_bucket=UPLOADS,
        source_key="tenants/acme/uploads/big.csv",
        version_id=version,
        bucket=ARTIFACTS,
        key="tenants/acme/jobs/j1/input/dataset.csv",
        metadata={"tenant-id": "acme", "job-id": "j1", "source-version-id": version},
        size_bytes=size,
        **options,
    )


@pytest.mark.usefixtures("aws")
def test_above_the_single_copy_limit_the_version_is_copied_in_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"".join(f"{i},{i * 7 % 13},{i % 2}\n".encode() for i in range(1_400_000))  # ~16 MiB
    version = upload(body)
    calls: list[str] = []
    s3 = aws_client("s3")
    real = object_store.client

    def recording(service: str) -> Any:
        made = real(service)
        original = made.upload_part_copy

        def upload_part_copy(**kwargs: Any) -> Any:
            calls.append(kwargs["CopySourceRange"])
            assert kwargs["CopySource"]["VersionId"] == version
            return original(**kwargs)

        monkeypatch.setattr(made, "upload_part_copy", upload_part_copy)
        return made

    monkeypatch.setattr(object_store, "client", recording)
    copy(version, len(body), single_copy_bytes=PART, part_bytes=PART)
    copied = s3.get_object(Bucket=ARTIFACTS, Key="tenants/acme/jobs/j1/input/dataset.csv")
    assert hashlib.sha256(copied["Body"].read()).digest() == hashlib.sha256(body).digest()
    assert copied["Metadata"] == {"tenant-id": "acme", "job-id": "j1", "source-version-id": version}
    assert copied["ContentType"] == "text/csv"
    assert calls == [
        f"bytes={start}-{min(start + PART, len(body)) - 1}" for start in range(0, len(body), PART)
    ]
    assert len(calls) == 4


@pytest.mark.usefixtures("aws")
def test_at_or_below_the_limit_one_copy_object(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"a,b\n1,2\n"
    version = upload(body)

    def no_multipart(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a multipart copy for a small object")

    monkeypatch.setattr(object_store, "_multipart_copy", no_multipart)
    copy(version, len(body), single_copy_bytes=len(body))
    copied = aws_client("s3").get_object(Bucket=ARTIFACTS, Key="tenants/acme/jobs/j1/input/dataset.csv")
    assert copied["Body"].read() == body


@pytest.mark.usefixtures("aws")
def test_a_failed_part_aborts_the_upload(monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"x,y\n" * (3 * PART // 4)
    version = upload(body)
    real = object_store.client

    def failing(service: str) -> Any:
        made = real(service)
        monkeypatch.setattr(
            made, "upload_part_copy", lambda **kwargs: (_ for _ in ()).throw(OSError("reset"))
        )
        return made

    monkeypatch.setattr(object_store, "client", failing)
    with pytest.raises(OSError, match="reset"):
        copy(version, len(body), single_copy_bytes=PART, part_bytes=PART)
    assert aws_client("s3").list_multipart_uploads(Bucket=ARTIFACTS).get("Uploads", []) == []
