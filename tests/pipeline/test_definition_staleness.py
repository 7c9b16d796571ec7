"""pipeline/definition.json must be what pipeline/build_definition.py generates now.

The generator needs the SageMaker SDK, which lives only in the build venv (build/pipeline-venv, from
requirements/pipeline-build.txt). `make test` creates it first; without it the test fails (a stale
definition must never pass unnoticed). Create it with `make pipeline-venv`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_PYTHON = ROOT / "build" / "pipeline-venv" / "bin" / "python"
PINS = ROOT / "requirements" / "pipeline-build.txt"


@pytest.fixture(scope="module")
def build_python() -> Path:
    if BUILD_PYTHON.exists():
        return BUILD_PYTHON
    pytest.fail(f"no pipeline build venv at {BUILD_PYTHON.relative_to(ROOT)}: run `make pipeline-venv`")


def test_build_venv_has_the_pinned_sdk(build_python: Path) -> None:
    pinned = re.search(r"^sagemaker==(\S+)$", PINS.read_text(), re.MULTILINE)
    assert pinned is not None
    assert pinned[1].startswith("2."), "the build pins SageMaker SDK 2.x"
    installed = subprocess.run(
        [str(build_python), "-c", "import importlib.metadata as m; print(m.version('sagemaker'))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert installed == pinned[1], "the build venv is out of date: run `make pipeline-venv`"


def test_committed_definition_is_what_the_generator_builds(build_python: Path) -> None:
    result = subprocess.run(
        [str(build_python), str(ROOT / "pipeline" / "build_definition.py"), "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{result.stderr[-3000:]}\nregenerate with `make pipeline-definition`"
