"""The operators' dashboard: generated from the template and committed (stale fails), covering every tier
queue, dead-letter queue and function, and showing only metrics AWS publishes or the code emits."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.core.model import Tier
from controlplane.jobs.lifecycle import FailureReason
from scripts import dashboard

ROOT = Path(__file__).resolve().parents[2]
SUBSTITUTION = re.compile(r"\$\{([^}!]+)\}")
# The observability helpers that emit metrics: the name is their first argument (gauges: its keys).
EMITTERS = {"count", "gauges"}
# The custom dimensions and the values each may take (the README's "Dashboard" documents them).
BOUNDED_DIMENSIONS = {
    "tier": {tier.value for tier in Tier},
    "borrowed": {"true", "false"},
    "reason": {reason.value for reason in FailureReason},
}


def _names_in(node: ast.AST, dicts: dict[str, ast.Dict]) -> Iterator[str]:
    """The string constants an emitter's first argument spells out (f-strings are skipped whole)."""
    if isinstance(node, ast.Name) and node.id in dicts:
        yield from _names_in(dicts[node.id], dicts)
    elif isinstance(node, ast.Dict):
        yield from (
            key.value for key in node.keys if isinstance(key, ast.Constant) and isinstance(key.value, str)
        )
    elif isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp | ast.BinOp):
        for child in ast.iter_child_nodes(node):
            yield from _names_in(child, dicts)


def _emitter(function: ast.expr) -> bool:
    return isinstance(function, ast.Name) and function.id in EMITTERS


def emitted_metric_names() -> set[str]:
    """Every metric name a count(...) or gauges(...) call spells out in its first argument: a constant,
    both sides of ``"A" if ok else "B"``, the keys of the dict given to gauges (also through a variable,
    and dicts merged with ``|``). Names built with f-strings are not found, so they cannot be shown."""
    names: set[str] = set()
    for folder in ("layers/shared/controlplane", "functions"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            dicts = {
                target.id: node.value
                for node in ast.walk(tree)
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for call in ast.walk(tree):
                if isinstance(call, ast.Call) and _emitter(call.func) and call.args:
                    names.update(_names_in(call.args[0], dicts))
    return names


@pytest.fixture(scope="module")
def body_text(resources: dict[str, Any]) -> str:
    text = resources[dashboard.RESOURCE]["Properties"]["DashboardBody"]["Fn::Sub"]
    assert isinstance(text, str)
    return text


@pytest.fixture(scope="module")
def metrics(body_text: str) -> list[list[Any]]:
    document = json.loads(SUBSTITUTION.sub(lambda match: f"<{match.group(1)}>", body_text))
    return [
        metric
        for widget in document["widgets"]
        if widget["type"] == "metric"
        for metric in widget["properties"]["metrics"]
        if isinstance(metric[0], str)  # not an expression
    ]


def test_the_committed_dashboard_body_is_current() -> None:
    assert (ROOT / "template.yaml").read_text() == dashboard.generate(), (
        "template.yaml's dashboard body is stale: run `make dashboard`"
    )


def test_every_substitution_names_a_resource_or_a_pseudo_parameter(
    body_text: str, resources: dict[str, Any]
) -> None:
    for name in SUBSTITUTION.findall(body_text):
        logical_id = name.split(".")[0]
        assert logical_id in resources or name in {"AWS::Region", "AWS::StackName"}, name


def test_every_function_dead_letter_queue_and_tier_queue_is_on_it(
    body_text: str, resources: dict[str, Any]
) -> None:
    functions = [name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"]
    queues = [name for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"]
    dead_letter_queues = [name for name in queues if name.endswith("DeadLetterQueue")]
    tier_queues = [f"{tier.value.title()}Queue" for tier in Tier]
    assert len(functions) >= 10
    assert len(dead_letter_queues) == 10
    assert set(tier_queues) <= set(queues)
    for name in functions:
        assert f'"FunctionName","${{{name}}}"' in body_text, name
    for name in dead_letter_queues + tier_queues:
        assert f'"QueueName","${{{name}.QueueName}}"' in body_text, name
    for result in ("Succeeded", "Failed", "Aborted", "TimedOut"):
        assert f'"Executions{result}","StateMachineArn","${{TrainingJobStateMachine}}"' in body_text


def test_every_metric_is_one_aws_publishes_or_the_code_emits(metrics: list[list[Any]]) -> None:
    emitted = emitted_metric_names()
    assert {"JobsAdmitted", "TierRunning", "AccountCap", "JobsFailed"} <= emitted  # the scan finds them
    custom = [metric for metric in metrics if metric[0] == "MLaaS/ControlPlane"]
    assert custom
    for metric in metrics:
        namespace, name = metric[0], metric[1]
        if namespace in dashboard.AWS_METRICS:
            assert name in dashboard.AWS_METRICS[namespace], metric
        else:
            assert namespace == "MLaaS/ControlPlane", metric
            assert name in emitted, f"{name} is on the dashboard but nothing emits it"


def test_custom_dimensions_are_the_bounded_ones(metrics: list[list[Any]]) -> None:
    seen: dict[str, set[str]] = {}
    for metric in metrics:
        if metric[0] != "MLaaS/ControlPlane":
            continue
        pairs = [part for part in metric[2:] if isinstance(part, str)]
        dimensions = dict(zip(pairs[::2], pairs[1::2], strict=True))
        assert dimensions.pop("service") == "tenant-build-control-plane"
        for key, value in dimensions.items():
            assert value in BOUNDED_DIMENSIONS[key], (key, value)
            seen.setdefault(key, set()).add(value)
    assert seen == BOUNDED_DIMENSIONS  # every tier, both kinds of admission, every failure reason


def test_the_emulator_skips_the_dashboard() -> None:
    from localcloud.deploy import SKIPPED_RESOURCE_TYPES  # noqa: PLC0415 - only this test needs it

    assert "AWS::CloudWatch::Dashboard" in SKIPPED_RESOURCE_TYPES
