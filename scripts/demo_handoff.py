"""The demo's approval step: approve one model version through the status API and read back the
hand-off event a deployment workflow would start from.

It calls the tenant routes (GET /models, POST /models/{version}/approval) with the tenant's own key, as a
tenant would; operators have the same under /tenants/{tenantId}/models (tests/unit/test_models_api.py).

The event is read the way a deployment workflow would receive it: an EventBridge rule on the default bus
(source ``mlaas.controlplane``, detail-type ``Model Version Approved``) delivering to an SQS queue that
this step creates in the emulator (the stand-in for the workflow; nothing of the stack's). Approving the
same version again must change nothing and send no second event.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

import requests

from controlplane.models.versions import HANDOFF_DETAIL_TYPE, HANDOFF_SOURCE

_RULE: Final = "demo-deployment-workflow"
_WAIT_SECONDS: Final = 60.0
_QUIET_SECONDS: Final = 5.0  # after the event: long enough for a duplicate to show


def _listen(cloud: Any) -> str:
    """A queue receiving every hand-off event, through a rule on the default bus; its URL."""
    sqs, events = cloud.client("sqs"), cloud.client("events")
    url = str(sqs.create_queue(QueueName=_RULE)["QueueUrl"])
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": [HANDOFF_SOURCE], "detail-type": [HANDOFF_DETAIL_TYPE]}
    events.put_rule(Name=_RULE, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=_RULE, Targets=[{"Id": "queue", "Arn": arn}])
    return url


def _received(cloud: Any, url: str, *, seconds: float, until_first: bool) -> list[dict[str, Any]]:
    sqs, found, deadline = cloud.client("sqs"), [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", []
        )
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        if found and until_first:
            return found
    return found


def approve_one_model(
    cloud: Any, api_url: str, tenant_id: str, tenant_key: str
) -> tuple[dict[str, Any], bool]:
    """Approve the tenant's newest version through the API and wait for its hand-off event.

    Returns what the summary records and whether it went as it must: the version Approved, exactly one
    event naming it, a second approval changing nothing and sending none."""
    url = _listen(cloud)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {tenant_key}"
    models = f"{api_url}/models"
    listed = session.get(models, timeout=30)
    listed.raise_for_status()
    versions = listed.json()["items"]
    if not versions:
        print(f"  FAILED: GET /models shows no model version for {tenant_id}")
        return {"tenantId": tenant_id, "error": "no model version"}, False
    version = versions[0]
    print(
        f"\nApproving {tenant_id}'s model version {version['version']} through the API "
        "(POST /models/{version}/approval, with the tenant's own key):"
    )
    body = {"approvalStatus": "Approved", "description": "approved by make demo"}
    first = session.post(f"{models}/{version['version']}/approval", json=body, timeout=30)
    first.raise_for_status()
    answer = first.json()
    print(
        f"  {answer['previousStatus']} -> {answer['model']['approvalStatus']} (changed: {answer['changed']})"
    )
    events = _received(cloud, url, seconds=_WAIT_SECONDS, until_first=True)
    again = session.post(f"{models}/{version['version']}/approval", json=body, timeout=30)
    again.raise_for_status()
    events += _received(cloud, url, seconds=_QUIET_SECONDS, until_first=False)
    ours = [event for event in events if event["detail"]["modelPackageArn"] == version["modelPackageArn"]]
    ok = answer["changed"] and answer["model"]["approvalStatus"] == "Approved" and not again.json()["changed"]
    ok = ok and len(ours) == 1
    if ours:
        detail = ours[0]["detail"]
        print(f"  hand-off event on the default bus ({ours[0]['source']} / {ours[0]['detail-type']}):")
        for name in ("tenantId", "tier", "jobId", "modelPackageArn", "version", "artifactUri", "handoffId"):
            print(f"      {name}: {detail[name]}")
        print(
            f"      metrics: {detail['metrics']['name']}={detail['metrics']['value']}; tags: {detail['tags']}"
        )
    if len(ours) != 1:
        print(
            f"  FAILED: expected exactly one hand-off event for {version['modelPackageArn']}, got {len(ours)}"
        )
    else:
        print("  approving it again changed nothing and sent no second event")
    summary = {
        "tenantId": tenant_id,
        "version": version["version"],
        "modelPackageArn": version["modelPackageArn"],
        "events": len(ours),
        "event": ours[0] if ours else None,
    }
    return summary, ok
