"""Run Lambda functions' real handlers in warm worker processes, one pool per function.

Each function gets its own processes (its own environment variables and sys.path, as Lambda
isolates them); each worker runs one invocation at a time, and a pool holds up to N workers so
concurrent invocations really run concurrently. Lambda semantics kept: the template's Timeout, counted
from the end of the Init phase (or from its 10-second limit) as on AWS, then the worker is killed
(`Sandbox.Timedout`); init failures (`Runtime.ImportModuleError`...),
unhandled exceptions as function errors with errorType/errorMessage/stackTrace, and asynchronous
invocations retried on a function error (twice, or EventInvokeConfig's MaximumRetryAttempts), then sent to
the function's SQS on-failure destination (Lambda's destination record) when it has one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcloud.call_recording import ACCESS_KEY_PREFIX, ACCOUNT_VARIABLE, CALLS_DIR_VARIABLE, CallRecorder

LOGGER = logging.getLogger("localcloud.lambda")
_WORKER_SCRIPT = Path(__file__).with_name("_lambda_worker.py")
# Lambda's default for asynchronous invocations: two retries after a function error.
_ASYNC_RETRIES = 2
# Slack for the pipe round trip on top of the function's own Timeout.
_TIMEOUT_GRACE_SECONDS = 0.5
# Lambda's limit for the Init phase (process start and the handler module's import) of an on-demand
# function: Init is not part of the function's Timeout unless it runs over this.
INIT_LIMIT_SECONDS = 10.0


@dataclass(frozen=True)
class FunctionSpec:
    """Everything needed to run one function the way Lambda would, read from the template."""

    logical_id: str
    function_name: str
    function_arn: str
    runtime: str
    handler: str
    code_dir: Path
    layer_dirs: tuple[Path, ...]
    environment: Mapping[str, str]
    timeout_seconds: int
    memory_mb: int
    log_path: Path


@dataclass(frozen=True)
class AsyncConfig:
    """A function's EventInvokeConfig, as far as it is emulated: retries and an SQS on-failure destination."""

    maximum_retry_attempts: int = _ASYNC_RETRIES
    on_failure_queue_arn: str | None = None


@dataclass(frozen=True)
class Invocation:
    """A finished invocation: the response payload (JSON text) and whether it is a function error."""

    payload: str
    function_error: bool


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _error_payload(error_type: str, message: str) -> str:
    return json.dumps({"errorMessage": message, "errorType": error_type})


class _WorkerExitedError(Exception):
    pass


class _Worker:
    """One execution environment: a process running localcloud/_lambda_worker.py."""

    def __init__(self, spec: FunctionSpec, environment: Mapping[str, str]) -> None:
        self.initialized = False
        request_read, request_write = os.pipe()
        response_read, response_write = os.pipe()
        spec.log_path.parent.mkdir(parents=True, exist_ok=True)
        with spec.log_path.open("ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and script
                [
                    sys.executable,
                    "-I",
                    str(_WORKER_SCRIPT),
                    str(request_read),
                    str(response_write),
                    *(str(layer) for layer in spec.layer_dirs),
                ],
                pass_fds=(request_read, response_write),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(environment),
                cwd=spec.code_dir,
            )
        os.close(request_read)
        os.close(response_write)
        self._requests = os.fdopen(request_write, "wb")
        self._response_fd = response_read
        self._buffer = b""

    def invoke(
        self, request: Mapping[str, Any], *, timeout_seconds: float, init_limit_seconds: float
    ) -> dict[str, Any] | None:
        """The worker's response, or None when the function's Timeout passed first.

        As on Lambda, a cold worker's Init phase (process start, handler import) is not part of the
        Timeout: the Timeout starts when Init ends, or when Init has run for ``init_limit_seconds`` (Lambda
        then goes on with Init inside the invocation, under the function's Timeout).
        """
        try:
            self._requests.write(json.dumps(request).encode() + b"\n")
            self._requests.flush()
        except OSError as error:  # the process ended while idle
            raise _WorkerExitedError from error
        started = time.monotonic()
        limit = timeout_seconds if self.initialized else init_limit_seconds + timeout_seconds
        deadline = started + limit + _TIMEOUT_GRACE_SECONDS
        while True:
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                readable, _, _ = select.select([self._response_fd], [], [], remaining)
                if readable:
                    chunk = os.read(self._response_fd, 1 << 16)
                    if not chunk:
                        raise _WorkerExitedError
                    self._buffer += chunk
            line, _, self._buffer = self._buffer.partition(b"\n")
            response: dict[str, Any] = json.loads(line)
            if not response.get("initialized"):
                return response
            # Init is over: the function's Timeout starts now (or started when Init ran over its limit).
            self.initialized = True
            init_seconds = min(time.monotonic() - started, init_limit_seconds)
            deadline = started + init_seconds + timeout_seconds + _TIMEOUT_GRACE_SECONDS

    def exit_code(self) -> int | None:
        return self.process.poll()

    def close(self, grace_seconds: float = 2.0) -> None:
        # Closing the request pipe is the worker's signal to finish; kill only if it does not.
        with contextlib.suppress(OSError):
            self._requests.close()
        try:
            self.process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._response_fd)


