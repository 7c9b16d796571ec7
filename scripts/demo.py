"""`make demo`: the whole upload-to-pipeline loop on one machine.

Starts the local emulator, deploys template.yaml and the state machine into it, onboards one
tenant per tier, uploads the sample datasets (two invalid, one too weak to pass its tenant's
metric threshold), shows live progress and ends with a per-tier and per-tenant summary (limits,
admissions, maximum running, rejections, registered model versions and their metrics), also
written to build/demo-summary.json.

Everything runs for real in the emulator: S3 → EventBridge → Step Functions, the Lambda handlers
in worker processes, DynamoDB, SQS, and the shared pipeline, whose step scripts (preprocess,
train, evaluate) run as subprocesses with SageMaker's container conventions and register real
model versions. What is emulated is the SageMaker service around them (placing steps on
instances); `--simulated-pipeline` swaps in a runner that runs no step, for a quick look.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Literal

from localcloud import LocalCloud
from localcloud.__main__ import console_mounts
from localcloud.console import ConsoleServer
from scripts import cli, gate_picture
from scripts.api_keys import create_operator_key
from scripts.demo_handoff import approve_one_model
from scripts.jobs import TERMINAL, max_concurrent_slots, registered_models, status_counts, tenant_jobs
from scripts.local import console_link
from scripts.sample_data import SAMPLE_TENANTS, SampleTenant, demo_uploads

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_PATH = ROOT / "build" / "demo-summary.json"
# Logs and recorded calls of the demo's emulator; `make local` keeps its own in .localcloud/local.
STATE_DIR = ROOT / ".localcloud" / "demo"
GATE_PICTURE_PATH = ROOT / "build" / "demo-gate.svg"
STATUS_COLUMNS = ("RECEIVED", "VALIDATED", "QUEUED", "ADMITTED", "RUNNING", "SUCCEEDED", "FAILED", "REJECTED")


def _progress_table(jobs_by_tenant: dict[str, list[dict[str, Any]]], elapsed: float) -> str:
    header = f"{'t+' + format(elapsed, '.1f') + 's':>8} {'tenant (tier)':<28}" + "".join(
        f"{c[:9]:>10}" for c in STATUS_COLUMNS
    )
    lines = [header]
    for tenant in SAMPLE_TENANTS:
        counts = status_counts(jobs_by_tenant.get(tenant.tenant_id, []))
        label = f"{tenant.tenant_id} ({tenant.tier})"
        lines.append(f"{'':>8} {label:<28}" + "".join(f"{counts.get(c, 0):>10}" for c in STATUS_COLUMNS))
    return "\n".join(lines)


def _summary(
    limits: dict[str, int],
    jobs_by_tenant: dict[str, list[dict[str, Any]]],
    executions: int,
    models_by_tenant: dict[str, list[dict[str, Any]]],
    runner: str,
) -> dict[str, Any]:
    tiers: dict[str, Any] = {}
    for tenant in SAMPLE_TENANTS:
        jobs = jobs_by_tenant[tenant.tenant_id]
        tiers[tenant.tier] = {
            "tenant": tenant.tenant_id,
            "limit": limits[tenant.tier],
            "uploaded": len(jobs),
            "admitted": sum(1 for j in jobs if j.get("admittedAt")),
            "maxRunningObserved": max_concurrent_slots(jobs),
            "statuses": dict(status_counts(jobs)),
            "rejected": [
                {"key": j["key"], "reasons": j.get("reasons", [])} for j in jobs if j["status"] == "REJECTED"
            ],
            "failed": [
                {"key": j["key"], "reasons": j.get("reasons", [])} for j in jobs if j["status"] == "FAILED"
            ],
            "allTerminal": all(j["status"] in TERMINAL for j in jobs),
            "models": models_by_tenant[tenant.tenant_id],
        }
    return {"tiers": tiers, "pipelineExecutions": executions, "pipelineRunner": runner}


def _print_summary(summary: dict[str, Any], executions: int, runner: str) -> bool:
    """The per-tier, per-tenant summary; True when every figure is as it must be."""
    print("\nSummary (every status below was written to DynamoDB by the state machine):")
    print(f"  {'tier':<9}{'limit':>6}{'uploaded':>10}{'admitted':>10}{'max running':>13}  statuses")
    ok = True
    for tier, figures in summary["tiers"].items():
        print(
            f"  {tier:<9}{figures['limit']:>6}{figures['uploaded']:>10}{figures['admitted']:>10}"
            f"{figures['maxRunningObserved']:>13}  {figures['statuses']}"
        )
        ok &= figures["maxRunningObserved"] <= figures["limit"] and figures["allTerminal"]
    for tier, figures in summary["tiers"].items():
        for closed, label in ((figures["rejected"], "rejected"), (figures["failed"], "failed")):
            for job in closed:
                print(f"  {label} [{tier}] {job['key']}:")
                for reason in job["reasons"]:
                    print(f"      - {reason}")
    print("\nRegistered model versions (PendingManualApproval), with the metric the pipeline gated on:")
    for figures in summary["tiers"].values():
        for model in figures["models"]:
            metric = model["metric"]
            print(
                f"  {figures['tenant']:<16} v{model['version']:<3} {metric.get('name', '?')}="
                f"{metric.get('value', float('nan')):.3f}  job {model['jobId']}"
            )
        if not figures["models"]:
            print(f"  {figures['tenant']:<16} (none)")
    admitted = sum(f["admitted"] for f in summary["tiers"].values())
    print(f"  pipeline executions started: {executions} (one per admitted job: {admitted})")
    ok &= executions == admitted
    if runner == "executing":
        succeeded = sum(f["statuses"].get("SUCCEEDED", 0) for f in summary["tiers"].values())
        registered = sum(len(f["models"]) for f in summary["tiers"].values())
        print(f"  model versions registered: {registered} (one per succeeded build: {succeeded})")
        ok &= registered == succeeded
        failed = [job for f in summary["tiers"].values() for job in f["failed"]]
        below_threshold = [job for job in failed if "threshold" in " ".join(job["reasons"])]
        ok &= len(below_threshold) == 1
    return bool(ok)


def _hand_off_one_model(
    api_url: str, cloud: LocalCloud, tenant_keys: dict[str, str], summary: dict[str, Any]
) -> bool:
    """Approve one registered model through the API, as its tenant, and show its hand-off event
    (scripts/demo_handoff)."""
    tenant_id = next((figures["tenant"] for figures in summary["tiers"].values() if figures["models"]), None)
    if tenant_id is None:
        print("\nFAILED: no model version was registered, so none could be approved", file=sys.stderr)
        return False
    summary["handoff"], ok = approve_one_model(cloud, api_url, tenant_id, tenant_keys[tenant_id])
    return ok


def _onboarding_request(tenant: SampleTenant) -> dict[str, Any]:
    return {
        "tenantId": tenant.tenant_id,
        "tier": tenant.tier,
        "metricThreshold": tenant.metric_threshold,
        "contract": {
            "targetColumn": tenant.target_column,
            "featureColumns": list(tenant.feature_columns),
            "problemType": tenant.problem_type,
            "minRows": tenant.min_rows,
        },
    }


def _through_the_api(
    api_url: str, operator: cli.Send, tenant_keys: dict[str, str]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every sample tenant's jobs (with their model, metrics and cost) and its usage this month, read through
    the status API with the tenant's own key, and the operator's view of the month."""
    jobs: list[dict[str, Any]] = []
    usage: dict[str, Any] = {}
    months: set[str] = set()
    for tenant in SAMPLE_TENANTS:
        send = cli.http_sender(api_url, tenant_keys[tenant.tenant_id])
        for job in cli._all_pages(send, "/jobs", {"limit": "100"}):
            cost = job.get("cost") or {}
            months.add(cost.get("month", ""))
            jobs.append(
                {
                    "job_id": job["jobId"],
                    "tenant_id": tenant.tenant_id,
                    "status": job["status"],
                    "model_package_arn": job.get("modelPackageArn"),
                    "model_package_version": job.get("modelPackageVersion"),
                    "metrics": job.get("metrics") or {},
                    "billable_seconds": job.get("billableSeconds"),
                    "cost_usd": job.get("costUsd"),
                    "month": cost.get("month"),
                    "failed_step": (job.get("results") or {}).get("failedStep"),
                    "key": job.get("key"),
                }
            )
        for month in cli._all_pages(send, "/usage", {"limit": "100"}):
            usage.setdefault(tenant.tenant_id, {})[month["month"]] = {
                "jobs": month["jobs"],
                "instance_hours": month["instanceHours"],
                "cost_usd": month["costUsd"],
            }
    operator_view = {
        month: cli._all_pages(operator, "/usage", {"month": month, "limit": "100"})
        for month in sorted(months - {""})
    }
    return jobs, {"byTenant": usage, "operator": operator_view}


