"""Helpers for the pipeline tests: generated datasets, the committed definition, in-process AWS.

These tests run in the dev venv, which has the step scripts' runtime (requirements/pipeline-runtime.txt)
but never the SageMaker SDK: the definition is read as data.

Not a conftest.py on purpose: tests/unit imports helpers with `from conftest import ...`, which a
second non-package conftest.py would shadow (seen under pytest-xdist). Plain functions, no fixtures.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from moto import mock_aws

ROOT = Path(__file__).resolve().parents[2]
PIPELINE_DIR = ROOT / "pipeline"


def load_provisioner() -> ModuleType:
    """functions/provision_pipeline/app.py as a module (every function's module is named app)."""
    spec = importlib.util.spec_from_file_location(
        "provision_pipeline_app", ROOT / "functions/provision_pipeline/app.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _dataset_rows(kind: str, rows: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """Four numeric features, one text column and one constant column (both dropped by preprocess),
    a few missing cells, and a target: learnable ("classification", "regression") or pure noise."""
    rng = random.Random(seed)
    header = ["f1", "f2", "f3", "f4", "notes", "constant", "target"]
    body = []
    for index in range(rows):
        features = [rng.gauss(0, 1) for _ in range(4)]
        if kind == "classification":
            chance = 1 / (1 + math.exp(-(3 * features[0] - 2 * features[1])))
            target = "yes" if rng.random() < chance else "no"
        elif kind == "noise":
            target = "yes" if rng.random() < 0.5 else "no"
        elif kind == "regression":
            target = f"{3 * features[0] - 2 * features[1] + rng.gauss(0, 0.3):.5f}"
        else:
            raise ValueError(kind)
        cells = [f"{value:.5f}" for value in features]
        if index % 13 == 0:
            cells[2] = ""  # missing values: the model handles them natively
        body.append([*cells, f"row {index}", "1", target])
    return header, body


def write_dataset(path: Path, kind: str = "classification", rows: int = 240, seed: int = 7) -> Path:
    header, body = _dataset_rows(kind, rows, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(body)
    return path


@functools.cache
def definition_text() -> str:
    return (PIPELINE_DIR / "definition.json").read_text()


def definition() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(definition_text())
    return loaded


@contextlib.contextmanager
def in_process_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """moto in-process; dummy credentials so nothing can reach a real account."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        yield
