"""Create a template's resources in moto, in dependency order, through the public AWS APIs.

Every supported resource type has one handler that lists the properties it understands; any other
property, resource type, event type or code location fails the deploy with a DeployError naming
it. The only types skipped on purpose are in SKIPPED_RESOURCE_TYPES (they have no local meaning);
referencing one fails too.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import re
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from localcloud.api_gateway import AccessLog, ApiSpec, Authorizer, GatewayResponse, Route
from localcloud.api_throttling import Throttle
from localcloud.custom_resources import CustomResourceError, ResponseEndpoint, create_custom_resource
from localcloud.lambda_runtime import AsyncConfig, FunctionSpec, LambdaRuntime
from localcloud.schedules import UnsupportedScheduleError, rate_seconds
from localcloud.template import Resource, Template, TemplateError

LOGGER = logging.getLogger("localcloud.deploy")

SKIPPED_RESOURCE_TYPES = {
    "AWS::CloudWatch::Dashboard": "no console locally",
}
_LAMBDA_TRUST = {"Service": "lambda.amazonaws.com"}
_STATES_TRUST = {"Service": "states.amazonaws.com"}
_LEFTOVER_SUBSTITUTION = re.compile(r"\$\{[^}]*\}")


@functools.cache
def _sam_policy_templates() -> Any:
    """SAM's policy templates (DynamoDBCrudPolicy, LambdaInvokePolicy, ...), as samtranslator ships them."""
    from samtranslator.policy_template_processor.processor import (  # noqa: PLC0415 - only for templates
        PolicyTemplatesProcessor,
    )

    return PolicyTemplatesProcessor(PolicyTemplatesProcessor.get_default_policy_templates_json())


class DeployError(Exception):
    """The template cannot be deployed locally; the message names the resource and the reason."""


@dataclass
class Stack:
    """What a deploy created: Ref values, GetAtt attributes, Outputs and the functions' runtime info."""

    name: str
    stack_id: str
    template_path: Path
    resource_types: dict[str, str] = field(default_factory=dict)
    physical_ids: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    output_descriptions: dict[str, str] = field(default_factory=dict)
    functions: dict[str, FunctionSpec] = field(default_factory=dict)
    unapplied_policies: dict[str, Any] = field(default_factory=dict)
    # Managed policies named in a function's or state machine's SAM Policies: not attached locally.
    unattached_policies: dict[str, list[str]] = field(default_factory=dict)
    # AWS::Serverless::Api resources with their routes and authorizers (served by localcloud.api_gateway).
    apis: dict[str, ApiSpec] = field(default_factory=dict)

    def ref(self, logical_id: str) -> Any:
        """The resource's Ref value, e.g. a bucket name, a queue URL, a state machine ARN."""
        if logical_id not in self.physical_ids:
            raise KeyError(f"{logical_id} is not a deployed resource of stack {self.name}")
        return self.physical_ids[logical_id]

    def attribute(self, logical_id: str, name: str) -> Any:
        """The resource's GetAtt value, e.g. attribute("JobsTable", "Arn")."""
        return self.attributes[logical_id][name]

    def output(self, name: str) -> Any:
        return self.outputs[name]

    def of_type(self, resource_type: str) -> dict[str, Any]:
        """Ref values of every resource of a type, by logical id."""
        return {
            logical_id: self.physical_ids[logical_id]
            for logical_id, kind in self.resource_types.items()
            if kind == resource_type and logical_id in self.physical_ids
        }


@dataclass(frozen=True)
class _Created:
    ref: Any
    attributes: dict[str, Any] = field(default_factory=dict)


