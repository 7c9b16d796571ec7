"""Unit-test fixtures: environment, in-process AWS (moto), tables created from template.yaml, fakes.

No network: moto's ``mock_aws`` serves AWS in-process; Step Functions task callbacks are recorded by a
fake (moto's SendTaskSuccess accepts any token, so dead tokens cannot be simulated there).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

# controlplane is imported inside fixtures, not here: this module is imported before pytest_configure sets
# the function environment that Powertools reads when controlplane.observability is first imported.

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
TEMPLATE = ROOT / "template.yaml"
ASL = ROOT / "statemachines" / "training_job.asl.json"

REGION = "us-east-1"
ACCOUNT = "123456789012"
STATE_MACHINE_ARN = f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:MLaaS-Test-training-job"

ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "tenant-build-control-plane",
    "POWERTOOLS_METRICS_NAMESPACE": "MLaaS/ControlPlane",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "JOBS_TABLE_NAME": "test-jobs",
    "TENANTS_TABLE_NAME": "test-tenants",
    "TIERS_TABLE_NAME": "test-tiers",
    "SLOT_LEASES_TABLE_NAME": "test-slot-leases",
    "FAIR_SHARE_TABLE_NAME": "test-fair-share",
    "USAGE_TABLE_NAME": "test-usage",
    "UPLOADS_BUCKET_NAME": "test-uploads-bucket",
    "ARTIFACTS_BUCKET_NAME": "test-artifacts-bucket",
    # Mixed case on purpose: SageMaker reports pipeline ARNs lowercased.
    "PIPELINE_NAME": "MLaaS-Test-tenant-training",
    "TRAINING_IMAGE_URI": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
    "STATE_MACHINE_ARN": STATE_MACHINE_ARN,
    # The API and its authorizer only (not Globals).
    "API_KEYS_TABLE_NAME": "test-api-keys",
    "AUDIT_TABLE_NAME": "test-audit",
    "TENANT_ROLE_PATH": "/mlaas-tenants/",
    "TENANT_ROLE_BOUNDARY_ARN": f"arn:aws:iam::{ACCOUNT}:policy/MLaaS-Test-tenant-role-boundary",
    "SAGEMAKER_ARN_PREFIX": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}",
    "OFFBOARD_TENANTS_FUNCTION_NAME": "MLaaS-Test-OffboardTenantsFunction",
}
TABLE_ENV = {
    "JobsTable": "JOBS_TABLE_NAME",
    "TenantsTable": "TENANTS_TABLE_NAME",
    "TiersTable": "TIERS_TABLE_NAME",
    "SlotLeasesTable": "SLOT_LEASES_TABLE_NAME",
    "FairShareTable": "FAIR_SHARE_TABLE_NAME",
    "UsageTable": "USAGE_TABLE_NAME",
    "ApiKeysTable": "API_KEYS_TABLE_NAME",
    "AuditTable": "AUDIT_TABLE_NAME",
}


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads template.yaml; intrinsic functions (!Ref, !Sub, ...) become plain placeholders."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return {suffix: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {suffix: loader.construct_sequence(node, deep=True)}
    return {suffix: loader.construct_mapping(node, deep=True)}  # type: ignore[arg-type]


_CloudFormationLoader.add_multi_constructor("!", _intrinsic)


@functools.cache
def _template_text() -> str:
    return TEMPLATE.read_text()


def load_template() -> dict[str, Any]:
    """template.yaml parsed (a fresh copy each call; the parse is cached)."""
    return copy.deepcopy(_parsed_template())


@functools.cache
def _parsed_template() -> dict[str, Any]:
    return yaml.load(_template_text(), Loader=_CloudFormationLoader)


_ENVIRONMENT_PATCH = pytest.MonkeyPatch()


def pytest_configure(config: pytest.Config) -> None:
    """The function environment, set before collection: as on Lambda, where the variables exist before the
    code is imported, Powertools reads them when the module-level Logger/Metrics/Tracer are created."""
    for name in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        _ENVIRONMENT_PATCH.delenv(name, raising=False)
    for name, value in ENVIRONMENT.items():
        _ENVIRONMENT_PATCH.setenv(name, value)
    # controlplane.observability silences this on Lambda; pytest resets warning filters per test.
    config.addinivalue_line("filterwarnings", "ignore:No application metrics to publish:UserWarning")


def pytest_unconfigure(config: pytest.Config) -> None:
    _ENVIRONMENT_PATCH.undo()


@functools.cache
def _test_session() -> boto3.session.Session:
    # One session for test-side clients: it caches the service models that every new client would reload.
    return boto3.session.Session(region_name=REGION)


def aws_client(service: str) -> Any:
    return _test_session().client(service)  # type: ignore[call-overload]


def load_event(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


@dataclass
class LambdaContext:
    function_name: str = "test-function"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:test-function"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"
    log_group_name: str = "/aws/lambda/test-function"
    log_stream_name: str = "2024/05/14/[$LATEST]0123456789abcdef"
    remaining_millis: int = 30_000

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_millis


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


def _create_tables(dynamodb: Any) -> None:
    resources = load_template()["Resources"]
    for logical_id, env_name in TABLE_ENV.items():
        properties = resources[logical_id]["Properties"]
        request: dict[str, Any] = {
            "TableName": ENVIRONMENT[env_name],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "KeySchema": properties["KeySchema"],
            "BillingMode": properties["BillingMode"],
        }
        if "GlobalSecondaryIndexes" in properties:
            request["GlobalSecondaryIndexes"] = properties["GlobalSecondaryIndexes"]
        dynamodb.create_table(**request)


def tier_defaults(tier: str) -> dict[str, Any]:
    """The template's TierDefaults for one tier, as seed_tiers would write them."""
    defaults = load_template()["Mappings"]["TierDefaults"][tier]
    return {
        "tier": tier,
        "concurrencyLimit": int(defaults["ConcurrencyLimit"]),
        "borrowingLimit": int(defaults["BorrowingLimit"]),
        "queueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/test-{tier}-queue",
        "trainingInstanceType": defaults["TrainingInstanceType"],
        "trainingInstanceCount": int(defaults["TrainingInstanceCount"]),
        "processingInstanceType": defaults["ProcessingInstanceType"],
        "processingInstanceCount": int(defaults["ProcessingInstanceCount"]),
        "maxDatasetBytes": int(defaults["MaxDatasetBytes"]),
        "queueWaitSeconds": int(defaults["QueueWaitSeconds"]),
        "useSpotInstances": defaults["UseSpotInstances"] == "true",
        "maxRuntimeSeconds": int(defaults["MaxRuntimeSeconds"]),
    }


