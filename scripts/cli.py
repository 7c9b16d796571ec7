"""mlaas: a command line for the status API, with readable tables.

    python -m scripts.cli [--url URL] [--key KEY] COMMAND ...

The API's base URL (``.../v1``) and key come from ``--url`` / ``--key`` or ``MLAAS_API_URL`` /
``MLAAS_API_KEY``. Tenant commands (jobs, job, cancel, usage, models, approve, reject) need a tenant key
(with ``--tenant``, job/usage/models/approve/reject are operator commands); operator commands (onboard,
tenants, tiers, tier-limit, account-cap, offboard, audit, keys --tenant) an operator key; ``keys`` without
``--tenant`` manages the caller's own keys (a tenant's, or the operator keys). ``dlq list`` /
``dlq redrive`` talk to SQS directly (AWS credentials, ``--stack``, ``--endpoint-url`` for the emulator),
not to the API. Exit status 0 on success, 1 when the API (or AWS) refused (its message on stderr), 2 on
a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, TextIO

import requests
from botocore.exceptions import BotoCoreError, ClientError

from scripts import dead_letters

TERMINAL: Final = frozenset({"SUCCEEDED", "FAILED", "STOPPED", "REJECTED", "EXPIRED", "CANCELLED"})
_REASON_WIDTH: Final = 72  # wide enough that a job id (68 characters) is never clipped
_THROTTLED: Final = 429
_MAX_RETRY_AFTER_SECONDS: Final = 30.0  # never sleep longer than this on one 429, whatever the header says

# (method, path, query, body) -> (status code, decoded JSON body or None)
Send = Callable[[str, str, dict[str, str] | None, Any], tuple[int, Any]]


class ApiError(Exception):
    """A 4xx or 5xx answer, told in the API's own words: its message, and for a 422 one line per field."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {_explanation(body)}")
        self.status = status


def _explanation(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body or "no message")
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        lines = [
            f"  {error.get('field')} ({error.get('location')}): {error.get('message')}"
            for error in errors
            if isinstance(error, dict)
        ]
        return "\n".join(["the request was refused:", *lines])
    if body.get("message"):
        retry = (
            f" (retry after {body['retryAfter']:g} s)" if isinstance(body.get("retryAfter"), float) else ""
        )
        return str(body["message"]) + retry
    return json.dumps(body, sort_keys=True)  # never a Python structure: the body as the API sent it


