"""One warm Lambda execution environment: a process that runs one function's real handler.

Started by localcloud.lambda_runtime as `python -I _lambda_worker.py <request-fd> <response-fd>
<layer-dir>...` with the function's own environment, in its CodeUri directory. Standard library
only, because the function's sys.path (CodeUri, then layers, then site-packages) is all it may see.

Protocol: one JSON line per request on the request pipe, one JSON line per response on the response
pipe; before the first response, once the handler module is imported (Lambda's Init phase), one
``{"initialized": true, ...}`` line, so the runtime starts the function's Timeout only then (on AWS the
Init phase has its own limit and is not part of the Timeout). The process's stdout and stderr are the
function's log file, so whatever the handler prints can never corrupt the protocol.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any


class LambdaContext:
    """The attributes and method of the Python runtime's context object that handlers use."""

    def __init__(self, request: dict[str, Any]) -> None:
        self.function_name: str = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version: str = os.environ["AWS_LAMBDA_FUNCTION_VERSION"]
        self.memory_limit_in_mb: int = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.log_group_name: str = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name: str = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.invoked_function_arn: str = request["invokedFunctionArn"]
        self.aws_request_id: str = request["requestId"]
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + request["timeoutSeconds"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class _RuntimeFaultError(Exception):
    """An error the runtime itself reports (not the handler), with the runtime's error type."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _load_handler() -> Callable[[Any, LambdaContext], Any]:
    # The same error types as the AWS Python runtime (awslambdaric) reports for a broken init.
    module_path, _, function_name = os.environ["_HANDLER"].rpartition(".")
    try:
        module = importlib.import_module(module_path.replace("/", "."))
    except ImportError as error:
        raise _RuntimeFaultError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_path}': {error}"
        ) from error
    except SyntaxError as error:
        raise _RuntimeFaultError(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_path}': {error}"
        ) from error
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _RuntimeFaultError(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_path}'"
        )
    return handler  # type: ignore[no-any-return]


def _error(error: BaseException, request_id: str) -> str:
    error_type = error.error_type if isinstance(error, _RuntimeFaultError) else type(error).__name__
    stack = traceback.format_list(traceback.extract_tb(error.__traceback__))
    return json.dumps(
        {"errorMessage": str(error), "errorType": error_type, "requestId": request_id, "stackTrace": stack}
    )


def _log_exception(error: BaseException) -> None:
    print(f"[ERROR] {type(error).__name__}: {error}", flush=True)
    traceback.print_exception(error, file=sys.stdout)
    sys.stdout.flush()


def _invoke(handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any]) -> tuple[bool, str]:
    """Run the handler once: (True, result JSON) or (False, Lambda error JSON)."""
    try:
        result = handler(json.loads(request["event"]), LambdaContext(request))
    except Exception as error:
        _log_exception(error)
        return False, _error(error, request["requestId"])
    try:
        return True, json.dumps(result)
    except (TypeError, ValueError) as error:
        marshal_error = _RuntimeFaultError("Runtime.MarshalError", f"Unable to marshal response: {error}")
        return False, _error(marshal_error, request["requestId"])


def _serve(requests: IO[bytes], responses: IO[bytes]) -> None:
    handler: Callable[[Any, LambdaContext], Any] | None = None
    for line in requests:
        request = json.loads(line)
        request_id = request["requestId"]
        print(f"START RequestId: {request_id} Version: $LATEST", flush=True)
        started = time.monotonic()
        init_failed = False
        init_note = ""
        if handler is None:
            try:
                handler = _load_handler()
            except Exception as error:
                # Like Lambda: a failed init fails this invoke; the next one gets a fresh environment.
                _log_exception(error)
                init_failed = True
                ok, payload = False, _error(error, request_id)
            else:
                init_ms = (time.monotonic() - started) * 1000
                init_note = f"\tInit Duration: {init_ms:.2f} ms"
                responses.write(json.dumps({"initialized": True, "initDurationMs": init_ms}).encode() + b"\n")
                responses.flush()
                started = time.monotonic()
        if handler is not None:
            ok, payload = _invoke(handler, request)
        sys.stdout.flush()
        sys.stderr.flush()
        duration_ms = (time.monotonic() - started) * 1000
        print(f"END RequestId: {request_id}", flush=True)
        print(f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms{init_note}", flush=True)
        response = {"requestId": request_id, "ok": ok, "payload": payload, "initFailed": init_failed}
        responses.write(json.dumps(response).encode() + b"\n")
        responses.flush()
        if init_failed:
            return


def _load_module(name: str, path: str) -> Any:
    """A module of localcloud's, loaded from its file: the function's sys.path stays its own."""
    import importlib.util  # noqa: PLC0415 - only with a hook to load

    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def _install_fault_hook() -> None:
    """localcloud.faults' worker half (SIMULATED faults in the AWS calls the handler makes), when the
    emulator runs with a fault plan."""
    path = os.environ.get("LOCALCLOUD_FAULT_HOOK")
    if path:
        _load_module("_localcloud_worker_faults", path).install()


def _install_call_recorder() -> None:
    """localcloud.call_recording: every AWS call the function makes, as the IAM requests it needs (for the
    emulator's permission check), when the emulator records calls."""
    if not os.environ.get("LOCALCLOUD_CALLS_DIR"):
        return
    here = os.path.dirname(os.path.abspath(__file__))
    actions = _load_module("_localcloud_iam_actions", os.path.join(here, "iam_actions.py"))
    recording = _load_module("_localcloud_call_recording", os.path.join(here, "call_recording.py"))
    recording.install_in_worker(actions.requests_for, actions.Where)


def main() -> None:
    request_fd, response_fd, *layer_dirs = sys.argv[1:]
    # Lambda's order: the function's own code, then each layer, then the runtime's packages.
    sys.path[:0] = [os.environ["LAMBDA_TASK_ROOT"], *layer_dirs]
    _install_call_recorder()
    _install_fault_hook()
    with os.fdopen(int(request_fd), "rb") as requests, os.fdopen(int(response_fd), "wb") as responses:
        _serve(requests, responses)


if __name__ == "__main__":
    main()
