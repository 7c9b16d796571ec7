"""What the offboard_tenants function is invoked with and what it answers (docs/contracts.md).

- ``{"trigger": "schedule"}`` (every hour): delete every offboarded tenant whose grace period is over.
- ``{"trigger": "immediate", "tenantId": str}`` (the API, synchronously, for ``DELETE ...?immediate=true``):
  delete that offboarded tenant now; the answer is a ``DeletionResult``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.alias_generators import to_camel

# The sparse index of tenants waiting for deletion: only an offboarded tenant item carries
# OFFBOARDING_DUE_ATTRIBUTE (= OFFBOARDING_DUE) and DELETE_AFTER_ATTRIBUTE (its grace period's end).
OFFBOARDING_DUE_INDEX: Final = "offboarding-due"
OFFBOARDING_DUE_ATTRIBUTE: Final = "offboardingDue"
OFFBOARDING_DUE: Final = "due"
DELETE_AFTER_ATTRIBUTE: Final = "deleteAfter"


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ScheduledSweep(_Wire):
    trigger: Literal["schedule"]


class ImmediateDeletion(_Wire):
    trigger: Literal["immediate"]
    tenant_id: str = Field(min_length=1, max_length=64)


OffboardingTrigger: TypeAdapter[ScheduledSweep | ImmediateDeletion] = TypeAdapter(
    Annotated[ScheduledSweep | ImmediateDeletion, Field(discriminator="trigger")]
)


class DeletionOutcome(StrEnum):
    DELETED = "deleted"
    NOT_FOUND = "not-found"  # no such tenant (already deleted, or never existed)
    NOT_OFFBOARDED = "not-offboarded"  # the tenant exists but was never offboarded: nothing is deleted
    JOBS_STILL_ENDING = "jobs-still-ending"  # cancelled jobs have not ended yet: repeat later


class DeletionResult(_Wire):
    """The answer to an immediate deletion."""

    outcome: DeletionOutcome
    tenant_id: str
    message: str = ""
    removed: dict[str, int] = Field(default_factory=dict)
    job_ids: list[str] = Field(default_factory=list, description="the jobs still ending")
