"""The loop with the real pipeline: the emulator runs the pipeline's step scripts for every build."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from localcloud import LocalCloud
from scripts.sample_data import SampleTenant
from tests.integration.conftest import TIMEOUT_SCALE, Deployed, make_tenant_factory

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    with LocalCloud(
        port=0,
        state_dir=tmp_path_factory.mktemp("localcloud"),
        pipeline_runner="executing",
        pipeline_workers=2,
        schedule_interval_seconds=3600,
        lambda_timeout_scale=TIMEOUT_SCALE,
    ) as cloud:
        yield Deployed(cloud, cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-pit"))


@pytest.fixture
def new_tenant(deployed: Deployed) -> Callable[..., SampleTenant]:
    return make_tenant_factory(deployed)
