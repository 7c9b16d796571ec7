"""LocalCloud: moto's server on loopback, the patches, and everything moto does not run by itself.

One LocalCloud at a time per process: moto's backends, the patched moto classes and MOTO_PORT
(which moto's Step Functions use to call back into the server) are all process-wide. Starting a
second one while the first runs raises; a new one may start after the previous one stopped.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Literal, TypeVar

import requests
from moto.server import ThreadedMotoServer

from localcloud import iam_actions, patches
from localcloud.alarms import AlarmEvaluator
from localcloud.api_gateway import RestApiServer
from localcloud.call_recording import CallRecorder
from localcloud.clients import emulator_client
from localcloud.custom_resources import ResponseEndpoint
from localcloud.deploy import Deployer, Stack
from localcloud.event_delivery import EventDelivery
from localcloud.faults import FaultInjector, FaultPlan
from localcloud.lambda_runtime import LambdaRuntime
from localcloud.permissions import PermissionReport, check_permissions
from localcloud.pipeline_executor import ExecutingPipelineRunner
from localcloud.pipeline_runner import SimulatedPipelineRunner
from localcloud.schedules import ScheduleRunner
from localcloud.sqs_event_sources import SqsEventSources
from localcloud.template import DEFAULT_ACCOUNT_ID, DEFAULT_REGION, Template

LOGGER = logging.getLogger("localcloud")
ACCESS_LOG_STREAM = "localcloud"  # the stream every API access log line goes to
T = TypeVar("T")


def wait_for(
    condition: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.1, what: str = ""
) -> T:
    """Poll until condition() returns something truthy and return it; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(interval)


def _free_port(port: int) -> int:
    """The port to serve on: the given one if it is free, any free one for 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers bind: connections of a previous run in TIME_WAIT do not make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as error:
            raise RuntimeError(f"port {port} on 127.0.0.1 is not free: {error}") from error
        return int(probe.getsockname()[1])


def _point_outputs_at(stack: Stack, api_id: str, region: str, local_base: str) -> None:
    """Outputs that name the API's AWS endpoint (``https://<id>.execute-api.<region>.amazonaws.com/...``, as a
    template's ``!Sub`` builds it) name its loopback server instead, so `StatusApiUrl` is a URL that works."""
    aws_base = f"https://{api_id}.execute-api.{region}.amazonaws.com"
    for name, value in stack.outputs.items():
        if isinstance(value, str) and value.startswith(aws_base):
            stack.outputs[name] = local_base + value[len(aws_base) :]


