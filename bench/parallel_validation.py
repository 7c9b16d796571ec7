"""A dataset of at least 1 GiB validated in the emulator through the real state machine: S3 upload ->
EventBridge -> registration -> split -> Distributed Map (one child execution per range, the real
validate_dataset handler) -> merge; beside one serial ``validate_csv`` of the same bytes in this process.

Figures (under ``validation.parallel`` in build/bench.json): ``ranges``, ``wall_s`` (from the upload to the
job's verdict, read from the job's timeline), ``serial_wall_s`` and ``verdict_equal`` (reasons, rows and
statistics identical). On one machine the emulator runs at most 4 invocations of a function at once (its
worker pool) on the machine's cores, and reads S3 from moto over loopback HTTP: ``wall_s`` measures the
real path, not AWS's parallelism (README, "Dataset validation" gives the AWS figures).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from controlplane.tenants.model import TenantContract
from controlplane.uploads.validation import DatasetRules, validate_csv

GIB: Final = 1024**3
RANGE_BYTES: Final = 128 * 1024**2
FEATURES: Final = 20


def write_large(path: Path, size: int) -> int:
    """A valid numeric CSV of at least ``size`` bytes, fast: one generated block repeated."""
    from bench.validation import write_dataset  # noqa: PLC0415

    block_path = path.with_suffix(".block")
    write_dataset(block_path, 8)
    header, _, rows = block_path.read_bytes().partition(b"\n")
    block_path.unlink()
    written = 0
    with path.open("wb") as handle:
        handle.write(header + b"\n")
        while written < size:
            handle.write(rows)
            written += len(rows)
    return path.stat().st_size


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(256 * 1024):
            yield chunk


def _at(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def measure(size: int = GIB) -> dict[str, Any]:
    from localcloud import LocalCloud  # noqa: PLC0415 - the emulator only for this figure
    from scripts.sample_data import SampleTenant  # noqa: PLC0415
    from scripts.tenants import onboard  # noqa: PLC0415

    root = Path(__file__).resolve().parents[1]
    tenant = SampleTenant(
        "bench-ranges", "premium", "label", tuple(f"f{i:02d}" for i in range(FEATURES)), min_rows=1
    )
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large.csv"
        written = write_large(path, size)
        contract = TenantContract.model_validate(
            {
                "targetColumn": "label",
                "featureColumns": list(tenant.feature_columns),
                "problemType": tenant.problem_type,
                "minRows": 1,
            }
        )
        rules = DatasetRules.from_contract(contract, max_bytes=50 * GIB, tier="premium")
        started = time.perf_counter()
        serial = validate_csv(_chunks(path), rules)
        serial_s = time.perf_counter() - started
        with LocalCloud(port=0, state_dir=Path(folder) / "cloud", pipeline_runner="simulated") as cloud:
            stack = cloud.deploy(
                root / "template.yaml",
                stack_name="mlaas-bench-ranges",
                parameter_overrides={
                    "ParallelValidationBytes": str(64 * 1024**2),
                    "ValidationRangeBytes": str(RANGE_BYTES),
                },
            )
            outputs = stack.outputs
            onboard(cloud, outputs, tenant)
            key = f"tenants/{tenant.tenant_id}/uploads/large.csv"
            with path.open("rb") as body:
                cloud.client("s3").upload_fileobj(body, outputs["UploadsBucketName"], key)
            uploaded = time.time()
            job = _wait_for_verdict(cloud, outputs, tenant.tenant_id)
    verdict_at = next(
        entry["at"] for entry in job["timeline"] if entry["status"] in {"REJECTED", "VALIDATED"}
    )
    stats = json.loads(json.dumps(job["stats"], default=float))
    ranges = int(stats.pop("ranges", 1))
    expected = json.loads(json.dumps(serial.stats))
    equal = (
        (job["status"] != "REJECTED") == serial.valid
        and list(job.get("reasons", [])) == list(serial.reasons)
        and stats == expected
    )
    return {
        "bytes": written,
        "range_bytes": RANGE_BYTES,
        "ranges": ranges,
        "wall_s": round(_at(verdict_at) - uploaded, 2),
        "serial_wall_s": round(serial_s, 2),
        "valid": serial.valid,
        "verdict_equal": equal,
        "serial_fallback": stats.get("serialFallback"),
    }


def _wait_for_verdict(cloud: Any, outputs: dict[str, str], tenant_id: str) -> dict[str, Any]:
    from scripts.jobs import tenant_jobs  # noqa: PLC0415

    deadline = time.monotonic() + 3600
    while time.monotonic() < deadline:
        jobs = tenant_jobs(cloud.client("dynamodb"), outputs["JobsTableName"], tenant_id)
        if jobs and jobs[0].get("status") not in {"RECEIVED", None}:
            return jobs[0]
        time.sleep(1.0)
    raise TimeoutError("no verdict within an hour")


def ok(result: dict[str, Any]) -> bool:
    return bool(result["verdict_equal"]) and result["ranges"] > 1 and result["bytes"] >= GIB


def print_report(result: dict[str, Any]) -> None:
    print(
        f"\nParallel validation of {result['bytes'] / GIB:.2f} GiB in the emulator: "
        f"{result['ranges']} ranges, "
        f"{result['wall_s']} s from upload to verdict (serial validate_csv: {result['serial_wall_s']} s); "
        f"verdict equal to the serial run: {result['verdict_equal']}"
    )
    print(f"  {'PASS' if ok(result) else 'FAIL'}  ≥ 1 GiB validated in ranges with the serial verdict")


if __name__ == "__main__":
    figures = measure()
    print_report(figures)
