"""Recording operator actions and key changes, and reading the trail (use case).

A route records its action after the change succeeded; a failed write fails the request (500), so an
action the API reports as done is in the trail (the access log has every request either way).
"""

from __future__ import annotations

from controlplane.api import audit_store
from controlplane.api.audit import AuditEvent
from controlplane.api.models import decode_page_token, encode_page_token


def record(recorded: AuditEvent) -> None:
    """Store an event (controlplane.api.audit.event builds it)."""
    audit_store.put(recorded)


def trail(*, limit: int, next_token: str | None) -> tuple[list[AuditEvent], str | None]:
    """A page of the trail, newest first, and the token of the next (InvalidPageTokenError for a bad one)."""
    start = decode_page_token(next_token, expected_keys=audit_store.PAGE_KEYS) if next_token else None
    events, last = audit_store.page(limit=limit, start_key=start)
    return events, encode_page_token(last)