class LocalCloud:
    """Deploys SAM templates into moto and runs them: Lambda handlers, state machines, events."""

    _running: ClassVar[LocalCloud | None] = None
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        *,
        port: int = 0,
        state_dir: Path | str = ".localcloud",
        region: str = DEFAULT_REGION,
        workers_per_function: int = 4,
        schedule_interval_seconds: float | None = None,
        pipeline_runner: Literal["simulated", "executing"] = "simulated",
        pipeline_workers: int | None = None,
        pipeline_delay_seconds: float = 1.5,
        async_retry_delay_seconds: float = 1.0,
        lambda_timeout_scale: float = 1.0,
        event_retry_base_delay_seconds: float = 0.2,
        event_retry_max_delay_seconds: float = 2.0,
        alarm_interval_seconds: float = 5.0,
        alarm_period_seconds: float | None = None,
        faults: FaultPlan | None = None,
        record_calls: bool = True,
        api_port: int = 0,
    ) -> None:
        """
        port: 0 picks a free port. state_dir holds logs/<FunctionLogicalId>.log.
        api_port: the loopback port of the first REST API a deploy serves (`make local`: 4567, so its URL
        never changes); 0, and every further API, picks a free port (tests: parallel workers never collide).
        schedule_interval_seconds: fire every rate() schedule this often instead of its rate.
        pipeline_runner: "executing" runs each pipeline execution's step scripts for real
        (localcloud.pipeline_executor), every admitted execution at once, as SageMaker would (None, the
        default; `pipeline_workers` caps them, and an execution past the cap shows no step started);
        "simulated" runs no step (tests steer outcomes with pipeline_runner.set_outcome).
        pipeline_delay_seconds: how long a SIMULATED pipeline execution runs.
        async_retry_delay_seconds: Lambda's retry delay for failed asynchronous invocations
        (1 and 2 minutes on AWS; the n-th retry waits n times this).
        lambda_timeout_scale: multiplies every function's Timeout and the 10 s Init limit (1.0: Lambda's);
        more for tests that are not about timeouts on a busy machine (``lambda_runtime.timeout_scale``).
        event_retry_*: EventBridge's backoff between delivery retries (AWS: up to minutes).
        alarm_interval_seconds: how often the deployed CloudWatch alarms are evaluated (localcloud.alarms);
        alarm_period_seconds: evaluate every alarm with this Period instead of its own.
        faults: SIMULATED faults to inject (localcloud.faults) once `cloud.faults.arm()` is called.
        record_calls: record every AWS call of the functions and the state machines' service tasks under
        state_dir/calls, for permission_report() (localcloud.permissions).
        """
        self.region = region
        self.account_id = DEFAULT_ACCOUNT_ID
        self.state_dir = Path(state_dir).resolve()
        self._requested_port = port
        self._workers_per_function = workers_per_function
        self._schedule_interval_seconds = schedule_interval_seconds
        self._pipeline_runner_kind = pipeline_runner
        self._pipeline_workers = pipeline_workers
        self._pipeline_delay_seconds = pipeline_delay_seconds
        self._async_retry_delay_seconds = async_retry_delay_seconds
        self._lambda_timeout_scale = lambda_timeout_scale
        self._event_retry_base_delay_seconds = event_retry_base_delay_seconds
        self._event_retry_max_delay_seconds = event_retry_max_delay_seconds
        self._alarm_interval_seconds = alarm_interval_seconds
        self._alarm_period_seconds = alarm_period_seconds
        self._fault_plan = faults
        self._record_calls = record_calls
        self._api_port = api_port
        self.calls_dir = self.state_dir / "calls"
        self.call_recorder: CallRecorder | None = None
        self.faults: FaultInjector | None = None
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self._access_log_lock = threading.Lock()
        self._access_log_streams: set[str] = set()
        self._stops: list[Callable[[], None]] = []
        self._response_endpoint: ResponseEndpoint | None = None
        self._port: int | None = None
        self.stacks: list[Stack] = []
        self.api_servers: dict[tuple[str, str], RestApiServer] = {}

    # ------------------------------------------------------------------ lifecycle

    def _new_pipeline_runner(self) -> SimulatedPipelineRunner | ExecutingPipelineRunner:
        if self._pipeline_runner_kind == "executing":
            return ExecutingPipelineRunner(
                patches.MotoPipelineStore(),
                s3_client=self.client("s3"),
                sagemaker_client=self.client("sagemaker"),
                max_concurrent=self._pipeline_workers,
            )
        if self._pipeline_runner_kind == "simulated":
            return SimulatedPipelineRunner(
                patches.MotoPipelineStore(), delay_seconds=self._pipeline_delay_seconds
            )
        raise ValueError(
            f"pipeline_runner must be 'executing' or 'simulated', not {self._pipeline_runner_kind!r}"
        )

    def start(self) -> LocalCloud:
        with LocalCloud._running_lock:
            if LocalCloud._running is not None:
                raise RuntimeError(
                    "a LocalCloud is already running in this process (moto state is process-wide)"
                )
            LocalCloud._running = self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        self._stops.append(self._release_process_slot)
        port = _free_port(self._requested_port)
        previous_moto_port = os.environ.get("MOTO_PORT")
        # Before the server starts: moto's Step Functions call back to localhost:$MOTO_PORT.
        os.environ["MOTO_PORT"] = str(port)
        self._stops.append(lambda: self._restore_moto_port(previous_moto_port))
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        # moto's ASL interpreter logs every Fail state and caught error with an internal repr; the
        # outcome is in the execution history (and, for our state machine, on the job).
        logging.getLogger("moto.stepfunctions.parser.asl.component.eval_component").setLevel(logging.CRITICAL)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._stops.append(server.stop)
        # Stops run in reverse order: the patches go only after every component using them stopped.
        self._stops.append(patches.uninstall)
        self._port = port
        requests.post(f"{self.endpoint_url}/moto-api/reset", timeout=10).raise_for_status()
        # Must precede any state machine: setting it swaps the backend, dropping machines made before.
        requests.post(
            f"{self.endpoint_url}/moto-api/config",
            json={"stepfunctions": {"execute_state_machine": True}},
            timeout=10,
        ).raise_for_status()

        if self._record_calls:
            # A state directory is reused across runs: only this run's calls are checked.
            shutil.rmtree(self.calls_dir, ignore_errors=True)
            self.calls_dir.mkdir(parents=True)
            self.call_recorder = CallRecorder(
                self.calls_dir / "emulator.jsonl",
                iam_actions.requests_for,
                lambda region: iam_actions.Where(region, self.account_id),
            )
            self._stops.append(self.call_recorder.close)
        if self._fault_plan is not None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            self.faults = FaultInjector(self._fault_plan, self.state_dir)
        self.lambda_runtime = LambdaRuntime(
            endpoint_url=self.endpoint_url,
            region=self.region,
            workers_per_function=self._workers_per_function,
            async_retry_delay_seconds=self._async_retry_delay_seconds,
            timeout_scale=self._lambda_timeout_scale,
            extra_environment=self.faults.worker_environment() if self.faults else None,
            calls_dir=self.calls_dir if self._record_calls else None,
            call_recorder=self.call_recorder,
        )
        self._stops.append(self.lambda_runtime.close)
        self.event_delivery = EventDelivery(
            endpoint_url=self.endpoint_url,
            region=self.region,
            retry_base_delay_seconds=self._event_retry_base_delay_seconds,
            retry_max_delay_seconds=self._event_retry_max_delay_seconds,
        )
        self._stops.append(self.event_delivery.close)
        self.pipeline_runner = self._new_pipeline_runner()
        self._stops.append(self.pipeline_runner.close)
        self.sqs_event_sources = SqsEventSources(endpoint_url=self.endpoint_url, region=self.region)
        self._stops.append(self.sqs_event_sources.close)
        patches.install(
            patches.Hooks(
                lambda_runtime=self.lambda_runtime,
                event_delivery=self.event_delivery,
                sqs_event_sources=self.sqs_event_sources,
                pipeline_runner=self.pipeline_runner,
                call_recorder=self.call_recorder,
            )
        )
        if self.faults is not None:
            self.faults.install(self)
            self._stops.append(self.faults.uninstall)
        schedules = ScheduleRunner(
            events_client=self.client("events"),
            delivery=self.event_delivery,
            account_id=self.account_id,
            region=self.region,
            interval_override_seconds=self._schedule_interval_seconds,
        )
        schedules.start()
        self._stops.append(schedules.close)
        self.alarms = AlarmEvaluator(
            client=self.client,
            log_dir=self.state_dir / "logs",
            account_id=self.account_id,
            region=self.region,
            interval_seconds=self._alarm_interval_seconds,
            period_override_seconds=self._alarm_period_seconds,
        )
        self.alarms.start()
        self._stops.append(self.alarms.close)
        LOGGER.info("localcloud serving on %s", self.endpoint_url)

    def stop(self) -> None:
        """Stop producers first (schedules, pollers, pipelines), then deliveries and workers, then moto."""
        while self._stops:
            stop = self._stops.pop()
            try:
                stop()
            except Exception:
                LOGGER.exception("error while stopping localcloud")

    def _release_process_slot(self) -> None:
        with LocalCloud._running_lock:
            if LocalCloud._running is self:
                LocalCloud._running = None

    @staticmethod
    def _restore_moto_port(previous: str | None) -> None:
        if previous is None:
            os.environ.pop("MOTO_PORT", None)
        else:
            os.environ["MOTO_PORT"] = previous

    def __enter__(self) -> LocalCloud:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ use

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("LocalCloud is not started")
        return self._port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        """A boto3 client for the emulator (dummy credentials, this endpoint); cached per service."""
        with self._clients_lock:
            if service not in self._clients:
                # Long enough for Lambda's 15-minute maximum: a read timeout would make the SDK retry.
                self._clients[service] = emulator_client(
                    service, endpoint_url=self.endpoint_url, region=self.region, read_timeout=960
                )
            return self._clients[service]

    def deploy(
        self,
        template_path: Path | str,
        stack_name: str,
        parameter_overrides: Mapping[str, str] | None = None,
    ) -> Stack:
        """Create every resource of the template; DeployError names what cannot be emulated."""
        template = Template(
            template_path,
            stack_name=stack_name,
            parameter_overrides=parameter_overrides,
            region=self.region,
            account_id=self.account_id,
        )
        deployer = Deployer(
            client=self.client,
            lambda_runtime=self.lambda_runtime,
            log_dir=self.state_dir / "logs",
            response_endpoint=self._custom_resource_endpoint,
        )
        stack = deployer.deploy(template)
        self.stacks.append(stack)
        for logical_id, spec in stack.apis.items():
            port = 0 if self.api_servers else self._api_port
            server = RestApiServer(
                spec,
                self.lambda_runtime,
                port=_free_port(port) if port else 0,
                write_access_log=self._write_access_log,
            )
            self.api_servers[(stack.name, logical_id)] = server
            self._stops.append(server.close)
            _point_outputs_at(stack, spec.api_id, spec.region, server.url.rsplit("/", 1)[0])
        return stack

    def _write_access_log(self, log_group: str, line: str) -> None:
        """One API access log line into its CloudWatch Logs group (stream "localcloud"), as API Gateway
        writes it; a failure is logged, never the request's."""
        try:
            with self._access_log_lock:
                logs = self.client("logs")
                if log_group not in self._access_log_streams:
                    logs.create_log_stream(logGroupName=log_group, logStreamName=ACCESS_LOG_STREAM)
                    self._access_log_streams.add(log_group)
                logs.put_log_events(
                    logGroupName=log_group,
                    logStreamName=ACCESS_LOG_STREAM,
                    logEvents=[{"timestamp": int(time.time() * 1000), "message": line}],
                )
        except Exception:
            LOGGER.exception("Could not write an API access log line to %s", log_group)

    def permission_report(self) -> PermissionReport:
        """Every AWS call recorded so far (functions, state machines' service tasks), checked against the
        IAM statements of the role that made it (localcloud.permissions; what is not evaluated is listed)."""
        if not self._record_calls:
            raise RuntimeError("this LocalCloud does not record calls (record_calls=False)")
        stepfunctions = self.client("stepfunctions")
        state_machine_roles: dict[str, str] = {}
        notes: list[str] = []
        for stack in self.stacks:
            for logical_id, arn in stack.of_type("AWS::Serverless::StateMachine").items():
                role = stepfunctions.describe_state_machine(stateMachineArn=arn)["roleArn"]
                state_machine_roles[role] = logical_id
            notes += [
                f"{logical_id}: managed policies {names} are not attached locally"
                for logical_id, names in stack.unattached_policies.items()
            ]
        return check_permissions(self.calls_dir, self.client, state_machine_roles, notes)

    def api_url(self, stack: Stack, logical_id: str) -> str:
        """The loopback base URL of a deployed AWS::Serverless::Api: http://127.0.0.1:<port>/<StageName>."""
        return self.api_servers[(stack.name, logical_id)].url

    def _custom_resource_endpoint(self) -> ResponseEndpoint:
        if self._response_endpoint is None:
            self._response_endpoint = ResponseEndpoint()
            self._stops.append(self._response_endpoint.close)
        return self._response_endpoint
