"""Upload keys and job ids.

Keys look like ``tenants/<tenantId>/uploads/<name>.csv`` or ``<name>.csv.gz`` (gzip-compressed CSV,
decompressed as it is validated; docs/contracts.md). Anything else under
``tenants/`` becomes a REJECTED job whose reason says precisely what is wrong with the key.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_plus

TENANT_ID_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
JOB_ID_REGEX: Final = r"^job-[0-9a-f]{64}$"
JOB_ID_PATTERN: Final = re.compile(JOB_ID_REGEX)
KEY_PREFIX: Final = "tenants/"
UPLOADS_FOLDER: Final = "uploads"
EXTENSION: Final = ".csv"
GZIP_EXTENSION: Final = ".csv.gz"
# S3 keys are at most 1024 bytes; longer names are only possible through a malformed event.
MAX_KEY_BYTES: Final = 1024
# Version id S3 reports for objects written while versioning was off; still addressable by that id.
NULL_VERSION_ID: Final = "null"
# The tenant id of a job whose key names no tenant (reserved: never a tenant's id).
UNKNOWN_TENANT: Final = "unknown"
EXPECTED_SHAPE: Final = "tenants/<tenantId>/uploads/<name>.csv (or .csv.gz)"


@dataclass(frozen=True, slots=True)
class UploadKey:
    """A well-formed upload key."""

    tenant_id: str
    file_name: str

    @property
    def gzipped(self) -> bool:
        return is_gzip_key(self.file_name)


def is_gzip_key(key: str) -> bool:
    """A ``.csv.gz`` upload: its bytes are gzip-compressed CSV."""
    return key.endswith(GZIP_EXTENSION)


@dataclass(frozen=True, slots=True)
class KeyRejection:
    """Why a key is not an acceptable upload; ``tenant_id`` is ``unknown`` when the key names none."""

    tenant_id: str
    reason: str


def decode_event_key(raw_key: str) -> str:
    """S3 event notifications carry the key URL-encoded ("red flower.csv" arrives as "red+flower.csv"),
    EventBridge deliveries included; S3 API calls need the real key."""
    return unquote_plus(raw_key, encoding="utf-8", errors="strict")


def derive_job_id(bucket: str, raw_key: str, version_id: str) -> str:
    """``job-`` + the SHA-256 hex digest of ``"<bucket> <versionId> <key as the event carries it>"``.

    The key is hashed as S3 events carry it (URL-encoded: no spaces), after the bucket and version id
    (which hold no spaces either), so the text is unambiguous. The state machine's first states compute
    the same id with ``States.Hash`` before any function runs, so an upload whose registration fails is
    still recorded under its job (tests/unit/test_lifecycle_conformance.py holds the two together).
    68 characters:
    a valid SageMaker ClientRequestToken (32-128) and PipelineExecutionDisplayName (at most 82), so a
    redelivered event, a retried start and the pipeline execution all collapse onto one job.
    """
    digest = hashlib.sha256(f"{bucket} {version_id} {raw_key}".encode()).hexdigest()
    return f"job-{digest}"


def is_job_id(value: str) -> bool:
    return JOB_ID_PATTERN.fullmatch(value) is not None


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(char) in {"Cc", "Cf"} for char in text)


def parse_upload_key(key: str) -> UploadKey | KeyRejection:
    """Parse a decoded object key, or say exactly why it is not an upload the control plane accepts."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        return KeyRejection(UNKNOWN_TENANT, f"the object key is longer than {MAX_KEY_BYTES} bytes")
    if not key.startswith(KEY_PREFIX):
        return KeyRejection(
            UNKNOWN_TENANT, f"the object key {key!r} is outside {KEY_PREFIX}; expected {EXPECTED_SHAPE}"
        )

    parts = key[len(KEY_PREFIX) :].split("/")
    raw_tenant = parts[0]
    if not raw_tenant:
        return KeyRejection(
            UNKNOWN_TENANT, f"the object key {key!r} names no tenant; expected {EXPECTED_SHAPE}"
        )
    if TENANT_ID_PATTERN.fullmatch(raw_tenant) is None:
        hint = " (tenant ids are lowercase)" if TENANT_ID_PATTERN.fullmatch(raw_tenant.lower()) else ""
        return KeyRejection(
            UNKNOWN_TENANT,
            f"the object key {key!r} names tenant {raw_tenant!r}, which is not a valid tenant id{hint}; "
            "tenant ids are 2-63 characters of a-z, 0-9 and '-', starting with a letter or digit",
        )
    tenant_id = raw_tenant

    if len(parts) == 1:
        return KeyRejection(
            tenant_id, f"the object key {key!r} is directly under the tenant; expected {EXPECTED_SHAPE}"
        )
    if parts[1] != UPLOADS_FOLDER:
        return KeyRejection(
            tenant_id,
            f"the object key {key!r} is in folder {parts[1]!r}; uploads go to tenants/{tenant_id}/uploads/",
        )
    if len(parts) == 2 or (len(parts) == 3 and parts[2] == ""):
        return KeyRejection(tenant_id, f"the object key {key!r} is a folder, not a file")
    if len(parts) > 3:
        return KeyRejection(
            tenant_id,
            f"the object key {key!r} is in a sub-folder of uploads/; "
            f"put the file directly in tenants/{tenant_id}/uploads/",
        )

    file_name = parts[2]
    if _has_control_characters(file_name):
        return KeyRejection(tenant_id, f"the file name {file_name!r} contains control characters")
    extension = next((e for e in (EXTENSION, GZIP_EXTENSION) if file_name.endswith(e)), None)
    if extension is None:
        lowered = file_name.lower()
        for wanted in (GZIP_EXTENSION, EXTENSION):
            if lowered.endswith(wanted):
                return KeyRejection(
                    tenant_id, f"the file name {file_name!r} must end in lowercase {wanted!r}"
                )
        return KeyRejection(
            tenant_id,
            f"the file name {file_name!r} does not end in {EXTENSION!r} or {GZIP_EXTENSION!r}; "
            "only CSV uploads are built",
        )
    if file_name == extension:
        return KeyRejection(tenant_id, f"the file name {file_name!r} has nothing before {extension!r}")
    return UploadKey(tenant_id=tenant_id, file_name=file_name)


def read_event_key(raw_key: str) -> tuple[str, UploadKey | KeyRejection]:
    """Decode an event's key and parse it. Returns the key to store (decoded, or raw when it cannot be
    decoded) with the parse result."""
    try:
        key = decode_event_key(raw_key)
    except UnicodeDecodeError:
        return raw_key, KeyRejection(
            UNKNOWN_TENANT, f"the object key {raw_key!r} is not valid URL-encoded UTF-8"
        )
    return key, parse_upload_key(key)
