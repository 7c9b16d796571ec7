"""The permission check: every recorded AWS call, against the IAM statements of the role that made it.

localcloud.call_recording writes each call of each principal (a function, by its logical id; a state
machine's service task, by the execution's role) as the IAM requests it needs (localcloud.iam_actions).
``check_permissions`` reads those lines, reads each principal's role as deployed in moto's IAM (inline
policies and attached managed policies: the template's statements after intrinsic resolution, SAM policy
templates expanded by the deploy) and evaluates every request with localcloud.iam_policy.

Not evaluated, and said so in every report (``NOT_EVALUATED``): Condition blocks (taken to hold; the
statements that have one are listed), permissions boundaries, session policies and SCPs, resource-based
policies, policy variables, and the calls AWS services make with roles of their own (EventBridge targets,
API Gateway invoking the authorizer, the SageMaker pipeline's own calls).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from localcloud.iam_actions import ALWAYS_ALLOWED, ROLE_PATH
from localcloud.iam_policy import Decision, Statement, evaluate, parse_statements

NOT_EVALUATED = (
    "Condition blocks: a statement's Condition is taken to hold (the statements with one are listed)",
    "permissions boundaries, session policies and service control policies",
    "resource-based policies (bucket, queue, topic, key and function policies)",
    "policy variables such as ${aws:RequestTag/mlaas:tenant} (a variable matches any text)",
    "calls AWS makes with roles of its own: EventBridge targets, API Gateway invoking the authorizer, "
    "the SageMaker pipeline's steps (pipeline and tenant roles)",
    "Lambda's polling of SQS event sources (with the function's role, by the AWSLambdaSQSQueueExecutionRole "
    "policy SAM attaches; not recorded)",
)


@dataclass(frozen=True)
class DeniedCall:
    principal: str
    role_arn: str
    service: str
    operation: str
    action: str
    resource: str
    calls: int
    reason: str


@dataclass(frozen=True)
class UnmappedCall:
    principal: str
    service: str
    operation: str
    calls: int
    detail: str


@dataclass(frozen=True)
class PrincipalSummary:
    principal: str
    role_arn: str
    calls: int
    denied_calls: int
    actions: tuple[str, ...]  # every distinct action its calls needed


@dataclass(frozen=True)
class PermissionReport:
    calls_checked: int
    principals: tuple[PrincipalSummary, ...]
    denied: tuple[DeniedCall, ...]
    unmapped: tuple[UnmappedCall, ...]
    # Statements with a Condition in the checked roles; those some call relied on are marked.
    conditional_statements: tuple[str, ...]
    not_evaluated: tuple[str, ...] = NOT_EVALUATED

    @property
    def denied_calls(self) -> int:
        return sum(denied.calls for denied in self.denied)

    @property
    def unmapped_calls(self) -> int:
        return sum(unmapped.calls for unmapped in self.unmapped)

    @property
    def ok(self) -> bool:
        return not self.denied and not self.unmapped

    def summary_lines(self) -> list[str]:
        lines = [
            f"Permissions: {self.calls_checked} AWS calls by {len(self.principals)} principals checked "
            "against their roles' statements as deployed",
            f"  {'principal':<32}{'calls':>8}{'actions':>9}{'denied':>8}",
        ]
        lines += [
            f"  {p.principal:<32}{p.calls:>8}{len(p.actions):>9}{p.denied_calls:>8}" for p in self.principals
        ]
        lines.append(f"  denied calls: {self.denied_calls}, unmapped calls: {self.unmapped_calls}")
        lines += [
            f"  DENIED {d.principal}: {d.action} on {d.resource} "
            f"({d.service}.{d.operation}, {d.calls} calls): {d.reason}"
            for d in self.denied
        ]
        lines += [
            f"  UNMAPPED {u.principal}: {u.service}.{u.operation} ({u.calls} calls) {u.detail}".rstrip()
            for u in self.unmapped
        ]
        lines.append("  NOT evaluated: " + "; ".join(self.not_evaluated))
        lines += [f"    condition not evaluated: {statement}" for statement in self.conditional_statements]
        return lines


@dataclass
class _Role:
    arn: str
    statements: list[Statement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what of this role is not evaluated


def read_calls(calls_dir: Path) -> Counter[str]:
    """Every recorded line (identical calls counted once, with their number)."""
    lines: Counter[str] = Counter()
    for path in sorted(calls_dir.glob("*.jsonl")):
        with path.open(encoding="utf-8") as stream:
            lines.update(line for line in stream if line.strip())
    return lines


def load_role(iam: Any, role_arn: str) -> _Role:
    """A role's identity-policy statements from IAM: inline policies, then attached managed policies."""
    name = role_arn.rsplit("/", 1)[-1]
    role = _Role(role_arn)
    for policy_name in iam.list_role_policies(RoleName=name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=name, PolicyName=policy_name)["PolicyDocument"]
        role.statements += parse_statements(_document(document), f"{name}/{policy_name}")
    for attached in iam.list_attached_role_policies(RoleName=name)["AttachedPolicies"]:
        policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
        version = iam.get_policy_version(
            PolicyArn=attached["PolicyArn"], VersionId=policy["DefaultVersionId"]
        )
        source = f"{name}/{attached['PolicyName']}"
        role.statements += parse_statements(_document(version["PolicyVersion"]["Document"]), source)
    boundary = iam.get_role(RoleName=name)["Role"].get("PermissionsBoundary")
    if boundary:
        role.notes.append(f"{name}: permissions boundary {boundary['PermissionsBoundaryArn']} not evaluated")
    return role


