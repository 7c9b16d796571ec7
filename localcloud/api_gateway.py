"""API Gateway REST APIs on loopback: a small HTTP server per deployed AWS::Serverless::Api.

The routes are the template's `Api` events (RestApiId, Path, Method, Auth.Authorizer) and the API's
Lambda REQUEST authorizers (FunctionArn, Identity.Headers). A request is served as API Gateway would:

1. no route for the method and path: 404 with a message that lists the routes (a deliberate difference: API
   Gateway answers 403 `{"message": "Missing Authentication Token"}`, which reads like a key problem);
2. the route's authorizer (the API's DefaultAuthorizer unless the event says `NONE`): a missing
   identity header is a 401 without calling it; otherwise the authorizer function runs through the
   emulator's Lambda runtime with a REQUEST event; an error "Unauthorized" is a 401, any other error
   a 500; the returned policy is evaluated against the method ARN (an explicit Deny wins, no matching
   Allow is a 403); its `context` and `principalId` become `requestContext.authorizer`;
3. the route's function gets an API Gateway REST proxy event; its response
   (statusCode, headers, multiValueHeaders, body, isBase64Encoded) is returned, a function error or
   malformed response is a 502.

4. throttling (localcloud.api_throttling): the stage's MethodSettings limit, then, with Auth.ApiKeyRequired,
   the usage plan of the caller's API key (the authorizer's ``usageIdentifierKey`` with ApiKeySourceType
   AUTHORIZER): no key in a plan of the stage is a 403, an empty bucket a 429; both are the API's
   GatewayResponses (INVALID_API_KEY, THROTTLED) where it defines them (status, static headers such as
   Retry-After, the application/json body).

URLs are `http://127.0.0.1:<port>/<StageName>/<path>`. Not emulated: authorizer result caching
(ReauthorizeEvery is treated as 0), usage plan quotas, request validation and mapping templates, binary
media types, CORS preflight.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from localcloud.api_throttling import Throttle, TokenBuckets, plan_of_key
from localcloud.lambda_runtime import LambdaRuntime

LOGGER = logging.getLogger("localcloud.api")
_MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
_USAGE_KEY = "\x00usageIdentifierKey"  # carried beside the authorizer context, never inside it


@dataclass(frozen=True)
class AccessLog:
    """A stage's AccessLogSetting: the log group and the $context format of one line per request."""

    log_group_name: str
    format: str


_CONTEXT_VARIABLE = re.compile(r"\$context\.([A-Za-z0-9_.]+)")


def access_log_line(log_format: str, context: dict[str, Any]) -> str:
    """``log_format`` with each $context.a.b replaced from ``context`` (nested dicts); API Gateway writes
    "-" for a variable without a value."""

    def value(match: re.Match[str]) -> str:
        found: Any = context
        for part in match.group(1).split("."):
            found = found.get(part) if isinstance(found, dict) else None
        return "-" if found is None or found == "" else json.dumps(str(found))[1:-1]

    return _CONTEXT_VARIABLE.sub(value, log_format)


@dataclass(frozen=True)
class Authorizer:
    name: str
    function_name: str
    identity_headers: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # e.g. /jobs/{jobId}
    function_name: str
    authorizer: str | None  # name, or None for no authorization

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if self.method not in (method, "ANY"):
            return None
        pattern = "^" + re.sub(r"\\\{([^}/]+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path)) + "$"
        found = re.match(pattern, path)
        return dict(found.groupdict()) if found else None


@dataclass(frozen=True)
class GatewayResponse:
    """A GatewayResponses entry: what replaces API Gateway's default for one response type."""

    status: int | None
    headers: dict[str, str]
    body: str | None


@dataclass
class ApiSpec:
    logical_id: str
    api_id: str
    stage: str
    region: str
    account_id: str
    authorizers: dict[str, Authorizer] = field(default_factory=dict)
    default_authorizer: str | None = None
    routes: list[Route] = field(default_factory=list)
    access_log: AccessLog | None = None
    api_key_required: bool = False  # Auth.ApiKeyRequired: every method counts against a usage plan
    api_key_source: str = "HEADER"  # ApiKeySourceType: HEADER (x-api-key) or AUTHORIZER
    stage_throttle: Throttle | None = None  # MethodSettings' stage-wide limit
    gateway_responses: dict[str, GatewayResponse] = field(default_factory=dict)


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes


def _json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, {"Content-Type": "application/json"} | (headers or {}), json.dumps(body).encode())


def _message_of(reply: _Reply) -> str | None:
    try:
        body = json.loads(reply.body)
    except ValueError:
        return None
    return str(body.get("message")) if isinstance(body, dict) and body.get("message") else None


