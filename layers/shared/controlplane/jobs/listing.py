"""Use case: a page of one tenant's jobs, newest first, for the tenant's own route and the operator's.

Access pattern: Query on ``tenant-jobs`` (tenantId = :tenant AND createdAt BETWEEN :from AND :to), optionally
filtered by status; no Scan.
"""

from __future__ import annotations

from typing import Any, Final

from controlplane.jobs import store as jobs
from controlplane.jobs.lifecycle import Job, JobStatus

EARLIEST: Final = "0000-01-01T00:00:00.000Z"
LATEST: Final = "9999-12-31T23:59:59.999Z"


class JobListingError(ValueError):
    """The listing's parameters cannot be answered (a 400): a token of another listing, an empty range."""


def tenant_jobs_page(
    tenant_id: str,
    *,
    status: JobStatus | None,
    created_after: str | None,
    created_before: str | None,
    limit: int,
    start_key: dict[str, Any] | None,
) -> tuple[list[Job], dict[str, Any] | None]:
    """The page and the key to continue from (None on the last page)."""
    if start_key is not None and start_key.get("tenantId") != tenant_id:
        raise JobListingError("nextToken: not a token this API issued for this listing")
    created_from, created_to = created_after or EARLIEST, created_before or LATEST
    if created_from > created_to:
        raise JobListingError("createdAfter is later than createdBefore")
    return jobs.list_for_tenant(
        tenant_id,
        created_from=created_from,
        created_to=created_to,
        status=status.value if status else None,
        limit=limit,
        start_key=start_key,
    )
