"""provision_pipeline: CloudFormation custom resource that puts the shared training pipeline in place.

``sam deploy`` packages no SageMaker pipeline definition or step script (AWS::SageMaker::Pipeline is
not among the resource types whose local paths it uploads), so this function does it, from the
pipeline bundle (``pipeline/``: definition.json and steps/) that the template ships as a layer:

- Create / Update: uploads the step scripts to ``s3://<CodeBucket>/<CodePrefix>/<content hash>/``
  (``preprocess.py``, ``evaluate.py``, ``train/sourcedir.tar.gz`` built byte-for-byte
  reproducibly), fills ``${PipelineCodeUri}`` and ``${Region}`` into the definition, then creates
  the pipeline or updates it. Scripts are never overwritten in place: a running execution keeps the
  code it started with, and a changed script yields a new prefix.
- Delete: deletes the pipeline (an absent one is fine). The uploaded code stays, like the
  retained artifacts bucket it lives in.

The physical id is the pipeline name: renaming the pipeline creates the new one, after which
CloudFormation deletes the old one. Every request is answered on ResponseURL, FAILED with the reason
on any error and also shortly before the function would time out (controlplane.core.custom_resources,
from the shared layer).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import os
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.exceptions import ClientError

from controlplane.core import custom_resources as cloudformation

LOGGER = logging.getLogger("provision_pipeline")
LOGGER.setLevel(logging.INFO)

CODE_URI_PLACEHOLDER: Final = "${PipelineCodeUri}"
REGION_PLACEHOLDER: Final = "${Region}"
# The bundle's files that become S3 objects (the training script goes as a script-mode source tarball).
PROCESSING_SCRIPTS: Final = ("preprocess.py", "evaluate.py")
TRAINING_SCRIPT: Final = "train.py"
TIMEOUT_MARGIN_SECONDS: Final = 5.0


class ProvisioningError(Exception):
    """The request or the bundle is not usable; the message is the FAILED reason."""


def bundle_dir() -> Path:
    """The pipeline bundle: $PIPELINE_BUNDLE_DIR, else the layer (/opt on Lambda; a layer directory on
    sys.path in the local emulator)."""
    configured = os.environ.get("PIPELINE_BUNDLE_DIR")
    candidates = (
        [Path(configured)] if configured else [*(Path(entry) for entry in sys.path if entry), Path("/opt")]
    )
    for candidate in candidates:
        if (candidate / "definition.json").is_file() and (candidate / "steps").is_dir():
            return candidate
    raise ProvisioningError("the pipeline bundle (definition.json and steps/) is not on this function")


def sourcedir_tarball(script: Path) -> bytes:
    """train.py as sourcedir.tar.gz, identical bytes for identical content (no times, owners)."""
    data = script.read_bytes()
    raw = io.BytesIO()
    with (
        gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        info = tarfile.TarInfo(script.name)
        info.size, info.mode, info.mtime = len(data), 0o644, 0
        archive.addfile(info, io.BytesIO(data))
    return raw.getvalue()


def code_objects(bundle: Path) -> dict[str, bytes]:
    """Relative key → content of everything the definition's ${PipelineCodeUri} points to."""
    steps = bundle / "steps"
    objects = {name: (steps / name).read_bytes() for name in PROCESSING_SCRIPTS}
    objects["train/sourcedir.tar.gz"] = sourcedir_tarball(steps / TRAINING_SCRIPT)
    return objects


def content_hash(objects: Mapping[str, bytes]) -> str:
    digest = hashlib.sha256()
    for key in sorted(objects):
        digest.update(key.encode() + b"\0" + hashlib.sha256(objects[key]).digest())
    return digest.hexdigest()[:20]


def render_definition(template: str, code_uri: str, region: str) -> str:
    text = template.replace(CODE_URI_PLACEHOLDER, code_uri).replace(REGION_PLACEHOLDER, region)
    if "${" in text:
        start = text.index("${")
        raise ProvisioningError(f"the definition has an unknown placeholder {text[start : start + 40]!r}")
    json.loads(text)  # still valid JSON: a placeholder value may not break the document
    return text


def _tags(value: Any) -> list[dict[str, str]]:
    if not value:
        return []
    if not isinstance(value, list) or not all(
        isinstance(tag, dict) and {"Key", "Value"} <= set(tag) for tag in value
    ):
        raise ProvisioningError("Tags must be a list of {Key, Value}")
    return [{"Key": str(tag["Key"]), "Value": str(tag["Value"])} for tag in value]