def _check_builds(jobs: list[dict[str, Any]], usage: dict[str, Any], *, models: bool) -> list[str]:
    """What must hold of what the API reports: every SUCCEEDED job has its model and metrics (``models``: a
    SIMULATED pipeline trains none) and a cost above 0; each tenant's month equals the sum of its jobs'
    costs; the operator's view equals the tenants'."""
    problems = [
        f"{job['job_id']} ({job['tenant_id']}) SUCCEEDED without {what}"
        for job in jobs
        if job["status"] == "SUCCEEDED"
        for what, missing in (
            ("a model package ARN", models and not job["model_package_arn"]),
            ("metrics", models and not job["metrics"]),
            ("a cost above 0", not (job["cost_usd"] or 0) > 0),
        )
        if missing
    ]
    for tenant in SAMPLE_TENANTS:
        counted = [
            job for job in jobs if job["tenant_id"] == tenant.tenant_id and job["cost_usd"] is not None
        ]
        for month in {job["month"] for job in counted}:
            expected = round(sum(job["cost_usd"] for job in counted if job["month"] == month), 8)
            number = sum(1 for job in counted if job["month"] == month)
            got = usage["byTenant"].get(tenant.tenant_id, {}).get(month, {})
            if round(got.get("cost_usd", -1.0), 8) != expected or got.get("jobs") != number:
                problems.append(
                    f"{tenant.tenant_id} {month}: usage {got} is not its {number} jobs' ${expected}"
                )
    for month, rows in usage["operator"].items():
        listed = {row["tenantId"]: row["costUsd"] for row in rows}
        own = {t: months[month]["cost_usd"] for t, months in usage["byTenant"].items() if month in months}
        if listed != own:
            problems.append(f"the operator's {month} {listed} differs from the tenants' own usage {own}")
        if [row["costUsd"] for row in rows] != sorted((row["costUsd"] for row in rows), reverse=True):
            problems.append(f"the operator's {month} is not costliest first")
    return problems


