"""Evaluate step: score the trained model on the held-out test split and write the metrics.

Runs as a SageMaker processing job in the scikit-learn 1.2-1 container (Python 3.9: keep this file
3.9-compatible). Paths are arguments whose defaults are the container convention.

Input:  <model-dir>/**/model.tar.gz (the training job's artifact) and <test-dir>/*.csv (the
        preprocess step's test split).
Output: <output-dir>/evaluation.json, the pipeline's property file. Its metric sections use the
        SageMaker model-quality layout (``{"binary_classification_metrics": {"auc": {"value": ..}}}``
        or ``regression_metrics``), which the model registry shows for a model version, plus
        ``validation_metric`` ``{"name", "value"}``: the one number the pipeline compares with the
        tenant's threshold (ROC AUC for binary classification, R² for regression; higher is better).

A failure exits non-zero with one line "evaluate: error: ..." on stderr.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import posixpath
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[np.float64]  # annotations only: the container's numpy need not have numpy.typing

DIGITS = 6  # metrics are rounded so the report (and the messages quoting it) stay readable


class StepError(Exception):
    """A problem with the model or the test data, reported as the step's failure reason."""


def single_file(directory: Path, pattern: str) -> Path:
    files = sorted(path for path in directory.rglob(pattern) if path.is_file())
    if len(files) != 1:
        raise StepError(f"expected exactly one {pattern} under {directory}, found {len(files)}")
    return files[0]


def load_model(model_dir: Path) -> tuple[Any, dict[str, Any]]:
    """model.joblib and model_metadata.json from the root of model.tar.gz, read without unpacking
    anything else (the archive is data: no links, no paths outside the root)."""
    archive = single_file(model_dir, "model.tar.gz")
    wanted = {"model.joblib": b"", "model_metadata.json": b""}
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            name = posixpath.normpath(member.name)
            if name in wanted and member.isfile():
                extracted = tar.extractfile(member)
                if extracted is not None:
                    wanted[name] = extracted.read()
    missing = [name for name, content in wanted.items() if not content]
    if missing:
        raise StepError(f"model.tar.gz has no {' or '.join(missing)} at its root")
    try:
        metadata = json.loads(wanted["model_metadata.json"])
    except ValueError as error:
        raise StepError(f"model_metadata.json is not JSON: {error}") from None
    for key in ("problem_type", "features", "target_column", "classes", "iterations"):
        if key not in metadata:
            raise StepError(f"model_metadata.json lacks {key!r}")
    return joblib.load(io.BytesIO(wanted["model.joblib"])), metadata


def read_test(path: Path, features: Sequence[str], target: str) -> tuple[Array, list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = [row for row in reader if row]
    if header != [*features, target]:
        raise StepError(f"{path.name}: the columns differ from the ones the model was trained on")
    if not rows:
        raise StepError(f"{path.name} has no data rows")
    x = np.array([[float(cell) if cell else np.nan for cell in row[:-1]] for row in rows], dtype=np.float64)
    return x.reshape(len(rows), len(features)), [row[-1] for row in rows]


def rounded(value: float, name: str) -> float:
    if not math.isfinite(value):
        raise StepError(f"the metric {name} is not finite on the test split")
    return round(float(value), DIGITS)


def classification_metrics(model: Any, classes: Sequence[str], x: Array, y: Sequence[str]) -> dict[str, Any]:
    if len(set(y)) != 2:
        raise StepError("the test split must hold both classes to compute ROC AUC")
    positive = classes[1]  # sorted labels: e.g. '1' over '0', 'yes' over 'no', 'true' over 'false'
    proba = model.predict_proba(x)[:, list(model.classes_).index(positive)]
    predicted = model.predict(x)
    truth = np.asarray(y) == positive
    hits = np.asarray(predicted) == positive
    metrics = {
        "auc": rounded(roc_auc_score(truth, proba), "auc"),
        "accuracy": rounded(accuracy_score(y, predicted), "accuracy"),
        "precision": rounded(precision_score(truth, hits, zero_division=0), "precision"),
        "recall": rounded(recall_score(truth, hits, zero_division=0), "recall"),
        "f1": rounded(f1_score(truth, hits, zero_division=0), "f1"),
        "log_loss": rounded(log_loss(y, model.predict_proba(x), labels=model.classes_), "log_loss"),
    }
    return {
        "binary_classification_metrics": {name: {"value": value} for name, value in metrics.items()},
        "validation_metric": {"name": "auc", "value": metrics["auc"]},
        "positive_class": positive,
    }


def regression_metrics(model: Any, x: Array, y: Sequence[str]) -> dict[str, Any]:
    truth = np.array([float(value) for value in y])
    if truth.size < 2 or np.all(truth == truth[0]):
        raise StepError("the test split needs at least two distinct target values to compute R²")
    predicted = model.predict(x)
    metrics = {
        "r2": rounded(r2_score(truth, predicted), "r2"),
        "rmse": rounded(math.sqrt(mean_squared_error(truth, predicted)), "rmse"),
        "mae": rounded(mean_absolute_error(truth, predicted), "mae"),
    }
    return {
        "regression_metrics": {name: {"value": value} for name, value in metrics.items()},
        "validation_metric": {"name": "r2", "value": metrics["r2"]},
    }


def evaluate(*, model_dir: Path, test_dir: Path, output_dir: Path) -> dict[str, Any]:
    model, metadata = load_model(model_dir)
    problem_type = metadata["problem_type"]
    x, y = read_test(single_file(test_dir, "*.csv"), metadata["features"], metadata["target_column"])
    if problem_type == "binary_classification":
        report = classification_metrics(model, metadata["classes"], x, y)
    elif problem_type == "regression":
        report = regression_metrics(model, x, y)
    else:
        raise StepError(f"the model's problem type {problem_type!r} is unknown")
    report.update({"problem_type": problem_type, "test_rows": len(y), "iterations": metadata["iterations"]})
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "evaluation.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evaluate", description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("/opt/ml/processing/model"))
    parser.add_argument("--test-dir", type=Path, default=Path("/opt/ml/processing/test"))
    parser.add_argument("--output-dir", type=Path, default=Path("/opt/ml/processing/evaluation"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        report = evaluate(model_dir=args.model_dir, test_dir=args.test_dir, output_dir=args.output_dir)
    except (StepError, OSError, ValueError, tarfile.TarError, csv.Error) as error:
        print(f"evaluate: error: {error}", file=sys.stderr)
        return 1
    print(f"evaluate: {json.dumps(report['validation_metric'], sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
