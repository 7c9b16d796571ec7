"""The step scripts on small generated data, with the container paths mapped to temporary folders.

Each script's main() runs in-process (fast); one test runs a script as a subprocess, the way the
container and the local executor do, to check the exit code and the one-line error on stderr.
"""

from __future__ import annotations

import csv
import gzip
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
from pipeline_testing import write_dataset

from pipeline.steps import evaluate, preprocess, train

ROOT = Path(__file__).resolve().parents[2]
FEW_ITERATIONS = {"max_iter": "40", "min_samples_leaf": "10"}


def run_preprocess(
    dataset: Path, out: Path, target: str = "target", problem: str = "binary_classification"
) -> int:
    return preprocess.main(
        [
            "--target-column",
            target,
            "--problem-type",
            problem,
            "--input-dir",
            str(dataset.parent),
            "--output-dir",
            str(out),
        ]
    )


def run_train(
    monkeypatch: pytest.MonkeyPatch, splits: Path, work: Path, hyperparameters: dict[str, str]
) -> int:
    config = work / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (work / "output").mkdir()
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(config))
    monkeypatch.setenv("SM_CHANNEL_TRAIN", str(splits / "train"))
    monkeypatch.setenv("SM_CHANNEL_VALIDATION", str(splits / "validation"))
    monkeypatch.setenv("SM_MODEL_DIR", str(work / "model"))
    monkeypatch.setenv("SM_OUTPUT_DIR", str(work / "output"))
    monkeypatch.setenv("SM_OUTPUT_DATA_DIR", str(work / "output" / "data"))
    return train.main([])


def package_model(model_dir: Path, target: Path) -> Path:
    """What SageMaker does with /opt/ml/model at the end of a training job."""
    target.mkdir(parents=True)
    with tarfile.open(target / "model.tar.gz", "w:gz") as archive:
        for path in sorted(model_dir.iterdir()):
            archive.add(path, arcname=path.name)
    return target


def build_and_evaluate(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dataset: Path, problem: str
) -> dict[str, Any]:
    assert run_preprocess(dataset, tmp_path / "splits", problem=problem) == 0
    hyperparameters = {"target_column": "target", "problem_type": problem, **FEW_ITERATIONS}
    assert run_train(monkeypatch, tmp_path / "splits", tmp_path / "train", hyperparameters) == 0
    model = package_model(tmp_path / "train" / "model", tmp_path / "model-artifact")
    code = evaluate.main(
        [
            "--model-dir",
            str(model),
            "--test-dir",
            str(tmp_path / "splits" / "test"),
            "--output-dir",
            str(tmp_path / "evaluation"),
        ]
    )
    assert code == 0
    report: dict[str, Any] = json.loads((tmp_path / "evaluation" / "evaluation.json").read_text())
    return report