def _print_builds(jobs: list[dict[str, Any]], usage: dict[str, Any]) -> None:
    print(
        "\nBuilds, read through the API (model, the metric it was gated on, billable instance-seconds, cost):"
    )
    print(f"  {'tenant':<16} {'status':<10} {'model':<6} {'metrics':<40} {'billable s':>10} {'cost USD':>11}")
    for job in sorted(jobs, key=lambda j: (j["tenant_id"], j["status"], j["job_id"])):
        if job["cost_usd"] is None:
            continue  # never ran a pipeline (rejected): nothing was built or billed
        metrics = ", ".join(f"{k}={v:.3f}" for k, v in sorted(job["metrics"].items())[:3]) or (
            f"failed at {job['failed_step']}" if job["failed_step"] else "-"
        )
        version = f"v{job['model_package_version']}" if job["model_package_version"] else "-"
        print(
            f"  {job['tenant_id']:<16} {job['status']:<10} {version:<6} {metrics:<40} "
            f"{job['billable_seconds'] or 0:>10.1f} {job['cost_usd']:>11.6f}"
        )
    print("\nUsage this month per tenant (GET /usage with each tenant's key; atomic counters, once per job):")
    for tenant_id, months in usage["byTenant"].items():
        for month, figures in months.items():
            print(
                f"  {tenant_id:<16} {month}  jobs {figures['jobs']:>2}  instance-hours "
                f"{figures['instance_hours']:.4f}  ${figures['cost_usd']:.6f}"
            )
    print(
        "  (estimates at list prices: billable instance-seconds x the instance's price + the control plane's "
        "share; locally, no spot market, so no spot savings)"
    )


