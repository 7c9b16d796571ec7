"""Train step: the vendor's algorithm, scikit-learn histogram gradient boosting on the tenant's data.

Runs as a SageMaker training job in script mode on the scikit-learn 1.2-1 container (Python 3.9:
keep this file 3.9-compatible), which starts it as ``python train.py --<hyperparameter> <value> ...``.
Container conventions, each overridable through its environment variable so a local runner can
map them to temporary folders:

- channels ``SM_CHANNEL_TRAIN`` and ``SM_CHANNEL_VALIDATION`` (one CSV each, from the preprocess
  step: features then the target, header kept),
- hyperparameters from ``$SM_INPUT_CONFIG_DIR/hyperparameters.json`` (the raw strings of the
  CreateTrainingJob request) or ``SM_HPS``; command-line options override both,
- the model goes to ``SM_MODEL_DIR`` as ``model.joblib`` plus ``model_metadata.json``; SageMaker
  packs that folder into ``model.tar.gz``. The scikit-learn serving container's default
  ``model_fn`` loads ``model.joblib``; the estimator predicts the tenant's own labels.
- a training report goes to ``SM_OUTPUT_DATA_DIR`` (``output.tar.gz``).

The number of boosting iterations is chosen on the validation split (the iteration with the lowest
validation loss), then the model is refitted on train + validation with that many iterations.
Every instance of a multi-instance job computes the same model (fixed seed, same data), so it does
not matter which instance's model SageMaker keeps.

A failure exits non-zero with one line "train: error: ..." on stderr and the same text in
``$SM_OUTPUT_DIR/failure``, which SageMaker reports as the training job's FailureReason.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.metrics import log_loss, mean_squared_error

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Array = NDArray[np.float64]  # annotations only: the container's numpy need not have numpy.typing

PROBLEM_TYPES = ("binary_classification", "regression")


class StepError(Exception):
    """A problem with the data or the hyperparameters, reported as the job's failure reason."""


def channel_dir(name: str) -> Path:
    return Path(os.environ.get(f"SM_CHANNEL_{name.upper()}", f"/opt/ml/input/data/{name}"))


def load_hyperparameters() -> dict[str, str]:
    """Raw hyperparameters: the container's JSON file (exact strings) first, SM_HPS otherwise."""
    config = Path(os.environ.get("SM_INPUT_CONFIG_DIR", "/opt/ml/input/config")) / "hyperparameters.json"
    if config.is_file():
        raw = json.loads(config.read_text())
    else:
        raw = json.loads(os.environ.get("SM_HPS", "{}") or "{}")
    return {str(key): value if isinstance(value, str) else json.dumps(value) for key, value in raw.items()}


def single_csv(directory: Path, channel: str) -> Path:
    files = sorted(path for path in directory.rglob("*.csv") if path.is_file())
    if len(files) != 1:
        raise StepError(
            f"channel {channel!r} ({directory}) must hold exactly one .csv file, found {len(files)}"
        )
    return files[0]


