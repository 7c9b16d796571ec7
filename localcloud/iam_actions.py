"""Which IAM actions on which resources an AWS API call needs: the one table the permission check uses.

``requests_for(service, operation, params, where)`` takes a call as boto3 makes it (the botocore service
name, the operation name, the call's parameters) and answers the IAM requests AWS authorizes for it:
mostly ``<prefix>:<Operation>`` on the resource the parameters name, with IAM's own names where they
differ (S3 object versions, ListObjectsV2 -> s3:ListBucket, Lambda Invoke -> lambda:InvokeFunction, one
request per item of a DynamoDB transaction, ...) and the extra actions some parameters need (S3 Tagging ->
s3:PutObjectTagging, SageMaker Tags -> sagemaker:AddTags, a role passed to SageMaker -> iam:PassRole).
``None`` means the operation is not in the table: the check reports it as unmapped, never as allowed.

Standard library only: a Lambda worker loads this file by path (its sys.path is the function's own).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

# Needs no permission on AWS: any principal may ask who it is.
ALWAYS_ALLOWED = frozenset({"sts:GetCallerIdentity"})
# Stands for a role's path in an ARN when the call names the role only (GetRole, DeleteRole, ...): the
# permission check fills it in from the roles it knows (the roles' real ARNs).
ROLE_PATH = "{path}"


@dataclass(frozen=True)
class Where:
    """Where a call is made: the client's region and the account (for ARNs built from names)."""

    region: str
    account: str


@dataclass(frozen=True)
class Request:
    """One IAM authorization: this action on this resource ARN (or "*")."""

    action: str
    resource: str


Rule = Callable[[str, Mapping[str, Any], Where], list[Request]]
Resource = Callable[[Mapping[str, Any], Where], str]


