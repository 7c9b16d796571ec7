"""``python -m bench.validation``: the dataset validator's rate against ``csv.reader`` on the same bytes.

Writes a deterministic CSV of realistic shape (20 numeric feature columns and a binary target, a few
missing cells) to a temporary file, then times, alternately and best of ``--repeat``, in this process:

- ``csv.reader`` merely reading it (a TextIOWrapper over the file, every row produced, nothing checked);
- ``validate_csv`` checking it, fed the file in the chunks S3 streams (256 KiB).

Peak memory of one validation is measured in a child process of its own (the resident set's high-water
mark during the validation, reset after the imports, beside the resident set after the imports; and
tracemalloc's peak in a second child), so the timed runs are not slowed by tracing and the parent's memory
does not count. Its figures go under ``validation`` in
build/bench.json (``python -m bench`` runs it; alone, it prints them and writes build/bench-validation.json).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from controlplane.tenants.model import ProblemType
from controlplane.uploads.validation import DatasetRules, validate_csv

DEFAULT_MB: Final = 48
FEATURES: Final = 20
CHUNK_BYTES: Final = 256 * 1024
OUTPUT: Final = Path("build/bench-validation.json")
TARGET: Final = "label"
RATIO_TARGET: Final = 1.0


def rules(size: int) -> DatasetRules:
    return DatasetRules(TARGET, None, ProblemType.BINARY_CLASSIFICATION, 1, size + 1, "premium")


def write_dataset(path: Path, megabytes: float, seed: int = 7) -> int:
    """A numeric CSV of about ``megabytes`` MB: integers, decimals, exponents, negatives and ~0.1% empty
    cells, like a spreadsheet or pandas export. Returns its size in bytes."""
    rng = random.Random(seed)
    target = int(megabytes * 1_000_000)
    header = ",".join([f"f{i:02d}" for i in range(FEATURES)] + [TARGET]) + "\n"
    # A pool of pre-rendered rows keeps generation fast; rows are drawn from it at random.
    pool = []
    for _ in range(4096):
        cells = []
        for column in range(FEATURES):
            kind = column % 4
            if rng.random() < 0.001:
                cells.append("")
            elif kind == 0:
                cells.append(str(rng.randint(0, 120)))
            elif kind == 1:
                cells.append(f"{rng.uniform(-1e4, 1e5):.4f}")
            elif kind == 2:
                cells.append(repr(rng.gauss(0, 1)))
            else:
                cells.append(f"{rng.uniform(0, 1):.3e}")
        cells.append(rng.choice("01"))
        pool.append(",".join(cells) + "\n")
    written = 0
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(header)
        written += len(header)
        while written < target:
            block = "".join(rng.choices(pool, k=1024))
            handle.write(block)
            written += len(block)
    return path.stat().st_size


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            yield chunk


def time_csv_reader(path: Path) -> float:
    started = time.perf_counter()
    with path.open("rb") as raw:
        for _ in csv.reader(io.TextIOWrapper(raw, encoding="utf-8", newline="")):
            pass
    return time.perf_counter() - started


def time_validator(path: Path, size: int) -> tuple[float, bool]:
    started = time.perf_counter()
    report = validate_csv(_chunks(path), rules(size))
    return time.perf_counter() - started, report.valid


def _child_peak(path: Path, mode: str) -> list[int]:
    """Run one validation in a child process; returns what it printed (bytes)."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module, fixed arguments
        [sys.executable, "-m", "bench.validation", "--child", mode, "--file", str(path)],
        check=True,
        capture_output=True,
        text=True,
        # The child imports what this process imports, however its path was set up (make, pytest).
        env={**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)},
    )
    return [int(value) for value in done.stdout.split()]


def child(path: Path, mode: str) -> int:
    size = path.stat().st_size
    if mode == "tracemalloc":
        import tracemalloc  # noqa: PLC0415 - only the child traces

        tracemalloc.start()
        validate_csv(_chunks(path), rules(size))
        _, peak = tracemalloc.get_traced_memory()
        print(peak)
        return 0
    # The resident set after the imports, then its high-water mark during one validation: Linux resets
    # the mark (VmHWM) when "5" is written to clear_refs, so the imports' own peak does not hide it.
    baseline = _status_bytes("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")
    validate_csv(_chunks(path), rules(size))
    print(baseline, _status_bytes("VmHWM"))
    return 0


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024  # reported in kB
    raise LookupError(field)


def measure(megabytes: float = DEFAULT_MB, repeat: int = 5) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "dataset.csv"
        size = write_dataset(path, megabytes)
        reader_s: list[float] = []
        validator_s: list[float] = []
        valid = True
        for _ in range(repeat):  # alternated, so both see the same machine load
            reader_s.append(time_csv_reader(path))
            elapsed, valid = time_validator(path, size)
            validator_s.append(elapsed)
        baseline, rss = _child_peak(path, "rss")
        (traced,) = _child_peak(path, "tracemalloc")
    mb = size / 1_000_000
    validator_rate, reader_rate = mb / min(validator_s), mb / min(reader_s)
    return {
        "file": {
            "bytes": size,
            "columns": FEATURES + 1,
            "kind": "20 numeric features (ints, decimals, floats, exponents; ~0.1% empty) + binary target",
        },
        "valid": valid,
        "repeat": repeat,
        "chunk_bytes": CHUNK_BYTES,
        "validator_s": validator_s,
        "csv_reader_s": reader_s,
        "validator_mb_s": round(validator_rate, 1),
        "csv_reader_mb_s": round(reader_rate, 1),
        "ratio": round(validator_rate / reader_rate, 3),
        "peak_rss_bytes": rss,
        "baseline_rss_bytes": baseline,
        "peak_traced_bytes": traced,
    }


def ok(result: dict[str, Any]) -> bool:
    """The target: a valid verdict, at least as fast as csv.reader merely reading the same bytes."""
    return bool(result["valid"]) and result["ratio"] >= RATIO_TARGET


def print_report(result: dict[str, Any]) -> None:
    size, columns = result["file"]["bytes"] / 1e6, result["file"]["columns"]
    print(
        f"\nDataset validation on {size:.1f} MB, {columns} columns (best of {result['repeat']}): "
        f"validator {result['validator_mb_s']} MB/s, csv.reader {result['csv_reader_mb_s']} MB/s, "
        f"ratio {result['ratio']}; while validating, the process peaks at "
        f"{result['peak_rss_bytes'] / 2**20:.1f} MiB RSS (after the imports "
        f"{result['baseline_rss_bytes'] / 2**20:.1f} MiB); {result['peak_traced_bytes'] / 2**20:.2f} MiB "
        "traced Python allocations"
    )
    print(
        f"  {'PASS' if ok(result) else 'FAIL'}  validator at least as fast as csv.reader "
        f"(ratio ≥ {RATIO_TARGET})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__)
    parser.add_argument("--megabytes", type=float, default=DEFAULT_MB)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--child", choices=["rss", "tracemalloc"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args.file, args.child)
    result = measure(args.megabytes, args.repeat)
    print_report(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"validation": result}, indent=2) + "\n")
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(main())
