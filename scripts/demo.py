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
from scripts import gate_picture
from scripts.jobs import TERMINAL, max_concurrent_slots, registered_models, status_counts, tenant_jobs
from scripts.sample_data import SAMPLE_TENANTS, demo_uploads
from scripts.tenants import onboard

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_PATH = ROOT / "build" / "demo-summary.json"
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
    args = parser.parse_args()
    runner: Literal["simulated", "executing"] = "simulated" if args.simulated_pipeline else "executing"

    print("Starting the local emulator (moto server on loopback) and deploying template.yaml ...")
    with LocalCloud(port=0, pipeline_runner=runner, pipeline_delay_seconds=args.pipeline_seconds) as cloud:
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-demo")
        outputs = stack.outputs
        print(
            f"  stack deployed: {len(stack.resource_types)} resources; "
            f"uploads bucket {outputs['UploadsBucketName']}"
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
        for tenant in SAMPLE_TENANTS:
            record = onboard(cloud, outputs, tenant)
            print(f"  onboarded {tenant.tenant_id:<16} tier={tenant.tier:<9} role={record['roleArn']}")
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
        gate = draw_gate(dynamodb, tiers_table, settings, jobs_by_tenant)
        # Every AWS call the functions and the state machine made, against their roles' statements.
        permissions = cloud.permission_report()
        summary["permissions"] = {
            "callsChecked": permissions.calls_checked,
            "deniedCalls": permissions.denied_calls,
            "unmappedCalls": permissions.unmapped_calls,
            "callsByPrincipal": {p.principal: p.calls for p in permissions.principals},
        }

    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    ok = _print_summary(summary, executions, runner)
    print()
    print("\n".join(permissions.summary_lines()))
    ok &= permissions.ok and not gate.crossings
    print(f"\nSummary written to {SUMMARY_PATH.relative_to(ROOT)}")
    verdict = "every job terminal, no tier above its limit, every AWS call allowed"
    print("RESULT: " + (verdict if ok else "FAILED: see above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
