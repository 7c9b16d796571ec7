"""Load a SAM/CloudFormation template and resolve its intrinsic functions locally.

Only what CloudFormation itself would do before handing properties to a resource: short-form tags,
Parameters (defaults, overrides, AllowedValues/AllowedPattern), pseudo parameters, Mappings,
Conditions, SAM Globals, and the intrinsic functions. Anything else fails with a TemplateError
naming the construct, so a template the emulator does not understand never deploys half-right.
"""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import yaml

DEFAULT_REGION = "us-east-1"
# moto's default account: every ARN moto builds uses it, so the template's must too.
DEFAULT_ACCOUNT_ID = "123456789012"

_RESOURCE_ATTRIBUTES = {
    "Type",
    "Properties",
    "DependsOn",
    "Condition",
    "Metadata",
    "DeletionPolicy",
    "UpdateReplacePolicy",
    "CreationPolicy",
    "UpdatePolicy",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_SAM_TRANSFORM = "AWS::Serverless-2016-10-31"


class TemplateError(Exception):
    """The template uses something the local emulator cannot resolve."""


class _NoValue:
    """AWS::NoValue: the property it stands for is removed."""

    def __repr__(self) -> str:
        return "AWS::NoValue"


NO_VALUE = _NoValue()


class ResourceLookup(Protocol):
    """What the resolver needs from whoever creates the resources."""

    def ref(self, logical_id: str) -> Any: ...

    def get_att(self, logical_id: str, attribute: str) -> Any: ...


# ------------------------------------------------------------------------------------------ loading


class _CloudFormationLoader(yaml.SafeLoader):  # type: ignore[misc]  # PyYAML ships no stubs
    """YAML loader that understands CloudFormation's short-form tags."""


def _construct_short_form(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CloudFormationLoader.add_multi_constructor("!", _construct_short_form)
# CloudFormation reads `Version: 2012-10-17` as a string; PyYAML would make it a date.
_CloudFormationLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _CloudFormationLoader.yaml_implicit_resolvers.items()
}


def load_template_body(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as stream:
        body = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(body, dict) or not isinstance(body.get("Resources"), dict):
        raise TemplateError(f"{path} is not a CloudFormation template (no Resources mapping)")
    return body


# ------------------------------------------------------------------------------------------ globals

_GLOBALS_SECTIONS = {
    "Function": "AWS::Serverless::Function",
    "StateMachine": "AWS::Serverless::StateMachine",
    "LayerVersion": "AWS::Serverless::LayerVersion",
    "SimpleTable": "AWS::Serverless::SimpleTable",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
}


def merge_globals(global_properties: Mapping[str, Any], properties: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: the resource wins for scalars, maps merge key by key, lists concatenate."""
    merged: dict[str, Any] = copy.deepcopy(dict(global_properties))
    for key, value in properties.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = merge_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + copy.deepcopy(value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _is_intrinsic(value: Mapping[str, Any]) -> bool:
    if len(value) != 1:
        return False
    key = next(iter(value))
    return key in ("Ref", "Condition") or key.startswith("Fn::")


# ------------------------------------------------------------------------------------------ template


@dataclass(frozen=True)
class Resource:
    logical_id: str
    type: str
    properties: dict[str, Any]
    depends_on: tuple[str, ...]
    condition: str | None


class Template:
    """A loaded template with its parameter values fixed, ready to resolve against resources."""

    def __init__(
        self,
        path: Path | str,
        *,
        stack_name: str,
        parameter_overrides: Mapping[str, str] | None = None,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.path = Path(path).resolve()
        self.directory = self.path.parent
        self.body = load_template_body(self.path)
        self.stack_name = stack_name
        self.region = region
        self.account_id = account_id
        self.stack_id = f"arn:aws:cloudformation:{region}:{account_id}:stack/{stack_name}/{uuid.uuid4()}"
        transform = self.body.get("Transform")
        if transform not in (None, _SAM_TRANSFORM, [_SAM_TRANSFORM]):
            raise TemplateError(f"Transform {transform} cannot be applied locally (only {_SAM_TRANSFORM})")
        self.mappings: dict[str, Any] = self.body.get("Mappings", {})
        self.parameters = self._parameter_values(parameter_overrides or {})
        self._condition_values: dict[str, bool] = {}
        self.resources = self._load_resources()

    # -------------------------------------------------------------------- parameters

    def _parameter_values(self, overrides: Mapping[str, str]) -> dict[str, Any]:
        declared: dict[str, Any] = self.body.get("Parameters", {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"parameter overrides for undeclared parameters: {sorted(unknown)}")
        values: dict[str, Any] = {}
        for name, declaration in declared.items():
            parameter_type = declaration.get("Type", "String")
            if name in overrides:
                raw = overrides[name]
            elif "Default" in declaration:
                raw = declaration["Default"]
            else:
                raise TemplateError(f"parameter {name} has no default and no override")
            values[name] = _parameter_value(name, parameter_type, raw, declaration)
        return values

    def pseudo_parameters(self) -> dict[str, Any]:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::Partition": "aws",
            "AWS::StackName": self.stack_name,
            "AWS::StackId": self.stack_id,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }

    # -------------------------------------------------------------------- resources

    def _load_resources(self) -> dict[str, Resource]:
        global_sections: dict[str, Any] = self.body.get("Globals", {}) or {}
        unknown_sections = set(global_sections) - set(_GLOBALS_SECTIONS)
        if unknown_sections:
            raise TemplateError(f"unknown Globals sections: {sorted(unknown_sections)}")
        globals_by_type = {_GLOBALS_SECTIONS[name]: props for name, props in global_sections.items()}

        resources: dict[str, Resource] = {}
        for logical_id, declaration in self.body["Resources"].items():
            extra = set(declaration) - _RESOURCE_ATTRIBUTES
            if extra:
                raise TemplateError(f"{logical_id}: unknown resource attributes {sorted(extra)}")
            resource_type = declaration["Type"]
            properties = declaration.get("Properties", {}) or {}
            if resource_type in globals_by_type:
                properties = merge_globals(globals_by_type[resource_type], properties)
            depends_on = declaration.get("DependsOn", [])
            resources[logical_id] = Resource(
                logical_id=logical_id,
                type=resource_type,
                properties=properties,
                depends_on=tuple([depends_on] if isinstance(depends_on, str) else depends_on),
                condition=declaration.get("Condition"),
            )
        return resources

    def is_created(self, resource: Resource) -> bool:
        return resource.condition is None or self.condition(resource.condition)

    def dependencies(self, resource: Resource) -> set[str]:
        """Logical ids this resource needs created first (Ref, GetAtt, Sub, DependsOn)."""
        found = set(resource.depends_on)
        _collect_references(resource.properties, found)
        unknown = found - set(self.resources) - set(self.parameters) - set(self.pseudo_parameters())
        if unknown:
            raise TemplateError(f"{resource.logical_id} references undeclared names: {sorted(unknown)}")
        return found & set(self.resources)

    # -------------------------------------------------------------------- conditions

    def condition(self, name: str) -> bool:
        if name not in self._condition_values:
            conditions: dict[str, Any] = self.body.get("Conditions", {})
            if name not in conditions:
                raise TemplateError(f"unknown condition {name}")
            value = self.resolve(conditions[name], _NO_RESOURCES)
            if not isinstance(value, bool):
                raise TemplateError(f"condition {name} does not evaluate to a boolean: {value!r}")
            self._condition_values[name] = value
        return self._condition_values[name]

    # -------------------------------------------------------------------- resolution

    def resolve(self, node: Any, resources: ResourceLookup) -> Any:
        """Resolve every intrinsic function in node; AWS::NoValue entries are dropped."""
        if isinstance(node, list):
            items = [self.resolve(item, resources) for item in node]
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, argument),) = node.items()
            function = self._functions().get(key)
            # {"Condition": name} is the condition function; a Condition map (IAM) is plain data.
            if function is not None and not (key == "Condition" and not isinstance(argument, str)):
                return function(argument, resources)
            if key.startswith("Fn::"):
                raise TemplateError(f"intrinsic function {key} is not supported by the local emulator")
        resolved = {key: self.resolve(value, resources) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def resolve_static(self, node: Any) -> Any:
        """Resolve intrinsics that need no resource (parameters, pseudo parameters, mappings)."""
        return self.resolve(node, _NO_RESOURCES)

    def _functions(self) -> dict[str, Callable[[Any, ResourceLookup], Any]]:
        return {
            "Ref": self._ref,
            "Fn::GetAtt": self._get_att,
            "Fn::Sub": self._sub,
            "Fn::Join": self._join,
            "Fn::Select": self._select,
            "Fn::Split": self._split,
            "Fn::FindInMap": self._find_in_map,
            "Fn::If": self._if,
            "Fn::Equals": self._equals,
            "Fn::Not": self._not,
            "Fn::And": self._and,
            "Fn::Or": self._or,
            "Condition": lambda name, _resources: self.condition(name),
        }

    def _ref(self, name: Any, resources: ResourceLookup) -> Any:
        name = self.resolve(name, resources)
        if name in self.parameters:
            return self.parameters[name]
        pseudo = self.pseudo_parameters()
        if name in pseudo:
            return pseudo[name]
        if name in self.resources:
            return resources.ref(name)
        stage_of = self._stage_reference(name)
        if stage_of is not None:
            return self.resolve(stage_of.properties.get("StageName"), resources)
        raise TemplateError(f"Ref to unknown name {name!r}")

    def _stage_reference(self, name: str) -> Resource | None:
        """SAM's ``!Ref <Api>.Stage``: the stage an AWS::Serverless::Api generates (its StageName)."""
        api, _, suffix = name.partition(".")
        resource = self.resources.get(api)
        if suffix == "Stage" and resource is not None and resource.type == "AWS::Serverless::Api":
            return resource
        return None

    def _get_att(self, argument: Any, resources: ResourceLookup) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical_id, attribute = (self.resolve(part, resources) for part in argument)
        if logical_id not in self.resources:
            raise TemplateError(f"GetAtt to unknown resource {logical_id!r}")
        return resources.get_att(logical_id, attribute)

    def _sub(self, argument: Any, resources: ResourceLookup) -> str:
        if isinstance(argument, str):
            text, variables = argument, {}
        else:
            text, raw_variables = argument
            variables = {name: self.resolve(value, resources) for name, value in raw_variables.items()}

        def replace(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in variables:
                value = variables[expression]
            elif "." in expression and expression.split(".", 1)[0] in self.resources:
                value = self._get_att(expression, resources)
            else:
                value = self._ref(expression, resources)
            if isinstance(value, (list, dict)) or value is NO_VALUE:
                raise TemplateError(f"Fn::Sub variable ${{{expression}}} is not a string: {value!r}")
            return str(value)

        return _SUB_VARIABLE.sub(replace, text)

    def _join(self, argument: Any, resources: ResourceLookup) -> str:
        delimiter, values = argument
        resolved = self.resolve(values, resources)
        return str(delimiter).join(str(value) for value in resolved)

    def _select(self, argument: Any, resources: ResourceLookup) -> Any:
        index, values = (self.resolve(part, resources) for part in argument)
        return values[int(index)]

    def _split(self, argument: Any, resources: ResourceLookup) -> list[str]:
        delimiter, text = argument
        return str(self.resolve(text, resources)).split(delimiter)

    def _find_in_map(self, argument: Any, resources: ResourceLookup) -> Any:
        map_name, top_key, second_key = (self.resolve(part, resources) for part in argument)
        try:
            return self.mappings[map_name][top_key][second_key]
        except KeyError as missing:
            raise TemplateError(
                f"Fn::FindInMap [{map_name}, {top_key}, {second_key}]: no {missing}"
            ) from None

    def _if(self, argument: Any, resources: ResourceLookup) -> Any:
        condition_name, when_true, when_false = argument
        return self.resolve(when_true if self.condition(condition_name) else when_false, resources)

    def _equals(self, argument: Any, resources: ResourceLookup) -> bool:
        left, right = (self.resolve(part, resources) for part in argument)
        return bool(str(left) == str(right))

    def _not(self, argument: Any, resources: ResourceLookup) -> bool:
        (value,) = argument
        return not self._boolean(value, resources)

    def _and(self, argument: Any, resources: ResourceLookup) -> bool:
        return all(self._boolean(value, resources) for value in argument)

    def _or(self, argument: Any, resources: ResourceLookup) -> bool:
        return any(self._boolean(value, resources) for value in argument)

    def _boolean(self, node: Any, resources: ResourceLookup) -> bool:
        value = self.resolve(node, resources)
        if not isinstance(value, bool):
            raise TemplateError(f"condition function expected a boolean, got {value!r}")
        return value

    def outputs(self, resources: ResourceLookup) -> dict[str, Any]:
        resolved: dict[str, Any] = {}
        for name, declaration in (self.body.get("Outputs") or {}).items():
            condition = declaration.get("Condition")
            if condition is None or self.condition(condition):
                resolved[name] = self.resolve(declaration["Value"], resources)
        return resolved

    def output_descriptions(self) -> dict[str, str]:
        return {
            name: declaration.get("Description", "")
            for name, declaration in (self.body.get("Outputs") or {}).items()
        }


class _NoResources:
    """Conditions may only use parameters and mappings, never resources."""

    def ref(self, logical_id: str) -> Any:
        raise TemplateError(f"conditions cannot reference resource {logical_id}")

    def get_att(self, logical_id: str, attribute: str) -> Any:
        raise TemplateError(f"conditions cannot reference resource {logical_id}")


_NO_RESOURCES = _NoResources()


def _parameter_value(name: str, parameter_type: str, raw: Any, declaration: Mapping[str, Any]) -> Any:
    if parameter_type in ("String", "Number"):
        value: Any = str(raw)
        checked = [value]
        if parameter_type == "Number":
            try:
                float(value)
            except ValueError:
                raise TemplateError(f"parameter {name} must be a number, got {value!r}") from None
    elif parameter_type in ("CommaDelimitedList", "List<Number>", "List<String>"):
        value = [item.strip() for item in raw.split(",")] if isinstance(raw, str) else [str(i) for i in raw]
        checked = value
    else:
        raise TemplateError(f"parameter {name}: type {parameter_type} cannot be resolved locally")
    allowed_values = declaration.get("AllowedValues")
    allowed_pattern = declaration.get("AllowedPattern")
    for item in checked:
        if allowed_values is not None and item not in [str(allowed) for allowed in allowed_values]:
            raise TemplateError(f"parameter {name}: {item!r} is not one of {allowed_values}")
        if allowed_pattern is not None and not re.fullmatch(allowed_pattern, item):
            raise TemplateError(f"parameter {name}: {item!r} does not match {allowed_pattern}")
    return value


def _collect_references(node: Any, found: set[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _collect_references(item, found)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        if key == "Ref" and isinstance(value, str):
            # SAM's <Api>.Stage names the API's generated stage: it depends on the API.
            found.add(value.removesuffix(".Stage"))
        elif key == "Fn::GetAtt":
            target = value.split(".", 1)[0] if isinstance(value, str) else value[0]
            if isinstance(target, str):
                found.add(target)
        elif key == "Fn::Sub":
            text, variables = (value, {}) if isinstance(value, str) else (value[0], value[1])
            for expression in _SUB_VARIABLE.findall(text):
                name = expression.split(".", 1)[0]
                if not expression.startswith("!") and name not in variables:
                    found.add(name)
            _collect_references(variables, found)
        else:
            _collect_references(value, found)
