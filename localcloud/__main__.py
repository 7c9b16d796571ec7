"""`python -m localcloud serve`: deploy a template into a local emulator and keep it running."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import threading
from pathlib import Path

from localcloud.cloud import LocalCloud
from localcloud.deploy import Stack

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


def _serve(arguments: argparse.Namespace) -> None:
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with LocalCloud(
        port=arguments.port,
        state_dir=arguments.state_dir,
        schedule_interval_seconds=arguments.schedule_interval_seconds,
        pipeline_runner=arguments.pipeline_runner,
        pipeline_workers=arguments.pipeline_workers,
        pipeline_delay_seconds=arguments.pipeline_delay_seconds,
        alarm_period_seconds=arguments.alarm_period_seconds,
    ) as cloud:
        stack = cloud.deploy(arguments.template, arguments.stack_name, dict(arguments.parameter_overrides))
        _print_summary(cloud, stack)
        try:
            stopped.wait()
        except KeyboardInterrupt:
            print("\nlocalcloud: stopping")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m localcloud", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="deploy a template and serve it until Ctrl-C")
    serve.add_argument("--port", type=int, default=4566)
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
    arguments = parser.parse_args()
    logging.basicConfig(level=arguments.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    _serve(arguments)


if __name__ == "__main__":
    main()