def _required(properties: Mapping[str, Any], name: str) -> str:
    value = properties.get(name)
    if not isinstance(value, str) or not value:
        raise ProvisioningError(f"the property {name} is required")
    return value


def provision(
    properties: Mapping[str, Any], *, region: str, bundle: Path, s3: Any, sagemaker: Any
) -> dict[str, str]:
    """Upload the code and create or update the pipeline; returns the resource's Data."""
    name = _required(properties, "PipelineName")
    role_arn = _required(properties, "PipelineRoleArn")
    bucket = _required(properties, "CodeBucket")
    prefix = str(properties.get("CodePrefix") or "pipeline-code").strip("/")
    objects = code_objects(bundle)
    code_prefix = f"{prefix}/{content_hash(objects)}"
    for key, body in sorted(objects.items()):
        s3.put_object(Bucket=bucket, Key=f"{code_prefix}/{key}", Body=body)
    code_uri = f"s3://{bucket}/{code_prefix}"
    definition = render_definition((bundle / "definition.json").read_text(), code_uri, region)
    request: dict[str, Any] = {"PipelineName": name, "PipelineDefinition": definition, "RoleArn": role_arn}
    for key in ("PipelineDisplayName", "PipelineDescription"):
        if properties.get(key):
            request[key] = str(properties[key])
    tags = _tags(properties.get("Tags"))
    try:
        arn = sagemaker.describe_pipeline(PipelineName=name)["PipelineArn"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"ResourceNotFound", "ValidationException"}:
            raise
        arn = sagemaker.create_pipeline(**request, **({"Tags": tags} if tags else {}))["PipelineArn"]
        LOGGER.info(json.dumps({"message": "pipeline created", "pipeline": name, "codeUri": code_uri}))
    else:
        sagemaker.update_pipeline(**request)
        if tags:
            sagemaker.add_tags(ResourceArn=arn, Tags=tags)
        LOGGER.info(json.dumps({"message": "pipeline updated", "pipeline": name, "codeUri": code_uri}))
    return {"PipelineName": name, "PipelineArn": arn, "CodeUri": code_uri}


def remove(physical_id: str, *, sagemaker: Any) -> None:
    try:
        sagemaker.delete_pipeline(PipelineName=physical_id)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"ResourceNotFound", "ValidationException"}:
            raise
        LOGGER.info(json.dumps({"message": "pipeline already absent", "pipeline": physical_id}))
    else:
        LOGGER.info(json.dumps({"message": "pipeline deleted", "pipeline": physical_id}))


def physical_resource_id(event: Mapping[str, Any], status: str) -> str:
    """The pipeline name. A failed Update or any Delete keeps the id CloudFormation holds (so a failure
    never looks like a replacement); a failed Create answers with an id that names no pipeline, so its
    rollback deletes nothing (a half-created pipeline is simply updated by the next deploy)."""
    existing = str(event.get("PhysicalResourceId") or "")
    if event.get("RequestType") == "Delete" or (status == cloudformation.FAILED and existing):
        return existing or "provision-pipeline-none"
    name = str(event.get("ResourceProperties", {}).get("PipelineName") or "")
    if status == cloudformation.FAILED or not name:
        return f"{name or 'pipeline'}-create-failed"
    return name


def handle(event: Mapping[str, Any]) -> dict[str, str]:
    request_type = event.get("RequestType")
    sagemaker = boto3.client("sagemaker")
    if request_type == "Delete":
        remove(str(event.get("PhysicalResourceId", "")), sagemaker=sagemaker)
        return {}
    if request_type not in {"Create", "Update"}:
        raise ProvisioningError(f"unknown RequestType {request_type!r}")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or ""
    if not region:
        raise ProvisioningError("AWS_REGION is not set")
    return provision(
        event.get("ResourceProperties", {}),
        region=region,
        bundle=bundle_dir(),
        s3=boto3.client("s3"),
        sagemaker=sagemaker,
    )


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    LOGGER.info(
        json.dumps(
            {
                "message": "request",
                "requestType": event.get("RequestType"),
                "logicalResourceId": event.get("LogicalResourceId"),
            }
        )
    )
    return cloudformation.answer(
        event,
        context,
        handle,
        physical_id=physical_resource_id,
        name="provision_pipeline",
        timeout_margin_seconds=TIMEOUT_MARGIN_SECONDS,
    )