def account_cap_default() -> int:
    """The template's AccountConcurrencyCap default, as seed_tiers would write it."""
    return int(load_template()["Parameters"]["AccountConcurrencyCap"]["Default"])


@pytest.fixture
def aws() -> Iterator[None]:
    """In-process AWS with the template's tables, both buckets (versioned) and seeded tiers."""
    from controlplane.admission import tier_store as tiers  # noqa: PLC0415 - see pytest_configure
    from controlplane.admission.tiers import TierSettings  # noqa: PLC0415
    from controlplane.core import clients  # noqa: PLC0415 - see pytest_configure

    with mock_aws():
        clients.reset()
        _create_tables(aws_client("dynamodb"))
        s3 = aws_client("s3")
        for bucket in (ENVIRONMENT["UPLOADS_BUCKET_NAME"], ENVIRONMENT["ARTIFACTS_BUCKET_NAME"]):
            s3.create_bucket(Bucket=bucket)
            s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        tiers.seed_account(account_cap_default(), now="2024-05-01T00:00:00.000Z")
        for tier in ("basic", "standard", "premium"):
            tiers.seed(TierSettings.model_validate(tier_defaults(tier)), now="2024-05-01T00:00:00.000Z")
        with _usage_plans():
            yield
        clients.reset()


@contextlib.contextmanager
def _usage_plans() -> Iterator[None]:
    """The template's three tier usage plans (the status API's rate limits), in moto's API Gateway, named to
    the API function through USAGE_PLAN_IDS as the template does."""
    from controlplane.settings import get_api_settings  # noqa: PLC0415 - see pytest_configure

    apigateway = aws_client("apigateway")
    mapping = load_template()["Mappings"]["ApiLimits"]
    plans = {
        tier: apigateway.create_usage_plan(
            name=f"test-{tier}",
            throttle={
                "rateLimit": mapping[tier]["RateLimit"],
                "burstLimit": mapping[tier]["BurstLimit"],
            },
        )["id"]
        for tier in ("basic", "standard", "premium")
    }
    os.environ["USAGE_PLAN_IDS"] = json.dumps(plans)
    get_api_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.pop("USAGE_PLAN_IDS", None)
        get_api_settings.cache_clear()


