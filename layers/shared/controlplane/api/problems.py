"""Error bodies a person can read: every 4xx names what is wrong and, for a field, what is allowed.

A refused request's validation errors (pydantic's, as Powertools collects them) become one message per
field: where it is (query, path, body), its name as the caller spelt it, and what it may hold (the enum's
values, the range, the format, the length). Powertools hides pydantic's own text because it can name
Python internals; these messages are built from the error's type and context only, never from the input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

# Request parts as API Gateway and Powertools name them.
LOCATIONS: Final = frozenset({"query", "path", "body", "header", "cookie"})


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Problem(_Wire):
    """Every 4xx body: the HTTP status again and a sentence that says what to change."""

    status_code: int = Field(description="The HTTP status, repeated for clients that only see the body")
    message: str = Field(description="What is wrong, in words; for a 422, every field and what it allows")


class FieldProblem(_Wire):
    location: str = Field(description="Where the field is: query, path, header or body")
    field: str = Field(description="The field as the request spells it (dotted for nested body fields)")
    message: str = Field(description="What the field may hold")
    type: str = Field(description="A stable code for the kind of error (pydantic's error type)")


class ValidationProblem(Problem):
    """A 422: the request does not match the route's parameters or body schema."""

    errors: list[FieldProblem] = Field(description="One entry per refused field")


def _expected(context: Mapping[str, Any]) -> str:
    return str(context.get("expected", "")).replace(" or ", ", ")


def _quantity(word: str, key: str, unit: str = "") -> Callable[[Mapping[str, Any]], str]:
    return lambda context: f"must be {word} {context.get(key)}{unit}"


_MESSAGES: Final[Mapping[str, Callable[[Mapping[str, Any]], str]]] = {
    "missing": lambda _: "is required",
    "enum": lambda context: f"must be one of {_expected(context)}",
    "literal_error": lambda context: f"must be one of {_expected(context)}",
    "extra_forbidden": lambda _: "is not a field of this request (check its spelling)",
    "greater_than_equal": _quantity("at least", "ge"),
    "greater_than": _quantity("more than", "gt"),
    "less_than_equal": _quantity("at most", "le"),
    "less_than": _quantity("less than", "lt"),
    "string_too_short": _quantity("at least", "min_length", " characters long"),
    "string_too_long": _quantity("at most", "max_length", " characters long"),
    "too_short": _quantity("a list of at least", "min_length", " items"),
    "too_long": _quantity("a list of at most", "max_length", " items"),
    "int_parsing": lambda _: "must be a whole number",
    "int_type": lambda _: "must be a whole number",
    "int_from_float": lambda _: "must be a whole number",
    "float_parsing": lambda _: "must be a number",
    "float_type": lambda _: "must be a number",
    "bool_parsing": lambda _: "must be true or false",
    "bool_type": lambda _: "must be true or false",
    "string_type": lambda _: "must be a string",
    "dict_type": lambda _: "must be a JSON object",
    "model_type": lambda _: "must be a JSON object",
    "model_attributes_type": lambda _: "must be a JSON object",
    "list_type": lambda _: "must be a JSON array",
    "json_invalid": lambda _: "is not valid JSON",
    "json_type": lambda _: "is not valid JSON",
}


def _where(loc: Sequence[Any]) -> tuple[str, str]:
    """(location, field) from an error's loc, e.g. ("query", "status") or ("body", "contract", "minRows")."""
    parts = [str(part) for part in loc]
    location = parts[0] if parts and parts[0] in LOCATIONS else "body"
    rest = parts[1:] if parts and parts[0] in LOCATIONS else parts
    return location, ".".join(rest) or "(the whole body)"


def _message(error: Mapping[str, Any], formats: Mapping[str, str]) -> str:
    kind = str(error.get("type", ""))
    context: Mapping[str, Any] = error.get("ctx") or {}
    if kind == "string_pattern_mismatch":
        pattern = str(context.get("pattern", ""))
        return f"must be {formats[pattern]}" if pattern in formats else f"must match {pattern}"
    if kind == "value_error":
        # Our own validators' ValueError text (pydantic prefixes it): written for people already.
        return str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    build = _MESSAGES.get(kind)
    return build(context) if build else "is not valid"


def describe(errors: Sequence[Mapping[str, Any]], *, formats: Mapping[str, str]) -> ValidationProblem:
    """The 422 body for ``errors`` (pydantic error dicts). ``formats`` names the patterns the API uses
    (regex -> words such as "an ISO 8601 UTC time like 2024-05-01T00:00:00.000Z")."""
    problems: list[FieldProblem] = []
    for error in errors:
        location, name = _where(error.get("loc", ()))
        problems.append(
            FieldProblem(
                location=location, field=name, message=_message(error, formats), type=str(error.get("type"))
            )
        )
    summary = "; ".join(f"{p.field} ({p.location}) {p.message}" for p in problems) or "the request is invalid"
    return ValidationProblem(status_code=422, message=f"Invalid request: {summary}", errors=problems)
