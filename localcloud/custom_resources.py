"""CloudFormation custom resources: invoke the ServiceToken function, read its answer on ResponseURL.

The ResponseURL is an HTTP endpoint on loopback that accepts the PUT CloudFormation's pre-signed
S3 URL would. The request carries what CloudFormation sends, including its habit of turning every
scalar property into a string.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class CustomResourceError(Exception):
    """The custom resource answered FAILED, answered wrongly, or did not answer."""


@dataclass(frozen=True)
class CustomResourceResult:
    physical_resource_id: str
    data: dict[str, Any]


def cloudformation_properties(value: Any) -> Any:
    """CloudFormation hands custom resources every scalar as a string (2 -> "2", true -> "true")."""
    if isinstance(value, dict):
        return {key: cloudformation_properties(item) for key, item in value.items()}
    if isinstance(value, list):
        return [cloudformation_properties(item) for item in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


class ResponseEndpoint:
    """Collects the PUT bodies sent to the ResponseURLs it hands out."""

    def __init__(self) -> None:
        self._responses: dict[str, bytes] = {}
        self._arrived = threading.Condition()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with endpoint._arrived:
                    endpoint._responses[self.path.lstrip("/")] = body
                    endpoint._arrived.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="cfn-responses", daemon=True)
        self._thread.start()

    def url(self, request_id: str) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/{request_id}"

    def wait(self, request_id: str, timeout_seconds: float) -> bytes | None:
        with self._arrived:
            self._arrived.wait_for(lambda: request_id in self._responses, timeout=timeout_seconds)
            return self._responses.pop(request_id, None)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def create_custom_resource(
    *,
    lambda_client: Any,
    endpoint: ResponseEndpoint,
    stack_id: str,
    logical_id: str,
    resource_type: str,
    properties: Mapping[str, Any],
    response_grace_seconds: float = 10.0,
) -> CustomResourceResult:
    """Send the Create request and return what the function answered on the ResponseURL."""
    request_id = str(uuid.uuid4())
    request = {
        "RequestType": "Create",
        "ServiceToken": properties["ServiceToken"],
        "ResponseURL": endpoint.url(request_id),
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": logical_id,
        "ResourceType": resource_type,
        "ResourceProperties": cloudformation_properties(dict(properties)),
    }
    invocation = lambda_client.invoke(FunctionName=properties["ServiceToken"], Payload=json.dumps(request))
    invocation_payload = invocation["Payload"].read().decode()
    body = endpoint.wait(request_id, response_grace_seconds)
    if body is None:
        detail = (
            f"the function failed: {invocation_payload}"
            if "FunctionError" in invocation
            else "the function returned without sending a response"
        )
        raise CustomResourceError(f"{logical_id} ({resource_type}): no response on ResponseURL; {detail}")
    try:
        response = json.loads(body)
    except ValueError:
        raise CustomResourceError(f"{logical_id}: the response is not JSON: {body[:200]!r}") from None
    for key, expected in (
        ("RequestId", request_id),
        ("StackId", stack_id),
        ("LogicalResourceId", logical_id),
    ):
        if response.get(key) != expected:
            raise CustomResourceError(
                f"{logical_id}: response {key} is {response.get(key)!r}, expected {expected!r}"
            )
    if response.get("Status") != "SUCCESS":
        raise CustomResourceError(
            f"{logical_id} ({resource_type}) failed to create: {response.get('Reason') or 'no Reason given'}"
        )
    if not response.get("PhysicalResourceId"):
        raise CustomResourceError(f"{logical_id}: the response has no PhysicalResourceId")
    return CustomResourceResult(str(response["PhysicalResourceId"]), dict(response.get("Data") or {}))
