"""The shared package keeps handlers -> use cases -> stores strict inside every feature folder.

- A **store** (a module named ``store.py`` or ``*_store.py``, and the AWS plumbing in ``core``) is the
  only code that imports boto3 or botocore; it translates AWS errors into domain errors.
- A **use case** (listed below) combines rules and stores; it never imports the AWS SDK itself.
- Everything else is a **rule**: plain Python, no SDK, no Lambda tooling, no store, no use case.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "layers" / "shared" / "controlplane"
SDK_ROOTS = {"boto3", "botocore", "mypy_boto3", "s3transfer"}
TOOLING_ROOTS = {"aws_lambda_powertools", "aws_xray_sdk"}
AWS_PLUMBING = {"controlplane.core.clients", "controlplane.core.dynamo", "controlplane.core.functions"}
CROSS_CUTTING = {"controlplane", "controlplane.settings", "controlplane.observability"}
USE_CASES = {
    "controlplane.admission.gate",
    "controlplane.api.auditing",
    "controlplane.api.authorizing",
    "controlplane.api.key_lifecycle",
    "controlplane.builds.reconciling",
    "controlplane.builds.recording",
    "controlplane.builds.rendezvous",
    "controlplane.jobs.cancelling",
    "controlplane.jobs.closing",
    "controlplane.jobs.following",
    "controlplane.jobs.explanations",
    "controlplane.jobs.listing",
    "controlplane.jobs.sweep",
    "controlplane.models.approval",
    "controlplane.tenants.changing",
    "controlplane.tenants.offboarding",
    "controlplane.tenants.onboarding",
    "controlplane.uploads.large_validation",
}
FEATURES = {"admission", "api", "builds", "core", "jobs", "models", "tenants", "uploads", "usage"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_store(module: str) -> bool:
    leaf = module.rsplit(".", 1)[-1]
    return leaf == "store" or leaf.endswith("_store") or module in AWS_PLUMBING


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                pytest.fail(f"{path.name} uses a relative import; import controlplane.* explicitly")
            base = node.module or ""
            # "from controlplane.jobs import store" imports the module controlplane.jobs.store
            modules += [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names
            ]
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            pytest.fail(f"{path.name} imports dynamically")
    return modules


def test_the_package_is_organised_by_feature() -> None:
    folders = {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"}
    assert folders == FEATURES
    for module in USE_CASES:
        assert module in MODULES, f"{module} is listed as a use case but does not exist"


@pytest.mark.parametrize("module", sorted(MODULES), ids=str)
def test_only_stores_touch_the_aws_sdk(module: str) -> None:
    if _is_store(module):
        return
    for imported in _imports(MODULES[module]):
        assert imported.split(".")[0] not in SDK_ROOTS, f"{module} imports {imported}"


@pytest.mark.parametrize(
    "module", sorted(m for m in MODULES if not _is_store(m) and m not in USE_CASES | CROSS_CUTTING), ids=str
)
def test_rules_are_plain_python(module: str) -> None:
    for imported in _imports(MODULES[module]):
        root = imported.split(".")[0]
        assert root not in TOOLING_ROOTS, f"{module} imports {imported}"
        if root == "controlplane":
            assert not _is_store(imported), f"rule {module} imports the store {imported}"
            assert imported not in USE_CASES, f"rule {module} imports the use case {imported}"
            assert imported not in {"controlplane.observability"}, f"rule {module} imports {imported}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _is_store(m)), ids=str)
def test_stores_do_not_call_use_cases(module: str) -> None:
    for imported in _imports(MODULES[module]):
        assert imported not in USE_CASES, f"store {module} imports the use case {imported}"
