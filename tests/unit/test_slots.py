"""Slot take/release transactions on moto: exactly once, never above the tier's limit, also under races."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from conftest import FakeStepFunctions, job_id_for, queued_job, set_account_cap, set_tier_limits, take_slot

from controlplane.admission import gate as admission
from controlplane.admission import slot_store as slots
from controlplane.admission.decisions import QueuedJob, TakeOutcome, queued_job_from
from controlplane.jobs.lifecycle import Job

pytestmark = pytest.mark.usefixtures("aws")
NOW = "2024-05-01T00:01:00.000Z"


def waiting(table: Callable[[str], Any], number: int, **kwargs: Any) -> QueuedJob:
    job = queued_job_from(Job.model_validate(queued_job(table, job_id_for(number), **kwargs)))
    assert job is not None
    return job


def running(table: Callable[[str], Any], tier: str = "basic") -> int:
    return int(table("TIERS_TABLE_NAME").get_item(Key={"tier": tier})["Item"]["running"])


def lease_ids(table: Callable[[str], Any]) -> set[str]:
    return {item["jobId"] for item in table("SLOT_LEASES_TABLE_NAME").scan()["Items"]}


def set_limit(table: Callable[[str], Any], limit: int, tier: str = "basic", *, borrowing: int = 0) -> None:
    set_tier_limits(table, tier, limit, borrowing)


def test_take_admits_the_job_and_holds_one_slot(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    assert take_slot(job, now=NOW) is TakeOutcome.TAKEN
    assert running(table) == 1
    lease = table("SLOT_LEASES_TABLE_NAME").get_item(Key={"jobId": job.job_id})["Item"]
    assert lease == {
        "jobId": job.job_id,
        "tier": "basic",
        "tenantId": "acme",
        "executionArn": job.execution_arn,
        "acquiredAt": NOW,
        "borrowed": False,
    }
    item = table("JOBS_TABLE_NAME").get_item(Key={"jobId": job.job_id})["Item"]
    assert item["status"] == "ADMITTED"
    assert item["admittedAt"] == NOW
    assert "queueTier" not in item  # out of the waiting room
    assert item["queueTaskToken"] == job.task_token  # kept until the admission is delivered
    assert item["timeline"] == [
        {"status": "ADMITTED", "at": NOW, "state": "Wait in the tier's queue for a free slot"}
    ]


def test_a_job_is_taken_once(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    assert take_slot(job, now=NOW) is TakeOutcome.TAKEN
    assert take_slot(job, now=NOW) is TakeOutcome.NOT_QUEUED
    assert running(table) == 1


def test_a_stale_token_cannot_take(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    stale = QueuedJob(job.job_id, job.tenant_id, job.tier, job.queued_at, "older-token", job.execution_arn)
    assert take_slot(stale, now=NOW) is TakeOutcome.NOT_QUEUED
    assert running(table) == 0


def test_take_stops_at_the_limit(table: Callable[[str], Any]) -> None:
    set_limit(table, 2)
    jobs = [waiting(table, number) for number in range(3)]
    assert [take_slot(job, now=NOW) for job in jobs] == [
        TakeOutcome.TAKEN,
        TakeOutcome.TAKEN,
        TakeOutcome.STALE,  # the tier is at its limit: the take's condition fails, nothing changes
    ]
    assert running(table) == 2
    assert table("JOBS_TABLE_NAME").get_item(Key={"jobId": jobs[2].job_id})["Item"]["status"] == "QUEUED"
    assert lease_ids(table) == {jobs[0].job_id, jobs[1].job_id}


def test_a_tier_borrows_up_to_its_borrowing_limit_and_no_further(table: Callable[[str], Any]) -> None:
    set_limit(table, 1, borrowing=1)
    jobs = [waiting(table, number) for number in range(3)]
    assert [take_slot(job, now=NOW) for job in jobs] == [
        TakeOutcome.TAKEN,
        TakeOutcome.TAKEN,
        TakeOutcome.STALE,
    ]
    leases = {item["jobId"]: item["borrowed"] for item in table("SLOT_LEASES_TABLE_NAME").scan()["Items"]}
    assert leases == {jobs[0].job_id: False, jobs[1].job_id: True}  # the second slot is lent by another tier


def test_the_account_cap_holds_across_tiers(table: Callable[[str], Any]) -> None:
    set_account_cap(table, 2)
    basic = [waiting(table, number) for number in range(2)]
    premium = waiting(table, 7, tier="premium", tenant_id="globex")
    assert [take_slot(job, now=NOW) for job in basic] == [TakeOutcome.TAKEN, TakeOutcome.TAKEN]
    assert take_slot(premium, now=NOW) is TakeOutcome.ACCOUNT_FULL  # premium has 8 free slots of its own
    assert running(table, "premium") == 0
    assert running(table, "account") == 2
    slots.release(basic[0].job_id, "basic")
    assert running(table, "account") == 1
    assert take_slot(premium, now=NOW) is TakeOutcome.TAKEN


def test_take_and_release_count_the_tenants_running_jobs_and_respect_its_cap(
    table: Callable[[str], Any],
) -> None:
    table("FAIR_SHARE_TABLE_NAME").put_item(
        Item={
            "shareId": "basic#acme",
            "tier": "basic",
            "tenantId": "acme",
            "cap": 1,
            "version": 1,
            "running": 0,
        }
    )
    first, second = waiting(table, 1), waiting(table, 2)
    assert take_slot(first, now=NOW) is TakeOutcome.TAKEN
    share = table("FAIR_SHARE_TABLE_NAME").get_item(Key={"shareId": "basic#acme"})["Item"]
    assert (share["running"], share["usage"], share["usageAt"]) == (1, 1, NOW)
    assert take_slot(second, now=NOW) is TakeOutcome.STALE  # the tenant's cap of 1 is reached
    assert slots.release(first.job_id, "basic") is True
    assert table("FAIR_SHARE_TABLE_NAME").get_item(Key={"shareId": "basic#acme"})["Item"]["running"] == 0
    assert take_slot(second, now=NOW) is TakeOutcome.TAKEN


def test_a_lowered_limit_admits_nobody_until_below_it(table: Callable[[str], Any]) -> None:
    set_limit(table, 2)
    taken = [waiting(table, number) for number in range(2)]
    for job in taken:
        take_slot(job, now=NOW)
    set_limit(table, 1)
    assert take_slot(waiting(table, 9), now=NOW) is TakeOutcome.STALE
    slots.release(taken[0].job_id, "basic")
    assert take_slot(waiting(table, 10), now=NOW) is TakeOutcome.STALE
    slots.release(taken[1].job_id, "basic")
    assert take_slot(waiting(table, 11), now=NOW) is TakeOutcome.TAKEN


def test_release_is_exactly_once(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    take_slot(job, now=NOW)
    assert slots.release(job.job_id, "basic") is True
    assert slots.release(job.job_id, "basic") is False
    assert running(table) == 0
    assert lease_ids(table) == set()


def test_releasing_a_slot_never_taken_changes_nothing(table: Callable[[str], Any]) -> None:
    take_slot(waiting(table, 1), now=NOW)
    assert slots.release(job_id_for(2), "basic") is False
    assert running(table) == 1


def test_release_with_a_drifted_counter_drops_the_lease_only(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    take_slot(job, now=NOW)
    table("TIERS_TABLE_NAME").update_item(
        Key={"tier": "basic"}, UpdateExpression="SET running = :z", ExpressionAttributeValues={":z": 0}
    )
    assert slots.release(job.job_id, "basic") is True
    assert running(table) == 0
    assert lease_ids(table) == set()


@pytest.mark.usefixtures("serialized_dynamodb")
def test_racing_takes_of_one_job_admit_it_once(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda _: take_slot(job, now=NOW), range(8)))
    assert outcomes.count(TakeOutcome.TAKEN) == 1
    assert running(table) == 1


@pytest.mark.usefixtures("serialized_dynamodb")
def test_racing_releases_release_once(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    take_slot(job, now=NOW)
    with ThreadPoolExecutor(max_workers=8) as pool:
        released = list(pool.map(lambda _: slots.release(job.job_id, "basic"), range(8)))
    assert released.count(True) == 1
    assert running(table) == 0


@pytest.mark.usefixtures("serialized_dynamodb")
def test_concurrent_gates_never_exceed_the_limit(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    set_limit(table, 3)
    for number in range(20):
        waiting(table, number, queued_at=f"2024-05-01T00:00:{number:02d}.000Z")
    with ThreadPoolExecutor(max_workers=6) as pool:
        reports = list(pool.map(lambda _: admission.admit(), range(6)))
    admitted = [job_id for report in reports for job_id in report.admitted]
    assert sorted(admitted) == [job_id_for(number) for number in range(3)]  # the three oldest, once each
    assert running(table) == 3
    assert len(lease_ids(table)) == 3
    assert len(stepfunctions.sent) == 3
    statuses = [item["status"] for item in table("JOBS_TABLE_NAME").scan()["Items"]]
    assert statuses.count("ADMITTED") == 3


@pytest.mark.usefixtures("serialized_dynamodb")
def test_churn_of_releases_and_admissions_stays_within_the_limit(
    table: Callable[[str], Any], stepfunctions: FakeStepFunctions
) -> None:
    set_limit(table, 2)
    for number in range(12):
        waiting(table, number, queued_at=f"2024-05-01T00:00:{number:02d}.000Z")
    observed: list[int] = []

    def finish_one_and_admit(_: int) -> None:
        leases = sorted(lease_ids(table))
        if leases:
            slots.release(leases[0], "basic")
        admission.admit()
        observed.append(running(table))

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(finish_one_and_admit, range(16)))
    assert max(observed) <= 2
    assert running(table) == len(lease_ids(table)) <= 2


def test_release_stamps_when_the_job_stopped_holding_its_slot(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    take_slot(job, now=NOW)
    assert slots.release(job.job_id, "basic", now="2024-05-01T00:09:00.000Z") is True
    item = table("JOBS_TABLE_NAME").get_item(Key={"jobId": job.job_id})["Item"]
    assert (item["admittedAt"], item["slotReleasedAt"]) == (NOW, "2024-05-01T00:09:00.000Z")
    # A second release is cancelled: the interval's end is never moved.
    assert slots.release(job.job_id, "basic", now="2024-05-01T00:10:00.000Z") is False
    item = table("JOBS_TABLE_NAME").get_item(Key={"jobId": job.job_id})["Item"]
    assert item["slotReleasedAt"] == "2024-05-01T00:09:00.000Z"


def test_release_for_an_execution_only_releases_the_slot_that_execution_took(
    table: Callable[[str], Any],
) -> None:
    job = waiting(table, 1)
    take_slot(job, now=NOW)
    assert slots.release(job.job_id, "basic", execution_arn=job.execution_arn + "-duplicate") is False
    assert lease_ids(table) == {job.job_id}
    assert slots.release(job.job_id, "basic", execution_arn=job.execution_arn) is True
    assert (running(table), lease_ids(table)) == (0, set())


def test_the_lease_of_a_job_that_is_gone_is_still_released(table: Callable[[str], Any]) -> None:
    job = waiting(table, 1)
    take_slot(job, now=NOW)
    table("JOBS_TABLE_NAME").delete_item(Key={"jobId": job.job_id})
    assert slots.release(job.job_id, "basic") is True
    assert (running(table), lease_ids(table)) == (0, set())
    assert "Item" not in table("JOBS_TABLE_NAME").get_item(Key={"jobId": job.job_id})  # no stub item