def _rule(prefix: str, resource: Resource, action: str | None = None) -> Rule:
    """`<prefix>:<action or the operation's name>` on one resource built from the parameters."""

    def rule(operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
        return [Request(f"{prefix}:{action or operation}", resource(params, where))]

    return rule


def _anything(_params: Mapping[str, Any], _where: Where) -> str:
    return "*"  # actions without resource-level permissions accept only "*"


# ------------------------------------------------------------------------------------------ DynamoDB


def _table_arn(name: str, where: Where) -> str:
    if name.startswith("arn:"):
        return name
    return f"arn:aws:dynamodb:{where.region}:{where.account}:table/{name}"


def _table(params: Mapping[str, Any], where: Where) -> str:
    return _table_arn(str(params["TableName"]), where)


def _table_or_index(params: Mapping[str, Any], where: Where) -> str:
    table = _table(params, where)
    index = params.get("IndexName")
    return f"{table}/index/{index}" if index else table


def _batch(operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    return [Request(f"dynamodb:{operation}", _table_arn(str(t), where)) for t in params["RequestItems"]]


# A transaction is authorized item by item, with the single-item action of each item.
_TRANSACTION_ITEM_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _transaction(_operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    return [
        Request(f"dynamodb:{_TRANSACTION_ITEM_ACTIONS[kind]}", _table_arn(str(body["TableName"]), where))
        for item in params["TransactItems"]
        for kind, body in item.items()
    ]


_DYNAMODB: dict[str, Rule] = {
    **{op: _rule("dynamodb", _table) for op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem")},
    "DescribeTable": _rule("dynamodb", _table),
    "Query": _rule("dynamodb", _table_or_index),
    "Scan": _rule("dynamodb", _table_or_index),
    "BatchGetItem": _batch,
    "BatchWriteItem": _batch,
    "TransactWriteItems": _transaction,
    "TransactGetItems": _transaction,
}

# ------------------------------------------------------------------------------------------ SQS


def _queue_arn(params: Mapping[str, Any], where: Where) -> str:
    # https://sqs.<region>.amazonaws.com/<account>/<name> (locally http://127.0.0.1:<port>/<account>/<name>)
    account, name = urlparse(str(params["QueueUrl"])).path.strip("/").split("/")[-2:]
    return f"arn:aws:sqs:{where.region}:{account}:{name}"


def _queue_named(params: Mapping[str, Any], where: Where) -> str:
    account = params.get("QueueOwnerAWSAccountId") or where.account
    return f"arn:aws:sqs:{where.region}:{account}:{params['QueueName']}"


_SQS: dict[str, Rule] = {
    **{
        op: _rule("sqs", _queue_arn)
        for op in (
            "SendMessage",
            "ReceiveMessage",
            "DeleteMessage",
            "ChangeMessageVisibility",
            "GetQueueAttributes",
            "SetQueueAttributes",
            "PurgeQueue",
        )
    },
    # The batch operations are authorized as their single-message actions.
    "SendMessageBatch": _rule("sqs", _queue_arn, "SendMessage"),
    "DeleteMessageBatch": _rule("sqs", _queue_arn, "DeleteMessage"),
    "ChangeMessageVisibilityBatch": _rule("sqs", _queue_arn, "ChangeMessageVisibility"),
    "GetQueueUrl": _rule("sqs", _queue_named),
    "ListQueues": _rule("sqs", _anything),
}

# ------------------------------------------------------------------------------------------ S3


def _object_arn(bucket: str, key: str) -> str:
    return f"arn:aws:s3:::{bucket}/{key}"


def _bucket(params: Mapping[str, Any], _where: Where) -> str:
    return f"arn:aws:s3:::{params['Bucket']}"


def _object(params: Mapping[str, Any]) -> str:
    return _object_arn(str(params["Bucket"]), str(params["Key"]))


def _versioned(action: str, version_id: Any) -> str:
    """IAM's name for the action on a given object version: GetObject -> GetObjectVersion, ..."""
    if not version_id:
        return f"s3:{action}"
    if action.endswith("Tagging"):  # GetObjectTagging -> GetObjectVersionTagging
        return f"s3:{action.removesuffix('Tagging')}VersionTagging"
    return f"s3:{action}Version"


def _object_rule(action: str, *, versioned: bool = True) -> Rule:
    def rule(_operation: str, params: Mapping[str, Any], _where: Where) -> list[Request]:
        name = _versioned(action, params.get("VersionId")) if versioned else f"s3:{action}"
        return [Request(name, _object(params))]

    return rule


def _writes_object(_operation: str, params: Mapping[str, Any], _where: Where) -> list[Request]:
    """PutObject (and a multipart upload's creation): tags and ACLs need their own actions."""
    requests = [Request("s3:PutObject", _object(params))]
    if params.get("Tagging"):
        requests.append(Request("s3:PutObjectTagging", _object(params)))
    if params.get("ACL") or any(str(key).startswith("Grant") for key in params):
        requests.append(Request("s3:PutObjectAcl", _object(params)))
    return requests


def _copy_source(source: Any) -> tuple[str, str, str | None]:
    """CopySource as boto3 takes it: {"Bucket", "Key", "VersionId"} or "bucket/key?versionId=..."."""
    if isinstance(source, Mapping):
        return str(source["Bucket"]), str(source["Key"]), source.get("VersionId")
    path, _, query = str(source).lstrip("/").partition("?")
    bucket, _, key = path.partition("/")
    version = query.removeprefix("versionId=") if query.startswith("versionId=") else None
    return bucket, unquote(key), version


def _copies_object(_operation: str, params: Mapping[str, Any], _where: Where) -> list[Request]:
    bucket, key, version = _copy_source(params["CopySource"])
    requests = [
        Request(_versioned("GetObject", version), _object_arn(bucket, key)),
        Request("s3:PutObject", _object(params)),
    ]
    # Setting tags needs s3:PutObjectTagging; REPLACE with no tags sets none. (COPY of a source's tags also
    # needs s3:GetObject(Version)Tagging on it when it has tags: not modelled, the call does not say.)
    if params.get("Tagging"):
        requests.append(Request("s3:PutObjectTagging", _object(params)))
    return requests


def _deletes_objects(_operation: str, params: Mapping[str, Any], _where: Where) -> list[Request]:
    bucket = str(params["Bucket"])
    return [
        Request(_versioned("DeleteObject", entry.get("VersionId")), _object_arn(bucket, str(entry["Key"])))
        for entry in params["Delete"]["Objects"]
    ]


_S3: dict[str, Rule] = {
    "GetObject": _object_rule("GetObject"),
    "HeadObject": _object_rule("GetObject"),  # HEAD is authorized as a read of the object (version)
    "DeleteObject": _object_rule("DeleteObject"),
    "GetObjectTagging": _object_rule("GetObjectTagging"),
    "PutObjectTagging": _object_rule("PutObjectTagging"),
    "PutObject": _writes_object,
    "CreateMultipartUpload": _writes_object,
    "UploadPart": _object_rule("PutObject", versioned=False),
    "CompleteMultipartUpload": _object_rule("PutObject", versioned=False),
    "AbortMultipartUpload": _object_rule("AbortMultipartUpload", versioned=False),
    "ListParts": _object_rule("ListMultipartUploadParts", versioned=False),
    "CopyObject": _copies_object,
    "UploadPartCopy": _copies_object,
    "DeleteObjects": _deletes_objects,
    "ListObjects": _rule("s3", _bucket, "ListBucket"),
    "ListObjectsV2": _rule("s3", _bucket, "ListBucket"),
    "HeadBucket": _rule("s3", _bucket, "ListBucket"),
    "ListObjectVersions": _rule("s3", _bucket, "ListBucketVersions"),
    "GetBucketLocation": _rule("s3", _bucket),
}

# ------------------------------------------------------------------------------------------ Step Functions


def _execution(params: Mapping[str, Any], _where: Where) -> str:
    return str(params["executionArn"])


def _state_machine(params: Mapping[str, Any], _where: Where) -> str:
    return str(params["stateMachineArn"])


_STEP_FUNCTIONS: dict[str, Rule] = {
    # Task-token actions have no resource-level permissions: the token is the capability.
    **{op: _rule("states", _anything) for op in ("SendTaskSuccess", "SendTaskFailure", "SendTaskHeartbeat")},
    **{
        op: _rule("states", _execution)
        for op in ("DescribeExecution", "StopExecution", "GetExecutionHistory")
    },
    **{
        op: _rule("states", _state_machine)
        for op in ("StartExecution", "StartSyncExecution", "ListExecutions", "DescribeStateMachine")
    },
}

# ------------------------------------------------------------------------------------------ Lambda


def _function(params: Mapping[str, Any], where: Where) -> str:
    """FunctionName may be a name, `name:qualifier`, a partial ARN or a full ARN."""
    name = str(params["FunctionName"])
    if name.startswith("arn:"):
        return name
    parts = name.split(":")
    if len(parts) >= 3 and parts[1] == "function":  # <account>:function:<name>[:<qualifier>]
        return f"arn:aws:lambda:{where.region}:{name}"
    qualifier = params.get("Qualifier") or (parts[1] if len(parts) == 2 else None)
    arn = f"arn:aws:lambda:{where.region}:{where.account}:function:{parts[0]}"
    return f"{arn}:{qualifier}" if qualifier else arn


_LAMBDA: dict[str, Rule] = {
    "Invoke": _rule("lambda", _function, "InvokeFunction"),
    "InvokeAsync": _rule("lambda", _function, "InvokeFunction"),
    "GetFunction": _rule("lambda", _function),
    "GetFunctionConfiguration": _rule("lambda", _function),
}

# ------------------------------------------------------------------------------------------ EventBridge


def _put_events(_operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    buses = {str(entry.get("EventBusName") or "default") for entry in params["Entries"]}
    return [
        Request(
            "events:PutEvents",
            bus
            if bus.startswith("arn:")
            else f"arn:aws:events:{where.region}:{where.account}:event-bus/{bus}",
        )
        for bus in sorted(buses)
    ]


# ------------------------------------------------------------------------------------------ SageMaker


def _sagemaker_arn(kind: str, name: str, where: Where) -> str:
    # SageMaker lowercases names in its ARNs.
    return (
        name
        if name.startswith("arn:")
        else f"arn:aws:sagemaker:{where.region}:{where.account}:{kind}/{name.lower()}"
    )


def _pipeline(params: Mapping[str, Any], where: Where) -> str:
    return _sagemaker_arn("pipeline", str(params["PipelineName"]), where)


def _pipeline_execution(params: Mapping[str, Any], _where: Where) -> str:
    return str(params["PipelineExecutionArn"])


def _model_package_group(params: Mapping[str, Any], where: Where) -> str:
    return _sagemaker_arn("model-package-group", str(params["ModelPackageGroupName"]), where)


def _model_package(params: Mapping[str, Any], where: Where) -> str:
    return _sagemaker_arn("model-package", str(params["ModelPackageName"]), where)


def _creates(resource: Resource) -> Rule:
    """A create call: the action itself, sagemaker:AddTags when it tags, iam:PassRole for a role it passes."""

    def rule(operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
        arn = resource(params, where)
        requests = [Request(f"sagemaker:{operation}", arn)]
        if params.get("Tags"):
            requests.append(Request("sagemaker:AddTags", arn))
        if params.get("RoleArn"):
            requests.append(Request("iam:PassRole", str(params["RoleArn"])))
        return requests

    return rule


_SAGEMAKER: dict[str, Rule] = {
    "StartPipelineExecution": _rule("sagemaker", _pipeline),
    "ListPipelineExecutions": _rule("sagemaker", _pipeline),
    "DescribePipeline": _rule("sagemaker", _pipeline),
    "DeletePipeline": _rule("sagemaker", _pipeline),
    "CreatePipeline": _creates(_pipeline),
    "UpdatePipeline": _creates(_pipeline),
    **{
        op: _rule("sagemaker", _pipeline_execution)
        for op in (
            "DescribePipelineExecution",
            "StopPipelineExecution",
            "ListPipelineExecutionSteps",
            "ListPipelineParametersForExecution",
        )
    },
    "CreateModelPackageGroup": _creates(_model_package_group),
    "DescribeModelPackageGroup": _rule("sagemaker", _model_package_group),
    "DeleteModelPackageGroup": _rule("sagemaker", _model_package_group),
    "DeleteModelPackage": _rule("sagemaker", _model_package),
    "DescribeModelPackage": _rule("sagemaker", _model_package),
    "UpdateModelPackage": _rule(
        "sagemaker",
        lambda params, where: _sagemaker_arn("model-package", str(params["ModelPackageArn"]), where),
    ),
    "DescribeProcessingJob": _rule(
        "sagemaker",
        lambda params, where: _sagemaker_arn("processing-job", str(params["ProcessingJobName"]), where),
    ),
    "DescribeTrainingJob": _rule(
        "sagemaker",
        lambda params, where: _sagemaker_arn("training-job", str(params["TrainingJobName"]), where),
    ),
    "ListModelPackages": _rule("sagemaker", _anything),  # no resource-level permissions
    "AddTags": _rule("sagemaker", lambda params, _where: str(params["ResourceArn"])),
}

# ------------------------------------------------------------------------------------------ IAM, STS


def _role_arn(params: Mapping[str, Any], where: Where) -> str:
    return f"arn:aws:iam::{where.account}:role{ROLE_PATH}{params['RoleName']}"


def _creates_role(_operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
    arn = f"arn:aws:iam::{where.account}:role{params.get('Path') or '/'}{params['RoleName']}"
    requests = [Request("iam:CreateRole", arn)]
    if params.get("Tags"):  # creating a role with tags needs iam:TagRole too
        requests.append(Request("iam:TagRole", arn))
    return requests


_IAM: dict[str, Rule] = {
    "CreateRole": _creates_role,
    **{
        op: _rule("iam", _role_arn)
        for op in (
            "GetRole",
            "DeleteRole",
            "TagRole",
            "UntagRole",
            "PutRolePolicy",
            "GetRolePolicy",
            "DeleteRolePolicy",
            "ListRolePolicies",
            "ListAttachedRolePolicies",
            "AttachRolePolicy",
            "DetachRolePolicy",
            "ListRoleTags",
        )
    },
}

_STS: dict[str, Rule] = {
    "GetCallerIdentity": _rule("sts", _anything),
    "AssumeRole": _rule("sts", lambda params, _where: str(params["RoleArn"])),
}

# ------------------------------------------------------------------------------------------ API Gateway

# API Gateway's management API is authorized as the HTTP method on the resource's path:
# apigateway:<METHOD> on arn:aws:apigateway:<region>::<path>.


def _apigateway(method: str, path: Callable[[Mapping[str, Any]], str]) -> Rule:
    def rule(_operation: str, params: Mapping[str, Any], where: Where) -> list[Request]:
        return [Request(f"apigateway:{method}", f"arn:aws:apigateway:{where.region}::{path(params)}")]

    return rule


_APIGATEWAY: dict[str, Rule] = {
    "GetApiKeys": _apigateway("GET", lambda _params: "/apikeys"),
    "CreateApiKey": _apigateway("POST", lambda _params: "/apikeys"),
    "DeleteApiKey": _apigateway("DELETE", lambda params: f"/apikeys/{params['apiKey']}"),
    "GetUsagePlans": _apigateway("GET", lambda _params: "/usageplans"),
    "CreateUsagePlanKey": _apigateway("POST", lambda params: f"/usageplans/{params['usagePlanId']}/keys"),
    "DeleteUsagePlanKey": _apigateway(
        "DELETE", lambda params: f"/usageplans/{params['usagePlanId']}/keys/{params['keyId']}"
    ),
}

# ------------------------------------------------------------------------------------------ the table

RULES: dict[str, dict[str, Rule]] = {
    "dynamodb": _DYNAMODB,
    "sqs": _SQS,
    "s3": _S3,
    "stepfunctions": _STEP_FUNCTIONS,
    "lambda": _LAMBDA,
    "events": {"PutEvents": _put_events},
    "sagemaker": _SAGEMAKER,
    "iam": _IAM,
    "sts": _STS,
    "apigateway": _APIGATEWAY,
    "cloudwatch": {"PutMetricData": _rule("cloudwatch", _anything)},
    "sns": {"Publish": _rule("sns", lambda params, _where: str(params["TopicArn"]))},
}


def requests_for(
    service: str, operation: str, params: Mapping[str, Any], where: Where
) -> list[Request] | None:
    """The IAM requests of one call (botocore service name and operation), or None if it is not mapped.

    Raises KeyError (or ValueError) when the parameters lack what the mapping needs: callers report that
    as unmapped too.
    """
    rule = RULES.get(service, {}).get(operation)
    return None if rule is None else rule(operation, params, where)
