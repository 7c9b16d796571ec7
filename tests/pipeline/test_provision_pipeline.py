"""provision_pipeline, the custom resource that uploads the step scripts and creates the pipeline."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pipeline_testing import in_process_aws, load_provisioner

from tests.support.cfn_response import ResponseUrlServer

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "pipeline"
BUCKET = "mlaas-artifacts"
ROLE = "arn:aws:iam::123456789012:role/mlaas-pipeline-execution"


app = load_provisioner()


class CloudFormation(ResponseUrlServer):
    """Stands in for the presigned S3 ResponseURL (loopback HTTP) and records the responses."""

    def event(
        self, request_type: str, properties: dict[str, Any], physical_id: str | None = None
    ) -> dict[str, Any]:
        event = {
            "RequestType": request_type,
            "ResponseURL": self.url_for("/response?X-Amz-Signature=abc"),
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/mlaas/guid",
            "RequestId": f"request-{len(self.responses)}",
            "LogicalResourceId": "TrainingPipeline",
            "ResourceType": "Custom::SageMakerPipeline",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:...", **properties},
        }
        if physical_id is not None:
            event["PhysicalResourceId"] = physical_id
        return event


class Context:
    log_stream_name = "2026/11/21/[$LATEST]abc"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with in_process_aws(monkeypatch):
        yield


@pytest.fixture
def cloudformation() -> Iterator[CloudFormation]:
    server = CloudFormation()
    yield server
    server.close()


@pytest.fixture
def account(aws: None, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setenv("PIPELINE_BUNDLE_DIR", str(BUNDLE))
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    return {"s3": s3, "sagemaker": boto3.client("sagemaker")}


def properties(**overrides: Any) -> dict[str, Any]:
    return {
        "PipelineName": "mlaas-tenant-training",
        "PipelineRoleArn": ROLE,
        "CodeBucket": BUCKET,
        "CodePrefix": "pipeline-code",
        "PipelineDescription": "The vendor's algorithm, shared by all tenants.",
        "Tags": [{"Key": "mlaas:component", "Value": "pipeline"}],
        "BundleVersion": "arn:aws:lambda:us-east-1:123456789012:layer:bundle:1",
        **overrides,
    }


def test_create_uploads_the_code_and_creates_the_pipeline(
    account: dict[str, Any], cloudformation: CloudFormation
) -> None:
    result = app.lambda_handler(cloudformation.event("Create", properties()), Context())
    assert result["Status"] == "SUCCESS"
    (response,) = cloudformation.responses
    assert cloudformation.content_types == [""]  # the presigned URL was signed without a Content-Type
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == "mlaas-tenant-training"
    assert (response["RequestId"], response["LogicalResourceId"]) == ("request-0", "TrainingPipeline")
    code_uri = response["Data"]["CodeUri"]
    assert code_uri.startswith(f"s3://{BUCKET}/pipeline-code/")

    prefix = code_uri.removeprefix(f"s3://{BUCKET}/")
    keys = sorted(item["Key"] for item in account["s3"].list_objects_v2(Bucket=BUCKET)["Contents"])
    assert keys == [f"{prefix}/evaluate.py", f"{prefix}/preprocess.py", f"{prefix}/train/sourcedir.tar.gz"]
    uploaded = account["s3"].get_object(Bucket=BUCKET, Key=f"{prefix}/preprocess.py")["Body"].read()
    assert uploaded == (BUNDLE / "steps" / "preprocess.py").read_bytes()

    pipeline = account["sagemaker"].describe_pipeline(PipelineName="mlaas-tenant-training")
    assert pipeline["RoleArn"] == ROLE
    definition = pipeline["PipelineDefinition"]
    assert "${" not in definition
    assert f'"{code_uri}/preprocess.py"' in definition
    assert f'\\"{code_uri}/train/sourcedir.tar.gz\\"' in definition
    assert '"sagemaker_region": "\\"us-east-1\\""' in definition
    expected = (BUNDLE / "definition.json").read_text().replace("${PipelineCodeUri}", code_uri)
    assert json.loads(definition) == json.loads(expected.replace("${Region}", "us-east-1"))
    tags = account["sagemaker"].list_tags(ResourceArn=pipeline["PipelineArn"])["Tags"]
    assert {"Key": "mlaas:component", "Value": "pipeline"} in tags


def test_update_keeps_unchanged_code_and_delete_removes_the_pipeline(
    account: dict[str, Any], cloudformation: CloudFormation
) -> None:
    app.lambda_handler(cloudformation.event("Create", properties()), Context())
    first = cloudformation.responses[-1]["Data"]["CodeUri"]
    updated = properties(PipelineDescription="changed")
    app.lambda_handler(cloudformation.event("Update", updated, "mlaas-tenant-training"), Context())
    response = cloudformation.responses[-1]
    assert response["Status"] == "SUCCESS"
    assert response["PhysicalResourceId"] == "mlaas-tenant-training"
    assert response["Data"]["CodeUri"] == first, "same scripts, same content-hash prefix"
    pipeline = account["sagemaker"].describe_pipeline(PipelineName="mlaas-tenant-training")
    assert pipeline["PipelineDescription"] == "changed"

    app.lambda_handler(cloudformation.event("Delete", updated, "mlaas-tenant-training"), Context())
    assert cloudformation.responses[-1]["Status"] == "SUCCESS"
    assert account["sagemaker"].list_pipelines()["PipelineSummaries"] == []
    # Deleting again (e.g. a retried request) still succeeds.
    app.lambda_handler(cloudformation.event("Delete", updated, "mlaas-tenant-training"), Context())
    assert cloudformation.responses[-1]["Status"] == "SUCCESS"


def test_a_bad_request_answers_failed_with_the_reason(
    account: dict[str, Any], cloudformation: CloudFormation
) -> None:
    event = cloudformation.event("Create", properties(CodeBucket=""))
    result = app.lambda_handler(event, Context())
    assert result["Status"] == "FAILED"
    (response,) = cloudformation.responses
    assert response["Status"] == "FAILED"
    assert response["Reason"] == "ProvisioningError: the property CodeBucket is required"
    assert response["PhysicalResourceId"] == "mlaas-tenant-training-create-failed"
    failed_update = cloudformation.event(
        "Update", properties(CodeBucket="no-such-bucket"), "mlaas-tenant-training"
    )
    app.lambda_handler(failed_update, Context())
    assert cloudformation.responses[-1]["Status"] == "FAILED"
    assert cloudformation.responses[-1]["PhysicalResourceId"] == "mlaas-tenant-training"


def test_changed_scripts_get_a_new_prefix(tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("__pycache__"))
    before = app.content_hash(app.code_objects(bundle))
    assert before == app.content_hash(app.code_objects(BUNDLE))
    (bundle / "steps" / "evaluate.py").write_text(
        (bundle / "steps" / "evaluate.py").read_text() + "\n# changed\n"
    )
    assert app.content_hash(app.code_objects(bundle)) != before


def test_the_training_source_tarball_is_reproducible() -> None:
    first = app.sourcedir_tarball(BUNDLE / "steps" / "train.py")
    assert first == app.sourcedir_tarball(BUNDLE / "steps" / "train.py")
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as archive:
        (member,) = archive.getmembers()
        assert (member.name, member.mtime, member.uid, member.mode) == ("train.py", 0, 0, 0o644)
        extracted = archive.extractfile(member)
        assert extracted is not None
        assert extracted.read() == (BUNDLE / "steps" / "train.py").read_bytes()


def test_unknown_placeholders_are_refused() -> None:
    with pytest.raises(app.ProvisioningError, match="unknown placeholder"):
        app.render_definition('{"a": "${Other}"}', "s3://b/p", "eu-west-1")
    assert app.render_definition(
        '{"a": "${PipelineCodeUri}/x", "r": "${Region}"}', "s3://b/p", "eu-west-1"
    ) == ('{"a": "s3://b/p/x", "r": "eu-west-1"}')


def test_the_bundle_is_found_on_sys_path_as_in_the_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PIPELINE_BUNDLE_DIR", raising=False)
    monkeypatch.syspath_prepend(str(BUNDLE))
    assert app.bundle_dir() == BUNDLE
