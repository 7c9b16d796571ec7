"""Preprocess step: check the tenant's validated CSV and split it into train / validation / test.

Runs as a SageMaker processing job in the scikit-learn 1.2-1 container (Python 3.9: keep this file
3.9-compatible and standard library + numpy only). Every path is an argument whose default is the
container convention, so a local runner can point them at temporary folders.

Input:  <input-dir>/*.csv or *.csv.gz (gzip-compressed), exactly one file with a header line (the
        dataset the control plane validated and copied to the job's own prefix).
Output: <output-dir>/train/train.csv, validation/validation.csv, test/test.csv (features then the
        target, header kept, missing values as empty cells) and report/preprocess_report.json.

Feature checks: a column that is not numeric in every non-missing cell is dropped (the contract's
feature columns were validated numeric, so such a column is one the contract does not use), as is a
column with no value or a single value (it carries no information). No usable feature left, a
target that is not binary / not numeric, or too few rows to split are errors. A failure exits
non-zero with one line "preprocess: error: ..." on stderr. Every instance of a multi-instance job
computes the same split (fixed seed), so identical outputs land on the same keys.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[np.float64]  # annotations only: the container's numpy need not have numpy.typing
    Indices = NDArray[np.intp]

PROBLEM_TYPES = ("binary_classification", "regression")
# The same markers the control plane's dataset validation treats as "no value".
MISSING_MARKERS = frozenset({"", "na", "n/a", "nan", "null", "none"})
SPLITS = ("train", "validation", "test")


class StepError(Exception):
    """A problem with the data or the arguments, reported as the step's failure reason."""


def parse_number(text: str) -> float | None:
    """A finite number or None, with the control plane's rules (no '1_000', no 'inf')."""
    number = parse_cell(text)
    return number if number is not None and math.isfinite(number) else None


