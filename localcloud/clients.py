"""boto3 clients pointed at the emulator: its endpoint, dummy credentials, optionally no SDK retries."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

# moto accepts any credentials; these only keep the SDK from looking for real ones.
DUMMY_CREDENTIALS = {"aws_access_key_id": "localcloud", "aws_secret_access_key": "localcloud"}


def emulator_client(
    service: str, *, endpoint_url: str, region: str, sdk_retries: bool = True, read_timeout: int = 60
) -> Any:
    """A client of its own session (creating clients on a shared session is not thread-safe).

    sdk_retries=False for callers that apply AWS's own retry rules themselves (event delivery).
    """
    config = Config(read_timeout=read_timeout, retries=None if sdk_retries else {"total_max_attempts": 1})
    session: Any = boto3.session.Session()  # Any: the stubs type clients per literal service name
    return session.client(
        service, endpoint_url=endpoint_url, region_name=region, config=config, **DUMMY_CREDENTIALS
    )
