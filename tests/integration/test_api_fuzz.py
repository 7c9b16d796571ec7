"""Property-based fuzzing of the status API with schemathesis (pinned in requirements/dev.txt), driven by
docs/openapi.json, against the API served on loopback by the emulator (authorizer and API function as
deployed). Bounded: a fixed number of generated requests per operation, generation mode and caller.

Property: no request, valid or not, with operator or tenant credentials, gets a 5xx.
Tier settings are restored afterwards (PATCH /tiers is among the operations).
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any, Final

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable

from scripts.api_keys import create_operator_key
from scripts.openapi import DOCUMENT
from tests.integration.conftest import QUIET_SECONDS, Deployed, tier_item
from tests.integration.test_status_api import _onboard, _url

pytestmark = pytest.mark.integration
EXAMPLES_PER_OPERATION: Final = 6
TIERS: Final = ("basic", "standard", "premium")


def _restore_tiers(deployed: Deployed, saved: dict[str, dict[str, Any]]) -> None:
    for item in saved.values():
        deployed.client("dynamodb").put_item(TableName=deployed.outputs["TiersTableName"], Item=item)


def _fuzz(strategy: Any, base_url: str, key: str, sent: list[int], server_errors: list[str]) -> None:
    """Send EXAMPLES_PER_OPERATION generated requests (derandomized: the same ones every run)."""

    @given(data=st.data())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(data: st.DataObject) -> None:
        case = data.draw(strategy)
        response = case.call(
            base_url=base_url, headers={"Authorization": f"Bearer {key}"}, timeout=QUIET_SECONDS
        )
        sent.append(response.status_code)
        if response.status_code >= 500:
            server_errors.append(
                f"{case.method} {case.formatted_path} query={case.query} body={case.body!r}: "
                f"{response.status_code} {response.text[:200]}"
            )

    # Negative mode on an operation with nothing to make invalid (no parameters, no body) generates nothing.
    with contextlib.suppress(Unsatisfiable):
        run()


def test_no_generated_request_gets_a_server_error(deployed: Deployed) -> None:
    operator = create_operator_key(deployed.cloud, deployed.outputs)
    tenant = _onboard(deployed, operator, f"fz-{uuid.uuid4().hex[:8]}")
    base_url = _url(deployed)
    schema = schemathesis.openapi.from_path(DOCUMENT)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    server_errors: list[str] = []
    sent: list[int] = []
    saved = {tier: tier_item(deployed, tier) for tier in TIERS}
    try:
        for operation in operations:
            for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
                for key in (operator, tenant):
                    _fuzz(operation.as_strategy(generation_mode=mode), base_url, key, sent, server_errors)
    finally:
        _restore_tiers(deployed, saved)
    print(f"schemathesis: {len(sent)} requests, {len(operations)} operations, 5xx: {len(server_errors)}")
    assert len(sent) >= len(operations) * 2
    assert server_errors == []