def parse_cell(text: str) -> float | None:
    """A number, NaN or infinity included, or None for anything float() must not read ('1_000')."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_MARKERS


def find_dataset(input_dir: Path) -> Path:
    files = sorted(
        path
        for path in input_dir.rglob("*")
        if path.is_file() and path.name.lower().endswith((".csv", ".csv.gz"))
    )
    if len(files) != 1:
        names = ", ".join(str(path.relative_to(input_dir)) for path in files) or "none"
        raise StepError(
            f"expected exactly one .csv or .csv.gz file under {input_dir}, found {len(files)} ({names})"
        )
    return files[0]


def open_text(path: Path) -> IO[str]:
    # utf-8-sig: spreadsheet exports start with a BOM, which the validation step accepts. A .csv.gz
    # upload is copied as it was validated, compressed.
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    return path.open(newline="", encoding="utf-8-sig")


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise StepError(f"{path.name} is empty")
        header = [name.strip() for name in header]
        rows = [row for row in reader if row]  # blank lines are skipped, as the validation step does
    for number, row in enumerate(rows, start=1):
        if len(row) != len(header):
            raise StepError(f"row {number} has {len(row)} values, the header has {len(header)}")
    return header, rows


def numeric_column(values: Sequence[str]) -> Array | None:
    """The column as floats (NaN where missing), or None when a non-missing cell is not a number.

    NaN and infinity reach this step only when the tenant's contract declares nonFiniteAsMissing (the
    validation rejects them otherwise): they are missing, as there.
    """
    out = np.empty(len(values), dtype=np.float64)
    for index, cell in enumerate(values):
        if is_missing(cell):
            out[index] = np.nan
            continue
        number = parse_cell(cell.strip())
        if number is None:
            return None
        out[index] = number if math.isfinite(number) else np.nan
    return out


def select_features(
    header: Sequence[str], rows: Sequence[Sequence[str]], target: str
) -> tuple[list[str], Array, dict[str, str]]:
    kept: list[str] = []
    columns: list[Array] = []
    dropped: dict[str, str] = {}
    for index, name in enumerate(header):
        if name == target:
            continue
        column = numeric_column([row[index] for row in rows])
        if column is None:
            dropped[name] = "not numeric"
            continue
        present = column[~np.isnan(column)]
        if present.size == 0:
            dropped[name] = "no values"
        elif np.all(present == present[0]):
            dropped[name] = "a single value"
        else:
            kept.append(name)
            columns.append(column)
    if not kept:
        reasons = ", ".join(f"{name!r} ({why})" for name, why in dropped.items()) or "none"
        raise StepError(f"no usable feature column besides the target {target!r}; dropped: {reasons}")
    return kept, np.column_stack(columns), dropped


def split_counts(size: int, validation_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    validation = max(1, round(size * validation_fraction))
    test = max(1, round(size * test_fraction))
    return size - validation - test, validation, test


def split_indices(
    labels: Sequence[str] | None,
    size: int,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, Indices]:
    """Shuffled split; stratified by class for classification so every split holds both classes."""
    rng = np.random.default_rng(seed)
    groups = [np.arange(size)]
    if labels is not None:
        label_array = np.asarray(labels)
        groups = [np.flatnonzero(label_array == value) for value in sorted(set(labels))]
    parts: dict[str, list[Indices]] = {name: [] for name in SPLITS}
    for group in groups:
        shuffled = rng.permutation(group)
        train, validation, _test = split_counts(len(shuffled), validation_fraction, test_fraction)
        if train < 1:
            what = "rows of each class" if labels is not None else "rows"
            raise StepError(
                f"too few {what} to split into train, validation and test: {len(shuffled)}; need at least 3"
            )
        parts["train"].append(shuffled[:train])
        parts["validation"].append(shuffled[train : train + validation])
        parts["test"].append(shuffled[train + validation :])
    # Sorted: the split files keep the dataset's row order, which makes them easy to compare.
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def format_number(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def write_split(path: Path, features: Sequence[str], target: str, x: Array, y: Sequence[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([*features, target])
        for index in range(x.shape[0]):
            writer.writerow([*(format_number(value) for value in x[index]), y[index]])


def preprocess(
    *,
    input_dir: Path,
    output_dir: Path,
    target_column: str,
    problem_type: str,
    validation_fraction: float,
    test_fraction: float,
    seed: int,
) -> dict[str, Any]:
    if problem_type not in PROBLEM_TYPES:
        raise StepError(f"problem type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
    if not (0 < validation_fraction < 0.5 and 0 < test_fraction < 0.5):
        raise StepError("validation and test fractions must each be between 0 and 0.5")
    dataset = find_dataset(input_dir)
    header, rows = read_csv(dataset)
    if target_column not in header:
        raise StepError(f"the target column {target_column!r} is not in the header ({', '.join(header)})")
    target_index = header.index(target_column)
    raw_targets = [row[target_index].strip() for row in rows]
    missing = sum(1 for value in raw_targets if is_missing(value))
    if missing:
        raise StepError(f"the target column {target_column!r} has no value in {missing} rows")
    class_counts: dict[str, int] | None = None
    if problem_type == "binary_classification":
        classes = sorted(set(raw_targets))
        if len(classes) != 2:
            shown = ", ".join(repr(value) for value in classes[:5])
            raise StepError(
                f"binary classification needs exactly two target values, found {len(classes)} ({shown})"
            )
        class_counts = {value: raw_targets.count(value) for value in classes}
        targets = raw_targets
    else:
        numbers = [parse_number(value) for value in raw_targets]
        bad = [value for value, number in zip(raw_targets, numbers) if number is None]  # noqa: B905 - Python 3.9
        if bad:
            raise StepError(
                f"regression needs a numeric target; {target_column!r} holds {len(bad)} other values, "
                f"first {bad[0]!r}"
            )
        targets = [repr(number) for number in numbers]
    features, x, dropped = select_features(header, rows, target_column)
    labels = targets if problem_type == "binary_classification" else None
    indices = split_indices(labels, len(rows), validation_fraction, test_fraction, seed)
    for name in SPLITS:
        chosen = indices[name]
        write_split(
            output_dir / name / f"{name}.csv",
            features,
            target_column,
            x[chosen],
            [targets[index] for index in chosen],
        )
    report: dict[str, Any] = {
        "dataset": dataset.name,
        "rows": len(rows),
        "target_column": target_column,
        "problem_type": problem_type,
        "features": features,
        "dropped_columns": dropped,
        "class_counts": class_counts,
        "missing_values": {name: int(np.isnan(x[:, i]).sum()) for i, name in enumerate(features)},
        "splits": {name: len(indices[name]) for name in SPLITS},
        "seed": seed,
    }
    report_path = output_dir / "report" / "preprocess_report.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="preprocess", description=__doc__.split("\n")[0])
    parser.add_argument("--target-column", required=True)
    parser.add_argument("--problem-type", required=True, choices=PROBLEM_TYPES)
    parser.add_argument("--input-dir", type=Path, default=Path("/opt/ml/processing/input/data"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/output"))
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = preprocess(
            input_dir=args.input_dir,
            output_dir=args.output_dir,
            target_column=args.target_column,
            problem_type=args.problem_type,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
    except (StepError, OSError, UnicodeDecodeError, csv.Error) as error:
        print(f"preprocess: error: {error}", file=sys.stderr)
        return 1
    print(f"preprocess: {json.dumps(report['splits'], sort_keys=True)}; features {report['features']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
