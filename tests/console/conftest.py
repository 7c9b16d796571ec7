"""One emulator with template.yaml deployed, the console server in front of its API, and an operator key."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcloud import LocalCloud
from localcloud.__main__ import console_mounts
from localcloud.console import ConsoleServer
from scripts.api_keys import create_operator_key

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Console:
    cloud: Any
    stack: Any
    server: ConsoleServer
    operator_key: str
    api_port: int

    @property
    def outputs(self) -> dict[str, str]:
        return dict(self.stack.outputs)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    # The API on a port chosen here, as `make local` chooses 4567 (free, so parallel workers never collide).
    api_port = free_port()
    with LocalCloud(
        port=0,
        api_port=api_port,
        state_dir=tmp_path_factory.mktemp("localcloud"),
        pipeline_delay_seconds=1.0,
        schedule_interval_seconds=3600,
        lambda_timeout_scale=5.0,
    ) as cloud:
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-console")
        server = ConsoleServer(
            console_mounts(ROOT / "template.yaml", ROOT / "console"), str(stack.outputs["StatusApiUrl"])
        )
        try:
            yield Console(cloud, stack, server, create_operator_key(cloud, dict(stack.outputs)), api_port)
        finally:
            server.close()
        # The API's new calls (DescribeExecution, GetExecutionHistory) are allowed by its role as deployed.
        report = cloud.permission_report()
        assert report.ok, "\n".join(report.summary_lines())
        api = [p.actions for p in report.principals if p.principal == "ApiFunction"]
        assert api, "the API function made AWS calls"
        assert {"states:DescribeExecution", "states:GetExecutionHistory"} <= set(api[0]), api
