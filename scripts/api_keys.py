"""Operator helper: create an operator API key for a deployed stack (local emulator or AWS).

Tenant keys are created by `POST /tenants`; operator keys are bootstrapped here, by someone who may
write the ApiKeys table directly. The key is printed once; only its SHA-256 is stored.

    python -m scripts.api_keys --table <ApiKeysTableName> [--endpoint-url http://127.0.0.1:4566]
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from controlplane.api import keys as api_keys


def create_operator_key(clients: Any, outputs: dict[str, str]) -> str:
    """Store the hash of a new operator key and return the key (shown once)."""
    key = api_keys.new_key()
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    clients.client("dynamodb").put_item(
        TableName=outputs["ApiKeysTableName"],
        Item={
            "keyHash": {"S": api_keys.hash_key(key)},
            "role": {"S": api_keys.Role.OPERATOR.value},
            "status": {"S": api_keys.KeyStatus.ACTIVE.value},
            "createdAt": {"S": now},
        },
        ConditionExpression="attribute_not_exists(keyHash)",
    )
    return key


def main() -> None:
    import boto3  # noqa: PLC0415 - only for the command line

    parser = argparse.ArgumentParser(prog="python -m scripts.api_keys", description=__doc__)
    parser.add_argument("--table", required=True, help="the stack's ApiKeysTableName output")
    parser.add_argument("--endpoint-url", default=None, help="e.g. http://127.0.0.1:4566 for make local")
    arguments = parser.parse_args()

    class _Clients:
        def client(self, service: str) -> Any:
            return boto3.client(service, endpoint_url=arguments.endpoint_url)  # type: ignore[call-overload]

    print(create_operator_key(_Clients(), {"ApiKeysTableName": arguments.table}))


if __name__ == "__main__":
    main()
