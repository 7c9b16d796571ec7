"""Security posture and wiring of template.yaml that the linters do not judge."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def _of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def test_buckets_are_encrypted_private_versioned_and_tls_only(resources: dict[str, Any]) -> None:
    buckets = _of_type(resources, "AWS::S3::Bucket")
    assert buckets
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p for p in _of_type(resources, "AWS::S3::BucketPolicy").values()
    }
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"], name
        assert all(props["PublicAccessBlockConfiguration"].values()), name
        assert props["VersioningConfiguration"]["Status"] == "Enabled", name
        assert bucket.get("DeletionPolicy") == "Retain", f"{name}: tenant data must survive stack deletion"
        statements = policies[name]["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
            for s in statements
        ), f"{name} accepts plain HTTP"


def test_tables_have_point_in_time_recovery_and_encryption(resources: dict[str, Any]) -> None:
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    assert {"TenantsTable", "JobsTable", "TiersTable", "SlotLeasesTable"} <= set(tables)
    for name, table in tables.items():
        props = table["Properties"]
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert props["SSESpecification"]["SSEEnabled"] is True, name


def test_queues_are_encrypted_and_tier_queues_have_dead_letter_queues(resources: dict[str, Any]) -> None:
    queues = _of_type(resources, "AWS::SQS::Queue")
    for name, queue in queues.items():
        assert queue["Properties"].get("SqsManagedSseEnabled") is True, name
    for tier in ("Basic", "Standard", "Premium"):
        redrive = queues[f"{tier}Queue"]["Properties"]["RedrivePolicy"]
        assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [f"{tier}DeadLetterQueue", "Arn"]}


def test_one_upload_rule_for_all_tenants_with_retries_and_a_dead_letter_queue(
    state_machine: dict[str, Any],
) -> None:
    rules = [e for e in state_machine["Properties"]["Events"].values() if e["Type"] == "EventBridgeRule"]
    assert len(rules) == 1
    props = rules[0]["Properties"]
    # Which keys start a job: tests/template/test_upload_rule.py.
    assert props["Pattern"]["detail"]["object"]["$or"][0]["key"] == [{"prefix": "tenants/"}]
    assert props["Pattern"]["detail-type"] == ["Object Created"]
    assert props["RetryPolicy"]["MaximumRetryAttempts"] > 0
    assert "Arn" in props["DeadLetterConfig"]


def test_executions_that_end_unrecorded_reach_a_function_with_retries_and_a_dead_letter_queue(
    template: dict[str, Any], resources: dict[str, Any], state_machine: dict[str, Any]
) -> None:
    function = resources["ExecutionEventsFunction"]["Properties"]
    (rule,) = [e for e in function["Events"].values() if e["Type"] == "EventBridgeRule"]
    props = rule["Properties"]
    pattern = props["Pattern"]
    assert pattern["source"] == ["aws.states"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert sorted(pattern["detail"]["status"]) == ["ABORTED", "FAILED", "TIMED_OUT"]
    # Only this stack's state machine, named like STATE_MACHINE_ARN (no !Ref: no dependency cycle).
    (arn,) = pattern["detail"]["stateMachineArn"]
    assert arn == template["Globals"]["Function"]["Environment"]["Variables"]["STATE_MACHINE_ARN"]
    assert arn["Fn::Sub"].endswith(":stateMachine:" + state_machine["Properties"]["Name"]["Fn::Sub"])
    assert props["RetryPolicy"]["MaximumRetryAttempts"] > 0
    dead_letter = props["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    assert resources[dead_letter]["Properties"]["SqsManagedSseEnabled"] is True
    (policy,) = [
        r
        for r in _of_type(resources, "AWS::SQS::QueuePolicy").values()
        if r["Properties"]["Queues"] == [{"Ref": dead_letter}]
    ]
    (statement,) = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"].endswith(
        "rule/" + props["RuleName"]["Fn::Sub"]
    )


def test_tier_defaults_cover_every_tier_setting(template: dict[str, Any], resources: dict[str, Any]) -> None:
    defaults = template["Mappings"]["TierDefaults"]
    assert set(defaults) == {"basic", "standard", "premium"}
    assert [defaults[t]["ConcurrencyLimit"] for t in ("basic", "standard", "premium")] == [2, 4, 8]
    seeded = resources["TierSettings"]["Properties"]["Tiers"]
    for tier, values in defaults.items():
        assert set(values) <= set(seeded[tier]), f"{tier}: a default is not seeded"
        assert values["BorrowingLimit"] >= 0


def test_the_default_guarantees_fit_the_default_account_cap(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """seed_tiers refuses guarantees above the cap; the defaults must deploy."""
    defaults = template["Mappings"]["TierDefaults"]
    cap = template["Parameters"]["AccountConcurrencyCap"]
    assert sum(values["ConcurrencyLimit"] for values in defaults.values()) <= cap["Default"]
    assert resources["TierSettings"]["Properties"]["AccountCap"] == {"Ref": "AccountConcurrencyCap"}


def _statements(resource: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for policy in resource["Properties"].get("Policies", []):
        if isinstance(policy, dict) and "Statement" in policy:
            found.extend(policy["Statement"])
        elif isinstance(policy, dict) and "PolicyDocument" in policy:
            found.extend(policy["PolicyDocument"]["Statement"])
    return found


# Actions that AWS only grants on "*" (they have no resource-level permissions).
WILDCARD_RESOURCE_ALLOWED = re.compile(
    r"^(logs:(Create|Get|Update|Delete|List)LogDeliver|logs:PutResourcePolicy|"
    r"logs:Describe|sagemaker:ListModelPackages$|"
    # The task token is the capability; these accept only "*".
    r"states:SendTask(Success|Failure|Heartbeat)$)"
)


def test_iam_is_least_privilege(resources: dict[str, Any]) -> None:
    checked = 0
    for name, resource in resources.items():
        if resource["Type"] not in (
            "AWS::Serverless::Function",
            "AWS::Serverless::StateMachine",
            "AWS::IAM::Role",
        ):
            continue
        for statement in _statements(resource):
            checked += 1
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all(not a.endswith(":*") and a != "*" for a in actions), (
                f"{name}: wildcard action {actions}"
            )
            if statement.get("Resource") == "*":
                assert all(WILDCARD_RESOURCE_ALLOWED.match(a) for a in actions), f"{name}: {actions} on '*'"
    assert checked > 10


def test_functions_share_the_layer_and_have_their_code(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    assert template["Globals"]["Function"]["Layers"] == [{"Ref": "SharedLayer"}]
    for name, function in _of_type(resources, "AWS::Serverless::Function").items():
        code = ROOT / function["Properties"]["CodeUri"]
        assert (code / "app.py").is_file(), f"{name}: {code}/app.py is missing"


def test_layer_pins_match_the_development_pins() -> None:
    def pins(path: Path) -> dict[str, str]:
        found = {}
        for raw in path.read_text().splitlines():
            line = raw.split("#")[0].strip()
            if line:
                name, _, version = line.partition("==")
                assert version, f"{path}: {line!r} is not pinned"
                found[re.sub(r"\[.*\]", "", name).lower().replace("_", "-")] = version
        return found

    dev = pins(ROOT / "requirements/dev.txt")
    # The layer and each function's own requirements (validate_dataset's pyarrow) ship what the tests ran.
    for path in [ROOT / "layers/shared/requirements.txt", *sorted(ROOT.glob("functions/*/requirements.txt"))]:
        for name, version in pins(path).items():
            assert dev.get(name) == version, f"{path}: {name} {version}, development pins {dev.get(name)}"


_TENANT_ROLES = "arn:${AWS::Partition}:iam::${AWS::AccountId}:role${TenantRolePath}mlaas-tenant-"
_TENANT_TAG = "mlaas:tenant"  # controlplane.tenants.access_policy.TENANT_TAG (asserted below)


def test_tenant_roles_are_created_only_under_the_boundary_the_path_and_their_tenant_tag(
    resources: dict[str, Any],
) -> None:
    """ApiFunction's IAM statements, exactly: a drift in any of them (a condition dropped, a tag key
    allowed, a resource widened, an action added) fails here."""
    from controlplane.tenants.access_policy import TENANT_TAG  # noqa: PLC0415

    assert TENANT_TAG == _TENANT_TAG
    iam = [s for s in _statements(resources["ApiFunction"]) if any(a.startswith("iam:") for a in _actions(s))]
    boundary = {"iam:PermissionsBoundary": {"Ref": "TenantRoleBoundary"}}
    only_the_tenant_tag = {"aws:TagKeys": [_TENANT_TAG]}
    assert iam == [
        {
            "Sid": "CreateTenantRolesUnderTheBoundaryWithTheTenantTag",
            "Effect": "Allow",
            "Action": "iam:CreateRole",
            "Resource": {"Fn::Sub": _TENANT_ROLES + "*"},
            "Condition": {
                "StringEquals": boundary,
                "Null": {f"aws:RequestTag/{_TENANT_TAG}": "false"},
                "ForAllValues:StringEquals": only_the_tenant_tag,
            },
        },
        {
            "Sid": "TagTenantRolesOnlyWithTheirOwnTenant",
            "Effect": "Allow",
            "Action": "iam:TagRole",
            # ${!...} is Fn::Sub's escape: IAM gets the policy variable ${aws:RequestTag/mlaas:tenant}.
            "Resource": {"Fn::Sub": _TENANT_ROLES + "${!aws:RequestTag/" + _TENANT_TAG + "}"},
            "Condition": {"ForAllValues:StringEquals": only_the_tenant_tag},
        },
        {
            "Sid": "PutInlinePoliciesOnlyOnBoundedTenantRoles",
            "Effect": "Allow",
            "Action": "iam:PutRolePolicy",
            "Resource": {"Fn::Sub": _TENANT_ROLES + "*"},
            "Condition": {"StringEquals": boundary},
        },
        {"Effect": "Allow", "Action": "iam:GetRole", "Resource": {"Fn::Sub": _TENANT_ROLES + "*"}},
    ]


# Changing a role after its creation: its trust policy (IAM has no condition key on the document, so no
# one may call this), its boundary, its tags (the boundary's ABAC key), its managed policies.
_CHANGES_A_ROLE = (
    "iam:UpdateAssumeRolePolicy",
    "iam:PutRolePermissionsBoundary",
    "iam:DeleteRolePermissionsBoundary",
    "iam:TagRole",
    "iam:UntagRole",
    "iam:AttachRolePolicy",
    "iam:UpdateRole",
    "iam:CreateRole",
    "iam:PutRolePolicy",
)


def test_nothing_in_the_stack_may_change_a_role_except_the_api_functions_tenant_role_statements(
    resources: dict[str, Any],
) -> None:
    holders = []
    for name, resource in resources.items():
        if resource["Type"] in ("AWS::IAM::ManagedPolicy",):
            statements = resource["Properties"]["PolicyDocument"]["Statement"]
        elif resource["Type"] in (
            "AWS::Serverless::Function",
            "AWS::Serverless::StateMachine",
            "AWS::IAM::Role",
        ):
            statements = _statements(resource)
        else:
            continue
        for statement in statements:
            for pattern in _actions(statement):
                held = [
                    a for a in _CHANGES_A_ROLE if re.fullmatch(pattern.replace("*", ".*"), a, re.IGNORECASE)
                ]
                holders.extend((name, statement.get("Sid"), a) for a in held)
    assert sorted(holders) == [
        ("ApiFunction", "CreateTenantRolesUnderTheBoundaryWithTheTenantTag", "iam:CreateRole"),
        ("ApiFunction", "PutInlinePoliciesOnlyOnBoundedTenantRoles", "iam:PutRolePolicy"),
        ("ApiFunction", "TagTenantRolesOnlyWithTheirOwnTenant", "iam:TagRole"),
    ]


_LOGS = "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:"


def test_the_boundary_confines_a_tenant_role_to_its_own_tenant_by_its_tag(resources: dict[str, Any]) -> None:
    boundary = resources["TenantRoleBoundary"]["Properties"]["PolicyDocument"]["Statement"]
    own = "${aws:PrincipalTag/" + _TENANT_TAG + "}"
    assert boundary == [
        {
            "Sid": "OwnTenantsJobData",
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": {"Fn::Sub": "${ArtifactsBucket.Arn}/tenants/${!" + own[2:] + "/jobs/*"},
        },
        {
            "Sid": "SharedStepScripts",
            "Effect": "Allow",
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${ArtifactsBucket.Arn}/pipeline-code/*"},
        },
        {
            "Sid": "ListOwnTenantsPrefixAndStepScripts",
            "Effect": "Allow",
            "Action": "s3:ListBucket",
            "Resource": {"Fn::GetAtt": ["ArtifactsBucket", "Arn"]},
            "Condition": {"StringLike": {"s3:prefix": [f"tenants/{own}/*", "pipeline-code/*"]}},
        },
        {
            "Sid": "JobLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::Sub": _LOGS + "log-group:/aws/sagemaker/*"},
        },
    ]


_SAGEMAKER = "arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:"
_PIPELINE_JOBS = [
    {"Fn::Sub": _SAGEMAKER + "processing-job/pipelines-*"},
    {"Fn::Sub": _SAGEMAKER + "training-job/pipelines-*"},
]


def test_the_pipeline_role_acts_only_on_the_jobs_and_model_versions_its_pipeline_creates(
    resources: dict[str, Any],
) -> None:
    statements = _statements(resources["PipelineExecutionRole"])
    sagemaker = [s for s in statements if any(a.startswith("sagemaker:") for a in _actions(s))]
    assert sagemaker == [
        {
            "Sid": "CreatePipelineJobsWithTheTenantTag",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateProcessingJob", "sagemaker:CreateTrainingJob"],
            "Resource": _PIPELINE_JOBS,
            "Condition": {"Null": {f"aws:RequestTag/{_TENANT_TAG}": "false"}},
        },
        {
            "Sid": "WatchStopAndTagPipelineJobs",
            "Effect": "Allow",
            "Action": [
                "sagemaker:DescribeProcessingJob",
                "sagemaker:DescribeTrainingJob",
                "sagemaker:StopProcessingJob",
                "sagemaker:StopTrainingJob",
                "sagemaker:AddTags",
            ],
            "Resource": _PIPELINE_JOBS,
        },
        {
            "Sid": "RegisterModelVersionsInTenantGroups",
            "Effect": "Allow",
            "Action": ["sagemaker:CreateModelPackage", "sagemaker:DescribeModelPackage"],
            "Resource": [
                {"Fn::Sub": _SAGEMAKER + "model-package/*-models/*"},
                {"Fn::Sub": _SAGEMAKER + "model-package-group/*-models"},
            ],
        },
    ]
    assert all(s["Resource"] != "*" for s in statements)


def test_the_pipeline_definition_runs_only_what_the_pipeline_role_is_scoped_to() -> None:
    """The role's statements reason from the definition: processing and training jobs, each tagged with its
    tenant, run as a passed role; register steps into a group; no other step type (CreateModel, Lambda,
    Transform, ...) and no custom job prefix (job names then start with pipelines-)."""
    definition = json.loads((ROOT / "pipeline/definition.json").read_text())

    def steps(found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for step in found:
            out.append(step)
            for branch in ("IfSteps", "ElseSteps"):
                out.extend(steps(step.get("Arguments", {}).get(branch, [])))
        return out

    every = steps(definition["Steps"])
    assert {step["Type"] for step in every} == {
        "Processing",
        "Training",
        "Condition",
        "RegisterModel",
        "Fail",
    }
    assert "PipelineDefinitionConfig" not in json.dumps(definition)
    for step in every:
        arguments = step.get("Arguments", {})
        if step["Type"] in ("Processing", "Training"):
            assert "ProcessingJobName" not in arguments, step["Name"]
            assert "TrainingJobName" not in arguments, step["Name"]
            tags = {tag["Key"]: tag["Value"] for tag in arguments["Tags"]}
            assert tags[_TENANT_TAG] == {"Get": "Parameters.TenantId"}, step["Name"]
            assert arguments["RoleArn"] == {"Get": "Parameters.TenantRoleArn"}, step["Name"]
        if step["Type"] == "RegisterModel":
            assert arguments["ModelPackageGroupName"] == {"Get": "Parameters.ModelPackageGroupName"}


def test_the_state_machine_may_invoke_exactly_its_four_functions(resources: dict[str, Any]) -> None:
    """A narrow statement instead of SAM's LambdaInvokePolicy (function:<name>*: any name so beginning)."""
    machine = resources["TrainingJobStateMachine"]
    policies = machine["Properties"]["Policies"]
    assert all("Statement" in policy for policy in policies), (
        "a SAM policy template or managed policy is back"
    )
    invoking = [s for s in _statements(machine) if "lambda:InvokeFunction" in _actions(s)]
    assert invoking == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": [
                {"Fn::GetAtt": [name, "Arn"]}
                for name in (
                    "RegisterUploadFunction",
                    "ValidateDatasetFunction",
                    "GateFunction",
                    "AwaitPipelineFunction",
                )
            ],
        }
    ]