class _WorkerPool:
    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        max_workers: int,
        timeout_scale: Callable[[], float] = lambda: 1.0,
    ) -> None:
        self.spec = spec
        self._timeout_scale = timeout_scale
        self._environment = environment
        self.max_workers = max_workers
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._live = 0
        self._closed = False
        self._changed = threading.Condition()

    def invoke(self, event_json: str) -> Invocation:
        request_id = str(uuid.uuid4())
        if not self.spec.code_dir.is_dir():
            module = self.spec.handler.rpartition(".")[0]
            return Invocation(
                _error_payload(
                    "Runtime.ImportModuleError",
                    f"Unable to import module '{module}': CodeUri directory {self.spec.code_dir} "
                    f"of {self.spec.logical_id} does not exist",
                ),
                function_error=True,
            )
        worker = self._acquire()
        reusable = False
        scale = self._timeout_scale()
        timeout_seconds = self.spec.timeout_seconds * scale
        init_limit_seconds = INIT_LIMIT_SECONDS * scale
        try:
            request = {
                "requestId": request_id,
                "event": event_json,
                "invokedFunctionArn": self.spec.function_arn,
                "timeoutSeconds": timeout_seconds,
            }
            try:
                response = worker.invoke(
                    request, timeout_seconds=timeout_seconds, init_limit_seconds=init_limit_seconds
                )
            except _WorkerExitedError:
                return self._exited(request_id, worker)
            if response is None:
                worker.process.kill()
                detail = (
                    "" if worker.initialized else f" (its Init phase ran over {init_limit_seconds:.0f} s)"
                )
                return self._timed_out(
                    request_id, f"Task timed out after {timeout_seconds:.2f} seconds{detail}"
                )
            reusable = not response.get("initFailed", False)
            return Invocation(response["payload"], function_error=not response["ok"])
        finally:
            self._release(worker, reusable)

    def _exited(self, request_id: str, worker: _Worker) -> Invocation:
        worker.process.wait()
        message = (
            f"RequestId: {request_id} Error: Runtime exited with error: exit status {worker.exit_code()}"
        )
        self._log(message)
        return Invocation(_error_payload("Runtime.ExitError", message), function_error=True)

    def _timed_out(self, request_id: str, what: str) -> Invocation:
        message = f"RequestId: {request_id} Error: {what}"
        self._log(message)
        return Invocation(_error_payload("Sandbox.Timedout", message), function_error=True)

    def _log(self, line: str) -> None:
        with self.spec.log_path.open("a", encoding="utf-8") as log:
            log.write(line + "\n")

    def _acquire(self) -> _Worker:
        with self._changed:
            while True:
                if self._closed:
                    raise RuntimeError(f"{self.spec.logical_id}: the local Lambda runtime is stopped")
                if self._idle:
                    worker = self._idle.pop()
                    self._busy.add(worker)
                    return worker
                if self._live < self.max_workers:
                    self._live += 1
                    break
                self._changed.wait()
        try:
            worker = _Worker(self.spec, self._environment)
        except BaseException:
            with self._changed:
                self._live -= 1
                self._changed.notify()
            raise
        with self._changed:
            self._busy.add(worker)
        return worker

    def _release(self, worker: _Worker, reusable: bool) -> None:
        with self._changed:
            self._busy.discard(worker)
            keep = reusable and not self._closed
            if keep:
                self._idle.append(worker)
            else:
                self._live -= 1
            self._changed.notify()
        if not keep:
            worker.close(grace_seconds=0.5)

    def close(self) -> None:
        """Idle workers finish; busy ones are killed, so their invocations end as Runtime.ExitError."""
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            busy = list(self._busy)
            self._changed.notify_all()
        for worker in busy:
            worker.process.kill()
        for worker in idle:
            worker.close()