def draw_gate(
    dynamodb: Any,
    tiers_table: str,
    tier_items: dict[str, Any],
    jobs_by_tenant: dict[str, list[dict[str, Any]]],
) -> gate_picture.GateData:
    """Slots over time per tier (scripts/gate_picture.py) from the jobs' records, in build/demo-gate.svg."""
    account = dynamodb.get_item(TableName=tiers_table, Key={"tier": {"S": "account"}})["Item"]
    data = gate_picture.write(
        GATE_PICTURE_PATH,
        [job for jobs in jobs_by_tenant.values() for job in jobs],
        gate_picture.limits_from_items(tier_items),
        int(account["accountCap"]["N"]),
        title="make demo: slots over time per tier (one tenant per tier, the real pipeline)",
    )
    verdict = "no limit crossed" if not data.crossings else "; ".join(data.crossings)
    print(
        f"\nGate picture written to {GATE_PICTURE_PATH.relative_to(ROOT)}: {verdict}, "
        f"{data.borrowed_admissions} admissions on borrowed slots"
    )
    return data


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--simulated-pipeline", action="store_true", help="run no pipeline step: executions just succeed"
    )
    parser.add_argument("--pipeline-seconds", type=float, default=3.0, help="simulated pipeline duration")
    parser.add_argument("--timeout", type=float, default=480.0, help="give up after this many seconds")
    parser.add_argument(
        "--console-port",
        type=int,
        default=4568,
        help="serve the operator console here (a free port instead when `make local` holds it)",
    )
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="after the summary, keep the emulator and the console running until Ctrl-C",
    )
    args = parser.parse_args()
    runner: Literal["simulated", "executing"] = "simulated" if args.simulated_pipeline else "executing"

    print("Starting the local emulator (moto server on loopback) and deploying template.yaml ...")
    with LocalCloud(
        port=0, state_dir=STATE_DIR, pipeline_runner=runner, pipeline_delay_seconds=args.pipeline_seconds
    ) as cloud:
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-demo")
        outputs = stack.outputs
        print(
            f"  stack deployed: {len(stack.resource_types)} resources; "
            f"uploads bucket {outputs['UploadsBucketName']}; function logs in "
            f"{STATE_DIR.relative_to(ROOT)}/logs"
        )
        console = _console(args.console_port, str(outputs["StatusApiUrl"]))
        link = console_link(console.url, create_operator_key(cloud, outputs))
        print(
            f"  watch it in the operator console: {link}"
            + ("" if args.keep_running else "\n  (it stops with the demo: --keep-running keeps it up)")
        )
        if runner == "simulated":
            print(
                "  NOTE: the SageMaker pipeline runner is SIMULATED: each execution runs no step, finishes "
                f"after {args.pipeline_seconds:.1f}s and emits the real status-change event.\n"
            )
        else:
            print(
                "  The shared pipeline runs for real: its step scripts train and evaluate each tenant's "
                "model as subprocesses\n  (SageMaker container conventions); the SageMaker service around "
                "them is emulated.\n"
            )

        dynamodb, s3 = cloud.client("dynamodb"), cloud.client("s3")
        # Onboarded through the status API, as an operator would: each tenant's key is what reads its jobs.
        api_url = cloud.api_url(stack, "ControlPlaneApi")
        operator = cli.http_sender(api_url, create_operator_key(cloud, outputs))
        tenant_keys: dict[str, str] = {}
        for tenant in SAMPLE_TENANTS:
            created = cli.call(operator, "POST", "/tenants", body=_onboarding_request(tenant))
            tenant_keys[tenant.tenant_id] = created["apiKey"]
            role = created["tenant"]["roleArn"]
            print(f"  onboarded {tenant.tenant_id:<16} tier={tenant.tier:<9} role={role}")
        # A tier's limit: its guaranteed slots plus what it may borrow from other tiers' idle guarantees.
        tiers_table = outputs["TiersTableName"]
        settings = {
            t.tier: dynamodb.get_item(TableName=tiers_table, Key={"tier": {"S": t.tier}})["Item"]
            for t in SAMPLE_TENANTS
        }
        limits = {
            tier: int(item["concurrencyLimit"]["N"]) + int(item.get("borrowingLimit", {"N": "0"})["N"])
            for tier, item in settings.items()
        }
        uploads = demo_uploads()
        print(
            f"\nUploading {len(uploads)} datasets (2 invalid, 1 too weak to pass its tenant's threshold); "
            f"tier limits (guaranteed + borrowable) {limits}\n"
        )
        for upload in uploads:
            s3.put_object(
                Bucket=outputs["UploadsBucketName"],
                Key=f"tenants/{upload.tenant_id}/uploads/{upload.name}",
                Body=upload.body,
            )

        started, last_table = time.monotonic(), ""
        jobs_by_tenant: dict[str, list[dict[str, Any]]] = {}
        while True:
            jobs_by_tenant = {
                t.tenant_id: tenant_jobs(dynamodb, outputs["JobsTableName"], t.tenant_id)
                for t in SAMPLE_TENANTS
            }
            elapsed = time.monotonic() - started
            table = _progress_table(jobs_by_tenant, elapsed)
            if table.split("\n", 1)[1] != last_table.split("\n", 1)[-1]:
                print(table, flush=True)
                last_table = table
            every = [j for jobs in jobs_by_tenant.values() for j in jobs]
            if len(every) == len(uploads) and all(j["status"] in TERMINAL for j in every):
                break
            if elapsed > args.timeout:
                print(f"\nTimed out after {args.timeout:.0f}s with jobs still open.", file=sys.stderr)
                break
            time.sleep(0.5)

        executions = len(
            cloud.client("sagemaker").list_pipeline_executions(
                PipelineName=outputs["TrainingPipelineName"], MaxResults=100
            )["PipelineExecutionSummaries"]
        )
        models = {t.tenant_id: registered_models(cloud, f"{t.tenant_id}-models") for t in SAMPLE_TENANTS}
        summary = _summary(limits, jobs_by_tenant, executions, models, runner)
        built, usage = _through_the_api(api_url, operator, tenant_keys)
        summary["jobs"] = built
        summary["usage"] = {
            tenant_id: {"month": month, **figures}
            for tenant_id, months in usage["byTenant"].items()
            for month, figures in sorted(months.items())[-1:]
        }
        summary["usageOperatorView"] = usage["operator"]
        handoff_ok = runner == "simulated" or _hand_off_one_model(api_url, cloud, tenant_keys, summary)
        gate = draw_gate(dynamodb, tiers_table, settings, jobs_by_tenant)
        # Every AWS call the functions and the state machine made, against their roles' statements.
        permissions = cloud.permission_report()
        summary["permissions"] = {
            "callsChecked": permissions.calls_checked,
            "deniedCalls": permissions.denied_calls,
            "unmappedCalls": permissions.unmapped_calls,
            "callsByPrincipal": {p.principal: p.calls for p in permissions.principals},
        }
        ok = (
            _report(summary, executions, runner, permissions, built=built, usage=usage, gate=gate)
            and handoff_ok
        )
        if args.keep_running:
            print(f"\nThe emulator and the console ({console.url}) keep running: Ctrl-C stops them.")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                print()
        console.close()
    return 0 if ok else 1