def physical_name(stack_name: str, logical_id: str, *, max_length: int, lowercase: bool = False) -> str:
    """CloudFormation's generated names: `<stack>-<LogicalId>-<random>`, shortened to fit."""
    suffix = uuid.uuid4().hex[:12] if lowercase else uuid.uuid4().hex[:13].upper()
    room = max_length - len(suffix) - 2
    stack_part = stack_name[: max(room // 2, room - len(logical_id))]
    logical_part = logical_id[: room - len(stack_part)]
    name = f"{stack_part}-{logical_part}-{suffix}"
    return name.lower() if lowercase else name


def _placeholder_zip(note: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("LOCALCLOUD.txt", note)
    return buffer.getvalue()


def _check_properties(resource: Resource, properties: Mapping[str, Any], supported: set[str]) -> None:
    unsupported = set(properties) - supported
    if unsupported:
        raise DeployError(
            f"{resource.logical_id} ({resource.type}): properties {sorted(unsupported)} are not emulated"
        )


def _access_log(resource: Resource, setting: Any) -> AccessLog | None:
    """A stage's AccessLogSetting: its CloudWatch log group (by ARN) and its $context format."""
    if not setting:
        return None
    if set(setting) - {"DestinationArn", "Format"} or ":log-group:" not in str(setting.get("DestinationArn")):
        raise DeployError(f"{resource.logical_id}: AccessLogSetting: a log group DestinationArn and a Format")
    group = str(setting["DestinationArn"]).split(":log-group:", 1)[1].removesuffix(":*")
    return AccessLog(log_group_name=group, format=str(setting["Format"]))


def _stage_throttle(resource: Resource, method_settings: Any) -> Throttle | None:
    """The stage-wide throttle of MethodSettings (the ``/*`` ``*`` entry); per-method entries fail the
    deploy (not emulated)."""
    found: Throttle | None = None
    for setting in method_settings or []:
        if setting.get("ResourcePath") != "/*" or setting.get("HttpMethod") != "*":
            raise DeployError(f"{resource.logical_id}: only a MethodSettings entry for /* and * is emulated")
        found = Throttle.of(setting)
    return found


def _gateway_responses(resource: Resource, responses: Any) -> dict[str, GatewayResponse]:
    """SAM's GatewayResponses: per response type, its status, headers (static values, quoted as
    API Gateway wants: "'1'") and application/json template (served as written: no $context here)."""
    found: dict[str, GatewayResponse] = {}
    for name, response in (responses or {}).items():
        parameters = dict(response.get("ResponseParameters") or {})
        if set(response) - {"StatusCode", "ResponseParameters", "ResponseTemplates"} or set(parameters) - {
            "Headers"
        }:
            raise DeployError(
                f"{resource.logical_id}: GatewayResponses {name}: only StatusCode, Headers and templates"
            )
        headers = {}
        for header, value in (parameters.get("Headers") or {}).items():
            text = str(value)
            if not (len(text) >= 2 and text[0] == text[-1] == "'"):
                raise DeployError(
                    f"{resource.logical_id}: GatewayResponses {name}: header {header} must be a quoted "
                    "static value"
                )
            headers[str(header)] = text[1:-1]
        templates = dict(response.get("ResponseTemplates") or {})
        found[str(name)] = GatewayResponse(
            status=int(response["StatusCode"]) if "StatusCode" in response else None,
            headers=headers,
            body=templates.get("application/json"),
        )
    return found


def _async_config(resource: Resource, config: Any) -> AsyncConfig:
    """A function's EventInvokeConfig: MaximumRetryAttempts and an SQS OnFailure destination are emulated;
    anything else (OnSuccess, other destination types, MaximumEventAgeInSeconds) fails the deploy."""
    if config is None:
        return AsyncConfig()
    where = f"{resource.logical_id}: EventInvokeConfig"
    unsupported = set(config) - {"MaximumRetryAttempts", "DestinationConfig"}
    destinations = config.get("DestinationConfig") or {}
    unsupported |= {f"DestinationConfig.{key}" for key in set(destinations) - {"OnFailure"}}
    if unsupported:
        raise DeployError(f"{where}: {sorted(unsupported)} are not emulated")
    retries = int(config.get("MaximumRetryAttempts", 2))
    if not 0 <= retries <= 2:  # Lambda's bounds
        raise DeployError(f"{where}: MaximumRetryAttempts must be 0 to 2, not {retries}")
    on_failure = destinations.get("OnFailure")
    if on_failure is None:
        return AsyncConfig(maximum_retry_attempts=retries)
    destination = str(on_failure.get("Destination") or "")
    if on_failure.get("Type") != "SQS" or not destination.startswith("arn:") or ":sqs:" not in destination:
        raise DeployError(f"{where}: only an SQS OnFailure destination given by ARN is emulated")
    return AsyncConfig(maximum_retry_attempts=retries, on_failure_queue_arn=destination)


def _flag(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def _tags(tags: Any) -> dict[str, str]:
    """CloudFormation tags come as a list of Key/Value pairs (or a map in SAM)."""
    if isinstance(tags, dict):
        return {str(key): str(value) for key, value in tags.items()}
    return {str(tag["Key"]): str(tag["Value"]) for tag in tags or []}


class Deployer:
    """Deploys one template into the emulator; see LocalCloud.deploy."""

    def __init__(
        self,
        *,
        client: Callable[[str], Any],
        lambda_runtime: LambdaRuntime,
        log_dir: Path,
        response_endpoint: Callable[[], ResponseEndpoint],
    ) -> None:
        self._client = client
        self._lambda_runtime = lambda_runtime
        self._log_dir = log_dir
        self._response_endpoint = response_endpoint
        self._layer_dirs: dict[str, Path] = {}
        self._unapplied_policies: dict[str, Any] = {}
        self._unattached_policies: dict[str, list[str]] = {}
        self._apis: dict[str, ApiSpec] = {}  # by API id
        self._handlers: dict[str, Callable[[Template, Resource, dict[str, Any]], _Created]] = {
            "AWS::S3::Bucket": self._bucket,
            "AWS::S3::BucketPolicy": self._bucket_policy,
            "AWS::DynamoDB::Table": self._table,
            "AWS::SQS::Queue": self._queue,
            "AWS::SQS::QueuePolicy": self._queue_policy,
            "AWS::IAM::Role": self._role,
            "AWS::IAM::ManagedPolicy": self._managed_policy,
            "AWS::Serverless::Api": self._api,
            "AWS::Logs::LogGroup": self._log_group,
            "AWS::Serverless::LayerVersion": self._layer,
            "AWS::Serverless::Function": self._function,
            "AWS::Serverless::StateMachine": self._state_machine,
            "AWS::SageMaker::Pipeline": self._pipeline,
            "AWS::CloudFormation::CustomResource": self._custom_resource,
            "AWS::KMS::Key": self._kms_key,
            "AWS::SNS::Topic": self._topic,
            "AWS::SNS::TopicPolicy": self._topic_policy,
            "AWS::SNS::Subscription": self._subscription,
            "AWS::CloudWatch::Alarm": self._alarm,
            "AWS::ApiGateway::Account": self._api_gateway_account,
            "AWS::CloudFormation::WaitConditionHandle": self._wait_condition_handle,
            "AWS::ApiGateway::UsagePlan": self._usage_plan,
            "AWS::ApiGateway::ApiKey": self._api_gateway_key,
            "AWS::ApiGateway::UsagePlanKey": self._usage_plan_key,
        }

    # ------------------------------------------------------------------------ orchestration

    def deploy(self, template: Template) -> Stack:
        stack = Stack(name=template.stack_name, stack_id=template.stack_id, template_path=template.path)
        lookup = _StackLookup(stack, template)
        order = self._creation_order(template)
        for resource in order:  # an unknown type fails the deploy before anything is created
            if resource.type not in SKIPPED_RESOURCE_TYPES:
                self._handler(resource)
        for resource in order:
            stack.resource_types[resource.logical_id] = resource.type
            if resource.type in SKIPPED_RESOURCE_TYPES:
                LOGGER.info(
                    "skipping %s (%s): %s",
                    resource.logical_id,
                    resource.type,
                    SKIPPED_RESOURCE_TYPES[resource.type],
                )
                continue
            handler = self._handler(resource)
            try:
                properties = template.resolve(resource.properties, lookup)
                created = handler(template, resource, properties)
            except (ClientError, BotoCoreError, CustomResourceError, TemplateError) as error:
                raise DeployError(f"{resource.logical_id} ({resource.type}): {error}") from error
            except KeyError as error:
                raise DeployError(
                    f"{resource.logical_id} ({resource.type}): required property {error} is missing"
                ) from error
            stack.physical_ids[resource.logical_id] = created.ref
            stack.attributes[resource.logical_id] = created.attributes
            LOGGER.debug("created %s (%s): %s", resource.logical_id, resource.type, created.ref)
        stack.unapplied_policies = dict(self._unapplied_policies)
        stack.unattached_policies = dict(self._unattached_policies)
        stack.apis = {spec.logical_id: spec for spec in self._apis.values()}
        stack.outputs = template.outputs(lookup)
        stack.output_descriptions = template.output_descriptions()
        stack.functions = {
            logical_id: spec
            for logical_id, function_name in stack.of_type("AWS::Serverless::Function").items()
            if (spec := self._lambda_runtime.spec(function_name)) is not None
        }
        return stack

    def _handler(self, resource: Resource) -> Callable[[Template, Resource, dict[str, Any]], _Created]:
        if resource.type.startswith("Custom::"):
            return self._custom_resource
        handler = self._handlers.get(resource.type)
        if handler is None:
            raise DeployError(f"{resource.logical_id}: resource type {resource.type} is not emulated locally")
        return handler

    def _creation_order(self, template: Template) -> list[Resource]:
        """Template order, except that every resource comes after what it references."""
        created = [resource for resource in template.resources.values() if template.is_created(resource)]
        pending = {resource.logical_id: template.dependencies(resource) for resource in created}
        skipped = set(template.resources) - set(pending)
        for logical_id, needs in pending.items():
            if needs & skipped:
                raise DeployError(
                    f"{logical_id} references resources whose Condition is false: {needs & skipped}"
                )
        order: list[Resource] = []
        done: set[str] = set()
        while pending:
            ready = [
                resource
                for resource in created
                if resource.logical_id in pending and pending[resource.logical_id] <= done
            ]
            if not ready:
                raise DeployError(f"circular dependency between {sorted(pending)}")
            for resource in ready:
                order.append(resource)
                done.add(resource.logical_id)
                del pending[resource.logical_id]
        return order

    # ------------------------------------------------------------------------ storage

    def _bucket(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "BucketName",
                "VersioningConfiguration",
                "NotificationConfiguration",
                "BucketEncryption",
                "PublicAccessBlockConfiguration",
                "OwnershipControls",
                "Tags",
            },
        )
        s3 = self._client("s3")
        name = props.get("BucketName") or physical_name(
            template.stack_name, resource.logical_id, max_length=63, lowercase=True
        )
        s3.create_bucket(Bucket=name)
        if "VersioningConfiguration" in props:
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
        if "BucketEncryption" in props:
            # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
            rules = [
                {
                    (
                        "ApplyServerSideEncryptionByDefault"
                        if key == "ServerSideEncryptionByDefault"
                        else key
                    ): value
                    for key, value in rule.items()
                }
                for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
            ]
            s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        if "PublicAccessBlockConfiguration" in props:
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        if "OwnershipControls" in props:
            s3.put_bucket_ownership_controls(Bucket=name, OwnershipControls=props["OwnershipControls"])
        if "NotificationConfiguration" in props:
            notification = props["NotificationConfiguration"]
            if set(notification) != {"EventBridgeConfiguration"}:
                raise DeployError(
                    f"{resource.logical_id}: only EventBridgeConfiguration notifications are emulated"
                )
            if notification["EventBridgeConfiguration"].get("EventBridgeEnabled"):
                s3.put_bucket_notification_configuration(
                    Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
                )
        if "Tags" in props:
            s3.put_bucket_tagging(Bucket=name, Tagging={"TagSet": props["Tags"]})
        return _Created(
            name,
            {
                "Arn": f"arn:aws:s3:::{name}",
                "DomainName": f"{name}.s3.amazonaws.com",
                "RegionalDomainName": f"{name}.s3.{template.region}.amazonaws.com",
            },
        )

    def _bucket_policy(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(resource, props, {"Bucket", "PolicyDocument"})
        document = props["PolicyDocument"]
        statements = (
            document["Statement"] if isinstance(document["Statement"], list) else [document["Statement"]]
        )
        if any("Condition" in statement for statement in statements):
            # moto evaluates S3 bucket policies on object requests but ignores conditions such as
            # aws:SecureTransport: the usual "deny unless HTTPS" statement would deny every request.
            LOGGER.warning(
                "%s: not applied locally (moto ignores its conditions and would deny every request); "
                "kept in Stack.unapplied_policies",
                resource.logical_id,
            )
            self._unapplied_policies[resource.logical_id] = document
        else:
            self._client("s3").put_bucket_policy(Bucket=props["Bucket"], Policy=json.dumps(document))
        return _Created(props["Bucket"])

    def _table(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "TableName",
                "AttributeDefinitions",
                "KeySchema",
                "BillingMode",
                "ProvisionedThroughput",
                "GlobalSecondaryIndexes",
                "LocalSecondaryIndexes",
                "StreamSpecification",
                "SSESpecification",
                "PointInTimeRecoverySpecification",
                "TimeToLiveSpecification",
                "Tags",
                "DeletionProtectionEnabled",
                "TableClass",
            },
        )
        dynamodb = self._client("dynamodb")
        name = props.get("TableName") or physical_name(
            template.stack_name, resource.logical_id, max_length=255
        )
        request: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": props.get("BillingMode", "PROVISIONED"),
        }
        for key in (
            "ProvisionedThroughput",
            "GlobalSecondaryIndexes",
            "LocalSecondaryIndexes",
            "TableClass",
            "DeletionProtectionEnabled",
        ):
            if key in props:
                request[key] = props[key]
        if "StreamSpecification" in props:
            request["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if "SSESpecification" in props:
            sse = dict(props["SSESpecification"])
            request["SSESpecification"] = {"Enabled": sse.pop("SSEEnabled"), **sse}
        if "Tags" in props:
            request["Tags"] = props["Tags"]
        description = dynamodb.create_table(**request)["TableDescription"]
        if "PointInTimeRecoverySpecification" in props:
            dynamodb.update_continuous_backups(
                TableName=name, PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"]
            )
        if "TimeToLiveSpecification" in props:
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification=props["TimeToLiveSpecification"]
            )
        attributes = {"Arn": description["TableArn"]}
        if "LatestStreamArn" in description:
            attributes["StreamArn"] = description["LatestStreamArn"]
        return _Created(name, attributes)

    def _queue(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        queue_attributes = {
            "DelaySeconds",
            "MaximumMessageSize",
            "MessageRetentionPeriod",
            "ReceiveMessageWaitTimeSeconds",
            "VisibilityTimeout",
            "KmsMasterKeyId",
            "KmsDataKeyReusePeriodSeconds",
            "SqsManagedSseEnabled",
            "FifoQueue",
            "ContentBasedDeduplication",
            "DeduplicationScope",
            "FifoThroughputLimit",
            "RedrivePolicy",
            "RedriveAllowPolicy",
        }
        _check_properties(resource, props, queue_attributes | {"QueueName", "Tags"})
        name = props.get("QueueName") or physical_name(
            template.stack_name, resource.logical_id, max_length=80
        )
        if props.get("FifoQueue") and not name.endswith(".fifo"):
            name = f"{name[:75]}.fifo"
        attributes = {
            key: json.dumps(value) if isinstance(value, dict) else _flag(value)
            for key, value in props.items()
            if key in queue_attributes
        }
        sqs = self._client("sqs")
        request: dict[str, Any] = {"QueueName": name, "Attributes": attributes}
        if "Tags" in props:
            request["tags"] = _tags(props["Tags"])
        url = sqs.create_queue(**request)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return _Created(url, {"Arn": arn, "QueueName": name, "QueueUrl": url})

    def _queue_policy(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(resource, props, {"Queues", "PolicyDocument"})
        for url in props["Queues"]:
            self._client("sqs").set_queue_attributes(
                QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
            )
        return _Created(physical_name(template.stack_name, resource.logical_id, max_length=128))

    # ------------------------------------------------------------------------ identity and logs

    def _role(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "RoleName",
                "Path",
                "AssumeRolePolicyDocument",
                "Description",
                "MaxSessionDuration",
                "Policies",
                "ManagedPolicyArns",
                "PermissionsBoundary",
                "Tags",
            },
        )
        iam = self._client("iam")
        name = props.get("RoleName") or physical_name(template.stack_name, resource.logical_id, max_length=64)
        request: dict[str, Any] = {
            "RoleName": name,
            "AssumeRolePolicyDocument": json.dumps(props["AssumeRolePolicyDocument"]),
        }
        for key in ("Path", "Description", "MaxSessionDuration", "PermissionsBoundary", "Tags"):
            if key in props:
                request[key] = props[key]
        role = iam.create_role(**request)["Role"]
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        for policy_arn in props.get("ManagedPolicyArns", []):
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn)
        return _Created(name, {"Arn": role["Arn"], "RoleId": role["RoleId"]})

    def _managed_policy(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource, props, {"ManagedPolicyName", "PolicyDocument", "Description", "Path", "Roles"}
        )
        request: dict[str, Any] = {
            "PolicyName": props.get("ManagedPolicyName")
            or physical_name(template.stack_name, resource.logical_id, max_length=128),
            "PolicyDocument": json.dumps(props["PolicyDocument"]),
        }
        for key in ("Description", "Path"):
            if key in props:
                request[key] = props[key]
        arn: str = self._client("iam").create_policy(**request)["Policy"]["Arn"]
        for role in props.get("Roles", []):
            self._client("iam").attach_role_policy(RoleName=role, PolicyArn=arn)
        return _Created(arn, {"PolicyArn": arn})

    def _execution_role(
        self, template: Template, owner: Resource, trust: Mapping[str, str], policies: Any
    ) -> str:
        """The role SAM generates for a function or state machine: `<LogicalId>Role`.

        Policy documents and SAM policy templates (expanded to their statements by samtranslator, as `sam
        deploy` does) become inline policies `<LogicalId>RolePolicy<index>`. Managed policy names or ARNs
        are not attached (moto holds no AWS managed policies): they are kept in Stack.unattached_policies
        and named by the permission check. Neither is SAM's AWSLambdaBasicExecutionRole: locally Lambda
        writes the logs, not the function's SDK calls.
        """
        iam = self._client("iam")
        name = physical_name(template.stack_name, f"{owner.logical_id}Role", max_length=64)
        trust_policy = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": dict(trust), "Action": "sts:AssumeRole"}],
        }
        arn: str = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust_policy))["Role"][
            "Arn"
        ]
        documents = [policies] if isinstance(policies, (str, dict)) else list(policies or [])
        for index, document in enumerate(documents):
            statements = self._policy_statements(template, owner, document)
            if statements is not None:
                iam.put_role_policy(
                    RoleName=name,
                    PolicyName=f"{owner.logical_id}RolePolicy{index}",
                    PolicyDocument=json.dumps(statements),
                )
        return arn

    def _policy_statements(self, template: Template, owner: Resource, document: Any) -> Any:
        """One entry of a SAM Policies list as a policy document, or None (a managed policy, not attached)."""
        if isinstance(document, str):
            self._unattached_policies.setdefault(owner.logical_id, []).append(document)
            return None
        if isinstance(document, dict) and "Statement" in document:
            return document
        if isinstance(document, dict) and len(document) == 1:
            ((template_name, parameters),) = document.items()
            processor = _sam_policy_templates()
            if processor.has(template_name):
                expanded = processor.convert(template_name, parameters or {})
                return template.resolve_static({"Version": "2012-10-17", **expanded})
        raise DeployError(
            f"{owner.logical_id}: Policies entry {document!r} is not a policy document, "
            "a SAM policy template or a managed policy"
        )

    def _log_group(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(resource, props, {"LogGroupName", "RetentionInDays", "Tags"})
        logs = self._client("logs")
        name = props.get("LogGroupName") or physical_name(
            template.stack_name, resource.logical_id, max_length=512
        )
        logs.create_log_group(
            logGroupName=name, **({"tags": _tags(props["Tags"])} if "Tags" in props else {})
        )
        if "RetentionInDays" in props:
            logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
        return _Created(
            name, {"Arn": f"arn:aws:logs:{template.region}:{template.account_id}:log-group:{name}:*"}
        )

    # ------------------------------------------------------------------------ alarms (see localcloud.alarms)

    def _kms_key(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource, props, {"Description", "EnableKeyRotation", "KeyPolicy", "PendingWindowInDays", "Tags"}
        )
        kms = self._client("kms")
        request: dict[str, Any] = {"Policy": json.dumps(props["KeyPolicy"])}
        if "Description" in props:
            request["Description"] = props["Description"]
        if "Tags" in props:
            request["Tags"] = [{"TagKey": k, "TagValue": v} for k, v in _tags(props["Tags"]).items()]
        metadata = kms.create_key(**request)["KeyMetadata"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=metadata["KeyId"])
        return _Created(metadata["KeyId"], {"Arn": metadata["Arn"], "KeyId": metadata["KeyId"]})

    def _topic(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(resource, props, {"TopicName", "DisplayName", "KmsMasterKeyId", "Tags"})
        name = props.get("TopicName") or physical_name(
            template.stack_name, resource.logical_id, max_length=256
        )
        attributes = {key: str(props[key]) for key in ("DisplayName", "KmsMasterKeyId") if key in props}
        request: dict[str, Any] = {"Name": name, "Attributes": attributes}
        if "Tags" in props:
            request["Tags"] = [{"Key": k, "Value": v} for k, v in _tags(props["Tags"]).items()]
        arn: str = self._client("sns").create_topic(**request)["TopicArn"]
        return _Created(arn, {"TopicArn": arn, "TopicName": name})

    def _topic_policy(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        # Stored, not enforced: moto's SNS does not evaluate topic policies.
        _check_properties(resource, props, {"Topics", "PolicyDocument"})
        for arn in props["Topics"]:
            self._client("sns").set_topic_attributes(
                TopicArn=arn, AttributeName="Policy", AttributeValue=json.dumps(props["PolicyDocument"])
            )
        return _Created(physical_name(template.stack_name, resource.logical_id, max_length=128))

    def _subscription(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        # Nothing is sent to e-mail endpoints locally; SQS subscriptions receive what the topic publishes.
        _check_properties(resource, props, {"TopicArn", "Protocol", "Endpoint", "RawMessageDelivery"})
        request: dict[str, Any] = {"TopicArn": props["TopicArn"], "Protocol": props["Protocol"]}
        if "Endpoint" in props:
            request["Endpoint"] = props["Endpoint"]
        if "RawMessageDelivery" in props:
            request["Attributes"] = {"RawMessageDelivery": _flag(props["RawMessageDelivery"])}
        arn: str = self._client("sns").subscribe(**request, ReturnSubscriptionArn=True)["SubscriptionArn"]
        return _Created(arn)

    def _alarm(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        """Created in moto's CloudWatch as written; localcloud.alarms evaluates what it can source locally."""
        request_keys = {
            "AlarmDescription",
            "ActionsEnabled",
            "AlarmActions",
            "OKActions",
            "InsufficientDataActions",
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Dimensions",
            "Period",
            "Unit",
            "EvaluationPeriods",
            "DatapointsToAlarm",
            "Threshold",
            "ComparisonOperator",
            "TreatMissingData",
            "EvaluateLowSampleCountPercentile",
            "Metrics",
        }
        _check_properties(resource, props, request_keys | {"AlarmName"})
        name = props.get("AlarmName") or physical_name(
            template.stack_name, resource.logical_id, max_length=255
        )
        request: dict[str, Any] = {key: props[key] for key in request_keys if key in props}
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in request:
                request[key] = int(request[key])
        if "Threshold" in request:
            request["Threshold"] = float(request["Threshold"])
        cloudwatch = self._client("cloudwatch")
        cloudwatch.put_metric_alarm(AlarmName=name, **request)
        arn = cloudwatch.describe_alarms(AlarmNames=[name])["MetricAlarms"][0]["AlarmArn"]
        return _Created(name, {"Arn": arn})

    # ------------------------------------------------------------------------ code

    def _local_dir(self, template: Template, resource: Resource, key: str, location: Any) -> Path:
        if not isinstance(location, str) or location.startswith("s3://"):
            raise DeployError(
                f"{resource.logical_id}: {key} {location!r} is not a local directory; "
                "the emulator runs code from the source tree"
            )
        return (template.directory / location).resolve()

    def _layer(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "ContentUri",
                "LayerName",
                "Description",
                "CompatibleRuntimes",
                "CompatibleArchitectures",
                "LicenseInfo",
                "RetentionPolicy",
            },
        )
        content_dir = self._local_dir(template, resource, "ContentUri", props["ContentUri"])
        request: dict[str, Any] = {
            "LayerName": props.get("LayerName", resource.logical_id),
            "Content": {"ZipFile": _placeholder_zip(f"localcloud runs this layer from {content_dir}")},
        }
        for key in ("Description", "CompatibleRuntimes", "CompatibleArchitectures", "LicenseInfo"):
            if key in props:
                request[key] = props[key]
        arn: str = self._client("lambda").publish_layer_version(**request)["LayerVersionArn"]
        self._layer_dirs[arn] = content_dir
        return _Created(arn)

    def _function(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "CodeUri",
                "Handler",
                "Runtime",
                "Architectures",
                "MemorySize",
                "Timeout",
                "Tracing",
                "Layers",
                "Environment",
                "Policies",
                "Role",
                "FunctionName",
                "ReservedConcurrentExecutions",
                "Events",
                "Description",
                "Tags",
                "EventInvokeConfig",
                # Accepted: locally every function logs to its file under the state directory.
                "LoggingConfig",
            },
        )
        async_config = _async_config(resource, props.get("EventInvokeConfig"))
        runtime = str(props.get("Runtime", ""))
        if not runtime.startswith("python"):
            raise DeployError(f"{resource.logical_id}: runtime {runtime!r} is not emulated (Python only)")
        code_dir = self._local_dir(template, resource, "CodeUri", props.get("CodeUri"))
        name = props.get("FunctionName") or physical_name(
            template.stack_name, resource.logical_id, max_length=64
        )
        role = props.get("Role") or self._execution_role(
            template, resource, _LAMBDA_TRUST, props.get("Policies")
        )
        environment = {
            key: _flag(value) for key, value in props.get("Environment", {}).get("Variables", {}).items()
        }
        local_layers = [layer for layer in props.get("Layers", []) if layer in self._layer_dirs]
        for layer in set(props.get("Layers", [])) - set(local_layers):
            LOGGER.warning(
                "%s: layer %s is not in this template; its packages must come from the venv",
                resource.logical_id,
                layer,
            )
        request: dict[str, Any] = {
            "FunctionName": name,
            "Runtime": runtime,
            "Role": role,
            "Handler": props["Handler"],
            "Code": {"ZipFile": _placeholder_zip(f"localcloud runs this function from {code_dir}")},
            "Timeout": int(props.get("Timeout", 3)),
            "MemorySize": int(props.get("MemorySize", 128)),
            "Environment": {"Variables": environment},
            "Layers": local_layers,
        }
        if "Architectures" in props:
            request["Architectures"] = props["Architectures"]
        if "Description" in props:
            request["Description"] = props["Description"]
        if "Tracing" in props:
            request["TracingConfig"] = {"Mode": props["Tracing"]}
        if "Tags" in props:
            request["Tags"] = _tags(props["Tags"])
        lambda_client = self._client("lambda")
        arn: str = lambda_client.create_function(**request)["FunctionArn"]
        reserved = props.get("ReservedConcurrentExecutions")
        if reserved is not None:
            lambda_client.put_function_concurrency(
                FunctionName=name, ReservedConcurrentExecutions=int(reserved)
            )
        if "EventInvokeConfig" in props:
            invoke_config: dict[str, Any] = {"MaximumRetryAttempts": async_config.maximum_retry_attempts}
            if async_config.on_failure_queue_arn:
                invoke_config["DestinationConfig"] = {
                    "OnFailure": {"Destination": async_config.on_failure_queue_arn}
                }
            lambda_client.put_function_event_invoke_config(FunctionName=name, **invoke_config)
        self._lambda_runtime.register(
            FunctionSpec(
                logical_id=resource.logical_id,
                function_name=name,
                function_arn=arn,
                runtime=runtime,
                handler=props["Handler"],
                code_dir=code_dir,
                layer_dirs=tuple(self._layer_dirs[layer] for layer in local_layers),
                environment=environment,
                timeout_seconds=request["Timeout"],
                memory_mb=request["MemorySize"],
                log_path=self._log_dir / f"{resource.logical_id}.log",
            ),
            reserved_concurrency=int(reserved) if reserved is not None else None,
            async_config=async_config,
        )
        for event_name, event in props.get("Events", {}).items():
            if event["Type"] == "Api":
                self._api_route(resource, event_name, event.get("Properties", {}), name)
            else:
                self._function_event(template, resource, event_name, event, arn)
        return _Created(name, {"Arn": arn})

    def _function_event(
        self,
        template: Template,
        resource: Resource,
        event_name: str,
        event: dict[str, Any],
        function_arn: str,
    ) -> None:
        kind, props = event["Type"], event.get("Properties", {})
        if kind == "SQS":
            supported = {
                "Queue",
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "FunctionResponseTypes",
                "Enabled",
                "ScalingConfig",
            }
            self._check_event(resource, event_name, props, supported)
            request: dict[str, Any] = {"EventSourceArn": props["Queue"], "FunctionName": function_arn}
            keys = (
                "BatchSize",
                "MaximumBatchingWindowInSeconds",
                "FunctionResponseTypes",
                "Enabled",
                "ScalingConfig",
            )
            for key in keys:
                if key in props:
                    request[key] = props[key]
            self._client("lambda").create_event_source_mapping(**request)
        elif kind in ("Schedule", "EventBridgeRule"):
            self._rule(
                template, resource, event_name, event, target_arn=function_arn, target_suffix="LambdaTarget"
            )
        else:
            raise DeployError(f"{resource.logical_id}: event {event_name} of type {kind} is not emulated")

    def _check_event(
        self, resource: Resource, event_name: str, props: Mapping[str, Any], supported: set[str]
    ) -> None:
        unsupported = set(props) - supported
        if unsupported:
            raise DeployError(
                f"{resource.logical_id}: event {event_name}: {sorted(unsupported)} are not emulated"
            )

    def _rule(
        self,
        template: Template,
        resource: Resource,
        event_name: str,
        event: dict[str, Any],
        *,
        target_arn: str,
        target_suffix: str,
    ) -> None:
        """An EventBridge rule for a SAM Schedule or EventBridgeRule event, and its one target."""
        kind, props = event["Type"], event.get("Properties", {})
        target_keys = {"Input", "InputPath", "InputTransformer", "RetryPolicy", "DeadLetterConfig"}
        if kind == "Schedule":
            supported = target_keys | {"Schedule", "Name", "Description", "Enabled", "State"}
        else:
            supported = target_keys | {"Pattern", "EventBusName", "RuleName", "Target", "State"}
        self._check_event(resource, event_name, props, supported)
        name = (
            props.get("Name")
            or props.get("RuleName")
            or physical_name(template.stack_name, f"{resource.logical_id}{event_name}", max_length=64)
        )
        state = props.get("State") or ("DISABLED" if props.get("Enabled") is False else "ENABLED")
        rule: dict[str, Any] = {"Name": name, "State": state}
        if kind == "Schedule":
            try:
                rate_seconds(props["Schedule"])
            except UnsupportedScheduleError as error:
                raise DeployError(f"{resource.logical_id}: event {event_name}: {error}") from error
            rule["ScheduleExpression"] = props["Schedule"]
        else:
            rule["EventPattern"] = json.dumps(props["Pattern"])
            if "EventBusName" in props:
                rule["EventBusName"] = props["EventBusName"]
        if "Description" in props:
            rule["Description"] = props["Description"]
        events = self._client("events")
        events.put_rule(**rule)
        target: dict[str, Any] = {
            "Id": props.get("Target", {}).get("Id", f"{resource.logical_id}{event_name}{target_suffix}"),
            "Arn": target_arn,
        }
        dead_letter = props.get("DeadLetterConfig")
        if dead_letter is not None:
            if "Arn" not in dead_letter:
                raise DeployError(
                    f"{resource.logical_id}: event {event_name}: only DeadLetterConfig.Arn is emulated"
                )
            target["DeadLetterConfig"] = {"Arn": dead_letter["Arn"]}
        for key in ("Input", "InputPath", "InputTransformer", "RetryPolicy"):
            if key in props:
                target[key] = props[key]
        targets: dict[str, Any] = {"Rule": name, "Targets": [target]}
        if "EventBusName" in props:
            targets["EventBusName"] = props["EventBusName"]
        failed = events.put_targets(**targets).get("FailedEntries")
        if failed:
            raise DeployError(f"{resource.logical_id}: event {event_name}: put_targets failed: {failed}")

    # ------------------------------------------------------------------------ APIs

    def _api(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        """An AWS::Serverless::Api: routes come from the functions' Api events, served by api_gateway."""
        _check_properties(
            resource,
            props,
            {
                "Name",
                "StageName",
                "Auth",
                "Description",
                "TracingEnabled",
                "MethodSettings",
                "EndpointConfiguration",
                "AccessLogSetting",
                "ApiKeySourceType",
                "GatewayResponses",
            },
        )
        auth = dict(props.get("Auth") or {})
        unsupported = set(auth) - {"DefaultAuthorizer", "Authorizers", "ApiKeyRequired"}
        if unsupported:
            raise DeployError(f"{resource.logical_id}: Auth {sorted(unsupported)} are not emulated")
        api_id = uuid.uuid4().hex[:10]
        spec = ApiSpec(
            logical_id=resource.logical_id,
            api_id=api_id,
            stage=str(props["StageName"]),
            region=template.region,
            account_id=template.account_id,
            default_authorizer=auth.get("DefaultAuthorizer"),
            access_log=_access_log(resource, props.get("AccessLogSetting")),
            api_key_required=bool(auth.get("ApiKeyRequired", False)),
            api_key_source=str(props.get("ApiKeySourceType", "HEADER")),
            stage_throttle=_stage_throttle(resource, props.get("MethodSettings")),
            gateway_responses=_gateway_responses(resource, props.get("GatewayResponses")),
        )
        for name, authorizer in (auth.get("Authorizers") or {}).items():
            known = {"FunctionArn", "FunctionPayloadType", "Identity"}
            if set(authorizer) - known or authorizer.get("FunctionPayloadType") != "REQUEST":
                raise DeployError(
                    f"{resource.logical_id}: authorizer {name}: only Lambda REQUEST authorizers with "
                    f"{sorted(known)} are emulated"
                )
            identity = dict(authorizer.get("Identity") or {})
            if set(identity) - {"Headers", "ReauthorizeEvery"}:
                raise DeployError(f"{resource.logical_id}: authorizer {name}: Identity {sorted(identity)}")
            spec.authorizers[name] = Authorizer(
                name=name,
                function_name=str(authorizer["FunctionArn"]).rsplit(":", 1)[-1],
                identity_headers=tuple(identity.get("Headers", [])),
            )
        if spec.default_authorizer is not None and spec.default_authorizer not in spec.authorizers:
            raise DeployError(
                f"{resource.logical_id}: DefaultAuthorizer {spec.default_authorizer} is not defined"
            )
        self._apis[api_id] = spec
        url = f"https://{api_id}.execute-api.{template.region}.amazonaws.com"
        return _Created(api_id, {"RootResourceId": api_id, "RestApiId": api_id, "ApiEndpoint": url})

    def _api_gateway_account(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        """The account's CloudWatch role for API Gateway logs: recorded only (the local API needs no role
        to write its access logs)."""
        _check_properties(resource, props, {"CloudWatchRoleArn"})
        return _Created(f"{template.stack_name}-{resource.logical_id}")

    def _usage_plan(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        """A usage plan in moto's API Gateway, for the local APIs' throttling (localcloud.api_throttling);
        its ApiStages name the local API by the id this deploy gave it."""
        _check_properties(resource, props, {"UsagePlanName", "Description", "ApiStages", "Throttle", "Tags"})
        throttle = dict(props.get("Throttle") or {})
        if set(throttle) - {"RateLimit", "BurstLimit"}:
            raise DeployError(
                f"{resource.logical_id}: Throttle {sorted(throttle)}: only RateLimit and BurstLimit"
            )
        stages = []
        for stage in props.get("ApiStages") or []:
            if set(stage) - {"ApiId", "Stage"}:
                raise DeployError(f"{resource.logical_id}: ApiStages {sorted(stage)}: per-method throttles")
            stages.append({"apiId": str(stage["ApiId"]), "stage": str(stage["Stage"])})
        request: dict[str, Any] = {
            "name": props.get("UsagePlanName")
            or physical_name(template.stack_name, resource.logical_id, max_length=255),
            "apiStages": stages,
        }
        if throttle:
            request["throttle"] = {
                "rateLimit": float(throttle["RateLimit"]),
                "burstLimit": int(throttle["BurstLimit"]),
            }
        if "Description" in props:
            request["description"] = str(props["Description"])
        plan = self._client("apigateway").create_usage_plan(**request)
        return _Created(plan["id"], {"Id": plan["id"]})

    def _api_gateway_key(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(resource, props, {"Name", "Description", "Enabled", "Value", "Tags"})
        request: dict[str, Any] = {
            "name": props.get("Name")
            or physical_name(template.stack_name, resource.logical_id, max_length=255),
            "enabled": str(props.get("Enabled", False)).lower() == "true",
        }
        if "Value" in props:
            request["value"] = str(props["Value"])
        if "Description" in props:
            request["description"] = str(props["Description"])
        key = self._client("apigateway").create_api_key(**request)
        return _Created(key["id"], {"APIKeyId": key["id"]})

    def _usage_plan_key(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(resource, props, {"KeyId", "KeyType", "UsagePlanId"})
        if props.get("KeyType") != "API_KEY":
            raise DeployError(f"{resource.logical_id}: KeyType must be API_KEY")
        self._client("apigateway").create_usage_plan_key(
            usagePlanId=str(props["UsagePlanId"]), keyId=str(props["KeyId"]), keyType="API_KEY"
        )
        return _Created(f"{props['UsagePlanId']}:{props['KeyId']}", {"Id": str(props["KeyId"])})

    def _wait_condition_handle(
        self, template: Template, resource: Resource, props: dict[str, Any]
    ) -> _Created:
        """A handle nothing signals: only its dependencies matter (they are created before it)."""
        _check_properties(resource, props, set())
        return _Created(f"https://localcloud/wait-condition/{template.stack_name}/{resource.logical_id}")

    def _api_route(
        self, resource: Resource, event_name: str, props: dict[str, Any], function_name: str
    ) -> None:
        self._check_event(resource, event_name, props, {"RestApiId", "Path", "Method", "Auth"})
        spec = self._apis.get(str(props.get("RestApiId")))
        if spec is None:
            raise DeployError(
                f"{resource.logical_id}: event {event_name}: RestApiId must reference an "
                "AWS::Serverless::Api of this template (the implicit API is not emulated)"
            )
        auth = dict(props.get("Auth") or {})
        if set(auth) - {"Authorizer"}:
            raise DeployError(
                f"{resource.logical_id}: event {event_name}: Auth {sorted(auth)} is not emulated"
            )
        authorizer = auth.get("Authorizer", spec.default_authorizer)
        if authorizer == "NONE":
            authorizer = None
        if authorizer is not None and authorizer not in spec.authorizers:
            raise DeployError(f"{resource.logical_id}: event {event_name}: unknown authorizer {authorizer}")
        spec.routes.append(
            Route(
                method=str(props["Method"]).upper(),
                path=str(props["Path"]),
                function_name=function_name,
                authorizer=authorizer,
            )
        )

    # ------------------------------------------------------------------------ orchestration resources

    def _state_machine(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "Name",
                "Type",
                "DefinitionUri",
                "Definition",
                "DefinitionSubstitutions",
                "Role",
                "Policies",
                "Logging",
                "Tracing",
                "Events",
                "Tags",
            },
        )
        definition = self._definition(template, resource, props)
        name = props.get("Name") or physical_name(template.stack_name, resource.logical_id, max_length=80)
        role = props.get("Role") or self._execution_role(
            template, resource, _STATES_TRUST, props.get("Policies")
        )
        request: dict[str, Any] = {
            "name": name,
            "definition": definition,
            "roleArn": role,
            "type": props.get("Type", "STANDARD"),
        }
        if "Logging" in props:
            logging_config = props["Logging"]
            request["loggingConfiguration"] = {
                "level": logging_config.get("Level", "OFF"),
                "includeExecutionData": bool(logging_config.get("IncludeExecutionData", False)),
                "destinations": [
                    {
                        "cloudWatchLogsLogGroup": {
                            "logGroupArn": destination["CloudWatchLogsLogGroup"]["LogGroupArn"]
                        }
                    }
                    for destination in logging_config.get("Destinations", [])
                ],
            }
        if "Tracing" in props:
            request["tracingConfiguration"] = {"enabled": bool(props["Tracing"].get("Enabled", False))}
        if "Tags" in props:
            request["tags"] = [{"key": key, "value": value} for key, value in _tags(props["Tags"]).items()]
        arn: str = self._client("stepfunctions").create_state_machine(**request)["stateMachineArn"]
        for event_name, event in props.get("Events", {}).items():
            kind = event["Type"]
            if kind not in ("Schedule", "EventBridgeRule"):
                raise DeployError(f"{resource.logical_id}: event {event_name} of type {kind} is not emulated")
            self._rule(
                template, resource, event_name, event, target_arn=arn, target_suffix="StepFunctionsTarget"
            )
        return _Created(arn, {"Arn": arn, "Name": name})

    def _definition(self, template: Template, resource: Resource, props: dict[str, Any]) -> str:
        """The ASL text with DefinitionSubstitutions applied (moto would ignore them)."""
        if "Definition" in props:
            text = json.dumps(props["Definition"])
        else:
            path = self._local_dir(template, resource, "DefinitionUri", props.get("DefinitionUri"))
            if not path.is_file():
                raise DeployError(f"{resource.logical_id}: DefinitionUri {path} does not exist")
            text = path.read_text(encoding="utf-8")
        substitutions = props.get("DefinitionSubstitutions", {})
        for key, value in substitutions.items():
            placeholder = "${" + key + "}"
            if placeholder not in text:
                LOGGER.warning(
                    "%s: DefinitionSubstitutions.%s is not used by the definition", resource.logical_id, key
                )
            text = text.replace(placeholder, str(value))
        leftovers = sorted(set(_LEFTOVER_SUBSTITUTION.findall(text)))
        if leftovers:
            raise DeployError(
                f"{resource.logical_id}: the definition uses {leftovers} without a substitution"
            )
        try:
            json.loads(text)
        except ValueError as error:
            raise DeployError(f"{resource.logical_id}: the definition is not valid JSON: {error}") from error
        return text

    def _pipeline(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        _check_properties(
            resource,
            props,
            {
                "PipelineName",
                "PipelineDisplayName",
                "PipelineDescription",
                "RoleArn",
                "PipelineDefinition",
                "ParallelismConfiguration",
                "Tags",
            },
        )
        definition = props["PipelineDefinition"]
        if "PipelineDefinitionBody" not in definition:
            raise DeployError(
                f"{resource.logical_id}: only PipelineDefinition.PipelineDefinitionBody is emulated"
            )
        body = definition["PipelineDefinitionBody"]
        request: dict[str, Any] = {
            "PipelineName": props["PipelineName"],
            "PipelineDefinition": body if isinstance(body, str) else json.dumps(body),
            "RoleArn": props["RoleArn"],
            "ClientRequestToken": str(uuid.uuid4()),
        }
        for key in ("PipelineDisplayName", "PipelineDescription", "ParallelismConfiguration", "Tags"):
            if key in props:
                request[key] = props[key]
        self._client("sagemaker").create_pipeline(**request)
        return _Created(props["PipelineName"])  # CloudFormation gives a pipeline no GetAtt attributes

    def _custom_resource(self, template: Template, resource: Resource, props: dict[str, Any]) -> _Created:
        if "ServiceToken" not in props:
            raise DeployError(f"{resource.logical_id}: a custom resource needs a ServiceToken")
        result = create_custom_resource(
            lambda_client=self._client("lambda"),
            endpoint=self._response_endpoint(),
            stack_id=template.stack_id,
            logical_id=resource.logical_id,
            resource_type=resource.type,
            properties=props,
        )
        return _Created(result.physical_resource_id, result.data)


class _StackLookup:
    """Ref and GetAtt against what the deploy has created so far."""

    def __init__(self, stack: Stack, template: Template) -> None:
        self._stack = stack
        self._template = template

    def _created(self, logical_id: str) -> None:
        resource_type = self._template.resources[logical_id].type
        if resource_type in SKIPPED_RESOURCE_TYPES:
            raise TemplateError(f"{logical_id} ({resource_type}) is skipped locally and cannot be referenced")
        if logical_id not in self._stack.physical_ids:
            raise TemplateError(f"{logical_id} is referenced before it was created")

    def ref(self, logical_id: str) -> Any:
        self._created(logical_id)
        return self._stack.physical_ids[logical_id]

    def get_att(self, logical_id: str, attribute: str) -> Any:
        self._created(logical_id)
        attributes = self._stack.attributes[logical_id]
        if attribute not in attributes:
            raise TemplateError(
                f"GetAtt {logical_id}.{attribute}: the emulator provides only {sorted(attributes)}"
            )
        return attributes[attribute]