@pytest.fixture
def table(aws: None) -> Callable[[str], Any]:
    """A boto3 Table resource by environment variable name (test-side reads and writes)."""

    def get(env_name: str) -> Any:
        return _test_session().resource("dynamodb").Table(ENVIRONMENT[env_name])

    return get


def contract(**overrides: Any) -> dict[str, Any]:
    return {"targetColumn": "churned", "problemType": "binary_classification", "minRows": 3} | overrides


def tenant_item(tenant_id: str = "acme", **overrides: Any) -> dict[str, Any]:
    return {
        "tenantId": tenant_id,
        "tier": "basic",
        "status": "ACTIVE",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/mlaas-tenants/{tenant_id}-sagemaker",
        "modelPackageGroupName": f"{tenant_id}-models",
        "metricThreshold": "0.75",
        "contract": contract(),
        "createdAt": "2024-05-01T00:00:00.000Z",
        "updatedAt": "2024-05-01T00:00:00.000Z",
    } | overrides


@pytest.fixture
def put_tenant(aws: None, table: Callable[[str], Any]) -> Callable[..., dict[str, Any]]:
    def put(tenant_id: str = "acme", **overrides: Any) -> dict[str, Any]:
        item = tenant_item(tenant_id, **overrides)
        table("TENANTS_TABLE_NAME").put_item(
            Item=item | {"metricThreshold": Decimal(str(item["metricThreshold"]))}
        )
        return item

    return put


