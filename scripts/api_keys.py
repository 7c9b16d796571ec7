"""Operator helper: create an operator API key for a deployed stack (local emulator or AWS).

Tenant keys are created by `POST /tenants` and `POST /tenants/{tenantId}/keys`; further operator keys by
`POST /keys` with an operator key. The first operator key is bootstrapped here, by someone who may write
the ApiKeys table directly. The key is printed once; only its SHA-256 is stored. It expires after the
operator key lifetime (default 90 days; `--days` for fewer or more).

    python -m scripts.api_keys --table <ApiKeysTableName> [--endpoint-url http://127.0.0.1:4566] [--days 90]
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from typing import Any

from controlplane.api import key_store
from controlplane.api import keys as api_keys
from controlplane.core.model import utc_now


def create_operator_key(
    clients: Any, outputs: dict[str, str], *, days: int = api_keys.DEFAULT_OPERATOR_LIFETIME_DAYS
) -> str:
    """Store a new operator key (created by "bootstrap") and return its secret (shown once)."""
    secret, key = api_keys.issue(
        api_keys.KeyOwner.operators(), now=utc_now(), lifetime=timedelta(days=days), created_by="bootstrap"
    )
    key_store.create(key, table=outputs["ApiKeysTableName"], dynamodb=clients.client("dynamodb"))
    return secret


def main() -> None:
    import boto3  # noqa: PLC0415 - only for the command line

    parser = argparse.ArgumentParser(prog="python -m scripts.api_keys", description=__doc__)
    parser.add_argument("--table", required=True, help="the stack's ApiKeysTableName output")
    parser.add_argument("--endpoint-url", default=None, help="e.g. http://127.0.0.1:4566 for make local")
    parser.add_argument(
        "--days", type=int, default=api_keys.DEFAULT_OPERATOR_LIFETIME_DAYS, help="lifetime (default 90)"
    )
    arguments = parser.parse_args()

    class _Clients:
        def client(self, service: str) -> Any:
            return boto3.client(service, endpoint_url=arguments.endpoint_url)  # type: ignore[call-overload]

    print(create_operator_key(_Clients(), {"ApiKeysTableName": arguments.table}, days=arguments.days))


if __name__ == "__main__":
    main()
