"""The use cases of validating a large dataset in ranges (the state machine's Distributed Map).

1. ``split``: read the header and find a line start near every ``range_bytes`` (small ranged reads);
   the Map gets the ranges and the header's column names.
2. ``validate_one_range``: each iteration validates its range and keeps what it found in the job's own
   folder of the artifacts bucket (the Map's results would not fit in the state's 256 KiB).
3. ``merge_ranges``: the serial verdict from the ranges' findings (``parallel.merge``); a range the
   problem limit falls in is validated again with what remains of it; a split a quoted field may span
   is given up for one serial run, and the job's stats say so (``serialFallback``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from controlplane.core.errors import ObjectVersionNotFoundError
from controlplane.jobs.lifecycle import JobRef
from controlplane.observability import logger
from controlplane.uploads import object_store as objects
from controlplane.uploads import parallel
from controlplane.uploads.parallel import ByteRange, RerunRange, SplitAmbiguous
from controlplane.uploads.registration import job_prefix, split_s3_uri
from controlplane.uploads.validation import (
    DatasetRules,
    Partial,
    ValidationReport,
    check_declared_size,
    report_of,
    validate_range,
    validate_upload,
    version_gone_report,
)

# The Map's items travel in the state (256 KiB): at most this many ranges, larger ones for larger files.
MAX_RANGES: Final = 1000
FIRST_WINDOW_BYTES: Final = 64 * 1024


@dataclass(frozen=True, slots=True)
class Split:
    ranges: tuple[ByteRange, ...]
    names: list[str] | None  # None: validate serially (``reason``)
    reason: str | None = None


def split(job: JobRef, rules: DatasetRules, range_bytes: int) -> Split:
    size = job.size_bytes
    if check_declared_size(size, rules) is not None:
        return Split((), None, "the declared size is refused before reading")
    try:
        head = objects.read_range(job.bucket, job.key, job.version_id, 0, min(size, parallel.HEAD_BYTES))
        names = parallel.header_names(head)
        if names is None:
            return Split((), None, "the file's first line is not a plain header")
        range_bytes = max(range_bytes, math.ceil(size / MAX_RANGES))
        starts = []
        for nominal in parallel.nominal_boundaries(size, range_bytes):
            start = None
            # A short window first (lines are short); the longest a line may be only when it holds none.
            for window_bytes in (FIRST_WINDOW_BYTES, parallel.BOUNDARY_WINDOW):
                end = min(size, nominal - 1 + window_bytes)
                window = objects.read_range(job.bucket, job.key, job.version_id, nominal - 1, end)
                start = parallel.line_start_after(window, nominal - 1)
                if start is not None or end == size:
                    break
            starts.append(start)
    except ObjectVersionNotFoundError:
        return Split((), None, "the uploaded object version no longer exists")
    return Split(tuple(parallel.ranges_from(size, starts)), names)


def _partial_key(job: JobRef, artifacts_bucket: str, index: int) -> tuple[str, str]:
    return split_s3_uri(
        f"{job_prefix(artifacts_bucket, job.tenant_id, job.job_id)}validation/range-{index:05d}.json"
    )


def _validate(
    job: JobRef, part: ByteRange, names: list[str], rules: DatasetRules, budget: int | None
) -> Partial:
    chunks = objects.iter_version(job.bucket, job.key, job.version_id, start=part.start, end=part.end)
    return validate_range(
        chunks,
        rules,
        names=None if part.index == 0 else names,
        start_offset=part.start,
        problem_budget=budget,
    )


def validate_one_range(
    job: JobRef, part: ByteRange, names: list[str], rules: DatasetRules, *, artifacts_bucket: str
) -> None:
    bucket, key = _partial_key(job, artifacts_bucket, part.index)
    try:
        found = parallel.partial_to_json(_validate(job, part, names, rules, None))
    except ObjectVersionNotFoundError:
        found = {"versionGone": True}  # deleted since the split: the merge answers as a serial run would
    objects.put_json(bucket, key, found)


def merge_ranges(
    job: JobRef,
    ranges: Sequence[ByteRange],
    names: list[str],
    rules: DatasetRules,
    *,
    artifacts_bucket: str,
) -> ValidationReport:
    documents = [objects.get_json(*_partial_key(job, artifacts_bucket, part.index)) for part in ranges]
    if any(document.get("versionGone") for document in documents):
        return version_gone_report()
    partials = [parallel.partial_from_json(document) for document in documents]
    try:
        return _merged(job, ranges, names, rules, partials)
    except ObjectVersionNotFoundError:  # deleted since the ranges were read, before a rerun
        return version_gone_report()


def _merged(
    job: JobRef, ranges: Sequence[ByteRange], names: list[str], rules: DatasetRules, partials: list[Partial]
) -> ValidationReport:
    while True:
        outcome = parallel.merge(partials)
        if isinstance(outcome, RerunRange):
            part = ranges[outcome.index]
            partials[outcome.index] = _validate(job, part, names, rules, outcome.problem_budget)
            continue
        if isinstance(outcome, SplitAmbiguous):
            reason = outcome.reason(ranges)
            logger.info("Validating serially", extra={"reason": reason})

            def chunks() -> Iterable[bytes]:
                return objects.iter_version(job.bucket, job.key, job.version_id)

            report = validate_upload(job.size_bytes, chunks, rules)
            report.stats["serialFallback"] = reason
            return report
        report = report_of(outcome, rules)
        report.stats["ranges"] = len(ranges)
        return report
