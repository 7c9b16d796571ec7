"""CloudFormation custom resources: answering the request on its ResponseURL, exactly once.

CloudFormation waits (up to an hour) for one PUT to the presigned ResponseURL. `answer` runs the
resource's work and sends that answer: SUCCESS with the work's Data, FAILED with the error, or
FAILED shortly before the function would time out (a watchdog), whichever comes first, so a stack
never hangs on us.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

SUCCESS: Final = "SUCCESS"
FAILED: Final = "FAILED"
_MAX_REASON_CHARS: Final = 1000  # the whole response body must stay under 4 KiB
_HTTP_TIMEOUT_SECONDS: Final = 10

_log = logging.getLogger(__name__)


class RemainingTime(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


Work = Callable[[Mapping[str, Any]], Mapping[str, str]]
PhysicalId = Callable[[Mapping[str, Any], str], str]


class _Responder:
    """Sends the one response CloudFormation waits for (the first of: result, error, watchdog)."""

    def __init__(self, event: Mapping[str, Any], physical_id: PhysicalId) -> None:
        self._event = event
        self._physical_id = physical_id
        self._lock = threading.Lock()
        self._sent = False

    def send(self, status: str, reason: str, data: Mapping[str, str] | None = None) -> bool:
        with self._lock:
            if self._sent:
                return False
            self._sent = True
        body = json.dumps(
            {
                "Status": status,
                "Reason": reason[:_MAX_REASON_CHARS],
                "PhysicalResourceId": self._physical_id(self._event, status),
                "StackId": self._event.get("StackId"),
                "RequestId": self._event.get("RequestId"),
                "LogicalResourceId": self._event.get("LogicalResourceId"),
                "NoEcho": False,
                "Data": dict(data or {}),
            }
        ).encode()
        # The raw ResponseURL (not a parsed/normalised one): it is a presigned S3 URL whose signature
        # covers the exact text. Content-Type must be empty, as the URL was signed without one.
        url = str(self._event["ResponseURL"])
        if not url.startswith(("https://", "http://")):
            raise ValueError(f"ResponseURL is not an HTTP(S) URL: {url[:40]!r}")
        request = urllib.request.Request(  # noqa: S310 - scheme checked above
            url, data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
        )
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_SECONDS) as response:  # noqa: S310
            _log.info(
                json.dumps({"message": "answered CloudFormation", "status": status, "http": response.status})
            )
        return True


def answer(
    event: Mapping[str, Any],
    context: RemainingTime,
    work: Work,
    *,
    physical_id: PhysicalId,
    name: str,
    timeout_margin_seconds: float,
) -> dict[str, str]:
    """Run `work(event)` and answer CloudFormation; returns {"Status", "Reason"} for the invoke result."""
    responder = _Responder(event, physical_id)
    seconds_left = context.get_remaining_time_in_millis() / 1000 - timeout_margin_seconds
    watchdog = threading.Timer(
        max(seconds_left, 0.0), responder.send, args=(FAILED, f"{name} timed out before finishing")
    )
    watchdog.daemon = True
    watchdog.start()
    data: Mapping[str, str] = {}
    try:
        data = work(event)
    except Exception as error:  # every failure becomes a FAILED answer, never a hung stack
        _log.exception("custom resource request failed")
        status, reason = FAILED, f"{type(error).__name__}: {error}"
    else:
        status, reason = SUCCESS, f"See the log stream {getattr(context, 'log_stream_name', '')}"
    finally:
        watchdog.cancel()
    responder.send(status, reason, data)
    return {"Status": status, "Reason": reason}
