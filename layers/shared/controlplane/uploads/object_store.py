"""S3 objects: streaming reads of one object version and server-side copies of one version."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final

from botocore.exceptions import ClientError

from controlplane.core.clients import client
from controlplane.core.errors import ObjectVersionNotFoundError

CHUNK_BYTES: Final = 256 * 1024
# CopyObject copies at most 5 GiB in one request; above, UploadPartCopy (parts of 5 MiB to 5 GiB, at
# most 10,000 of them: 512 MiB parts reach 5 TiB, S3's largest object).
SINGLE_COPY_BYTES: Final = 5 * 1024**3
COPY_PART_BYTES: Final = 512 * 1024**2
COPY_THREADS: Final = 8
_MISSING_CODES: Final = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})


def iter_version(
    bucket: str,
    key: str,
    version_id: str,
    *,
    chunk_bytes: int = CHUNK_BYTES,
    start: int | None = None,
    end: int | None = None,
) -> Iterator[bytes]:
    """Yield the bytes of exactly this object version, chunk by chunk (never the whole object); with
    ``start`` and ``end``, only bytes ``start`` to ``end`` (exclusive, a non-empty range).

    The HTTP stream is closed when the generator is closed or garbage collected, so a reader that stops
    early (an invalid dataset) does not download the rest.
    """
    extra = {} if start is None or end is None else {"Range": f"bytes={start}-{end - 1}"}
    try:
        response = client("s3").get_object(Bucket=bucket, Key=key, VersionId=version_id, **extra)
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in _MISSING_CODES:
            raise ObjectVersionNotFoundError(bucket, key, version_id) from error
        raise
    body = response["Body"]
    try:
        yield from body.iter_chunks(chunk_size=chunk_bytes)
    finally:
        body.close()


def copy_version(
    *,
    source_bucket: str,
    source_key: str,
    version_id: str,
    bucket: str,
    key: str,
    metadata: Mapping[str, str],
    content_type: str = "text/csv",
    size_bytes: int | None = None,
    single_copy_bytes: int = SINGLE_COPY_BYTES,
    part_bytes: int = COPY_PART_BYTES,
) -> str | None:
    """Server-side copy of one source version to ``bucket/key``: one CopyObject up to
    ``single_copy_bytes`` (S3's limit is 5 GiB), above that a multipart copy (UploadPartCopy) of the same
    version, in parts of ``part_bytes``.

    Tags are not copied (TaggingDirective REPLACE with none), so the copy needs no tagging permissions;
    the metadata records where the copy came from. Returns the new version id (None if unversioned).
    """
    source = {"Bucket": source_bucket, "Key": source_key, "VersionId": version_id}
    try:
        if size_bytes is not None and size_bytes > single_copy_bytes:
            return _multipart_copy(
                source,
                bucket=bucket,
                key=key,
                metadata=metadata,
                content_type=content_type,
                size_bytes=size_bytes,
                part_bytes=part_bytes,
            )
        response = client("s3").copy_object(
            CopySource={"Bucket": source_bucket, "Key": source_key, "VersionId": version_id},
            Bucket=bucket,
            Key=key,
            MetadataDirective="REPLACE",
            Metadata=dict(metadata),
            ContentType=content_type,
            TaggingDirective="REPLACE",
        )
    except ClientError as error:
        if str(error.response.get("Error", {}).get("Code")) in _MISSING_CODES:
            raise ObjectVersionNotFoundError(source_bucket, source_key, version_id) from error
        raise
    version = response.get("VersionId")
    return str(version) if version else None


def _multipart_copy(
    source: dict[str, str],
    *,
    bucket: str,
    key: str,
    metadata: Mapping[str, str],
    content_type: str,
    size_bytes: int,
    part_bytes: int,
) -> str | None:
    s3 = client("s3")
    upload = s3.create_multipart_upload(
        Bucket=bucket, Key=key, Metadata=dict(metadata), ContentType=content_type
    )["UploadId"]

    def copy_part(number: int, start: int) -> dict[str, Any]:
        copied = s3.upload_part_copy(
            Bucket=bucket,
            Key=key,
            UploadId=upload,
            PartNumber=number,
            CopySource=source,
            CopySourceRange=f"bytes={start}-{min(start + part_bytes, size_bytes) - 1}",
        )
        return {"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]}

    try:
        # Parts at once (each is server-side; boto3 clients are thread-safe): 50 GiB is 100 parts.
        with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
            starts = range(0, size_bytes, part_bytes)
            parts = list(pool.map(copy_part, range(1, len(starts) + 1), starts))
        response = s3.complete_multipart_upload(
            Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts}
        )
    except BaseException:
        # No half-copied parts left behind (they are billed until aborted).
        s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload)
        raise
    version = response.get("VersionId")
    return str(version) if version else None


def read_range(bucket: str, key: str, version_id: str, start: int, end: int) -> bytes:
    """Bytes ``start`` to ``end`` (exclusive) of exactly this object version, in memory (a small window)."""
    return b"".join(iter_version(bucket, key, version_id, start=start, end=end))


def put_json(bucket: str, key: str, document: Mapping[str, Any]) -> None:
    client("s3").put_object(
        Bucket=bucket, Key=key, Body=json.dumps(document).encode(), ContentType="application/json"
    )


def get_json(bucket: str, key: str) -> dict[str, Any]:
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"]
    try:
        document: dict[str, Any] = json.loads(body.read())
    finally:
        body.close()
    return document
