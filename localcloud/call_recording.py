"""Records every AWS call a principal makes, as the IAM requests it needs, one JSON line per call.

Used in two places, with the same code: in each Lambda worker (``install_in_worker``: every botocore client
the handler creates; the worker loads this file and localcloud/iam_actions.py by path, since its sys.path is
the function's own) and in the emulator process (``CallRecorder.attach`` on the state machine's service-task
clients and on the sends Lambda makes with a function's role). localcloud.permissions reads the lines and
checks each request against the principal's role.

A line: ``{"principal": <logical id>, "function": <name>, "role": <role ARN>, "service": ..., "operation":
..., "requests": [[action, resource], ...]}`` (principal/function for a function, role for a state
machine); ``"requests": null`` (and ``"error"``) when iam_actions has no mapping for the call.

The hook is botocore's ``before-parameter-build`` event: once per API call with the caller's own parameters
(not once per retry attempt), before anything is sent, so a call that fails is recorded too.
Standard library only (botocore is imported by install_in_worker, from the function's own path).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# iam_actions.requests_for, passed in (this module cannot import it: in a worker both are loaded by path).
RequestsFor = Callable[[str, str, Mapping[str, Any], Any], Any]
CALLS_DIR_VARIABLE = "LOCALCLOUD_CALLS_DIR"
ACCOUNT_VARIABLE = "LOCALCLOUD_ACCOUNT_ID"
# Each worker's access key names its function: localcloud-<LogicalId> (moto accepts any key).
ACCESS_KEY_PREFIX = "localcloud-"


class CallRecorder:
    """Appends one line per call to one file (line-buffered: a worker that crashes loses nothing)."""

    def __init__(self, path: Path, requests_for: RequestsFor, where: Callable[[str], Any]) -> None:
        """where(region) -> iam_actions.Where for ARNs built from names."""
        self.path = path
        self._requests_for = requests_for
        self._where = where
        self._lock = threading.Lock()
        self._file: Any = None

    def record(
        self,
        identity: Mapping[str, str],
        service: str,
        operation: str,
        params: Mapping[str, Any],
        region: str,
    ) -> None:
        line: dict[str, Any] = {**identity, "service": service, "operation": operation}
        try:
            requests = self._requests_for(service, operation, params, self._where(region))
        except (KeyError, ValueError, TypeError, AttributeError) as error:
            line.update(requests=None, error=f"{type(error).__name__}: {error}")
        else:
            line["requests"] = None if requests is None else [[r.action, r.resource] for r in requests]
        text = json.dumps(line, separators=(",", ":")) + "\n"
        with self._lock:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8", buffering=1)
            self._file.write(text)

    def attach(self, client: Any, identity: Mapping[str, str]) -> None:
        """Record every call this botocore client makes, as `identity`."""
        service = client.meta.service_model.service_name
        region = client.meta.region_name or ""

        def before_parameter_build(params: Mapping[str, Any], model: Any, **_: Any) -> None:
            try:
                self.record(identity, service, model.name, params, region)
            except Exception as error:  # recording must never break the caller's call
                print(f"localcloud: could not record {service}.{model.name}: {error}", flush=True)

        client.meta.events.register("before-parameter-build", before_parameter_build)

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def install_in_worker(requests_for: RequestsFor, where_type: Callable[[str, str], Any]) -> None:
    """In a Lambda worker: record every call of every botocore client the function creates from now on."""
    import botocore.session  # noqa: PLC0415 - from the function's own sys.path, once it is set

    logical_id = os.environ["AWS_ACCESS_KEY_ID"].removeprefix(ACCESS_KEY_PREFIX)
    identity = {"principal": logical_id, "function": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}
    account = os.environ[ACCOUNT_VARIABLE]
    path = Path(os.environ[CALLS_DIR_VARIABLE]) / f"{logical_id}-{os.getpid()}.jsonl"
    recorder = CallRecorder(path, requests_for, lambda region: where_type(region, account))
    original = botocore.session.Session.create_client

    def create_client(self: Any, *args: Any, **kwargs: Any) -> Any:
        client = original(self, *args, **kwargs)
        recorder.attach(client, identity)
        return client

    botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
