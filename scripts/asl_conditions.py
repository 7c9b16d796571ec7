"""Write what statemachines/training_job.asl.json takes from the Python definitions: the job-status
conditions (from the transitions table) and the slot release (from admission.release).

    make asl              # or: python -m scripts.asl_conditions [--check]

The state machine's flow, names and payloads are written by hand; what a job-writing state may change
is not: every state that SETs a job's status gets its ConditionExpression (and the ``:fromX`` values it
names) from ``controlplane.jobs.lifecycle.status_condition``, the same function the Python store uses.
"Release the job's slot" gets its TransactItems from ``admission.release.release_items``, the items
``admission.slot_store.release`` sends too. A unit test fails when the committed ASL differs from what
this script writes, and when a state's update misses what ``status_update`` does for its status
(timeline, finishedAt, the waiting attributes).

Why generated conditions and not a generated state machine: the states read as the operator's
sentences and carry their own Retry/Catch, which a generator would only restate; the one thing that
must never drift from the table is the condition, so that is the one thing derived.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from controlplane.admission.release import Slot, Table, release_items
from controlplane.jobs.lifecycle import JobStatus, status_condition
from scripts.generated import write_or_check

ROOT = Path(__file__).resolve().parents[1]

DEFINITION: Final = ROOT / "statemachines" / "training_job.asl.json"
JOBS_TABLE: Final = "${JobsTableName}"
# The one state that may create the job item: registration failed before (or after) writing it. It may
# change only a job its own execution registered (status_condition's ``owned``).
CREATING_STATES: Final = frozenset({"Record that the upload could not be registered"})
RELEASE_STATE: Final = "Release the job's slot"
# Where the state machine finds each value of a release.
RELEASE_VALUES: Final[dict[Slot, dict[str, str]]] = {
    "jobId": {"S.$": "$.registration.job.jobId"},
    "tier": {"S.$": "$.registration.plan.tier"},
    "shareId": {"S.$": "States.Format('{}#{}', $.registration.plan.tier, $.registration.job.tenantId)"},
    "now": {"S.$": "$$.State.EnteredTime"},
}
RELEASE_TABLES: Final[dict[Table, str]] = {
    "slotLeases": "${SlotLeasesTableName}",
    "tiers": "${TiersTableName}",
    "fairShare": "${FairShareTableName}",
    "jobs": JOBS_TABLE,
}


def job_writes(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(state name, UpdateItem/PutItem parameters or transaction item) for every write to the Jobs table,
    nested states included."""
    for name, state in states.items():
        for branch in state.get("Branches", []):
            yield from job_writes(branch["States"])
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if processor:
            yield from job_writes(processor["States"])
        parameters = state.get("Parameters", {})
        if parameters.get("TableName") == JOBS_TABLE:
            yield name, parameters
        for item in parameters.get("TransactItems", []):
            for operation in item.values():
                if operation.get("TableName") == JOBS_TABLE:
                    yield name, operation


def written_status(parameters: dict[str, Any]) -> JobStatus | None:
    """The status a write sets (its ``:status`` value), or None when it does not set the status."""
    expression = parameters.get("UpdateExpression", "")
    if "#status = :status" not in expression:
        return None
    return JobStatus(parameters["ExpressionAttributeValues"][":status"]["S"])


def conform(definition: dict[str, Any]) -> dict[str, Any]:
    """The definition with every status write's condition derived from the table."""
    for name, parameters in job_writes(definition["States"]):
        target = written_status(parameters)
        if target is None:
            continue
        creating = name in CREATING_STATES
        condition = status_condition(target, creating=creating, owned=creating)
        values = parameters["ExpressionAttributeValues"]
        for placeholder in [key for key in values if key.startswith(":from")]:
            del values[placeholder]
        values.update({placeholder: {"S": status} for placeholder, status in condition.values.items()})
        parameters["ExpressionAttributeNames"].update(condition.names)
        parameters["ConditionExpression"] = condition.expression
    definition["States"][RELEASE_STATE]["Parameters"]["TransactItems"] = release_items(
        RELEASE_VALUES.__getitem__, RELEASE_TABLES.__getitem__
    )
    return definition


def render(definition: dict[str, Any]) -> str:
    return json.dumps(definition, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return write_or_check(
        DEFINITION,
        lambda committed: render(conform(json.loads(committed))),
        what=str(DEFINITION.relative_to(ROOT)),
        target="asl",
        argv=argv,
        description=__doc__.splitlines()[0],
    )


if __name__ == "__main__":
    sys.exit(main())