def _policy_allows(policy: Any, method_arn: str) -> bool:
    statements = (policy or {}).get("Statement", []) if isinstance(policy, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = [actions] if isinstance(actions, str) else actions
        resources = [resources] if isinstance(resources, str) else resources
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", action) for action in actions):
            continue
        if not any(fnmatch.fnmatchcase(method_arn, resource) for resource in resources):
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


class RestApiServer:
    """Serves one ApiSpec on 127.0.0.1:<port> (0 picks a free port) until close()."""

    def __init__(
        self,
        spec: ApiSpec,
        lambda_runtime: LambdaRuntime,
        *,
        port: int = 0,
        write_access_log: Callable[[str, str], None] | None = None,
    ) -> None:
        self.spec = spec
        self._runtime = lambda_runtime
        self._write_access_log = write_access_log  # (log group, line), when the stage has access logs
        self._buckets = TokenBuckets()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > _MAX_BODY_BYTES:
                    reply = _json_reply(413, {"message": "Request Too Long"})
                else:
                    body = self.rfile.read(length) if length else b""
                    try:
                        reply = server.handle(self.command, self.path, dict(self.headers.items()), body)
                    except Exception:
                        LOGGER.exception("API %s: %s %s failed", spec.logical_id, self.command, self.path)
                        reply = _json_reply(500, {"message": "Internal server error"})
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                LOGGER.debug("API %s: " + format, spec.logical_id, *args)

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"api-{spec.logical_id}", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/{self.spec.stage}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------------ one request

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> _Reply:
        started = time.monotonic()
        context: dict[str, Any] = {
            "requestId": str(uuid.uuid4()),
            "requestTime": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime()),
            "httpMethod": method,
            "path": urlsplit(raw_path).path,
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent")},
        }
        reply = self._route(method, raw_path, headers, body, context)
        if self.spec.access_log is not None and self._write_access_log is not None:
            context |= {"status": reply.status, "responseLatency": round((time.monotonic() - started) * 1000)}
            if reply.status >= 400:
                context["error"] = {"message": _message_of(reply)}
            self._write_access_log(
                self.spec.access_log.log_group_name, access_log_line(self.spec.access_log.format, context)
            )
        return reply

    def _route(
        self, method: str, raw_path: str, headers: dict[str, str], body: bytes, context: dict[str, Any]
    ) -> _Reply:
        """One request as API Gateway serves it; ``context`` gathers what its access log line shows."""
        split = urlsplit(raw_path)
        stage_prefix = f"/{self.spec.stage}"
        if not (split.path == stage_prefix or split.path.startswith(stage_prefix + "/")):
            return _json_reply(403, {"message": "Forbidden"})
        path = split.path[len(stage_prefix) :] or "/"
        for route in self.spec.routes:
            parameters = route.match(method, path)
            if parameters is not None:
                break
        else:
            return _json_reply(404, {"statusCode": 404, "message": self._no_route(method, path)})
        context["resourcePath"] = route.path
        query = parse_qs(split.query, keep_blank_values=True)
        request_id = str(context["requestId"])
        method_arn = (
            f"arn:aws:execute-api:{self.spec.region}:{self.spec.account_id}:{self.spec.api_id}/"
            f"{self.spec.stage}/{method}{path}"
        )
        request_context: dict[str, Any] = {
            "accountId": self.spec.account_id,
            "apiId": self.spec.api_id,
            "httpMethod": method,
            "path": f"{stage_prefix}{path}",
            "protocol": "HTTP/1.1",
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "resourcePath": route.path,
            "stage": self.spec.stage,
            "identity": {"sourceIp": "127.0.0.1", "userAgent": headers.get("User-Agent")},
        }
        common = {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": headers,
            "multiValueHeaders": {name: [value] for name, value in headers.items()},
            "queryStringParameters": {name: values[-1] for name, values in query.items()} or None,
            "multiValueQueryStringParameters": query or None,
            "pathParameters": parameters or None,
            "stageVariables": None,
        }
        if route.authorizer is not None:
            authorized = self._authorize(route.authorizer, common, request_context, method_arn, headers)
            if isinstance(authorized, _Reply):
                return authorized
            usage_key = authorized.pop(_USAGE_KEY, None)
            request_context["authorizer"] = authorized
            context["authorizer"] = authorized
        else:
            usage_key = None
        refused = self._throttle(headers, usage_key)
        if refused is not None:
            return refused
        event = common | {
            "requestContext": request_context,
            "body": body.decode("utf-8", errors="replace") if body else None,
            "isBase64Encoded": False,
        }
        invocation = self._runtime.invoke(route.function_name, json.dumps(event))
        if invocation.function_error:
            LOGGER.warning(
                "API %s: %s %s: function error %s", self.spec.logical_id, method, path, invocation.payload
            )
            return _json_reply(502, {"message": "Internal server error"})
        return self._proxy_reply(invocation.payload)

    def _no_route(self, method: str, path: str) -> str:
        """Which routes there are, instead of API Gateway's bare 403 (module docstring, item 1)."""
        methods = sorted(
            {route.method for route in self.spec.routes if route.match(route.method, path) is not None}
        )
        if methods:
            return f"{path} answers {', '.join(methods)}, not {method} (see docs/openapi.json)"
        routes = ", ".join(sorted({f"{route.method} {route.path}" for route in self.spec.routes}))
        return f"no route {method} {path}; the routes are: {routes} (see docs/openapi.json)"

    def _authorize(
        self,
        name: str,
        common: dict[str, Any],
        request_context: dict[str, Any],
        method_arn: str,
        headers: dict[str, str],
    ) -> dict[str, Any] | _Reply:
        authorizer = self.spec.authorizers[name]
        present = {key.lower() for key in headers}
        if any(header.lower() not in present for header in authorizer.identity_headers):
            return _json_reply(401, {"message": "Unauthorized"})
        event = common | {"type": "REQUEST", "methodArn": method_arn, "requestContext": request_context}
        invocation = self._runtime.invoke(authorizer.function_name, json.dumps(event))
        if invocation.function_error:
            message = json.loads(invocation.payload).get("errorMessage")
            if message == "Unauthorized":
                return _json_reply(401, {"message": "Unauthorized"})
            LOGGER.warning("API %s: authorizer %s failed: %s", self.spec.logical_id, name, invocation.payload)
            return _json_reply(
                500, {"message": None}, {"x-amzn-ErrorType": "AuthorizerConfigurationException"}
            )
        result = json.loads(invocation.payload)
        if not isinstance(result, dict) or not _policy_allows(result.get("policyDocument"), method_arn):
            return _json_reply(403, {"message": "User is not authorized to access this resource"})
        context = {key: value for key, value in (result.get("context") or {}).items()}
        usage = result.get("usageIdentifierKey")
        return (
            context
            | {"principalId": str(result.get("principalId", ""))}
            | ({_USAGE_KEY: usage} if usage else {})
        )

    def _throttle(self, headers: dict[str, str], usage_key: Any) -> _Reply | None:
        """The stage's limit, then the caller's usage plan (module docstring of localcloud.api_throttling):
        None when the request may go on, else the 403 or 429 API Gateway answers."""
        if self.spec.stage_throttle is not None and self._buckets.take("stage", self.spec.stage_throttle):
            return self._gateway_reply("THROTTLED", 429, "Too Many Requests")
        if not self.spec.api_key_required:
            return None
        if self.spec.api_key_source != "AUTHORIZER":
            usage_key = next((v for k, v in headers.items() if k.lower() == "x-api-key"), None)
        plan = (
            plan_of_key(
                self.spec.account_id, self.spec.region, self.spec.api_id, self.spec.stage, str(usage_key)
            )
            if usage_key
            else None
        )
        if plan is None:
            return self._gateway_reply("INVALID_API_KEY", 403, "Forbidden")
        if plan.throttle is not None and self._buckets.take(f"{plan.plan_id}/{plan.key_id}", plan.throttle):
            return self._gateway_reply("THROTTLED", 429, "Too Many Requests")
        return None

    def _gateway_reply(self, response_type: str, status: int, message: str) -> _Reply:
        """API Gateway's own response of ``response_type``, as the API's GatewayResponses change it."""
        custom = self.spec.gateway_responses.get(response_type)
        if custom is None:
            return _json_reply(status, {"message": message})
        body = custom.body.encode() if custom.body is not None else json.dumps({"message": message}).encode()
        headers = {"Content-Type": "application/json"} | custom.headers
        return _Reply(custom.status or status, headers, body)

    @staticmethod
    def _proxy_reply(payload: str) -> _Reply:
        response = json.loads(payload)
        if not isinstance(response, dict) or not isinstance(response.get("statusCode"), int):
            return _json_reply(502, {"message": "Internal server error"})
        headers = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        for name, values in (response.get("multiValueHeaders") or {}).items():
            headers[str(name)] = ",".join(str(value) for value in values)
        body = response.get("body") or ""
        raw = base64.b64decode(body) if response.get("isBase64Encoded") else str(body).encode()
        return _Reply(int(response["statusCode"]), headers, raw)
