"""Deterministic sample tenants and datasets for the demo and the integration tests.

Datasets are generated (seeded), so every run uploads the same bytes and nothing large is
committed. Two kinds of deliberately bad data exercise validation (a non-numeric feature, a file
without the tenant's target column), and one valid but weak dataset (labels unrelated to the
features) trains a model below its tenant's metric threshold, so it is never registered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SampleTenant:
    tenant_id: str
    tier: str
    target_column: str
    feature_columns: tuple[str, ...]
    problem_type: str = "binary_classification"
    metric_threshold: float = 0.6
    min_rows: int = 50


@dataclass(frozen=True)
class SampleUpload:
    tenant_id: str
    name: str
    body: bytes
    expect_valid: bool
    why_invalid: str = ""
    tags: dict[str, str] = field(default_factory=dict)


SAMPLE_TENANTS = (
    SampleTenant("acme-retail", "basic", "churned", ("tenure_months", "monthly_spend", "support_calls")),
    SampleTenant(
        "globex-energy",
        "standard",
        "fault",
        ("temperature", "vibration", "load_pct", "age_years"),
        metric_threshold=0.7,
    ),
    SampleTenant("initech-health", "premium", "readmitted", ("age", "bmi", "systolic_bp", "prior_visits")),
)


def classification_csv(tenant: SampleTenant, rows: int, seed: int) -> bytes:
    """A learnable binary-classification table: the target depends on the first two features."""
    rng = random.Random(seed)
    lines = [",".join((*tenant.feature_columns, tenant.target_column))]
    for _ in range(rows):
        features = [round(rng.gauss(50, 15), 3) for _ in tenant.feature_columns]
        signal = features[0] * 0.04 - features[1] * 0.03 + rng.gauss(0, 0.5)
        lines.append(",".join([*(str(f) for f in features), "1" if signal > 0.5 else "0"]))
    return ("\n".join(lines) + "\n").encode()


def noise_csv(tenant: SampleTenant, rows: int, seed: int) -> bytes:
    """Valid data with labels unrelated to the features: no model can learn it."""
    rng = random.Random(seed)
    lines = [",".join((*tenant.feature_columns, tenant.target_column))]
    for _ in range(rows):
        features = [round(rng.gauss(50, 15), 3) for _ in tenant.feature_columns]
        lines.append(",".join([*(str(f) for f in features), str(rng.randint(0, 1))]))
    return ("\n".join(lines) + "\n").encode()


def demo_uploads() -> list[SampleUpload]:
    """12 uploads over the three tiers: 2 invalid, 1 too weak to register, more than basic's slots."""
    counts = {"acme-retail": 4, "globex-energy": 2, "initech-health": 3}
    uploads: list[SampleUpload] = []
    for index, tenant in enumerate(SAMPLE_TENANTS):
        for n in range(counts[tenant.tenant_id]):
            body = classification_csv(tenant, rows=300 + 60 * n, seed=1000 * index + n)
            uploads.append(SampleUpload(tenant.tenant_id, f"batch-{n + 1:02d}.csv", body, expect_valid=True))
    acme, globex = SAMPLE_TENANTS[0], SAMPLE_TENANTS[1]
    uploads.append(
        SampleUpload(
            globex.tenant_id,
            "noisy-sensors.csv",
            noise_csv(globex, rows=400, seed=99),
            expect_valid=True,
            why_invalid="valid, but its labels are noise: the model falls below the tenant's threshold",
        )
    )
    text_in_feature = classification_csv(acme, rows=120, seed=7).decode().splitlines()
    row = text_in_feature[43].split(",")
    row[1] = "about forty"
    text_in_feature[43] = ",".join(row)
    uploads.append(
        SampleUpload(
            acme.tenant_id,
            "hand-edited.csv",
            ("\n".join(text_in_feature) + "\n").encode(),
            expect_valid=False,
            why_invalid="non-numeric value in a feature column",
        )
    )
    without_target = classification_csv(globex, rows=120, seed=8).decode().splitlines()
    without_target = [",".join(line.split(",")[:-1]) for line in without_target]
    uploads.append(
        SampleUpload(
            globex.tenant_id,
            "export-without-label.csv",
            ("\n".join(without_target) + "\n").encode(),
            expect_valid=False,
            why_invalid="the target column is missing",
        )
    )
    return uploads
