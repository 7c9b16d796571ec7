"""Typed domain exceptions.

Their class names surface as the Lambda error type, so the state machine can Retry/Catch them by name.
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base class for every error raised on purpose by the control plane."""


class ConfigurationError(ControlPlaneError):
    """The function's environment (or a deploy-time input) is missing or invalid."""


class JobNotFoundError(ControlPlaneError):
    """The job item does not exist."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id} does not exist")
        self.job_id = job_id


class JobClosedError(ControlPlaneError):
    """The job already has a terminal status, which is never overwritten."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} is already {status}")
        self.job_id = job_id
        self.status = status


class TransitionNotAllowedError(ControlPlaneError):
    """The job is not in the status this step requires."""

    def __init__(self, job_id: str, current: str | None, wanted: str) -> None:
        super().__init__(f"job {job_id} cannot become {wanted} from {current or 'no status'}")
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class RegistrationConflictError(ControlPlaneError):
    """A retried registration found its own claim but can no longer reproduce an ACCEPTED decision."""


class TaskTokenDeadError(ControlPlaneError):
    """Step Functions no longer waits on this task token (timed out, finished, aborted or malformed)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class ObjectVersionNotFoundError(ControlPlaneError):
    """The uploaded object version no longer exists (deleted before it could be read)."""

    def __init__(self, bucket: str, key: str, version_id: str) -> None:
        super().__init__(f"s3://{bucket}/{key} version {version_id} does not exist")
        self.bucket = bucket
        self.key = key
        self.version_id = version_id


class IsolationError(ControlPlaneError):
    """A request would read or write outside the tenant's own prefixes; refused before any I/O."""


class AwsServiceError(ControlPlaneError):
    """An AWS call failed after the SDK's own retries (throttled, unavailable, denied, timed out). Stores
    raise it instead of botocore's errors, so use cases decide what to do without knowing the SDK."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation} failed: {code}: {message}")
        self.operation = operation
        self.code = code
