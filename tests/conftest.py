"""Test-suite wide wiring."""

from __future__ import annotations

import pytest

# Only one local emulator can run per process (moto's state and MOTO_PORT are process-wide), so
# every test that starts one is kept together on one xdist worker, per package.
EMULATOR_GROUPS = {"tests/integration/": "emulator-integration", "tests/localcloud/": "emulator-localcloud"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        for folder, group in EMULATOR_GROUPS.items():
            if folder in path:
                item.add_marker(pytest.mark.xdist_group(group))