def http_sender(url: str, key: str, *, timeout: float = 30.0, throttle_retries: int = 3) -> Send:
    """Sends to the API with the key. A 429 (over the tier's request rate) is sent again after the
    Retry-After it names, up to ``throttle_retries`` times; the last 429's body then carries
    ``retryAfter`` so that the error can say when to try again."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    base = url.rstrip("/")

    def send(method: str, path: str, query: dict[str, str] | None, body: Any) -> tuple[int, Any]:
        for attempt in range(throttle_retries + 1):
            response = session.request(method, base + path, params=query, json=body, timeout=timeout)
            retry_after = _retry_after(response)
            if response.status_code != _THROTTLED or retry_after is None or attempt == throttle_retries:
                break
            time.sleep(min(retry_after, _MAX_RETRY_AFTER_SECONDS))
        try:
            decoded = response.json() if response.content else None
        except ValueError:
            decoded = response.text
        if response.status_code == _THROTTLED and isinstance(decoded, dict) and retry_after is not None:
            decoded["retryAfter"] = retry_after
        return response.status_code, decoded

    return send


def _retry_after(response: requests.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("Retry-After", "")))
    except ValueError:
        return None


def call(send: Send, method: str, path: str, *, query: dict[str, str] | None = None, body: Any = None) -> Any:
    status, decoded = send(method, path, query, body)
    if status >= 400:
        raise ApiError(status, decoded)
    return decoded


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return "; ".join(str(item) for item in value) or "-"
    text = str(value)
    return text if len(text) <= _REASON_WIDTH else text[: _REASON_WIDTH - 1] + "…"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table: ``columns`` are (header, field) pairs; missing fields show as "-"."""
    cells = [[_cell(row.get(name)) for _, name in columns] for row in rows]
    widths = [max([len(header)] + [len(line[i]) for line in cells]) for i, (header, _) in enumerate(columns)]
    lines = ["  ".join(header.ljust(widths[i]) for i, (header, _) in enumerate(columns)).rstrip()]
    lines += ["  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip() for line in cells]
    return "\n".join(lines)


JOB_COLUMNS: Final = (
    ("job", "jobId"),
    ("status", "status"),
    ("tier", "tier"),
    ("upload", "key"),
    ("created", "createdAt"),
    ("reason", "reasons"),
)
TENANT_COLUMNS: Final = (
    ("tenant", "tenantId"),
    ("tier", "tier"),
    ("status", "status"),
    ("threshold", "metricThreshold"),
    ("created", "createdAt"),
)
TIER_COLUMNS: Final = (
    ("tier", "tier"),
    ("limit", "concurrencyLimit"),
    ("borrow", "borrowingLimit"),
    ("running", "running"),
    ("queued", "queued"),
    ("training", "trainingInstanceType"),
    ("max wait (s)", "queueWaitSeconds"),
)
TIMELINE_COLUMNS: Final = (("at", "at"), ("status", "status"), ("state", "state"), ("reason", "reason"))
STEP_COLUMNS: Final = (
    ("step", "name"),
    ("status", "status"),
    ("started", "startedAt"),
    ("seconds", "durationSeconds"),
    ("instance", "instanceType"),
    ("count", "instanceCount"),
    ("billable s", "billableSeconds"),
    ("spot saved %", "spotSavingsPercent"),
    ("reason", "failureReason"),
)
COST_COLUMNS: Final = (
    ("instance", "instanceType"),
    ("instance-seconds", "instanceSeconds"),
    ("USD per second", "usdPerSecond"),
    ("USD", "usd"),
)
TENANT_USAGE_COLUMNS: Final = (
    ("month", "month"),
    ("jobs", "jobs"),
    ("instance-hours", "instanceHours"),
    ("compute USD", "computeUsd"),
    ("control plane USD", "controlPlaneUsd"),
    ("cost USD", "costUsd"),
)
MONTH_USAGE_COLUMNS: Final = (
    ("tenant", "tenantId"),
    ("tier", "tier"),
    ("jobs", "jobs"),
    ("instance-hours", "instanceHours"),
    ("cost USD", "costUsd"),
)
KEY_COLUMNS: Final = (
    ("key", "keyId"),
    ("prefix", "prefix"),
    ("role", "role"),
    ("tenant", "tenantId"),
    ("state", "state"),
    ("created", "createdAt"),
    ("last used", "lastUsedAt"),
    ("expires", "expiresAt"),
)
AUDIT_COLUMNS: Final = (
    ("at", "at"),
    ("action", "action"),
    ("target", "target"),
    ("by", "actor"),
    ("change", "change"),
)


def _all_pages(send: Send, path: str, query: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        page = call(send, "GET", path, query=query | ({"nextToken": token} if token else {}))
        items += page["items"]
        token = page.get("nextToken")
        if not token:
            return items


def _jobs(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    query = {"limit": "100"} | ({"status": args.status} if args.status else {})
    while True:
        items = _all_pages(send, "/jobs", query)
        print(table(items, JOB_COLUMNS), file=out)
        open_jobs = [job for job in items if job["status"] not in TERMINAL]
        # Right after an upload its job may not exist yet: a watch waits for the first one.
        if not args.watch or (items and not open_jobs):
            return 0
        waiting_for = f"{len(open_jobs)} not finished" if items else "no job yet"
        print(f"-- {waiting_for}; refreshing in {args.interval:g}s", file=out)
        time.sleep(args.interval)


def _job(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    path = f"/tenants/{args.tenant}/jobs/{args.job_id}" if args.tenant else f"/jobs/{args.job_id}"
    job = call(send, "GET", path)
    print(table([job], JOB_COLUMNS), file=out)
    print("", file=out)
    print(table(job.get("timeline") or [], TIMELINE_COLUMNS), file=out)
    for name in ("executionArn", "pipelineExecutionArn"):
        if job.get(name):
            print(f"{name}: {job[name]}", file=out)
    _build(job, out)
    if job.get("explanation"):
        print("", file=out)
        print("\n".join(explanation_lines(job["explanation"])), file=out)
    return 0


def _build(job: dict[str, Any], out: TextIO) -> None:
    """The model, its metrics, the steps and the cost, when the build's results are recorded."""
    results, cost = job.get("results"), job.get("cost")
    if not results and not cost:
        return
    if results:
        print("", file=out)
        model = job.get("modelPackageArn")
        version = job.get("modelPackageVersion")
        print(f"model: {model} (version {version})" if model else "model: none registered", file=out)
        if job.get("modelArtifactUri"):
            print(f"artifact: {job['modelArtifactUri']}", file=out)
        metrics = job.get("metrics") or {}
        gated = results.get("validationMetric") or {}
        if metrics:
            shown = ", ".join(f"{name}={value:g}" for name, value in sorted(metrics.items()))
            print(f"metrics: {shown}" + (f" (gated on {gated['name']})" if gated else ""), file=out)
        if results.get("failedStep"):
            print(f"failed step: {results['failedStep']}: {results.get('failureReason') or '-'}", file=out)
        if results.get("unreadable"):
            print(f"could not be read: {'; '.join(results['unreadable'])}", file=out)
        print("", file=out)
        print(table(results.get("steps") or [], STEP_COLUMNS), file=out)
    if cost:
        print("", file=out)
        print(table(cost.get("lines") or [], COST_COLUMNS), file=out)
        print(
            f"cost: ${cost['totalUsd']:.6f} = compute ${cost['computeUsd']:.6f} + control plane "
            f"${cost['controlPlaneUsd']:.6f} ({cost['billableSeconds']:g} billable instance-seconds, "
            f"month {cost['month']}; an estimate at list prices, {cost.get('pricesAsOf', '')})",
            file=out,
        )
        if cost.get("unpriced"):
            print(f"not in the price table (counted at 0): {', '.join(cost['unpriced'])}", file=out)


def _usage(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    """A tenant key: its months. An operator key: --month, every tenant (costliest first), or --tenant."""
    if args.tenant:
        items = _all_pages(send, f"/tenants/{args.tenant}/usage", {"limit": "100"})
        print(table(items, TENANT_USAGE_COLUMNS), file=out)
    elif args.month and args.operator:
        items = _all_pages(send, "/usage", {"month": args.month, "limit": "100"})
        print(table(items, MONTH_USAGE_COLUMNS), file=out)
        total = sum(item["costUsd"] for item in items)
        print(
            f"{len(items)} tenants, {sum(i['jobs'] for i in items)} jobs, ${total:.6f} in {args.month}",
            file=out,
        )
    else:
        query = {"limit": "100"} | ({"month": args.month} if args.month else {})
        items = _all_pages(send, "/usage", query)
        print(table(items, TENANT_USAGE_COLUMNS), file=out)
    return 0


def _count(count: dict[str, Any]) -> str:
    return f"{count['value']}{'+' if count.get('atLeast') else ''}"


def _waiting_lines(waiting: dict[str, Any]) -> list[str]:
    slots, account, tenant = waiting["tierSlots"], waiting["account"], waiting["tenant"]
    standing, estimate = waiting["fairShare"], waiting["estimate"]
    mine, line = waiting["tenantPosition"], waiting["tierPosition"]
    cap = tenant["cap"] if tenant["cap"] is not None else "none"
    ahead, backlogged = _count(standing["tenantsAhead"]), _count(standing["backloggedTenants"])
    lines = [
        f"position: {mine['place']} of {mine['of']} of the tenant's waiting jobs; "
        f"{line['place']} of {line['of']} in tier {waiting['tier']} (arrival order)",
        f"tier {waiting['tier']}: running {slots['running']}, guaranteed {slots['guaranteed']}, "
        f"borrowable {slots['borrowable']} (limit {slots['limit']})",
        f"account: running {account['running']} of cap {account['cap']}",
        f"tenant: running {tenant['running']} of cap {cap}",
        *(f"held by {holding['hold']}: {holding['detail']}" for holding in waiting["holding"]),
        f"fair share: tag {standing['tag']:g}, key {standing['fairKey']:g} "
        f"(tier clock {standing['tierClock']:g}), weight {standing['weight']:g}, "
        f"usage {standing['usage']:.2f}; {ahead} of {backlogged} backlogged tenants ahead",
        *(f"  ahead: {other['tenantId']}: {other['why']}" for other in standing.get("ahead") or []),
    ]
    if estimate.get("seconds") is None:
        lines.append("estimated start: unknown (no run of the tier has finished yet)")
    else:
        lines.append(
            f"estimated start: in {estimate['seconds']:.0f} s (around {estimate['startsAt']}); "
            f"{estimate['jobsAhead']} jobs ahead, {estimate['slots']} slots, average run "
            f"{estimate['averageRunSeconds'] or 0:.0f} s over {estimate['runsMeasured']} runs"
        )
    lines.append(f"  how: {estimate['method']}")
    return lines


def explanation_lines(explanation: dict[str, Any]) -> list[str]:
    """The job view's explanation as lines of text (mlaas job)."""
    lines = [f"why: {explanation['summary']}"]
    if explanation.get("waiting"):
        lines += _waiting_lines(explanation["waiting"])
    if explanation.get("slot"):
        slot = explanation["slot"]
        lines.append(f"slot: borrowed {slot['borrowed']}, lent by {slot.get('lentBy') or '-'}")
    if explanation.get("failure"):
        failure = explanation["failure"]
        lines.append(f"failed step: {failure['failedStep']} (recorded by {failure.get('recordedBy')})")
        for log in failure.get("logs") or []:
            where = log.get("file") or log.get("logGroup") or log.get("logStream") or ""
            lines.append(f"logs: {log['what']}: {where}")
            if log.get("query") and not log.get("file"):
                lines.append(f"  query: {log['query']}")
    return lines


def _cancel(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    job = call(send, "POST", f"/jobs/{args.job_id}/cancel")
    state = "cancelled" if job["status"] == "CANCELLED" else f"cancel requested (status now {job['status']})"
    print(f"{job['jobId']}: {state}", file=out)
    return 0


MODEL_COLUMNS: Final = (
    ("version", "version"),
    ("approval", "approvalStatus"),
    ("metric", "metric"),
    ("job", "jobId"),
    ("created", "createdAt"),
    ("note", "approvalDescription"),
)


def _models_path(args: argparse.Namespace, version: int | None = None, action: str = "") -> str:
    base = f"/tenants/{args.tenant}/models" if args.tenant else "/models"
    return base + (f"/{version}" if version is not None else "") + action


def _model_row(model: dict[str, Any]) -> dict[str, Any]:
    metrics = model.get("metrics") or {}
    metric = (
        f"{metrics['name']}={metrics['value']:.3f}"
        if metrics.get("name") and metrics.get("value") is not None
        else None
    )
    return model | {"metric": metric}


def _models(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    items = _all_pages(send, _models_path(args), {"limit": "100"})
    print(table([_model_row(model) for model in items], MODEL_COLUMNS), file=out)
    return 0


def _decide(status: str) -> Callable[[argparse.Namespace, Send, TextIO], int]:
    def run(args: argparse.Namespace, send: Send, out: TextIO) -> int:
        body = {"approvalStatus": status} | ({"description": args.description} if args.description else {})
        result = call(send, "POST", _models_path(args, args.version, "/approval"), body=body)
        model = result["model"]
        if result["changed"]:
            change = f"{result['previousStatus']} -> {model['approvalStatus']}"
            if model["approvalStatus"] == "Approved":
                change += " (hand-off event: Model Version Approved, source mlaas.controlplane)"
        else:
            change = f"already {model['approvalStatus']}: nothing changed"
        print(f"version {model['version']} ({model['modelPackageArn']}): {change}", file=out)
        return 0

    return run


def _onboard(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    contract: dict[str, Any] = {
        "targetColumn": args.target_column,
        "problemType": args.problem_type,
        "minRows": args.min_rows,
    }
    if args.feature_columns:
        contract["featureColumns"] = [
            name.strip() for name in args.feature_columns.split(",") if name.strip()
        ]
    if args.target_values:
        contract["targetValues"] = [value.strip() for value in args.target_values.split(",")]
    if args.positive_class is not None:
        contract["positiveClass"] = args.positive_class
    if args.non_finite_as_missing:
        contract["nonFiniteAsMissing"] = True
    body: dict[str, Any] = {
        "tenantId": args.tenant_id,
        "tier": args.tier,
        "metricThreshold": args.metric_threshold,
        "contract": contract,
        "fairShareWeight": args.fair_share_weight,
    }
    if args.max_running_jobs is not None:
        body["maxRunningJobs"] = args.max_running_jobs
    created = call(send, "POST", "/tenants", body=body)
    print(table([created["tenant"]], TENANT_COLUMNS), file=out)
    print(f"API key (shown once): {created['apiKey']}", file=out)
    return 0


def _tenants(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    print(table(_all_pages(send, "/tenants", {"limit": "100"}), TENANT_COLUMNS), file=out)
    return 0


def _account_line(account: dict[str, Any]) -> str:
    return (
        f"account: cap {account['accountCap']}, running {account['running']}, "
        f"guaranteed {account['guaranteed']}"
    )


def _tiers(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    listing = call(send, "GET", "/tiers")
    print(table(listing["items"], TIER_COLUMNS), file=out)
    if listing.get("account"):
        print(_account_line(listing["account"]), file=out)
    return 0


def _tier_limit(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    body = {"concurrencyLimit": args.limit}
    if args.borrow is not None:
        body["borrowingLimit"] = args.borrow
    tier = call(send, "PATCH", f"/tiers/{args.tier}", body=body)
    print(table([tier], TIER_COLUMNS), file=out)
    return 0


def _account_cap(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    print(_account_line(call(send, "PATCH", "/account", body={"accountCap": args.cap})), file=out)
    return 0


def _offboard(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    query = {"immediate": "true"} if args.immediate else None
    report = call(send, "DELETE", f"/tenants/{args.tenant_id}", query=query)
    print(f"tenant {report['tenantId']}: cancelled jobs {len(report['cancelledJobs'])}", file=out)
    if report["deleted"]:
        rows = [{"kind": kind, "removed": count} for kind, count in sorted(report["removed"].items())]
        print(table(rows, (("removed", "kind"), ("count", "removed"))), file=out)
    else:
        print(f"suspended; data kept until {report['deleteAfter']} (use --immediate to delete now)", file=out)
    return 0


def _keys_path(args: argparse.Namespace, key_id: str | None = None, action: str = "") -> str:
    """/keys (the caller's own: a tenant's keys, or with an operator key the operator keys), or an operator's
    /tenants/<id>/keys for --tenant."""
    base = f"/tenants/{args.tenant}/keys" if args.tenant else "/keys"
    return base + (f"/{key_id}" if key_id else "") + action


def _keys_list(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    print(table(_all_pages(send, _keys_path(args), {"limit": "100"}), KEY_COLUMNS), file=out)
    return 0


def _lifetime(args: argparse.Namespace) -> dict[str, int]:
    return {"expiresInSeconds": args.expires_in_days * 86400} if args.expires_in_days else {}


def _secret_lines(created: dict[str, Any], out: TextIO) -> None:
    print(table([created["key"]], KEY_COLUMNS), file=out)
    print(f"API key (shown once): {created['apiKey']}", file=out)


def _keys_create(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    _secret_lines(call(send, "POST", _keys_path(args), body=_lifetime(args)), out)
    return 0


def _keys_rotate(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    body = _lifetime(args) | ({"graceSeconds": args.grace_seconds} if args.grace_seconds is not None else {})
    rotated = call(send, "POST", _keys_path(args, args.key_id, "/rotate"), body=body)
    old = rotated["oldKey"]
    print(f"{old['keyId']} rotated: it keeps working until {old['expiresAt']}; its replacement:", file=out)
    _secret_lines(rotated, out)
    return 0


def _keys_revoke(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    key = call(send, "DELETE", _keys_path(args, args.key_id))
    print(
        f"{key['keyId']} ({key['prefix']}…) revoked at {key['revokedAt']}: it fails from the next request on",
        file=out,
    )
    return 0


def _change(event: dict[str, Any]) -> str:
    before, after = event.get("before") or {}, event.get("after") or {}
    parts = [
        f"{name} {json.dumps(before[name])} -> {json.dumps(value)}"
        if name in before
        else f"{name} {json.dumps(value)}"
        for name, value in after.items()
    ]
    return "; ".join(parts) or "-"


def _audit(args: argparse.Namespace, send: Send, out: TextIO) -> int:
    query = {"limit": str(args.limit)}
    events = (
        _all_pages(send, "/audit", query) if args.all else call(send, "GET", "/audit", query=query)["items"]
    )
    rows = [
        event | {"actor": f"{event['actorKeyId']} ({event['actorRole']})", "change": _change(event)}
        for event in events
    ]
    print(table(rows, AUDIT_COLUMNS), file=out)
    return 0


DLQ_COLUMNS: Final = (
    ("queue", "queue"),
    ("visible", "visible"),
    ("in flight", "inFlight"),
    ("oldest", "oldest"),
    ("redrive to", "source"),
)
PEEK_COLUMNS: Final = (
    ("message", "messageId"),
    ("age", "age"),
    ("receives", "receives"),
    ("job", "jobId"),
    ("tenant", "tenantId"),
    ("what", "kind"),
    ("detail", "detail"),
)


class _Boto3Clients:
    def __init__(self, endpoint_url: str | None, region: str | None) -> None:
        self._endpoint_url = endpoint_url
        self._region = region
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        import boto3  # noqa: PLC0415 - only the dlq commands need it

        if service not in self._clients:
            self._clients[service] = boto3.client(  # type: ignore[call-overload]
                service, endpoint_url=self._endpoint_url, region_name=self._region
            )
        return self._clients[service]


def _dlq_source(queue: dead_letters.DeadLetterQueue) -> str:
    if queue.source_urls:
        return ", ".join(url.rsplit("/", 1)[-1] for url in queue.source_urls)
    return "replay to its target"


def _dlq_list(args: argparse.Namespace, clients: dead_letters.Clients, out: TextIO) -> int:
    queues = dead_letters.dead_letter_queues(clients, args.stack)
    if not queues:
        print(f"no dead-letter queues found for stack {args.stack}", file=out)
        return 1
    inspections = [dead_letters.inspect(clients, queue, peek=args.peek) for queue in queues]
    rows = [
        {
            "queue": item.queue.logical_id,
            "visible": item.visible,
            "inFlight": item.in_flight,
            "oldest": dead_letters.age_text(item.oldest_age_seconds),
            "source": _dlq_source(item.queue),
        }
        for item in inspections
    ]
    print(table(rows, DLQ_COLUMNS), file=out)
    now = time.time()
    for item in inspections:
        if not item.peeked:
            continue
        shown = f"{len(item.peeked)} of {item.visible}" if item.visible > len(item.peeked) else "all"
        print(f"\n{item.queue.logical_id} ({item.queue.name}): oldest first, {shown}", file=out)
        peeked = [
            {
                "messageId": message.message_id,
                "age": dead_letters.age_text(now - message.sent_at if message.sent_at else None),
                "receives": message.receive_count,
                "jobId": message.job_id,
                "tenantId": message.tenant_id,
                "kind": message.kind,
                "detail": message.detail,
            }
            for message in item.peeked
        ]
        print(table(peeked, PEEK_COLUMNS), file=out)
    return 0


def _dlq_redrive(args: argparse.Namespace, clients: dead_letters.Clients, out: TextIO) -> int:
    queue = dead_letters.find_queue(dead_letters.dead_letter_queues(clients, args.stack), args.queue)
    report = dead_letters.redrive(clients, queue, out, limit=args.max)
    if report.move_task is None:
        print(f"{queue.logical_id}: {report.moved} moved back, {report.kept} kept", file=out)
    return 0 if report.kept == 0 else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="mlaas", description=__doc__.split("\n\n")[0] if __doc__ else None)
    root.add_argument("--url", default=os.environ.get("MLAAS_API_URL"), help="API base URL (MLAAS_API_URL)")
    root.add_argument("--key", default=os.environ.get("MLAAS_API_KEY"), help="API key (MLAAS_API_KEY)")
    commands = root.add_subparsers(dest="command", required=True)

    jobs = commands.add_parser("jobs", help="my jobs, newest first (tenant)")
    jobs.add_argument("--status", help="only jobs with this status")
    jobs.add_argument(
        "--watch", action="store_true", help="refresh until there is a job and every listed job has finished"
    )
    jobs.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    jobs.set_defaults(run=_jobs)

    job = commands.add_parser(
        "job",
        help="one job: its timeline, model, metrics, steps and cost, and why it waits or failed "
        "(tenant; operator with --tenant)",
    )
    job.add_argument("job_id")
    job.add_argument("--tenant", help="the job's tenant (operator key): names the tenants ahead of it")
    job.set_defaults(run=_job)

    usage = commands.add_parser(
        "usage",
        help="usage by month: a tenant's own months (tenant key); --operator --month: every tenant of a "
        "month, costliest first; --tenant: one tenant's months (operator key)",
    )
    usage.add_argument("--month", help="YYYY-MM")
    usage.add_argument("--operator", action="store_true", help="with --month: every tenant (operator key)")
    usage.add_argument("--tenant", help="one tenant's months (operator key)")
    usage.set_defaults(run=_usage)

    cancel = commands.add_parser("cancel", help="cancel one of my jobs (tenant)")
    cancel.add_argument("job_id")
    cancel.set_defaults(run=_cancel)

    models = commands.add_parser(
        "models", help="my model versions: approval, metric, building job (tenant; --tenant: operator)"
    )
    models.add_argument("--tenant", help="a tenant's versions (operator)")
    models.set_defaults(run=_models)
    for name, status, what in (
        ("approve", "Approved", "hand a version off to deployment"),
        ("reject", "Rejected", "reject a version"),
    ):
        decide = commands.add_parser(name, help=f"{what} (tenant; --tenant: operator)")
        decide.add_argument("version", type=int)
        decide.add_argument("--description", help="why (kept as the version's ApprovalDescription)")
        decide.add_argument("--tenant", help="a tenant's version (operator)")
        decide.set_defaults(run=_decide(status))

    onboard = commands.add_parser("onboard", help="onboard a tenant; prints its API key once (operator)")
    onboard.add_argument("tenant_id")
    onboard.add_argument("--tier", choices=["basic", "standard", "premium"], required=True)
    onboard.add_argument("--target-column", required=True)
    onboard.add_argument("--problem-type", choices=["binary_classification", "regression"], required=True)
    onboard.add_argument("--min-rows", type=int, default=50)
    onboard.add_argument("--metric-threshold", type=float, required=True)
    onboard.add_argument("--feature-columns", help="comma-separated; default: every other column")
    onboard.add_argument("--target-values", help="binary: the two labels, comma-separated (e.g. yes,no)")
    onboard.add_argument("--positive-class", help="binary: the positive label")
    onboard.add_argument(
        "--non-finite-as-missing", action="store_true", help="NaN and infinity count as missing, not errors"
    )
    onboard.add_argument(
        "--fair-share-weight", type=float, default=1.0, help="its share of the tier (default 1)"
    )
    onboard.add_argument("--max-running-jobs", type=int, help="at most this many of its jobs run at once")
    onboard.set_defaults(run=_onboard)

    commands.add_parser("tenants", help="every tenant (operator)").set_defaults(run=_tenants)
    commands.add_parser("tiers", help="every tier: limit, running, queued (operator)").set_defaults(
        run=_tiers
    )

    tier_limit = commands.add_parser(
        "tier-limit",
        help="change a tier's guaranteed slots (and with --borrow, its borrowing limit) (operator)",
    )
    tier_limit.add_argument("tier", choices=["basic", "standard", "premium"])
    tier_limit.add_argument("limit", type=int)
    tier_limit.add_argument(
        "--borrow", type=int, help="slots it may borrow from other tiers' idle guarantees"
    )
    tier_limit.set_defaults(run=_tier_limit)
    account_cap = commands.add_parser(
        "account-cap", help="change the cap on pipelines running at once across all tiers (operator)"
    )
    account_cap.add_argument("cap", type=int)
    account_cap.set_defaults(run=_account_cap)

    offboard = commands.add_parser("offboard", help="offboard a tenant (operator)")
    offboard.add_argument("tenant_id")
    offboard.add_argument("--immediate", action="store_true", help="delete its data now")
    offboard.set_defaults(run=_offboard)

    keys = commands.add_parser(
        "keys",
        help="API keys: a tenant key manages its own; an operator key the operator keys, or with --tenant a "
        "tenant's",
    )
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    key_list = key_commands.add_parser(
        "list", help="keys, newest first: id, prefix, state, created, last used, expiry"
    )
    key_create = key_commands.add_parser("create", help="a new key; prints its secret once")
    key_rotate = key_commands.add_parser(
        "rotate", help="a new key (secret printed once); the old one works until the grace period ends"
    )
    key_revoke = key_commands.add_parser("revoke", help="revoke a key: it fails from the next request on")
    for command, run in (
        (key_list, _keys_list),
        (key_create, _keys_create),
        (key_rotate, _keys_rotate),
        (key_revoke, _keys_revoke),
    ):
        command.add_argument("--tenant", help="a tenant's keys (operator)")
        command.set_defaults(run=run)
    for command in (key_rotate, key_revoke):
        command.add_argument("key_id", help="the key's id (key-...), as keys list shows it")
    for command in (key_create, key_rotate):
        command.add_argument(
            "--expires-in-days", type=int, help="the new key's lifetime (default: the role's)"
        )
    key_rotate.add_argument(
        "--grace-seconds", type=int, help="how long the old key keeps working (default 86400: 24 h)"
    )

    audit = commands.add_parser("audit", help="the audit trail, newest first: who did what, when (operator)")
    audit.add_argument("--limit", type=int, default=25, help="events per page (default 25)")
    audit.add_argument("--all", action="store_true", help="every page, not only the newest")
    audit.set_defaults(run=_audit)

    dlq = commands.add_parser(
        "dlq", help="what the stack's dead-letter queues hold; redrive one (AWS credentials, not the API)"
    )
    dlq.add_argument(
        "--stack", default=os.environ.get("MLAAS_STACK", "mlaas-local"), help="stack name (MLAAS_STACK)"
    )
    dlq.add_argument(
        "--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"), help="e.g. http://127.0.0.1:4566"
    )
    dlq.add_argument("--region", default=None)
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)
    dlq_list = dlq_commands.add_parser("list", help="every DLQ: counts, oldest, a peek (deletes nothing)")
    dlq_list.add_argument("--peek", type=int, default=5, help="messages shown per queue")
    dlq_list.set_defaults(run=_dlq_list, aws=True)
    dlq_redrive = dlq_commands.add_parser(
        "redrive", help="move a DLQ's messages back to their source queue, or replay them to their target"
    )
    dlq_redrive.add_argument("queue", help="e.g. BasicDeadLetterQueue, basic, or the queue's name or URL")
    dlq_redrive.add_argument("--max", type=int, help="at most this many messages (moved one by one)")
    dlq_redrive.set_defaults(run=_dlq_redrive, aws=True)
    return root


def main(
    argv: Sequence[str] | None = None,
    *,
    send: Send | None = None,
    out: TextIO | None = None,
    clients: dead_letters.Clients | None = None,
) -> int:
    out = out or sys.stdout  # looked up per call: whoever redirected stdout since import gets the output
    args = parser().parse_args(argv)
    if getattr(args, "aws", False):
        aws_run: Callable[[argparse.Namespace, dead_letters.Clients, TextIO], int] = args.run
        try:
            return aws_run(args, clients or _Boto3Clients(args.endpoint_url, args.region), out)
        except (ClientError, BotoCoreError, LookupError) as error:
            print(f"mlaas: {error}", file=sys.stderr)
            return 1
    if send is None:
        if not args.url or not args.key:
            print("mlaas: give --url and --key (or MLAAS_API_URL and MLAAS_API_KEY)", file=sys.stderr)
            return 2
        send = http_sender(args.url, args.key)
    run: Callable[[argparse.Namespace, Send, TextIO], int] = args.run
    try:
        return run(args, send, out)
    except ApiError as error:
        print(f"mlaas: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
