"""The fault-injection soak, small (``make soak`` runs the full one): 100 uploads from 12 tenants over the
three tiers under every SIMULATED fault kind, then the invariants of DESIGN.md 1-4 and 6 (bench.soak's
must-be-zero figures).

Nothing here waits a fixed time for the stack: the drain waits until every job is terminal (up to a
generous timeout), so a busy machine makes the test slower, not red.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.soak import MUST_BE_ZERO, SoakConfig, run

pytestmark = pytest.mark.integration


def test_a_small_soak_keeps_every_invariant_under_every_fault(tmp_path: Path) -> None:
    config = SoakConfig(
        uploads=100,
        tenants_per_tier=4,
        seed=20,
        upload_seconds=45.0,
        drain_timeout_seconds=900.0,
        scale=3.0,
    )
    result = run(config)
    (tmp_path / "soak.json").write_text(json.dumps(result, indent=2, default=str))
    injected = {kind for kind, count in result["faults"].items() if count > 0}
    assert result["uploads"] == 100
    assert len(injected) >= 10, result["faults"]
    broken = {name: result[name] for name in MUST_BE_ZERO if result[name] != 0}
    assert not broken, json.dumps({"broken": broken, "examples": result["examples"]}, indent=2, default=str)
