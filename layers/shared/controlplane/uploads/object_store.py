"""S3 objects: streaming reads of one object version and server-side copies of one version."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Final

from botocore.exceptions import ClientError

from controlplane.core.clients import client
from controlplane.core.errors import ObjectVersionNotFoundError

CHUNK_BYTES: Final = 256 * 1024
_MISSING_CODES: Final = frozenset({"NoSuchKey", "NoSuchVersion", "404", "NotFound"})


def iter_version(
    bucket: str, key: str, version_id: str, *, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """Yield the bytes of exactly this object version, chunk by chunk (never the whole object).

    The HTTP stream is closed when the generator is closed or garbage collected, so a reader that stops
    early (an invalid dataset) does not download the rest.
    """
    try:
        response = client("s3").get_object(Bucket=bucket, Key=key, VersionId=version_id)
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
) -> str | None:
    """Server-side copy of one source version (at most 5 GiB, one request) to ``bucket/key``.

    Tags are not copied (TaggingDirective REPLACE with none), so the copy needs no tagging permissions;
    the metadata records where the copy came from. Returns the new version id (None if unversioned).
    """
    try:
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