class LambdaRuntime:
    """The registry of deployed functions and their worker pools; what the Lambda seam calls."""

    def __init__(
        self,
        *,
        endpoint_url: str,
        region: str,
        workers_per_function: int = 4,
        async_retry_delay_seconds: float = 1.0,
        timeout_scale: float = 1.0,
        extra_environment: Mapping[str, str] | None = None,
        calls_dir: Path | None = None,
        call_recorder: CallRecorder | None = None,
    ) -> None:
        """timeout_scale multiplies every function's Timeout and the Init limit (see ``timeout_scale``).
        extra_environment: added to every worker's (e.g. localcloud.faults' worker hook).
        calls_dir: where each worker records its function's AWS calls (localcloud.call_recording);
        call_recorder: records the calls Lambda itself makes with a function's role (on-failure sends)."""
        self._endpoint_url = endpoint_url
        self._calls_dir = calls_dir
        self._call_recorder = call_recorder
        self._extra_environment = dict(extra_environment or {})
        self.timeout_scale = timeout_scale
        self._region = region
        self._workers_per_function = workers_per_function
        self._async_retry_delay_seconds = async_retry_delay_seconds
        self._pools: dict[str, _WorkerPool] = {}
        self._async_configs: dict[str, AsyncConfig] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # One queue per function, as Lambda's asynchronous invocations are: a slow function's backlog
        # (the gate's nudges) must not hold up another's events (pipeline completions).
        self._async_invocations: dict[str, ThreadPoolExecutor] = {}

    @property
    def timeout_scale(self) -> float:
        """What every function's Timeout (and the Init phase's limit) is multiplied by: 1.0 is Lambda's.

        For tests that are not about timeouts on a machine whose load they do not control: a handler then
        has the time it would have on an idle machine without a hung one going unnoticed. Applies from the
        next invocation; a test about timeouts sets it back with ``scaled_timeouts(1.0)``.
        """
        return self._timeout_scale

    @timeout_scale.setter
    def timeout_scale(self, scale: float) -> None:
        if not scale > 0:
            raise ValueError(f"timeout_scale must be positive, not {scale!r}")
        self._timeout_scale = float(scale)

    @contextlib.contextmanager
    def scaled_timeouts(self, scale: float) -> Iterator[None]:
        """Run the block's invocations with another timeout scale (e.g. 1.0: the template's own Timeouts)."""
        previous, self.timeout_scale = self.timeout_scale, scale
        try:
            yield
        finally:
            self.timeout_scale = previous

    def register(
        self,
        spec: FunctionSpec,
        reserved_concurrency: int | None = None,
        async_config: AsyncConfig | None = None,
    ) -> None:
        self._async_configs[spec.function_name] = async_config or AsyncConfig()
        workers = self._workers_per_function
        if reserved_concurrency is not None:
            workers = max(1, min(workers, reserved_concurrency))
        with self._lock:
            replaced = self._pools.get(spec.function_name)
            self._pools[spec.function_name] = _WorkerPool(
                spec, self._environment(spec), workers, lambda: self._timeout_scale
            )
        if replaced is not None:
            replaced.close()

    def spec(self, function_name: str) -> FunctionSpec | None:
        pool = self._pools.get(function_name)
        return pool.spec if pool else None

    def invoke(self, function_name: str, event_json: str) -> Invocation:
        pool = self._pools.get(function_name)
        if pool is None:
            return Invocation(
                _error_payload(
                    "Runtime.InvalidEntrypoint",
                    f"{function_name} was not deployed from a template by localcloud: no code to run",
                ),
                function_error=True,
            )
        return pool.invoke(event_json)

    def invoke_async(
        self, function_name: str, run_once: Callable[[], Invocation], request_payload: str = "{}"
    ) -> None:
        """Queue an asynchronous (InvocationType=Event) invocation, retried like Lambda's."""
        with self._lock:
            queue = self._async_invocations.get(function_name)
            if queue is None:
                pool = self._pools.get(function_name)
                # Two threads per worker: one invocation runs while the next waits out its retry delay.
                queue = ThreadPoolExecutor(
                    max_workers=2 * (pool.max_workers if pool else 1), thread_name_prefix="lambda-async"
                )
                self._async_invocations[function_name] = queue
        queue.submit(self._run_async, function_name, run_once, request_payload)

    def _run_async(
        self, function_name: str, run_once: Callable[[], Invocation], request_payload: str
    ) -> None:
        config = self._async_configs.get(function_name, AsyncConfig())
        retries = config.maximum_retry_attempts
        for attempt in range(retries + 1):
            try:
                invocation = run_once()
            except Exception:
                LOGGER.exception("asynchronous invocation of %s could not run", function_name)
                return
            if not invocation.function_error:
                return
            if attempt < retries and self._stopping.wait(self._async_retry_delay_seconds * (attempt + 1)):
                return
        if config.on_failure_queue_arn:
            try:
                self._send_to_destination(
                    function_name, config.on_failure_queue_arn, request_payload, invocation, retries + 1
                )
            except Exception:
                LOGGER.exception("could not send a failed event of %s to its destination", function_name)
            else:
                return
        LOGGER.error(
            "asynchronous invocation of %s failed %d times and was dropped (no on-failure destination): %s",
            function_name,
            retries + 1,
            invocation.payload,
        )

    def _send_to_destination(
        self, function_name: str, queue_arn: str, request_payload: str, invocation: Invocation, attempts: int
    ) -> None:
        """Lambda's invocation record for an asynchronous invocation whose retries are exhausted."""
        from localcloud.clients import emulator_client  # noqa: PLC0415 - boto3 only when a destination is used

        spec = self.spec(function_name)
        record = {
            "version": "1.0",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": f"{spec.function_arn}:$LATEST" if spec else function_name,
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": _json_or_text(request_payload),
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled",
            },
            "responsePayload": _json_or_text(invocation.payload),
        }
        # Lambda sends to the destination, by its ARN, with the function's execution role: only that
        # SendMessage is the function's call. Finding the queue's URL is the emulator's own business.
        lookup = emulator_client("sqs", endpoint_url=self._endpoint_url, region=self._region)
        queue_url = lookup.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
        sqs = emulator_client("sqs", endpoint_url=self._endpoint_url, region=self._region)
        if self._call_recorder is not None and spec is not None:
            self._call_recorder.attach(sqs, {"principal": spec.logical_id, "function": spec.function_name})
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record))
        LOGGER.warning(
            "asynchronous invocation of %s failed %d times; sent to its on-failure destination %s",
            function_name,
            attempts,
            queue_arn,
        )

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            **spec.environment,
            # Lambda's reserved variables, then what makes the SDK talk to the emulator only.
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": f"localcloud/{spec.logical_id}",
            # Not Lambda's: where the emulator writes every function's log (<dir>/<LogicalId>.log), so a
            # failed job's explanation can name the file (controlplane.jobs.explaining).
            "LOCALCLOUD_LOG_DIR": str(spec.log_path.parent),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            # The key names the function (moto accepts any): whose call it is, in moto's logs too.
            "AWS_ACCESS_KEY_ID": f"{ACCESS_KEY_PREFIX}{spec.logical_id}",
            "AWS_SECRET_ACCESS_KEY": "localcloud",
            "AWS_SESSION_TOKEN": "localcloud",
            "AWS_ENDPOINT_URL": self._endpoint_url,
            # Never read the developer's own AWS profile or credentials.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # There is no X-Ray daemon locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
            **self._recording_environment(spec),
            **self._extra_environment,
        }

    def _recording_environment(self, spec: FunctionSpec) -> dict[str, str]:
        if self._calls_dir is None:
            return {}
        # arn:aws:lambda:<region>:<account>:function:<name>
        return {CALLS_DIR_VARIABLE: str(self._calls_dir), ACCOUNT_VARIABLE: spec.function_arn.split(":")[4]}

    def close(self) -> None:
        self._stopping.set()
        # Running asynchronous invocations end when their workers are killed below.
        with self._lock:
            pools = list(self._pools.values())
            queues = list(self._async_invocations.values())
        for queue in queues:
            queue.shutdown(wait=False, cancel_futures=True)
        for pool in pools:
            pool.close()
