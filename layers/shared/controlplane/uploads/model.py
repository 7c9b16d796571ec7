"""The uploaded object version and the build plan registration derives from it."""

from __future__ import annotations

from pydantic import Field

from controlplane.core.model import CamelModel, Tier


class UploadedObject(CamelModel):
    """The object version an S3 event reported (key already URL-decoded)."""

    bucket: str
    key: str
    version_id: str
    size_bytes: int = Field(ge=0)
    etag: str


class BuildPlan(CamelModel):
    """Everything the state machine needs to queue, start and bound one build."""

    tier: Tier
    queue_url: str
    queue_wait_seconds: int
    training_instance_type: str
    training_instance_count: int
    processing_instance_type: str
    processing_instance_count: int
    use_spot_instances: bool
    max_runtime_seconds: int
    pipeline_wait_seconds: int
    max_dataset_bytes: int
    training_image_uri: str
    training_data_uri: str
    model_output_uri: str
    # Validated as a Distributed Map over byte ranges (validates_in_ranges), not by one function.
    validate_in_ranges: bool = False