def read_rows(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_preprocess_splits_stratified_and_drops_unusable_columns(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", rows=200)
    assert run_preprocess(dataset, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report" / "preprocess_report.json").read_text())
    assert report["features"] == ["f1", "f2", "f3", "f4"]
    assert report["dropped_columns"] == {"notes": "not numeric", "constant": "a single value"}
    assert report["splits"] == {"train": 140, "validation": 30, "test": 30}
    assert report["missing_values"]["f3"] == 16
    for split in ("train", "validation", "test"):
        header, *rows = read_rows(tmp_path / "out" / split / f"{split}.csv")
        assert header == ["f1", "f2", "f3", "f4", "target"]
        assert len(rows) == report["splits"][split]
        assert {row[-1] for row in rows} == {"yes", "no"}, f"both classes in {split}"
    # Deterministic: the same input gives byte-identical splits (every instance writes the same files).
    assert run_preprocess(dataset, tmp_path / "again") == 0
    for split in ("train", "validation", "test"):
        same = (tmp_path / "again" / split / f"{split}.csv").read_bytes()
        assert same == (tmp_path / "out" / split / f"{split}.csv").read_bytes()


def test_classification_model_is_evaluated_with_auc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", kind="classification")
    report = build_and_evaluate(monkeypatch, tmp_path, dataset, "binary_classification")
    metrics = report["binary_classification_metrics"]
    assert set(metrics) == {"auc", "accuracy", "precision", "recall", "f1", "log_loss"}
    assert metrics["auc"]["value"] > 0.8
    assert report["validation_metric"] == {"name": "auc", "value": metrics["auc"]["value"]}
    assert report["positive_class"] == "yes"
    metadata = json.loads((tmp_path / "train" / "model" / "model_metadata.json").read_text())
    assert metadata["classes"] == ["no", "yes"]
    assert metadata["features"] == ["f1", "f2", "f3", "f4"]
    assert 1 <= metadata["iterations"] <= 40
    assert (tmp_path / "train" / "output" / "data" / "training_report.json").is_file()


def test_regression_model_is_evaluated_with_r2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", kind="regression")
    report = build_and_evaluate(monkeypatch, tmp_path, dataset, "regression")
    metrics = report["regression_metrics"]
    assert set(metrics) == {"r2", "rmse", "mae"}
    assert metrics["r2"]["value"] > 0.8
    assert report["validation_metric"] == {"name": "r2", "value": metrics["r2"]["value"]}


def test_a_weak_dataset_scores_below_a_reasonable_threshold(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", kind="noise")
    report = build_and_evaluate(monkeypatch, tmp_path, dataset, "binary_classification")
    assert report["validation_metric"]["name"] == "auc"
    assert report["validation_metric"]["value"] < 0.7


@pytest.mark.parametrize(
    ("kind", "target", "problem", "message"),
    [
        (
            "classification",
            "label",
            "binary_classification",
            "the target column 'label' is not in the header",
        ),
        (
            "regression",
            "target",
            "binary_classification",
            "binary classification needs exactly two target values",
        ),
        ("classification", "target", "regression", "regression needs a numeric target"),
    ],
)
def test_preprocess_rejects_data_that_does_not_fit(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    target: str,
    problem: str,
    message: str,
) -> None:
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", kind=kind, rows=30)
    assert run_preprocess(dataset, tmp_path / "out", target=target, problem=problem) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("preprocess: error: ")
    assert message in error
    assert "\n" not in error


def test_preprocess_needs_enough_rows_per_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "in" / "dataset.csv"
    dataset.parent.mkdir()
    dataset.write_text("x,target\n1,a\n2,a\n3,a\n4,b\n5,b\n")
    assert run_preprocess(dataset, tmp_path / "out") == 1
    assert "too few rows of each class" in capsys.readouterr().err


def test_preprocess_needs_a_usable_feature(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dataset = tmp_path / "in" / "dataset.csv"
    dataset.parent.mkdir()
    dataset.write_text("name,target\n" + "".join(f"n{i},{i % 2}\n" for i in range(20)))
    assert run_preprocess(dataset, tmp_path / "out") == 1
    assert "no usable feature column besides the target 'target'; dropped: 'name' (not numeric)" in (
        capsys.readouterr().err
    )


def test_train_failure_is_reported_on_stderr_and_in_the_failure_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "splits" / "train").mkdir(parents=True)
    (tmp_path / "splits" / "validation").mkdir(parents=True)
    code = run_train(
        monkeypatch,
        tmp_path / "splits",
        tmp_path / "train",
        {"target_column": "target", "problem_type": "regression"},
    )
    assert code == 1
    message = (
        "channel 'train' ("
        + str(tmp_path / "splits" / "train")
        + ") must hold exactly one .csv file, found 0"
    )
    assert capsys.readouterr().err.strip() == f"train: error: {message}"
    assert (tmp_path / "train" / "output" / "failure").read_text() == message


def test_train_reads_raw_hyperparameters_and_lets_the_command_line_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "hyperparameters.json").write_text(json.dumps({"target_column": "1", "max_iter": "5"}))
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(config))
    monkeypatch.setenv("SM_HPS", json.dumps({"target_column": 1, "max_iter": 99}))
    hyperparameters = train.load_hyperparameters()
    assert hyperparameters == {"target_column": "1", "max_iter": "5"}  # the exact strings, not SM_HPS
    args = train.parse_args(["--max_iter", "7", "--sagemaker_program", "train.py"], hyperparameters)
    assert (args.target_column, args.max_iter, args.learning_rate) == ("1", 7, 0.1)
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(tmp_path / "absent"))
    assert train.load_hyperparameters() == {"target_column": "1", "max_iter": "99"}


def test_evaluate_fails_clearly_without_a_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "test").mkdir()
    code = evaluate.main(
        [
            "--model-dir",
            str(tmp_path / "model"),
            "--test-dir",
            str(tmp_path / "test"),
            "--output-dir",
            str(tmp_path),
        ]
    )
    assert code == 1
    assert (
        capsys.readouterr().err.strip().startswith("evaluate: error: expected exactly one model.tar.gz under")
    )


def test_a_failing_script_exits_non_zero_with_one_line_on_stderr(tmp_path: Path) -> None:
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", rows=30)
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "pipeline" / "steps" / "preprocess.py"),
            "--target-column",
            "missing",
            "--problem-type",
            "regression",
            "--input-dir",
            str(dataset.parent),
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "preprocess: error: the target column 'missing' is not in the header "
        "(f1, f2, f3, f4, notes, constant, target)"
    ]


def test_preprocess_reads_a_gzip_upload_as_the_same_dataset(tmp_path: Path) -> None:
    """A .csv.gz upload is copied compressed: the splits are exactly those of the plain file."""
    plain = write_dataset(tmp_path / "plain" / "dataset.csv", rows=200)
    packed = tmp_path / "packed" / "dataset.csv.gz"
    packed.parent.mkdir()
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert run_preprocess(plain, tmp_path / "out-plain") == 0
    assert run_preprocess(packed, tmp_path / "out-packed") == 0
    for split in ("train", "validation", "test"):
        one = (tmp_path / "out-plain" / split / f"{split}.csv").read_bytes()
        assert one == (tmp_path / "out-packed" / split / f"{split}.csv").read_bytes()


def test_preprocess_counts_nan_and_infinity_as_missing(tmp_path: Path) -> None:
    """They reach the step only under the contract's nonFiniteAsMissing; then, as in validation, they
    are missing values and the column stays a feature."""
    dataset = write_dataset(tmp_path / "in" / "dataset.csv", rows=200)
    header, *rows = read_rows(dataset)
    column = header.index("f1")
    rows[0][column], rows[1][column], rows[2][column] = "NaN", "inf", "-Infinity"
    with dataset.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *rows])
    assert run_preprocess(dataset, tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "report" / "preprocess_report.json").read_text())
    assert "f1" in report["features"]
    assert report["missing_values"]["f1"] >= 3