def test_the_status_api_is_behind_the_key_authorizer(resources: dict[str, Any]) -> None:
    auth = resources["ControlPlaneApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["FunctionPayloadType"] == "REQUEST"
    assert authorizer["Identity"]["Headers"] == ["Authorization"]
    events = resources["ApiFunction"]["Properties"]["Events"].values()
    assert all(e["Type"] == "Api" and "Auth" not in e["Properties"] for e in events)


def _actions(statement: dict[str, Any]) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


def test_the_gate_may_describe_only_the_shared_pipelines_executions(resources: dict[str, Any]) -> None:
    """The sweep recovers lost pipeline completions with DescribePipelineExecution, scoped to executions."""
    granting = [
        s
        for s in _statements(resources["GateFunction"])
        if "sagemaker:DescribePipelineExecution" in _actions(s)
    ]
    assert len(granting) == 1
    (statement,) = granting
    assert statement["Effect"] == "Allow"
    resource = statement["Resource"]["Fn::Sub"]
    assert resource.endswith(":pipeline/${AWS::StackName}-tenant-training/execution/*")
    assert resource.startswith("arn:${AWS::Partition}:sagemaker:${AWS::Region}:${AWS::AccountId}:")


def test_failed_event_invocations_are_kept_in_an_encrypted_dead_letter_queue(
    resources: dict[str, Any],
) -> None:
    """EventBridge's DeadLetterConfig covers delivery only; a failing asynchronous invocation is retried by
    Lambda and then sent to the on-failure destination instead of being dropped."""
    for name in ("PipelineEventsFunction", "ExecutionEventsFunction"):
        function = resources[name]
        config = function["Properties"]["EventInvokeConfig"]
        assert config["MaximumRetryAttempts"] == 2, name
        on_failure = config["DestinationConfig"]["OnFailure"]
        assert on_failure["Type"] == "SQS", name
        (queue, attribute) = on_failure["Destination"]["Fn::GetAtt"]
        assert attribute == "Arn"
        assert resources[queue]["Type"] == "AWS::SQS::Queue"
        assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True, queue
        # The same queue as the rule's delivery DLQ: one place to look for a lost event of this kind.
        (rule,) = [e for e in function["Properties"]["Events"].values() if e["Type"] == "EventBridgeRule"]
        assert rule["Properties"]["DeadLetterConfig"]["Arn"] == on_failure["Destination"]
        sends = [s for s in _statements(function) if "sqs:SendMessage" in _actions(s)]
        assert [s["Resource"] for s in sends] == [on_failure["Destination"]], name
        assert all(s["Effect"] == "Allow" for s in sends)


# ---------------------------------------------------------------- offboarding: only one function may delete

_DELETING = re.compile(
    r"^(s3:Delete\w*|s3:ListBucketVersions|iam:Delete\w*|iam:ListRolePolicies|sagemaker:Delete\w*|"
    r"dynamodb:DeleteItem|dynamodb:BatchWriteItem)$"
)  # sagemaker:ListModelPackages is a read: GET /models lists a tenant's versions (no resource-level scope)


def _statement_actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return list(action) if isinstance(action, list) else [action]


def test_the_api_function_holds_no_deletion_permission_and_may_only_invoke_offboard_tenants(
    resources: dict[str, Any],
) -> None:
    statements = _statements(resources["ApiFunction"])
    deleting = [a for s in statements for a in _statement_actions(s) if _DELETING.match(a)]
    assert deleting == []
    invoking = [s for s in statements if any(a.startswith("lambda:") for a in _statement_actions(s))]
    assert invoking == [
        {
            "Effect": "Allow",
            "Action": "lambda:InvokeFunction",
            "Resource": {"Fn::GetAtt": ["OffboardTenantsFunction", "Arn"]},
        }
    ]
    variables = resources["ApiFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["OFFBOARD_TENANTS_FUNCTION_NAME"] == {"Ref": "OffboardTenantsFunction"}


def test_offboard_tenants_is_least_privilege_and_swept_every_hour(resources: dict[str, Any]) -> None:
    function = resources["OffboardTenantsFunction"]
    (event,) = function["Properties"]["Events"].values()
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == "rate(1 hour)"
    assert json.loads(event["Properties"]["Input"]) == {"trigger": "schedule"}

    granted = _granted(function)
    # Exactly these actions: reading what to delete, deleting it; nothing that creates, writes or cancels.
    assert set(granted) == {
        "dynamodb:GetItem",
        "dynamodb:Query",
        "dynamodb:DeleteItem",
        "states:DescribeExecution",
        "s3:ListBucketVersions",
        "s3:DeleteObjectVersion",
        "iam:ListRolePolicies",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
        "sagemaker:DeleteModelPackageGroup",
        "sagemaker:DeleteModelPackage",
        "sagemaker:ListModelPackages",
        # Only to its on-failure destination (a failed sweep is kept, not dropped).
        "sqs:SendMessage",
        # The tenant's usage key (its API rate limits) goes with it.
        "apigateway:DELETE",
    }
    assert granted["sqs:SendMessage"] == [{"Fn::GetAtt": ["OffboardingSweepDeadLetterQueue", "Arn"]}]
    subs = {
        action: [r.get("Fn::Sub", r) if isinstance(r, dict) else r for r in found]
        for action, found in granted.items()
    }
    assert subs["dynamodb:GetItem"] == [{"Fn::GetAtt": ["TenantsTable", "Arn"]}]
    assert subs["apigateway:DELETE"] == ["arn:${AWS::Partition}:apigateway:${AWS::Region}::/apikeys/*"]
    assert sorted(subs["dynamodb:Query"]) == [
        "${ApiKeysTable.Arn}/index/tenant-keys",
        "${FairShareTable.Arn}/index/tenant-shares",
        "${JobsTable.Arn}/index/tenant-jobs",
        "${TenantsTable.Arn}/index/offboarding-due",
    ]
    assert subs["s3:DeleteObjectVersion"] == [
        "${UploadsBucket.Arn}/tenants/*",
        "${ArtifactsBucket.Arn}/tenants/*",
    ]
    for action in ("iam:ListRolePolicies", "iam:DeleteRolePolicy", "iam:DeleteRole"):
        assert [str(r).endswith(":role${TenantRolePath}mlaas-tenant-*") for r in subs[action]] == [True]
    assert [
        str(r).endswith(":model-package-group/*-models") for r in subs["sagemaker:DeleteModelPackageGroup"]
    ] == [True]
    assert [str(r).endswith(":model-package/*-models/*") for r in subs["sagemaker:DeleteModelPackage"]] == [
        True
    ]
    (listing,) = [s for s in _statements(function) if "s3:ListBucketVersions" in _statement_actions(s)]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": "tenants/*"}}
    # Only this function deletes tenants' things.
    holders = {
        name
        for name, resource in _of_type(resources, "AWS::Serverless::Function").items()
        for statement in _statements(resource)
        if any(
            a in {"s3:DeleteObjectVersion", "iam:DeleteRole", "sagemaker:DeleteModelPackageGroup"}
            for a in _statement_actions(statement)
        )
    }
    assert holders == {"OffboardTenantsFunction"}


def test_the_tenants_table_has_the_sparse_offboarding_due_index(resources: dict[str, Any]) -> None:
    properties = resources["TenantsTable"]["Properties"]
    (index,) = [i for i in properties["GlobalSecondaryIndexes"] if i["IndexName"] == "offboarding-due"]
    assert index["KeySchema"] == [
        {"AttributeName": "offboardingDue", "KeyType": "HASH"},
        {"AttributeName": "deleteAfter", "KeyType": "RANGE"},
    ]
    types = {d["AttributeName"]: d["AttributeType"] for d in properties["AttributeDefinitions"]}
    assert types["offboardingDue"] == types["deleteAfter"] == "S"


def test_every_log_group_has_a_retention_and_every_function_logs_to_its_own(
    template: dict[str, Any], resources: dict[str, Any]
) -> None:
    """No log is kept forever (CloudWatch's default): each function writes to a log group this stack creates
    (before the function, so its first lines are covered) with LogRetentionDays."""
    groups = {name: r for name, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    for name, group in groups.items():
        assert "RetentionInDays" in group["Properties"], name
    functions = {name: r for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function"}
    used = []
    for name, function in functions.items():
        target = function["Properties"].get("LoggingConfig", {}).get("LogGroup", {}).get("Ref")
        assert target in groups, f"{name} logs to {target!r}, not a log group of this stack"
        assert groups[target]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, name
        used.append(target)
    assert len(used) == len(set(used)), "two functions share a log group"
    assert template["Parameters"]["LogRetentionDays"]["Default"] == 30


def test_every_check_the_iac_scan_skips_says_why() -> None:
    """make iac runs checkov with .checkov.yaml: a skipped check is listed with its reason, never bare."""
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    start = lines.index("skip-check:")
    skipped = [line for line in lines[start + 1 :] if line.startswith("  - ")]
    assert skipped
    for line in skipped:
        check, _, reason = line.removeprefix("  - ").partition("#")
        assert re.fullmatch(r"CKV2?_AWS_\d+", check.strip()), line
        assert len(reason.strip()) > 20, f"{check.strip()} is skipped without a reason"


def test_the_status_api_writes_an_access_log_line_per_request(resources: dict[str, Any]) -> None:
    setting = resources["ControlPlaneApi"]["Properties"]["AccessLogSetting"]
    assert setting["DestinationArn"] == {"Fn::GetAtt": ["ApiAccessLogs", "Arn"]}
    for variable in (
        "requestId",
        "httpMethod",
        "resourcePath",
        "status",
        "authorizer.role",
        "authorizer.tenantId",
    ):
        assert f"$context.{variable}" in setting["Format"], variable
    assert resources["ApiAccessLogs"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def _granted(resource: dict[str, Any]) -> dict[str, list[Any]]:
    granted: dict[str, list[Any]] = {}
    for statement in _statements(resource):
        assert statement["Effect"] == "Allow"
        found = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        for action in _statement_actions(statement):
            granted.setdefault(action, []).extend(found)
    return granted


def test_revocation_takes_effect_within_the_stated_bound(resources: dict[str, Any]) -> None:
    """README and docs/openapi.json state the bound (controlplane.api.keys.REVOCATION_BOUND_SECONDS): it is
    how long API Gateway may cache the authorizer's answer."""
    from controlplane.api.keys import REVOCATION_BOUND_SECONDS  # noqa: PLC0415

    auth = resources["ControlPlaneApi"]["Properties"]["Auth"]
    authorizer = auth["Authorizers"][auth["DefaultAuthorizer"]]
    assert authorizer["Identity"]["ReauthorizeEvery"] == REVOCATION_BOUND_SECONDS
    assert f"Revocation bound: {REVOCATION_BOUND_SECONDS} s" in (ROOT / "docs" / "openapi.json").read_text()
    assert f"revocation bound is {REVOCATION_BOUND_SECONDS} s" in (ROOT / "README.md").read_text().lower()


def test_the_authorizer_may_read_keys_and_tenants_and_only_touch_a_keys_last_use(
    resources: dict[str, Any],
) -> None:
    granted = _granted(resources["AuthorizerFunction"])
    assert set(granted) == {"dynamodb:GetItem", "dynamodb:UpdateItem"}
    assert granted["dynamodb:UpdateItem"] == [{"Fn::GetAtt": ["ApiKeysTable", "Arn"]}]
    assert granted["dynamodb:GetItem"] == [
        {"Fn::GetAtt": ["ApiKeysTable", "Arn"]},
        {"Fn::GetAtt": ["TenantsTable", "Arn"]},
    ]


def test_keys_are_found_by_owner_and_id_and_the_audit_trail_by_time(resources: dict[str, Any]) -> None:
    keys = resources["ApiKeysTable"]["Properties"]
    (owner_keys,) = [i for i in keys["GlobalSecondaryIndexes"] if i["IndexName"] == "owner-keys"]
    assert owner_keys["KeySchema"] == [
        {"AttributeName": "owner", "KeyType": "HASH"},
        {"AttributeName": "keyId", "KeyType": "RANGE"},
    ]
    audit = resources["AuditTable"]
    assert audit["DeletionPolicy"] == "Retain"
    assert audit["Properties"]["KeySchema"] == [
        {"AttributeName": "trail", "KeyType": "HASH"},
        {"AttributeName": "eventId", "KeyType": "RANGE"},
    ]
    # Only the API writes and reads the trail: put an event, query the trail; no update, no delete, no scan.
    holders = {
        name: {
            action
            for action, found in _granted(function).items()
            if {"Fn::GetAtt": ["AuditTable", "Arn"]} in found
        }
        for name, function in _of_type(resources, "AWS::Serverless::Function").items()
    }
    assert {name: actions for name, actions in holders.items() if actions} == {
        "ApiFunction": {"dynamodb:PutItem", "dynamodb:Query"}
    }