def _document(document: Any) -> Mapping[str, Any]:
    return json.loads(document) if isinstance(document, str) else dict(document)


class _Checker:
    """Evaluates the distinct recorded calls, one decision per (role, action, resource)."""

    def __init__(self, roles: Callable[[str], _Role], role_arns: Mapping[str, str]) -> None:
        self._roles = roles
        self._role_arns = role_arns  # role name -> ARN, for calls that name a role only
        self._decisions: dict[tuple[str, str, str], Decision] = {}
        self.denied: Counter[tuple[str, str, str, str, str, str, str]] = Counter()
        self.unmapped: Counter[tuple[str, str, str, str]] = Counter()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.actions: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
        self.denied_by_principal: Counter[tuple[str, str]] = Counter()
        self.relied_on: set[str] = set()
        self.checked_roles: set[str] = set()

    def check(self, principal: str, role_arn: str, call: Mapping[str, Any], count: int) -> None:
        self.calls[(principal, role_arn)] += count
        service, operation = str(call["service"]), str(call["operation"])
        if call.get("requests") is None:
            self.unmapped[(principal, service, operation, str(call.get("error") or ""))] += count
            return
        for action, raw_resource in call["requests"]:
            self.actions[(principal, role_arn)].add(action)
            reason = self._reason(role_arn, action, self._resolve(raw_resource))
            if reason is not None:
                key = (principal, role_arn, service, operation, action, self._resolve(raw_resource), reason)
                self.denied[key] += count
                self.denied_by_principal[(principal, role_arn)] += count

    def _reason(self, role_arn: str, action: str, resource: str) -> str | None:
        """Why the request is denied, or None when it is allowed."""
        if action in ALWAYS_ALLOWED:
            return None
        if not role_arn:
            return "the call carries no role the emulator knows"
        self.checked_roles.add(role_arn)
        key = (role_arn, action, resource)
        if key not in self._decisions:
            self._decisions[key] = evaluate(self._roles(role_arn).statements, action, resource)
        decision = self._decisions[key]
        if decision.allowed:
            if decision.conditional:
                self.relied_on.update(statement.source for statement in decision.statements)
            return None
        if decision.explicit_deny:
            return "explicitly denied by " + ", ".join(statement.source for statement in decision.statements)
        return "no statement of its role allows it"

    def _resolve(self, resource: str) -> str:
        if ROLE_PATH not in resource:
            return resource
        name = resource.rsplit(ROLE_PATH, 1)[1]
        known = self._role_arns.get(name)
        return known if known else resource.replace(ROLE_PATH, "/")


