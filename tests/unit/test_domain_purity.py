"""The domain package is plain Python: no AWS SDK, no data access, no Lambda tooling."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "layers" / "shared" / "controlplane" / "domain"
FORBIDDEN_ROOTS = {"boto3", "botocore", "mypy_boto3", "s3transfer", "aws_lambda_powertools", "aws_xray_sdk"}


def _imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pytest.fail(f"{path.name} uses a relative import; use controlplane.domain.* explicitly")
            modules.append(node.module or "")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            pytest.fail(f"{path.name} imports dynamically")
    return modules


def test_domain_modules_exist() -> None:
    names = {path.stem for path in DOMAIN.glob("*.py")}
    assert {
        "models",
        "uploads",
        "registration",
        "validation",
        "admission",
        "pipeline_outcome",
        "errors",
    } <= names


@pytest.mark.parametrize("path", sorted(DOMAIN.glob("*.py")), ids=lambda path: path.name)
def test_domain_imports_no_aws_sdk(path: Path) -> None:
    for module in _imports(path):
        root = module.split(".")[0]
        assert root not in FORBIDDEN_ROOTS, f"{path.name} imports {module}"
        # Within the package only other domain modules: no transitive path to boto3 through access/services.
        if root == "controlplane":
            assert module.startswith("controlplane.domain"), f"{path.name} imports {module}"