def _console(port: int, api_url: str) -> ConsoleServer:
    mounts = console_mounts(ROOT / "template.yaml", ROOT / "console")
    try:
        return ConsoleServer(mounts, api_url, port=port)
    except OSError:  # `make local` holds the port: any free one
        return ConsoleServer(mounts, api_url, port=0)


def _report(
    summary: dict[str, Any],
    executions: int,
    runner: str,
    permissions: Any,
    *,
    built: list[dict[str, Any]],
    usage: dict[str, Any],
    gate: gate_picture.GateData,
) -> bool:
    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    ok = _print_summary(summary, executions, runner)
    _print_builds(built, usage)
    problems = _check_builds(built, usage, models=runner == "executing")
    for problem in problems:
        print(f"  PROBLEM: {problem}", file=sys.stderr)
    ok &= not problems
    print()
    print("\n".join(permissions.summary_lines()))
    ok &= permissions.ok and not gate.crossings
    print(f"\nSummary written to {SUMMARY_PATH.relative_to(ROOT)}")
    verdict = (
        "every job terminal, no tier above its limit, every built model with its metrics and cost, "
        "usage equal to the sum of its jobs, every AWS call allowed"
    )
    print("RESULT: " + (verdict if ok else "FAILED: see above"))
    return bool(ok)


if __name__ == "__main__":
    sys.exit(main())
