"""The lifecycle sweep (the gate's scheduled run): every open job whose execution is over gets closed.

Bounded work per run and no Scan: per non-terminal status, the open-jobs index hands over the jobs least
recently written or looked at, at most ``limit`` in all; each costs one DescribeExecution. A live job
moves to the back of the line, so long waits and long builds are looked at in turn, never starving the
jobs behind them. See controlplane.jobs.sweeping for the rules.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final

from controlplane.builds.lost_completions import RESUME_CLAIM_ABANDONED_AFTER
from controlplane.builds.rendezvous import resume_if_ready
from controlplane.core.errors import AwsServiceError
from controlplane.core.model import format_timestamp
from controlplane.jobs import execution_store as executions
from controlplane.jobs import store as jobs
from controlplane.jobs.closing import close_build
from controlplane.jobs.sweeping import SWEEP_ORDER, Action, OpenJob, decide, is_overdue, open_job_from
from controlplane.observability import bind_job, count, logger, unbind_job

CLAIMANT: Final = "lifecycle-sweep"


@dataclass
class OpenJobsSweep:
    looked_at: int = 0
    closed: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    overdue: Counter[str] = field(default_factory=Counter)
    errors: int = 0


def sweep_open_jobs(
    *,
    now: datetime,
    grace: timedelta,
    limit: int,
    allowance: Callable[[str | None], int | None],
    tiers: tuple[str, ...],
) -> OpenJobsSweep:
    """Look at up to ``limit`` open jobs untouched for ``grace``; ``allowance(tier)`` is how long a job of
    that tier may stay open. Emits JobsOverdue per tier (zero included, so the alarm clears) and
    SweepErrors."""
    sweep = OpenJobsSweep()
    stamp = format_timestamp(now)
    before = format_timestamp(now - grace)
    for status in SWEEP_ORDER:
        remaining = limit - sweep.looked_at
        if remaining <= 0:
            break
        try:
            entries = jobs.open_jobs(status, before=before, limit=remaining)
        except AwsServiceError:
            logger.exception("The lifecycle sweep could not read the open jobs", extra={"status": status})
            sweep.errors += 1
            continue
        for job in filter(None, map(open_job_from, entries)):
            sweep.looked_at += 1
            bind_job(job_id=job.job_id, tier=job.tier)
            try:
                _look_at(job, sweep, now=now, stamp=stamp, allowance=allowance(job.tier))
            except AwsServiceError:
                logger.exception("The lifecycle sweep could not look at a job", extra={"status": status})
                sweep.errors += 1
            finally:
                unbind_job()
    for tier in tiers:
        count("JobsOverdue", tier=tier, value=sweep.overdue[tier])
    if sweep.errors:
        count("SweepErrors", value=sweep.errors)
    return sweep


def _look_at(job: OpenJob, sweep: OpenJobsSweep, *, now: datetime, stamp: str, allowance: int | None) -> None:
    if job.execution_arn is None:
        # Every writer records the execution (register_upload, the failed-registration record); a job
        # without one was written by hand. It is counted, never closed blindly.
        count("OpenJobsWithoutExecution", tier=job.tier)
        jobs.look_again_later(job.job_id, status=job.status, now=stamp)
        return
    end = executions.execution_end(job.execution_arn)
    action = decide(job, end.status, now=now)
    if action is Action.CLOSE:
        closing = close_build(
            job.job_id, execution_arn=job.execution_arn, end=end, detected_by="lifecycle-sweep"
        )
        if closing.closed:
            sweep.closed.append(job.job_id)
            count("OpenJobsClosedBySweep", tier=job.tier)
        return
    if action is Action.RESUME and resume_if_ready(
        jobs.get(job.job_id),
        claimant=CLAIMANT,
        abandoned_before=format_timestamp(now - RESUME_CLAIM_ABANDONED_AFTER),
    ):
        sweep.resumed.append(job.job_id)
        count("PipelineWaitsResumedBySweep", tier=job.tier)
        logger.warning("Resumed a build whose pipeline outcome was recorded but never delivered")
        return
    if is_overdue(job, now=now, allowance=allowance) and job.tier:
        sweep.overdue[job.tier] += 1
        logger.warning("A job is open longer than its tier allows", extra={"status": job.status})
    jobs.look_again_later(job.job_id, status=job.status, now=stamp)
