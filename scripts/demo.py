"""`make demo`: the whole upload-to-pipeline loop on one machine.

Starts the local emulator, deploys template.yaml and the state machine into it, onboards one
tenant per tier, uploads the sample datasets (two of them invalid), shows live progress and ends
with a per-tier summary, also written to build/demo-summary.json.

Everything below runs for real in the emulator (S3 → EventBridge → Step Functions, the Lambda
handlers in worker processes, DynamoDB, SQS) except the SageMaker pipeline, which moto cannot
run: a simulated runner finishes each execution after a delay and emits the real status-change
event. The output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from localcloud import LocalCloud
from scripts.jobs import TERMINAL, max_concurrent_slots, status_counts, tenant_jobs
from scripts.sample_data import SAMPLE_TENANTS, demo_uploads
from scripts.tenants import onboard

ROOT = Path(__file__).resolve().parents[1]
SUMMARY_PATH = ROOT / "build" / "demo-summary.json"
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
    limits: dict[str, int], jobs_by_tenant: dict[str, list[dict[str, Any]]], executions: int
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
            "allTerminal": all(j["status"] in TERMINAL for j in jobs),
        }
    return {
        "tiers": tiers,
        "pipelineExecutions": executions,
        "pipelineRunner": "simulated (moto cannot run SageMaker pipelines); every other part ran for real",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--pipeline-seconds", type=float, default=3.0, help="simulated pipeline duration")
    parser.add_argument("--timeout", type=float, default=240.0, help="give up after this many seconds")
    args = parser.parse_args()

    print("Starting the local emulator (moto server on loopback) and deploying template.yaml ...")
    with LocalCloud(port=0, pipeline_delay_seconds=args.pipeline_seconds) as cloud:
        stack = cloud.deploy(ROOT / "template.yaml", stack_name="mlaas-demo")
        outputs = stack.outputs
        print(
            f"  stack deployed: {len(stack.resource_types)} resources; "
            f"uploads bucket {outputs['UploadsBucketName']}"
        )
        print(
            "  NOTE: the SageMaker pipeline runner is SIMULATED: each execution finishes after "
            f"{args.pipeline_seconds:.1f}s and emits the real status-change event.\n"
        )

        dynamodb, s3 = cloud.client("dynamodb"), cloud.client("s3")
        for tenant in SAMPLE_TENANTS:
            record = onboard(cloud, outputs, tenant)
            print(f"  onboarded {tenant.tenant_id:<16} tier={tenant.tier:<9} role={record['roleArn']}")
        limits = {
            t.tier: int(
                dynamodb.get_item(TableName=outputs["TiersTableName"], Key={"tier": {"S": t.tier}})["Item"][
                    "concurrencyLimit"
                ]["N"]
            )
            for t in SAMPLE_TENANTS
        }
        uploads = demo_uploads()
        print(f"\nUploading {len(uploads)} datasets (2 deliberately invalid); tier limits {limits}\n")
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
        summary = _summary(limits, jobs_by_tenant, executions)

    SUMMARY_PATH.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY_PATH.write_text(json.dumps(summary, indent=2, default=str) + "\n")
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
        for rejected in figures["rejected"]:
            print(f"  rejected [{tier}] {rejected['key']}:")
            for reason in rejected["reasons"]:
                print(f"      - {reason}")
    admitted = sum(f["admitted"] for f in summary["tiers"].values())
    print(f"  pipeline executions started: {executions} (one per admitted job: {admitted})")
    ok &= executions == admitted
    print(f"\nSummary written to {SUMMARY_PATH.relative_to(ROOT)}")
    print("RESULT: " + ("every job terminal, no tier above its limit" if ok else "FAILED: see above"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
