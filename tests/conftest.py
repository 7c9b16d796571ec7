"""Test-suite wide wiring."""

from __future__ import annotations

import os

import pytest

# Step scripts run in-process in tests/pipeline: one OpenMP thread each, or two xdist workers'
# thread pools spin-wait against each other on a small machine (set before scikit-learn loads).
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Only one local emulator can run per process (moto's state and MOTO_PORT are process-wide), so
# every test that starts one is kept together on one xdist worker, per package.
EMULATOR_GROUPS = {
    "tests/integration/": "emulator-integration",
    "tests/localcloud/": "emulator-localcloud",
    "tests/pipeline_integration/": "emulator-pipeline",
    "tests/soak/": "emulator-soak",
    "tests/permissions/": "emulator-permissions",
    "tests/console/": "emulator-console",
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        for folder, group in EMULATOR_GROUPS.items():
            if folder in path:
                item.add_marker(pytest.mark.xdist_group(group))
