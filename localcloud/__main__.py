"""`python -m localcloud serve`: deploy a template into a local emulator and keep it running."""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import signal
import threading
from collections.abc import Callable
from pathlib import Path

from localcloud.cloud import LocalCloud
from localcloud.console import ConsoleServer
from localcloud.deploy import Stack

# A project's hook after the deploy: (cloud, stack, console URL or None) -> lines to print.
OnDeployed = Callable[[LocalCloud, Stack, str | None], list[str]]

_UPLOAD_HINT = re.compile(r"s3://<this>/(\S+)")


def _parameter(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator:
        raise argparse.ArgumentTypeError(f"expected Name=Value, got {text!r}")
    return name, value


def _print_summary(cloud: LocalCloud, stack: Stack) -> None:
    endpoint = cloud.endpoint_url
    print(f"\nlocalcloud: stack {stack.name} is running on {endpoint} (Ctrl-C stops it)\n")
    print("Buckets:")
    for logical_id, bucket in stack.of_type("AWS::S3::Bucket").items():
        print(f"  {logical_id}: {bucket}")
    print("\nOutputs:")
    for name, value in stack.outputs.items():
        print(f"  {name}: {value}")
    if stack.apis:
        print("\nAPIs (REST, on loopback; see README 'The status API' for keys):")
        for logical_id in stack.apis:
            print(f"  {logical_id}: {cloud.api_url(stack, logical_id)}")
    print("\nFunction logs:")
    for logical_id, spec in stack.functions.items():
        print(f"  {logical_id}: {spec.log_path}")
    print("\nTry it (any credentials work):")
    print(f"  export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION={cloud.region}")
    for name, description in stack.output_descriptions.items():
        hint = _UPLOAD_HINT.search(description)
        if hint:
            print(
                f"  aws --endpoint-url {endpoint} s3 cp ./data.csv s3://{stack.outputs[name]}/{hint.group(1)}"
            )
    for logical_id, bucket in list(stack.of_type("AWS::S3::Bucket").items())[:1]:
        print(f"  aws --endpoint-url {endpoint} s3 ls s3://{bucket}/ --recursive   # {logical_id}")
    print(flush=True)


def _hook(text: str) -> OnDeployed:
    module, _, name = text.partition(":")
    if not name:
        raise argparse.ArgumentTypeError(f"expected module:function, got {text!r}")
    hook: OnDeployed = getattr(importlib.import_module(module), name)
    return hook


def console_mounts(template: Path, console_dir: Path) -> dict[str, Path]:
    """What the console server serves: the page at /console/, the template's state machine definitions
    (the page draws them) at /statemachines/."""
    return {"/console/": console_dir, "/statemachines/": template.resolve().parent / "statemachines"}


def _start_console(arguments: argparse.Namespace, cloud: LocalCloud, stack: Stack) -> ConsoleServer | None:
    if arguments.console_dir is None or not stack.apis:
        return None
    api_url = cloud.api_url(stack, next(iter(stack.apis)))
    return ConsoleServer(
        console_mounts(arguments.template, arguments.console_dir), api_url, port=arguments.console_port
    )


def _serve(arguments: argparse.Namespace) -> None:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with LocalCloud(
        port=arguments.port,
        api_port=arguments.api_port,
        state_dir=arguments.state_dir,
        schedule_interval_seconds=arguments.schedule_interval_seconds,
        pipeline_runner=arguments.pipeline_runner,
        pipeline_workers=arguments.pipeline_workers,
        pipeline_delay_seconds=arguments.pipeline_delay_seconds,
        alarm_period_seconds=arguments.alarm_period_seconds,
    ) as cloud:
        stack = cloud.deploy(arguments.template, arguments.stack_name, dict(arguments.parameter_overrides))
        console = _start_console(arguments, cloud, stack)
        _print_summary(cloud, stack)
        if console is not None:
            print(f"Console (status API at {console.api_url}, an operator key in the page or its #key=...):")
            print(f"  {console.url}\n")
        if arguments.on_deployed is not None:
            print(
                "\n".join(arguments.on_deployed(cloud, stack, console.url if console else None)), flush=True
            )
        print(
            "localcloud keeps everything in memory: stopping it (Ctrl-C) loses every bucket, table, key "
            "and job.",
            flush=True,
        )
        try:
            stopped.wait()
        except KeyboardInterrupt:
            print("\nlocalcloud: stopping")
        finally:
            if console is not None:
                console.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="deploy a template and serve it until Ctrl-C")
    serve.add_argument("--port", type=int, default=4566, help="the AWS endpoint (moto) on 127.0.0.1")
    serve.add_argument(
        "--api-port", type=int, default=4567, help="the first REST API's port on 127.0.0.1 (0: any free port)"
    )
    serve.add_argument(
        "--console-dir",
        type=Path,
        default=None,
        help="serve this folder as the operator console at /console/ on --console-port",
    )
    serve.add_argument("--console-port", type=int, default=4568, help="the console's port on 127.0.0.1")
    serve.add_argument(
        "--on-deployed",
        type=_hook,
        default=None,
        metavar="MODULE:FUNCTION",
        help="called with (cloud, stack, console URL) after the deploy; the lines it returns are printed",
    )
    serve.add_argument("--template", type=Path, default=Path("template.yaml"))
    serve.add_argument("--stack-name", default="mlaas-local")
    serve.add_argument("--parameter-overrides", nargs="*", type=_parameter, default=[], metavar="Name=Value")
    serve.add_argument("--state-dir", type=Path, default=Path(".localcloud"))
    serve.add_argument(
        "--schedule-interval-seconds",
        type=float,
        default=None,
        help="fire every rate() schedule this often instead of its rate",
    )
    serve.add_argument(
        "--pipeline-runner",
        choices=("executing", "simulated"),
        default="executing",
        help="executing: run the pipeline's step scripts for real; simulated: run no step",
    )
    serve.add_argument(
        "--pipeline-workers",
        type=int,
        default=None,
        help="cap on pipeline executions run at once (default: none, every admitted execution runs)",
    )
    serve.add_argument(
        "--pipeline-delay-seconds",
        type=float,
        default=1.5,
        help="how long a SIMULATED pipeline execution runs",
    )
    serve.add_argument(
        "--alarm-period-seconds",
        type=float,
        default=None,
        help="evaluate every alarm with this Period instead of its own (alarms print when they fire)",
    )
    serve.add_argument("--log-level", default="INFO")
    console = commands.add_parser(
        "console", help="serve only the operator console, in front of a status API (e.g. a deployed stack's)"
    )
    console.add_argument("--api-url", required=True, help="the API's base URL: a stack's StatusApiUrl output")
    console.add_argument("--port", type=int, default=4568, help="the console's port on 127.0.0.1")
    console.add_argument("--console-dir", type=Path, default=Path("console"))
    console.add_argument(
        "--template", type=Path, default=Path("template.yaml"), help="whose state machines to draw"
    )
    console.add_argument("--log-level", default="INFO")
    arguments = parser.parse_args()
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if arguments.command == "console":
        _console(arguments)
    else:
        _serve(arguments)


def _console(arguments: argparse.Namespace) -> None:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    server = ConsoleServer(
        console_mounts(arguments.template, arguments.console_dir), arguments.api_url, port=arguments.port
    )
    print(
        f"localcloud console: {server.url} (status API {server.api_url}; enter an operator key of that stack)"
    )
    print("Ctrl-C stops it.", flush=True)
    try:
        stopped.wait()
    except KeyboardInterrupt:
        print()
    finally:
        server.close()


if __name__ == "__main__":
    main()
