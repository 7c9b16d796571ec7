"""A tier's settings as the Tiers table holds them."""

from __future__ import annotations

from pydantic import Field

from controlplane.core.model import CamelModel, Tier


class TierSettings(CamelModel):
    """A tier's limits and instance choices (Tiers table item, minus the ``running`` counter)."""

    tier: Tier
    # Guaranteed slots: the tier gets them whenever it has work (see controlplane.admission.scheduling).
    concurrency_limit: int = Field(ge=0)
    # Slots beyond the guarantee the tier may borrow from other tiers' idle guarantees (or the account's
    # unguaranteed remainder): the tier never runs more than concurrency_limit + borrowing_limit.
    borrowing_limit: int = Field(default=0, ge=0)
    queue_url: str = Field(min_length=1)
    training_instance_type: str = Field(pattern=r"^ml\.")
    training_instance_count: int = Field(ge=1)
    processing_instance_type: str = Field(pattern=r"^ml\.")
    processing_instance_count: int = Field(ge=1)
    max_dataset_bytes: int = Field(gt=0)
    queue_wait_seconds: int = Field(gt=0)
    use_spot_instances: bool
    max_runtime_seconds: int = Field(gt=0)
