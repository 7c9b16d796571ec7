"""One Logger, Metrics and Tracer for every function, and the one order their handler decorators take.

Order (outermost first), as in the aws-lambda-handler-cookbook: the logger injects the Lambda context and
clears per-invocation keys, metrics flush even when the handler raises, the tracer's subsegment covers
only the handler itself.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

# Per-tier metrics are flushed immediately through single_metric, so an invocation that only counted per
# tier leaves the shared Metrics set empty; that is expected, not worth a warning on every invocation.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

logger = Logger()
metrics = Metrics()
tracer = Tracer()

Handler = TypeVar("Handler", bound=Callable[..., Any])


def instrumented(handler: Handler) -> Handler:
    """Decorate a Lambda handler with logging context, metrics flushing and tracing, in that fixed order."""
    traced = tracer.capture_lambda_handler(handler, capture_response=False)
    measured = metrics.log_metrics(traced, capture_cold_start_metric=True)
    logged = logger.inject_lambda_context(measured, clear_state=True)

    @wraps(handler)
    def wrapper(event: Any, context: Any) -> Any:
        return logged(event, context)

    return wrapper  # type: ignore[return-value]


def bind_job(*, tenant_id: str | None = None, job_id: str | None = None, tier: str | None = None) -> None:
    """Append the job's identity to every following log line of this invocation."""
    keys = {"tenantId": tenant_id, "jobId": job_id, "tier": tier}
    logger.append_keys(**{name: value for name, value in keys.items() if value})


def unbind_job() -> None:
    logger.remove_keys(["tenantId", "jobId", "tier"])


def count(
    name: str, *, tier: str | None = None, value: float = 1, dimensions: Mapping[str, str] | None = None
) -> None:
    """Count an event; per tier when the metric is about a tier (its own EMF blob, so several tiers can be
    counted in one invocation without mixing dimension sets). ``dimensions`` adds further dimensions: each
    must take a small, fixed set of values (see the README's "Dashboard"), never free text or an id."""
    if tier is None and not dimensions:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        return
    with single_metric(
        name=name, unit=MetricUnit.Count, value=value, default_dimensions=metrics.default_dimensions
    ) as metric:
        if tier is not None:
            metric.add_dimension(name="tier", value=tier)
        for dimension, dimension_value in (dimensions or {}).items():
            metric.add_dimension(name=dimension, value=dimension_value)


def gauges(levels: Mapping[str, float], *, tier: str | None = None) -> None:
    """Record levels as they are now (slots running, limits), per tier when given: one EMF blob for all of
    them, flushed at once. A gauge is read with the Maximum or Average statistic, never summed."""
    blob = EphemeralMetrics()
    for dimension, dimension_value in metrics.default_dimensions.items():
        blob.add_dimension(name=dimension, value=dimension_value)
    if tier is not None:
        blob.add_dimension(name="tier", value=tier)
    for name, value in levels.items():
        blob.add_metric(name=name, unit=MetricUnit.Count, value=value)
    blob.flush_metrics()