@dataclass
class FakeStepFunctions:
    """Records task callbacks; tokens in ``dead`` answer as Step Functions does for a finished wait."""

    sent: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    statuses: dict[str, str | None] = field(default_factory=dict)
    # Execution ARN -> (error, cause) reported by DescribeExecution for a FAILED execution.
    errors: dict[str, tuple[str, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_task_success(self, task_token: str, output: dict[str, Any]) -> None:
        from controlplane.core.errors import TaskTokenDeadError  # noqa: PLC0415 - see pytest_configure

        with self.lock:
            if task_token in self.dead:
                raise TaskTokenDeadError("TaskTimedOut", "Task Timed Out")
            self.sent.append((task_token, dict(output)))

    def send_task_failure(self, task_token: str, *, error: str, cause: str) -> None:
        with self.lock:
            self.failures.append((task_token, error, cause))

    def execution_status(self, execution_arn: str) -> str | None:
        return self.statuses.get(execution_arn, "RUNNING")

    def execution_end(self, execution_arn: str) -> Any:
        from controlplane.jobs.execution_end import ExecutionEnd  # noqa: PLC0415 - see pytest_configure

        error, cause = self.errors.get(execution_arn, (None, None))
        return ExecutionEnd(status=self.execution_status(execution_arn), error=error, cause=cause)

    def outputs_for(self, task_token: str) -> list[dict[str, Any]]:
        return [output for token, output in self.sent if token == task_token]


@pytest.fixture
def stepfunctions(monkeypatch: pytest.MonkeyPatch) -> FakeStepFunctions:
    from controlplane.jobs import execution_store as executions  # noqa: PLC0415 - see pytest_configure

    fake = FakeStepFunctions()
    monkeypatch.setattr(executions, "send_task_success", fake.send_task_success)
    monkeypatch.setattr(executions, "send_task_failure", fake.send_task_failure)
    monkeypatch.setattr(executions, "execution_status", fake.execution_status)
    monkeypatch.setattr(executions, "execution_end", fake.execution_end)
    return fake


@dataclass
class FakePipelines:
    """SageMaker's DescribePipelineExecution status and StopPipelineExecution, as the access module sees them;
    ``fail_with`` makes DescribePipelineExecution fail with that error code."""

    statuses: dict[str, str] = field(default_factory=dict)
    stops: list[tuple[str, str]] = field(default_factory=list)
    fail_with: str | None = None

    def status(self, arn: str) -> str:
        if self.fail_with:
            from controlplane.core.errors import AwsServiceError  # noqa: PLC0415 - see pytest_configure

            raise AwsServiceError("DescribePipelineExecution", self.fail_with, "no")
        return self.statuses.get(arn, "Executing")

    def stop(self, arn: str, *, client_request_token: str) -> None:
        self.stops.append((arn, client_request_token))
        self.statuses[arn] = "Stopping"


@pytest.fixture
def sagemaker(monkeypatch: pytest.MonkeyPatch) -> FakePipelines:
    from controlplane.builds import pipeline_store as pipelines  # noqa: PLC0415 - see pytest_configure

    fake = FakePipelines()
    monkeypatch.setattr(pipelines, "status", fake.status)
    monkeypatch.setattr(pipelines, "stop", fake.stop)
    return fake


@pytest.fixture
def load_app() -> Callable[[str], ModuleType]:
    """Import functions/<name>/app.py (each function folder is its own module; all are named app)."""

    def load(name: str) -> ModuleType:
        return importlib.import_module(f"functions.{name}.app")

    return load


@pytest.fixture
def serialized_dynamodb(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make moto's DynamoDB handle one request at a time, as DynamoDB applies each request atomically.

    moto's in-process backend is not thread-safe (a failed transaction restores a deep copy of the table,
    undoing concurrent writes). Serialising each *request* keeps the interleaving between requests from
    racing threads, which is what the concurrency tests exercise.
    """
    from moto.dynamodb.responses import DynamoHandler  # noqa: PLC0415 - moto internals, only for this fixture

    lock = threading.RLock()
    original = DynamoHandler.call_action

    def call_action(self: DynamoHandler) -> Any:
        with lock:
            return original(self)

    monkeypatch.setattr(DynamoHandler, "call_action", call_action)


def queued_job(
    table: Callable[[str], Any],
    job_id: str,
    *,
    tier: str = "basic",
    tenant_id: str = "acme",
    queued_at: str = "2024-05-01T00:00:00.000Z",
    token: str | None = None,
) -> dict[str, Any]:
    """Put a job as the state machine and the gate leave it in the waiting room."""
    item = {
        "jobId": job_id,
        "tenantId": tenant_id,
        "tier": tier,
        "status": "QUEUED",
        "queueTier": tier,
        "queueTaskToken": token or f"token-{job_id}",
        "queuedAt": queued_at,
        "createdAt": queued_at,
        "executionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MLaaS-Test-training-job:{job_id}",
        "timeline": [],
        "queueShare": f"{tier}#{tenant_id}",
    }
    table("JOBS_TABLE_NAME").put_item(Item=item)
    # ... and its tenant's share in the tier's backlog, as the gate's enqueue transaction leaves it.
    table("FAIR_SHARE_TABLE_NAME").update_item(
        Key={"shareId": f"{tier}#{tenant_id}"},
        UpdateExpression=(
            "SET backlogTier = :tier, tier = :tier, tenantId = :tenant, tag = if_not_exists(tag, :zero), "
            "backlogSince = if_not_exists(backlogSince, :at), #running = if_not_exists(#running, :zero), "
            "version = if_not_exists(version, :zero) + :one"
        ),
        ExpressionAttributeNames={"#running": "running"},
        ExpressionAttributeValues={
            ":tier": tier,
            ":tenant": tenant_id,
            ":zero": 0,
            ":one": 1,
            ":at": queued_at,
        },
    )
    return item


def enqueue_via_gate(
    table: Callable[[str], Any],
    job_id: str,
    *,
    tier: str,
    tenant_id: str,
    queued_at: str,
    now: str | None = None,
) -> None:
    """A job as the state machine queues it (QUEUED, no token yet), then its queue message handled by the
    gate's enqueue path (token stored, tenant's share marked backlogged, one transaction)."""
    from controlplane.admission import gate as admission  # noqa: PLC0415
    from controlplane.jobs.store import TokenStored  # noqa: PLC0415 - see pytest_configure

    table("JOBS_TABLE_NAME").put_item(
        Item={
            "jobId": job_id,
            "tenantId": tenant_id,
            "tier": tier,
            "status": "QUEUED",
            "queuedAt": queued_at,
            "createdAt": queued_at,
            "executionArn": f"arn:aws:states:{REGION}:{ACCOUNT}:execution:MLaaS-Test-training-job:{job_id}",
            "timeline": [],
        }
    )
    stored, _ = admission.enqueue(
        job_id, tenant_id=tenant_id, tier=tier, task_token=f"token-{job_id}", now=now or queued_at
    )
    assert stored is TokenStored.STORED


def set_tier_limits(table: Callable[[str], Any], tier: str, guaranteed: int, borrowing: int = 0) -> None:
    """A tier's guaranteed slots and how many more it may borrow (none unless a test is about borrowing)."""
    table("TIERS_TABLE_NAME").update_item(
        Key={"tier": tier},
        UpdateExpression="SET concurrencyLimit = :g, borrowingLimit = :b",
        ExpressionAttributeValues={":g": guaranteed, ":b": borrowing},
    )


def set_account_cap(table: Callable[[str], Any], cap: int) -> None:
    table("TIERS_TABLE_NAME").update_item(
        Key={"tier": "account"}, UpdateExpression="SET accountCap = :c", ExpressionAttributeValues={":c": cap}
    )


def take_slot(job: Any, *, now: str) -> Any:
    """slots.take for ``job`` with the decision the scheduler would make if the job's tenant were chosen:
    the same reads as the gate (capacity, the share), the same charge (one slot-unit)."""
    from controlplane.admission import share_store as fair_share  # noqa: PLC0415 - see pytest_configure
    from controlplane.admission import slot_store as slots  # noqa: PLC0415
    from controlplane.admission import tier_store as tiers  # noqa: PLC0415
    from controlplane.admission.fair_share import capacity_from_items  # noqa: PLC0415
    from controlplane.admission.scheduling import Admit, WaitingJob  # noqa: PLC0415

    account, items = tiers.capacity_items()
    capacity = capacity_from_items(account, items)
    assert capacity is not None
    share = fair_share.get(job.tier, job.tenant_id)
    tier_item = capacity.tiers[job.tier]
    start = max(share.tag, float(tier_item.get("fairClock", 0)))
    decision = Admit(
        tier=job.tier,
        tenant_id=job.tenant_id,
        job=WaitingJob(job.job_id, 0.0),
        borrowed=int(tier_item.get("running", 0)) >= int(tier_item.get("concurrencyLimit", 0)),
        tenant_usage=share.usage + 1.0,
        tenant_tag=start + 1.0 / share.weight,
        tier_clock=start,
    )
    return slots.take(job, decision=decision, share=share, capacity=capacity, now=now)


def job_id_for(number: int) -> str:
    return f"job-{number:064x}"
