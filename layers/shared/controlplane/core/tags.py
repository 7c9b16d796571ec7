"""The cost-allocation and ownership tags: one definition for everything that tags or reads them.

Every processing and training job a build creates carries all three (pipeline/build_definition.py
takes its tags from here); a tenant's model package group and role carry the tenant tag. A model
package *version* cannot carry tags (SageMaker refuses Tags on CreateModelPackage with a
ModelPackageGroupName: "Tags are not supported in Model Package versions"), so it carries the same
three as CustomerMetadataProperties and inherits its group's tenant tag. The model-approved hand-off
event passes them on, so a deployment workflow tags the models and transform jobs it creates alike.
Activate these keys as cost-allocation tags to see the cost per tenant, tier and job.

Plain data: imported by the pipeline build (outside the Lambda layer's dependencies), so no imports.
"""

from __future__ import annotations

from typing import Final

TENANT_TAG: Final = "mlaas:tenant"
TIER_TAG: Final = "mlaas:tier"
JOB_TAG: Final = "mlaas:job"
# In this order on every resource a build creates.
BUILD_TAGS: Final = (TENANT_TAG, TIER_TAG, JOB_TAG)


def build_tags(tenant_id: str, tier: str, job_id: str) -> dict[str, str]:
    """The three tags of one build's resources, as a key -> value map."""
    return dict(zip(BUILD_TAGS, (tenant_id, tier, job_id), strict=True))
