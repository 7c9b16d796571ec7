"""A small evaluator of IAM identity-policy statements: is this action on this resource allowed?

What it evaluates: Effect (an explicit Deny wins over any Allow; nothing matching is an implicit deny),
Action / NotAction (case-insensitive, with IAM's wildcards ``*`` and ``?``) and Resource / NotResource
(case-sensitive wildcards; an ARN is matched segment by segment, as IAM matches ARNs, so a ``*`` in the
region cannot swallow the account).

What it does NOT evaluate, and says so in every report: **Condition** blocks (a statement's condition is
taken to hold: such allows are listed as conditional), policy variables such as
``${aws:RequestTag/mlaas:tenant}`` (their value is not known here: a variable matches any text, as a
``*`` would; ``${*}``, ``${?}`` and ``${$}`` stand for those characters), permissions boundaries,
session policies, SCPs and resource-based policies (bucket, queue, key and function policies).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_ARN_SEGMENTS = 6  # arn:partition:service:region:account:resource


@dataclass(frozen=True)
class Statement:
    """One statement of an identity policy, with where it comes from (role, policy name, index, Sid)."""

    effect: str
    actions: tuple[str, ...]
    actions_negated: bool  # NotAction
    resources: tuple[str, ...]
    resources_negated: bool  # NotResource
    has_condition: bool
    source: str

    def applies_to(self, action: str, resource: str) -> bool:
        action_matches = any(wildcard_match(p, action, ignore_case=True) for p in self.actions)
        resource_matches = any(resource_match(p, resource) for p in self.resources)
        return action_matches != self.actions_negated and resource_matches != self.resources_negated


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool
    # The statements that decided: the Deny statements that matched, or the Allow statements that matched.
    statements: tuple[Statement, ...]

    @property
    def conditional(self) -> bool:
        """Allowed only by statements whose Condition was not evaluated."""
        return self.allowed and all(statement.has_condition for statement in self.statements)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (str(value),) if isinstance(value, str) else tuple(str(item) for item in value)


def parse_statements(document: Mapping[str, Any], source: str) -> list[Statement]:
    """The statements of a policy document (Statement may be one object or a list)."""
    raw = document.get("Statement", [])
    statements = [raw] if isinstance(raw, Mapping) else list(raw)
    parsed = []
    for index, statement in enumerate(statements):
        sid = statement.get("Sid")
        parsed.append(
            Statement(
                effect=str(statement.get("Effect", "")),
                actions=_as_tuple(statement.get("Action", statement.get("NotAction"))),
                actions_negated="NotAction" in statement,
                resources=_as_tuple(statement.get("Resource", statement.get("NotResource"))),
                resources_negated="NotResource" in statement,
                has_condition=bool(statement.get("Condition")),
                source=f"{source}#{index}" + (f" ({sid})" if sid else ""),
            )
        )
    return parsed


def evaluate(statements: Iterable[Statement], action: str, resource: str) -> Decision:
    """IAM's decision for one request against identity-policy statements (conditions taken to hold)."""
    matching = [s for s in statements if s.applies_to(action, resource)]
    denies = tuple(s for s in matching if s.effect == "Deny")
    if denies:
        return Decision(allowed=False, explicit_deny=True, statements=denies)
    allows = tuple(s for s in matching if s.effect == "Allow")
    return Decision(allowed=bool(allows), explicit_deny=False, statements=allows)


_VARIABLE = re.compile(r"(\$\{[^}]*\})")
_LITERAL_VARIABLES = {"${*}": "*", "${?}": "?", "${$}": "$"}


def _wildcards(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


@functools.lru_cache(maxsize=8192)
def _compiled(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    body = "".join(
        re.escape(_LITERAL_VARIABLES[part])
        if part in _LITERAL_VARIABLES
        else ".*"
        if _VARIABLE.fullmatch(part)
        else _wildcards(part)
        for part in _VARIABLE.split(pattern)
    )
    return re.compile(body, (re.IGNORECASE if ignore_case else 0) | re.DOTALL)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """IAM's wildcards: ``*`` any run of characters (also none), ``?`` exactly one."""
    return _compiled(pattern, ignore_case).fullmatch(value) is not None


def resource_match(pattern: str, resource: str) -> bool:
    """A Resource pattern against a resource: "*" matches all; ARNs are matched segment by segment
    (the sixth, the resource itself, may contain ":" and "/")."""
    if pattern == "*":
        return True
    pattern_parts = pattern.split(":", _ARN_SEGMENTS - 1)
    resource_parts = resource.split(":", _ARN_SEGMENTS - 1)
    if len(pattern_parts) != _ARN_SEGMENTS or len(resource_parts) != _ARN_SEGMENTS:
        return wildcard_match(pattern, resource)
    return all(wildcard_match(p, r) for p, r in zip(pattern_parts, resource_parts, strict=True))
