"""SageMaker's "SageMaker Model Package State Change" event, which moto never emits.

SageMaker puts one on the default bus whenever a model package is created or changed (its approval
status above all); its detail is the package as DescribeModelPackage shows it (the SageMaker developer
guide's "Model package state change" example). localcloud.patches (seam 22) calls `announce` after moto's
CreateModelPackage and UpdateModelPackage, so the template's rules (model_handoff's) receive it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final

from moto.events.models import events_backends

PACKAGE_STATE_CHANGE: Final = "SageMaker Model Package State Change"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def keeping_unset_fields(package: Any, request: dict[str, Any]) -> dict[str, Any]:
    """moto's update_model_package keyword arguments with the fields the request leaves out kept as the
    package has them (SageMaker changes only what a request names; moto sets the rest to None)."""
    kept = dict(request)
    if kept.get("model_approval_status") is None:
        kept["model_approval_status"] = package.model_approval_status
    if kept.get("approval_description") is None:
        kept["approval_description"] = package.approval_description
    kept["customer_metadata_properties"] = {
        **(package.customer_metadata_properties or {}),
        **(kept.get("customer_metadata_properties") or {}),
    }
    kept["customer_metadata_properties_to_remove"] = kept.get("customer_metadata_properties_to_remove") or []
    return kept


def announce(package: Any, *, account_id: str, region: str) -> None:
    """Put the state change event of a moto ModelPackage on the default bus."""
    detail = _plain(package.gen_response_object())
    events_backends[account_id][region].put_events(
        [
            {
                "Source": "aws.sagemaker",
                "DetailType": PACKAGE_STATE_CHANGE,
                "Detail": json.dumps(detail, sort_keys=True),
                "Resources": [package.arn],
            }
        ]
    )
