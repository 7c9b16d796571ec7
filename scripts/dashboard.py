"""Write the operators' CloudWatch dashboard (the DashboardBody of OperationsDashboard in template.yaml)
from what the template declares: its tiers (Mappings.TierDefaults) and their queues, its dead-letter
queues, its functions and its state machine.

    make dashboard        # or: python -m scripts.dashboard [--check]

The body sits between two marker comments in template.yaml; everything else in the template is written
by hand. A unit test fails when the committed body differs from what this script writes, and when the
body shows a custom metric the code does not emit.

Rows: a title, then one row per tier (queue depth and oldest wait; running against guaranteed and
guaranteed + borrowable slots; admissions, own and borrowed; failures by reason), the account (running
against the cap; executions by result), every dead-letter queue's depth, and Lambda errors, throttles and
durations per function.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from controlplane.jobs.lifecycle import FailureReason
from localcloud.template import load_template_body
from scripts.generated import write_or_check

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE: Final = ROOT / "template.yaml"
RESOURCE: Final = "OperationsDashboard"
BEGIN: Final = (
    "      # BEGIN dashboard body: written by `make dashboard` (scripts/dashboard.py), do not edit\n"
)
END: Final = "      # END dashboard body\n"
INDENT: Final = " " * 8  # the block scalar's lines, under DashboardBody

WIDTH: Final = 24  # CloudWatch's dashboard grid
HEIGHT: Final = 6
FAST: Final = 60  # levels (queue depth, slots): per minute, as SQS publishes and the gate runs
SLOW: Final = 300  # counts (admissions, failures, errors): per five minutes
# The AWS metrics the body shows, by namespace (every other namespace is the code's own).
AWS_METRICS: Final = {
    "AWS/SQS": frozenset({"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"}),
    "AWS/Lambda": frozenset({"Errors", "Throttles", "Duration"}),
    "AWS/States": frozenset(
        {"ExecutionsSucceeded", "ExecutionsFailed", "ExecutionsAborted", "ExecutionsTimedOut"}
    ),
}
EXECUTION_RESULTS: Final = ("Succeeded", "Failed", "Aborted", "TimedOut")


@dataclass(frozen=True, slots=True)
class Stack:
    """What the dashboard is drawn from, as the template declares it."""

    namespace: str
    service: str
    tiers: tuple[str, ...]
    tier_queues: dict[str, str]  # tier -> the queue's logical id
    dead_letter_queues: tuple[str, ...]
    functions: tuple[str, ...]
    state_machine: str


def read_stack(template: dict[str, Any]) -> Stack:
    resources: dict[str, Any] = template["Resources"]

    def of_type(kind: str) -> list[str]:
        return sorted(name for name, resource in resources.items() if resource["Type"] == kind)

    environment = template["Globals"]["Function"]["Environment"]["Variables"]
    tiers = tuple(template["Mappings"]["TierDefaults"])
    queues = of_type("AWS::SQS::Queue")
    tier_queues = {tier: f"{tier.title()}Queue" for tier in tiers}
    missing = [name for name in tier_queues.values() if name not in queues]
    if missing:
        raise ValueError(f"no queue for a tier of Mappings.TierDefaults: {missing}")
    (state_machine,) = of_type("AWS::Serverless::StateMachine")
    return Stack(
        namespace=str(environment["POWERTOOLS_METRICS_NAMESPACE"]),
        service=str(environment["POWERTOOLS_SERVICE_NAME"]),
        tiers=tiers,
        tier_queues=tier_queues,
        dead_letter_queues=tuple(name for name in queues if name.endswith("DeadLetterQueue")),
        functions=tuple(of_type("AWS::Serverless::Function")),
        state_machine=state_machine,
    )


def _widget(
    title: str, metrics: list[list[Any]], *, stat: str, period: int, **options: Any
) -> dict[str, Any]:
    properties = {
        "title": title,
        "view": "timeSeries",
        "region": "${AWS::Region}",
        "stat": stat,
        "period": period,
        **options,
        "metrics": metrics,
    }
    return {"type": "metric", "width": 0, "height": HEIGHT, "properties": properties}


def _text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "width": WIDTH, "height": 1, "properties": {"markdown": markdown}}


def _own(
    stack: Stack, name: str, dimensions: dict[str, str], options: dict[str, Any] | None = None
) -> list[Any]:
    """A metric the code emits (Powertools adds the ``service`` dimension to every one)."""
    pairs = [
        part for key, value in ({"service": stack.service} | dimensions).items() for part in (key, value)
    ]
    return [stack.namespace, name, *pairs, *([options] if options else [])]


def _tier_row(stack: Stack, tier: str) -> Iterator[dict[str, Any]]:
    queue = f"${{{stack.tier_queues[tier]}.QueueName}}"
    yield _widget(
        f"{tier}: queue depth and oldest wait",
        [
            [
                "AWS/SQS",
                "ApproximateNumberOfMessagesVisible",
                "QueueName",
                queue,
                {"label": "messages waiting"},
            ],
            [
                "AWS/SQS",
                "ApproximateAgeOfOldestMessage",
                "QueueName",
                queue,
                {"label": "oldest wait (s)", "yAxis": "right"},
            ],
        ],
        stat="Maximum",
        period=FAST,
    )
    at = {"tier": tier}
    yield _widget(
        f"{tier}: running against guaranteed and borrowable slots",
        [
            _own(stack, "TierRunning", at, {"label": "running", "id": "running"}),
            _own(stack, "TierGuaranteed", at, {"label": "guaranteed", "id": "guaranteed"}),
            _own(stack, "TierBorrowable", at, {"id": "borrowable", "visible": False}),
            [{"expression": "guaranteed + borrowable", "label": "guaranteed + borrowable", "id": "limit"}],
        ],
        stat="Maximum",
        period=FAST,
    )
    yield _widget(
        f"{tier}: admissions",
        [
            _own(stack, "JobsAdmitted", at | {"borrowed": "false"}, {"label": "own slot"}),
            _own(stack, "JobsAdmitted", at | {"borrowed": "true"}, {"label": "borrowed slot"}),
        ],
        stat="Sum",
        period=SLOW,
        stacked=True,
    )
    yield _widget(
        f"{tier}: failures by reason",
        [
            *(
                _own(stack, "JobsFailed", at | {"reason": reason.value}, {"label": reason.value})
                for reason in FailureReason
            ),
            _own(stack, "DatasetsRejected", at, {"label": "dataset rejected (REJECTED)"}),
        ],
        stat="Sum",
        period=SLOW,
        stacked=True,
    )


def widgets(stack: Stack) -> list[dict[str, Any]]:
    state_machine = f"${{{stack.state_machine}}}"
    rows: list[list[dict[str, Any]]] = [
        [
            _text(
                f"# ${{AWS::StackName}}: the build control plane\n"
                f"Per tier, then the account, the dead-letter queues and the functions. Custom metrics: "
                f"namespace `{stack.namespace}`, dimension `service` = `{stack.service}` (README: Dashboard)."
            )
        ]
    ]
    rows += [list(_tier_row(stack, tier)) for tier in stack.tiers]
    rows.append(
        [
            _widget(
                "account: running against the cap",
                [
                    _own(stack, "AccountRunning", {}, {"label": "running"}),
                    _own(stack, "AccountCap", {}, {"label": "cap"}),
                ],
                stat="Maximum",
                period=FAST,
            ),
            _widget(
                "state machine: executions by result",
                [
                    ["AWS/States", f"Executions{result}", "StateMachineArn", state_machine, {"label": result}]
                    for result in EXECUTION_RESULTS
                ],
                stat="Sum",
                period=SLOW,
                stacked=True,
            ),
        ]
    )
    rows.append(
        [
            _widget(
                "dead-letter queues: messages visible (any is an alarm)",
                [
                    [
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        "QueueName",
                        f"${{{queue}.QueueName}}",
                        {"label": queue.removesuffix("DeadLetterQueue") or queue},
                    ]
                    for queue in stack.dead_letter_queues
                ],
                stat="Maximum",
                period=FAST,
            )
        ]
    )

    def per_function(metric: str) -> list[list[Any]]:
        return [
            ["AWS/Lambda", metric, "FunctionName", f"${{{name}}}", {"label": name.removesuffix("Function")}]
            for name in stack.functions
        ]

    rows.append(
        [
            _widget("functions: errors", per_function("Errors"), stat="Sum", period=SLOW),
            _widget("functions: throttles", per_function("Throttles"), stat="Sum", period=SLOW),
            _widget("functions: duration p99 (ms)", per_function("Duration"), stat="p99", period=SLOW),
        ]
    )
    placed: list[dict[str, Any]] = []
    y = 0
    for row in rows:
        x = 0
        for widget in row:
            width = widget["width"] or WIDTH // len(row)
            placed.append({"type": widget["type"], "x": x, "y": y, "width": width} | _rest(widget))
            x += width
        y += max(widget["height"] for widget in row)
    return placed


def _rest(widget: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in widget.items() if key not in {"type", "width"}}


def body(stack: Stack) -> str:
    """The JSON document, one widget per line: a change to one widget is a one-line diff."""
    lines = ",\n".join(f"  {json.dumps(widget, separators=(',', ':'))}" for widget in widgets(stack))
    return '{"widgets": [\n' + lines + "\n]}\n"


def render(template_text: str, stack: Stack) -> str:
    start, end = template_text.index(BEGIN) + len(BEGIN), template_text.index(END)
    block = "      DashboardBody: !Sub |\n" + "".join(
        f"{INDENT}{line}\n" for line in body(stack).splitlines()
    )
    return template_text[:start] + block + template_text[end:]


def generate() -> str:
    return render(TEMPLATE.read_text(), read_stack(load_template_body(TEMPLATE)))


def main(argv: list[str] | None = None) -> int:
    return write_or_check(
        TEMPLATE,
        lambda committed: render(committed, read_stack(load_template_body(TEMPLATE))),
        what=f"the dashboard body in {TEMPLATE.relative_to(ROOT)}",
        target="dashboard",
        argv=argv,
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