def read_split(path: Path, target_column: str) -> tuple[list[str], Array, list[str]]:
    """A split written by the preprocess step: numeric features (empty = missing), target last."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        rows = [row for row in reader if row]
    if not header or header[-1] != target_column:
        raise StepError(
            f"{path.name}: the last column must be the target {target_column!r}, "
            f"found {header[-1] if header else 'no header'!r}"
        )
    if not rows:
        raise StepError(f"{path.name} has no data rows")
    features = header[:-1]
    x = np.array([[float(cell) if cell else np.nan for cell in row[:-1]] for row in rows], dtype=np.float64)
    return features, x.reshape(len(rows), len(features)), [row[-1] for row in rows]


def make_model(problem_type: str, params: dict[str, Any], max_iter: int) -> Any:
    common = {
        "learning_rate": params["learning_rate"],
        "max_iter": max_iter,
        "max_leaf_nodes": params["max_leaf_nodes"],
        "min_samples_leaf": params["min_samples_leaf"],
        "l2_regularization": params["l2_regularization"],
        # The validation channel decides the iterations; the built-in early stopping would carve
        # its own random validation set out of the training data instead.
        "early_stopping": False,
        "random_state": params["seed"],
    }
    if problem_type == "binary_classification":
        return HistGradientBoostingClassifier(**common)
    return HistGradientBoostingRegressor(**common)


def validation_losses(model: Any, problem_type: str, x: Array, y: Sequence[Any]) -> list[float]:
    if problem_type == "binary_classification":
        return [float(log_loss(y, proba, labels=model.classes_)) for proba in model.staged_predict_proba(x)]
    return [float(mean_squared_error(y, predicted)) for predicted in model.staged_predict(x)]


def train(
    *,
    train_dir: Path,
    validation_dir: Path,
    model_dir: Path,
    output_data_dir: Path,
    params: dict[str, Any],
) -> dict[str, Any]:
    problem_type = params["problem_type"]
    target_column = params["target_column"]
    if problem_type not in PROBLEM_TYPES:
        raise StepError(f"problem type {problem_type!r} is not one of {', '.join(PROBLEM_TYPES)}")
    features, x_train, y_train_raw = read_split(single_csv(train_dir, "train"), target_column)
    val_features, x_val, y_val_raw = read_split(single_csv(validation_dir, "validation"), target_column)
    if val_features != features:
        raise StepError("the train and validation splits have different feature columns")
    y_train: list[Any] = list(y_train_raw)
    y_val: list[Any] = list(y_val_raw)
    if problem_type == "regression":
        try:
            y_train, y_val = [float(v) for v in y_train_raw], [float(v) for v in y_val_raw]
        except ValueError as error:
            raise StepError(f"regression needs a numeric target: {error}") from None
    elif len(set(y_train)) != 2:
        raise StepError(
            f"binary classification needs two classes in the training split, found {len(set(y_train))}"
        )

    probe = make_model(problem_type, params, params["max_iter"]).fit(x_train, y_train)
    losses = validation_losses(probe, problem_type, x_val, y_val)
    best_iteration = int(np.argmin(losses)) + 1
    if not math.isfinite(losses[best_iteration - 1]):
        raise StepError("the validation loss is not finite; the data cannot be fitted")

    model = make_model(problem_type, params, best_iteration).fit(
        np.vstack([x_train, x_val]), [*y_train, *y_val]
    )
    metadata = {
        "algorithm": type(model).__name__,
        "sklearn_version": sklearn.__version__,
        "problem_type": problem_type,
        "target_column": target_column,
        "features": features,
        "classes": [str(value) for value in model.classes_]
        if problem_type == "binary_classification"
        else None,
        "iterations": best_iteration,
        "hyperparameters": {key: params[key] for key in sorted(params)},
    }
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    (model_dir / "model_metadata.json").write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
    report = {
        "best_iteration": best_iteration,
        "validation_loss": losses[best_iteration - 1],
        "validation_loss_name": "log_loss" if problem_type == "binary_classification" else "mse",
        "train_rows": len(y_train),
        "validation_rows": len(y_val),
    }
    output_data_dir.mkdir(parents=True, exist_ok=True)
    (output_data_dir / "training_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def parse_args(argv: Sequence[str] | None, defaults: dict[str, str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="train", description=__doc__.split("\n")[0])
    # Hyperparameter names use underscores: the container passes them as --<name> <value>.
    parser.add_argument("--target_column", default=defaults.get("target_column"))
    parser.add_argument("--problem_type", default=defaults.get("problem_type"))
    parser.add_argument("--max_iter", type=int, default=int(defaults.get("max_iter", "200")))
    parser.add_argument("--learning_rate", type=float, default=float(defaults.get("learning_rate", "0.1")))
    parser.add_argument("--max_leaf_nodes", type=int, default=int(defaults.get("max_leaf_nodes", "31")))
    parser.add_argument("--min_samples_leaf", type=int, default=int(defaults.get("min_samples_leaf", "20")))
    parser.add_argument(
        "--l2_regularization", type=float, default=float(defaults.get("l2_regularization", "0.0"))
    )
    parser.add_argument("--seed", type=int, default=int(defaults.get("seed", "0")))
    # The container also passes every other hyperparameter; those are not this script's.
    args, _unknown = parser.parse_known_args(argv)
    return args


def report_failure(message: str) -> None:
    print(f"train: error: {message}", file=sys.stderr)
    output_dir = Path(os.environ.get("SM_OUTPUT_DIR", "/opt/ml/output"))
    if output_dir.is_dir():
        with contextlib.suppress(OSError):  # stderr already carries the message
            (output_dir / "failure").write_text(message[:1024])


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(argv, load_hyperparameters())
        if not args.target_column or not args.problem_type:
            raise StepError("the hyperparameters target_column and problem_type are required")
        if args.max_iter < 1 or args.learning_rate <= 0:
            raise StepError("max_iter must be at least 1 and learning_rate positive")
        report = train(
            train_dir=channel_dir("train"),
            validation_dir=channel_dir("validation"),
            model_dir=Path(os.environ.get("SM_MODEL_DIR", "/opt/ml/model")),
            output_data_dir=Path(os.environ.get("SM_OUTPUT_DATA_DIR", "/opt/ml/output/data")),
            params=vars(args),
        )
    except (StepError, OSError, ValueError, csv.Error) as error:
        report_failure(str(error))
        return 1
    print(f"train: {json.dumps(report, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
