"""Run Lambda functions' real handlers in warm worker processes, one pool per function.

Each function gets its own processes (its own environment variables and sys.path, as Lambda
isolates them); each worker runs one invocation at a time, and a pool holds up to N workers so
concurrent invocations really run concurrently. Lambda semantics kept: the template's Timeout
(then the worker is killed, `Sandbox.Timedout`), init failures (`Runtime.ImportModuleError`...),
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
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOGGER = logging.getLogger("localcloud.lambda")
_WORKER_SCRIPT = Path(__file__).with_name("_lambda_worker.py")
# Lambda's default for asynchronous invocations: two retries after a function error.
_ASYNC_RETRIES = 2
# Slack for process start-up and the pipe round trip on top of the function's own Timeout.
_TIMEOUT_GRACE_SECONDS = 0.5


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

    def invoke(self, request: Mapping[str, Any], deadline: float) -> dict[str, Any] | None:
        """The worker's response, or None when the deadline passed first."""
        try:
            self._requests.write(json.dumps(request).encode() + b"\n")
            self._requests.flush()
        except OSError as error:  # the process ended while idle
            raise _WorkerExitedError from error
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
        return response

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
    def __init__(self, spec: FunctionSpec, environment: Mapping[str, str], max_workers: int) -> None:
        self.spec = spec
        self._environment = environment
        self._max_workers = max_workers
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
        try:
            request = {
                "requestId": request_id,
                "event": event_json,
                "invokedFunctionArn": self.spec.function_arn,
                "timeoutSeconds": self.spec.timeout_seconds,
            }
            deadline = time.monotonic() + self.spec.timeout_seconds + _TIMEOUT_GRACE_SECONDS
            try:
                response = worker.invoke(request, deadline)
            except _WorkerExitedError:
                return self._exited(request_id, worker)
            if response is None:
                worker.process.kill()
                return self._timed_out(request_id)
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

    def _timed_out(self, request_id: str) -> Invocation:
        message = (
            f"RequestId: {request_id} Error: Task timed out after {self.spec.timeout_seconds:.2f} seconds"
        )
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
                if self._live < self._max_workers:
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
    ) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._workers_per_function = workers_per_function
        self._async_retry_delay_seconds = async_retry_delay_seconds
        self._pools: dict[str, _WorkerPool] = {}
        self._async_configs: dict[str, AsyncConfig] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._async_invocations = ThreadPoolExecutor(max_workers=8, thread_name_prefix="lambda-async")

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
            self._pools[spec.function_name] = _WorkerPool(spec, self._environment(spec), workers)
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
        self._async_invocations.submit(self._run_async, function_name, run_once, request_payload)

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
        sqs = emulator_client("sqs", endpoint_url=self._endpoint_url, region=self._region)
        queue_url = sqs.get_queue_url(QueueName=queue_arn.rsplit(":", 1)[-1])["QueueUrl"]
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
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "_HANDLER": spec.handler,
            "AWS_REGION": self._region,
            "AWS_DEFAULT_REGION": self._region,
            "AWS_ACCESS_KEY_ID": "localcloud",
            "AWS_SECRET_ACCESS_KEY": "localcloud",
            "AWS_SESSION_TOKEN": "localcloud",
            "AWS_ENDPOINT_URL": self._endpoint_url,
            # Never read the developer's own AWS profile or credentials.
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            # There is no X-Ray daemon locally.
            "POWERTOOLS_TRACE_DISABLED": "true",
        }

    def close(self) -> None:
        self._stopping.set()
        # Running asynchronous invocations end when their workers are killed below.
        self._async_invocations.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.close()
