"""``python -m bench``: the tier gate benchmark (fair-share scheduler vs plain FIFO per tier, and how
decision time grows with tenants). Prints a report and writes build/bench.json.

Options: ``--jobs N --tenants N`` for a smaller run (the targets are judged on the default scale).
Then part (b), ``bench.stack``: the real stack in the local emulator (``--stack-uploads N``, or
``--skip-stack`` to leave it out); its figures go under "stack" in build/bench.json. Part (c),
``bench.validation``: the dataset validator against ``csv.reader`` on the same generated file
(``--validation-megabytes N``); under "validation", with ``validation.parallel``: a generated CSV of
``--parallel-validation-gib`` (default 1) validated in the emulator through the state machine's
Distributed Map, beside one serial run (``bench.parallel_validation``; ``--skip-parallel-validation``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Final

import numpy as np

from bench.decision_timing import measure
from bench.fairness import jain
from bench.simulation import FairGate, FifoGate, Meter, Scenario, Workload, draw_workload, simulate
from bench.stack_options import stack_arguments
from bench.validation import DEFAULT_MB as VALIDATION_MB
from controlplane.admission.scheduling import FairSharePolicy

OUTPUT: Final = Path("build/bench.json")
FAIRNESS_TARGET: Final = 0.95
UTILISATION_TARGET: Final = 0.99


def fairness_by_tier(meter: Meter, workload: Workload) -> list[dict[str, float]]:
    """Jain's index of weight-normalised slot-seconds granted among the tenants backlogged for a whole
    window (per tier and window), averaged over the windows with at least two such tenants."""
    tier_of = workload.tenant_tier.tolist()
    weight = workload.tenant_weight.tolist()
    groups: dict[tuple[int, int], list[float]] = defaultdict(list)
    for window, tenant in meter.full_windows:
        received = meter.slot_seconds.get(window * meter.tenants + tenant, 0.0)
        groups[(tier_of[tenant], window)].append(received / weight[tenant])
    per_tier: list[list[float]] = [[] for _ in workload.tier_names]
    for (tier, _), values in groups.items():
        if len(values) >= 2:
            per_tier[tier].append(jain(values))
    return [
        {
            "windows": len(indices),
            "mean": float(np.mean(indices)) if indices else math.nan,
            "p5": float(np.percentile(indices, 5)) if indices else math.nan,
        }
        for indices in per_tier
    ]


def summarise(meter: Meter, workload: Workload, scenario: Scenario, fifo: bool) -> dict[str, Any]:
    limits = [t.guaranteed if fifo else t.guaranteed + t.borrowing_limit for t in scenario.tiers]
    job_tier = workload.tenant_tier[workload.tenant]
    fairness = fairness_by_tier(meter, workload)
    tiers = {}
    for index, name in enumerate(workload.tier_names):
        waits = meter.wait[job_tier == index]
        backlogged = meter.backlogged_time[index]
        tiers[name] = {
            "jobs": int(waits.size),
            "wait_p50_s": float(np.percentile(waits, 50)),
            "wait_p99_s": float(np.percentile(waits, 99)),
            "utilisation_reachable_while_backlogged": meter.tier_busy[index] / meter.tier_reachable[index]
            if meter.tier_reachable[index]
            else math.nan,
            "account_utilisation_while_backlogged": meter.account_busy[index]
            / (scenario.account_cap * backlogged)
            if backlogged
            else math.nan,
            "backlogged_share_of_time": backlogged / float(workload.arrival[-1]),
            "jain_mean": fairness[index]["mean"],
            "jain_p5": fairness[index]["p5"],
            "jain_windows": fairness[index]["windows"],
            "max_running": meter.max_running[index],
            "limit": limits[index],
        }
    heavy = workload.tenant == 0
    return {
        "tiers": tiers,
        "account": {
            "max_running": meter.max_total,
            "cap": scenario.account_cap,
            "utilisation_while_any_backlog": meter.any_backlog_busy
            / (scenario.account_cap * meter.any_backlog_time)
            if meter.any_backlog_time
            else math.nan,
            "borrowed_admissions": meter.borrowed_admissions,
            "admissions": meter.admissions,
        },
        "light_tenants_wait_p99_s": float(np.percentile(meter.wait[~heavy], 99)),
        "heavy_tenant_wait_p50_s": float(np.percentile(meter.wait[heavy], 50)),
    }


def run_gate(name: str, scenario: Scenario, workload: Workload, fifo: bool) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    gate: FairGate | FifoGate = FifoGate(scenario, workload) if fifo else FairGate(scenario, workload, POLICY)
    limits = [t.guaranteed if fifo else t.guaranteed + t.borrowing_limit for t in scenario.tiers]

    def progress(jobs: int) -> None:
        print(f"  {name}: {jobs:,} jobs arrived ({time.perf_counter() - started:.0f} s)", file=sys.stderr)

    meter = simulate(gate, workload, limits, scenario.account_cap, progress)
    summary = summarise(meter, workload, scenario, fifo)
    return summary, time.perf_counter() - started


POLICY: Final = FairSharePolicy()


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:8.1f}"


def print_report(result: dict[str, Any]) -> None:
    fair, fifo = result["fair"], result["fifo"]
    scenario = result["scenario"]
    print(
        f"\nTier gate simulation: {scenario['tenants']:,} tenants, {scenario['jobs']:,} jobs, "
        f"account cap {scenario['account_cap']}, heavy tenant {scenario['heavy_tenant_share']:.0%} of uploads"
    )
    print(f"{'metric':44} {'tier':9} {'fair-share':>12} {'FIFO/tier':>12}")
    rows = [
        ("queue wait p50 (min)", "wait_p50_s", _minutes),
        ("queue wait p99 (min)", "wait_p99_s", _minutes),
        ("utilisation of reachable slots, backlogged", "utilisation_reachable_while_backlogged", _pct),
        ("account utilisation while tier backlogged", "account_utilisation_while_backlogged", _pct),
        ("Jain index, backlogged tenants (mean)", "jain_mean", _idx),
        ("Jain index, backlogged tenants (p5)", "jain_p5", _idx),
        ("windows with ≥2 backlogged tenants", "jain_windows", _int),
        ("max running", "max_running", _int),
        ("limit (guaranteed+borrowing | FIFO limit)", "limit", _int),
    ]
    for label, key, shape in rows:
        for tier in fair["tiers"]:
            fair_value, fifo_value = shape(fair["tiers"][tier][key]), shape(fifo["tiers"][tier][key])
            print(f"{label:44} {tier:9} {fair_value:>12} {fifo_value:>12}")
    for label, key, shape in (
        ("account max running (cap)", "max_running", _int),
        ("account utilisation while any job waits", "utilisation_while_any_backlog", _pct),
        ("admissions on borrowed slots", "borrowed_admissions", _int),
    ):
        print(f"{label:44} {'account':9} {shape(fair['account'][key]):>12} {shape(fifo['account'][key]):>12}")
    print(
        f"{'light tenants wait p99 (min)':44} {'all':9} {_minutes(fair['light_tenants_wait_p99_s']):>12} "
        f"{_minutes(fifo['light_tenants_wait_p99_s']):>12}"
    )
    print(
        f"{'heavy tenant wait p50 (min)':44} {'standard':9} {_minutes(fair['heavy_tenant_wait_p50_s']):>12} "
        f"{_minutes(fifo['heavy_tenant_wait_p50_s']):>12}"
    )
    print("\nAdmission decision time (µs per decision)")
    print(
        f"{'tenants':>8} {'snapshot':>9} {'decide, gate snapshot':>22} {'decide, all backlogged':>23} "
        f"{'indexed (sim)':>14}"
    )
    for row in result["decision_time"]:
        print(
            f"{row['tenants']:>8,} {row['snapshot_tenants']:>9} {row['decide_bounded_snapshot_us']:>22.1f} "
            f"{row['decide_full_snapshot_us']:>23.1f} {row['indexed_admit_release_us']:>14.1f}"
        )
    print("\nTargets (fair-share gate)")
    for name, ok in result["targets"].items():
        print(f"  {'PASS' if ok else 'FAIL'}  {name}")
    timings = result["runtime_s"]
    print(
        "\nRuntime: workload {workload:.0f} s, fair {fair:.0f} s, FIFO {fifo:.0f} s, "
        "decision timing {decision:.0f} s, total {total:.0f} s".format(**timings)
    )


def _pct(value: float) -> str:
    return f"{value:.2%}"


def _idx(value: float) -> str:
    return f"{value:.3f}"


def _int(value: float) -> str:
    return f"{int(value):,}"


def targets(fair: dict[str, Any], scenario: Scenario) -> dict[str, bool]:
    tiers = fair["tiers"].values()
    measured = [t for t in tiers if t["jain_windows"]]
    return {
        f"Jain index among backlogged tenants ≥ {FAIRNESS_TARGET} in every tier": bool(measured)
        and all(t["jain_mean"] >= FAIRNESS_TARGET for t in measured),
        f"utilisation of reachable slots while backlogged ≥ {UTILISATION_TARGET:.0%} in every tier": all(
            t["utilisation_reachable_while_backlogged"] >= UTILISATION_TARGET for t in tiers
        ),
        "max running never above a tier's limit": all(t["max_running"] <= t["limit"] for t in tiers),
        "max running never above the account cap": fair["account"]["max_running"] <= scenario.account_cap,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--jobs", type=int, default=Scenario().jobs)
    parser.add_argument("--tenants", type=int, default=Scenario().tenants)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument(
        "--skip-stack", action="store_true", help="skip part (b): the real stack in the local emulator"
    )
    parser.add_argument(
        "--validation-megabytes",
        type=float,
        default=VALIDATION_MB,
        help=f"size of the generated CSV of part (c) (default {VALIDATION_MB})",
    )
    parser.add_argument(
        "--parallel-validation-gib",
        type=float,
        default=1.0,
        help="size of the CSV validated in ranges in the emulator (default 1; at least 1 for the target)",
    )
    parser.add_argument(
        "--skip-parallel-validation", action="store_true", help="leave out the parallel validation run"
    )
    stack_arguments(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    scenario = Scenario(tenants=args.tenants, jobs=args.jobs)
    workload = draw_workload(scenario)
    workload_s = time.perf_counter() - started
    fair, fair_s = run_gate("fair", scenario, workload, fifo=False)
    fifo, fifo_s = run_gate("fifo", scenario, workload, fifo=True)
    decision_started = time.perf_counter()
    decision_time = measure()
    decision_s = time.perf_counter() - decision_started
    result: dict[str, Any] = {
        "scenario": {
            "tenants": scenario.tenants,
            "jobs": scenario.jobs,
            "account_cap": scenario.account_cap,
            "tiers": [
                {"name": t.name, "guaranteed": t.guaranteed, "borrowing_limit": t.borrowing_limit}
                for t in scenario.tiers
            ],
            "heavy_tenant_share": scenario.heavy_tenant_share,
            "mean_duration_s": scenario.mean_duration_seconds,
            "load": scenario.load,
            "simulated_days": float(workload.arrival[-1]) / 86_400,
            "seed": scenario.seed,
            "policy": {
                "half_life_s": POLICY.half_life_seconds,
                "max_usage_debt": POLICY.max_usage_debt,
            },
        },
        "fair": fair,
        "fifo": fifo,
        "decision_time": decision_time,
        "targets": targets(fair, scenario),
        "runtime_s": {
            "workload": workload_s,
            "fair": fair_s,
            "fifo": fifo_s,
            "decision": decision_s,
            "total": time.perf_counter() - started,
        },
    }
    print_report(result)
    # Imported here like the stack: pyarrow is the validator's, not the simulation's.
    from bench import validation  # noqa: PLC0415

    validation_started = time.perf_counter()
    result["validation"] = validation.measure(args.validation_megabytes)
    validation.print_report(result["validation"])
    validation_ok = validation.ok(result["validation"])
    if not args.skip_parallel_validation:
        from bench import parallel_validation  # noqa: PLC0415 - loads the emulator

        parallel = parallel_validation.measure(int(args.parallel_validation_gib * parallel_validation.GIB))
        result["validation"]["parallel"] = parallel
        parallel_validation.print_report(parallel)
        validation_ok = validation_ok and parallel_validation.ok(parallel)
    result["runtime_s"]["validation"] = time.perf_counter() - validation_started
    stack_ok = True
    if not args.skip_stack:
        # Imported here: it loads moto and the emulator, which the simulation does not need.
        from bench import stack  # noqa: PLC0415

        stack_started = time.perf_counter()
        result["stack"] = stack.run_from_args(args)
        stack.print_report(result["stack"])
        stack.print_failures(result["stack"])
        stack_ok = stack.ok(result["stack"])
        result["runtime_s"]["stack"] = time.perf_counter() - stack_started
        result["runtime_s"]["total"] = time.perf_counter() - started
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    print(f"\nWrote {args.output}")
    return 0 if all(result["targets"].values()) and stack_ok and validation_ok else 1


if __name__ == "__main__":
    sys.exit(main())