def _known_role_arns(iam: Any, calls: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Role name -> ARN: the roles IAM has now, and those the recorded calls created (maybe deleted since)."""
    arns: dict[str, str] = {}
    for call in calls:
        if call.get("operation") == "CreateRole" and call.get("requests"):
            arn = str(call["requests"][0][1])
            arns[arn.rsplit("/", 1)[-1]] = arn
    for page in iam.get_paginator("list_roles").paginate():
        arns.update({role["RoleName"]: role["Arn"] for role in page["Roles"]})
    return arns


def check_permissions(
    calls_dir: Path,
    client: Callable[[str], Any],
    state_machine_roles: Mapping[str, str],
    extra_notes: Iterable[str] = (),
) -> PermissionReport:
    """Check every call recorded under calls_dir.

    client(service): a boto3 client of the emulator (its own calls are not recorded);
    state_machine_roles: role ARN -> the state machine's logical id (its calls are recorded by role).
    """
    lines = read_calls(calls_dir)
    calls = [(json.loads(line), count) for line, count in lines.items()]
    iam = client("iam")
    roles: dict[str, _Role] = {}

    def role(arn: str) -> _Role:
        if arn not in roles:
            try:
                roles[arn] = load_role(iam, arn)
            except ClientError as error:  # no statements: every request of it is reported denied
                roles[arn] = _Role(arn, notes=[f"{arn}: cannot be read from IAM ({error})"])
        return roles[arn]

    function_roles: dict[str, str] = {}
    checker = _Checker(role, _known_role_arns(iam, (call for call, _ in calls)))
    for call, count in calls:
        if "function" in call:
            name = str(call["function"])
            if name not in function_roles:
                function_roles[name] = str(
                    client("lambda").get_function_configuration(FunctionName=name)["Role"]
                )
            principal, role_arn = str(call["principal"]), function_roles[name]
        else:
            role_arn = str(call.get("role") or "")
            principal = state_machine_roles.get(role_arn) or f"role {role_arn or '(none)'}"
        checker.check(principal, role_arn, call, count)
    return _report(checker, roles, extra_notes)


def _report(checker: _Checker, roles: Mapping[str, _Role], extra_notes: Iterable[str]) -> PermissionReport:
    principals = tuple(
        PrincipalSummary(
            principal=principal,
            role_arn=role_arn,
            calls=count,
            denied_calls=checker.denied_by_principal[(principal, role_arn)],
            actions=tuple(sorted(checker.actions[(principal, role_arn)])),
        )
        for (principal, role_arn), count in sorted(checker.calls.items())
    )
    denied = tuple(
        DeniedCall(principal, role_arn, service, operation, action, resource, count, reason)
        for (principal, role_arn, service, operation, action, resource, reason), count in sorted(
            checker.denied.items()
        )
    )
    unmapped = tuple(
        UnmappedCall(principal, service, operation, count, detail)
        for (principal, service, operation, detail), count in sorted(checker.unmapped.items())
    )
    conditional = tuple(
        f"{statement.source} ({', '.join(statement.actions)})"
        + (" - relied on by a call" if statement.source in checker.relied_on else "")
        for arn in sorted(checker.checked_roles)
        for statement in roles[arn].statements
        if statement.has_condition
    )
    notes = [note for arn in sorted(checker.checked_roles) for note in roles[arn].notes]
    return PermissionReport(
        calls_checked=sum(checker.calls.values()),
        principals=principals,
        denied=denied,
        unmapped=unmapped,
        conditional_statements=conditional,
        not_evaluated=(*NOT_EVALUATED, *notes, *extra_notes),
    )
