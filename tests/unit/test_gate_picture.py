"""The gate picture (scripts/gate_picture.py): its step series come from the jobs' records, whether a limit
was crossed is computed from them, and the SVG is well-formed with every series and limit line in it."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from scripts import gate_picture
from scripts.gate_picture import Step, TierLimits

SVG = "{http://www.w3.org/2000/svg}"
LIMITS = {"basic": TierLimits(guaranteed=1, borrowable=1), "premium": TierLimits(guaranteed=2, borrowable=0)}


def at(seconds: int) -> str:
    return f"2024-05-14T09:00:{seconds:02d}.000Z"


def job(
    tier: str, queued: int, admitted: int | None, released: int | None, *, borrowed: bool = False
) -> dict[str, Any]:
    record: dict[str, Any] = {"tier": tier, "queuedAt": at(queued), "slotBorrowed": borrowed}
    if admitted is not None:
        record["admittedAt"] = at(admitted)
    if released is not None:
        record["slotReleasedAt"] = at(released)
    return record


JOBS = [
    job("basic", 0, 1, 5),
    job("basic", 0, 2, 6, borrowed=True),  # the second basic slot is borrowed
    job("basic", 1, 6, 9),  # waits until a slot frees at 6 s
    job("premium", 3, 3, 8),
]


def test_the_series_count_own_and_borrowed_slots_and_queued_jobs_from_the_timelines() -> None:
    data = gate_picture.gate_data(JOBS, LIMITS, account_cap=3)
    basic, premium = data.tiers
    assert basic.steps == [
        Step(at=0, own=0, borrowed=0, queued=2),
        Step(at=1, own=1, borrowed=0, queued=2),  # one admitted, one more queued at the same instant
        Step(at=2, own=1, borrowed=1, queued=1),
        Step(at=5, own=0, borrowed=1, queued=1),
        Step(at=6, own=1, borrowed=0, queued=0),  # a borrowed slot released, an own one taken: one step
        Step(at=9, own=0, borrowed=0, queued=0),
    ]
    assert (basic.max_held, basic.borrowed_admissions, premium.max_held) == (2, 1, 1)
    assert data.max_account == 3
    assert data.crossings == []


def test_a_crossed_limit_is_found_from_the_data_not_the_drawing() -> None:
    over = [*JOBS, job("basic", 2, 3, 4, borrowed=True)]  # three basic slots held during [3, 4)
    data = gate_picture.gate_data(over, LIMITS, account_cap=3)
    assert data.crossings == [
        "tier basic held 3 slots at t+3.0s, above its limit of 2",
        "the account held 4 slots at t+3.0s, above its cap of 3",
    ]
    assert "LIMITS CROSSED" in gate_picture.render_svg(data, title="t")


def test_the_svg_is_well_formed_and_has_every_series_and_limit(tmp_path: Path) -> None:
    path = tmp_path / "gate.svg"
    data = gate_picture.write(path, JOBS, LIMITS, 3, title="a <run> & its gate")
    root = ET.parse(path).getroot()
    assert root.tag == f"{SVG}svg"
    ids = {element.get("id") for element in root.iter() if element.get("id")}
    for tier in LIMITS:
        assert {
            f"series-own-{tier}",
            f"series-borrowed-{tier}",
            f"series-queued-{tier}",
            f"limit-guaranteed-{tier}",
            f"limit-max-{tier}",
        } <= ids
    assert {"series-account-running", "limit-account-cap", "verdict"} <= ids
    verdict = next(element for element in root.iter() if element.get("id") == "verdict")
    assert verdict.text == "no limit was crossed; 1 admissions on borrowed slots"
    title = root.find(f"{SVG}title")
    assert title is not None
    assert title.text == "a <run> & its gate"
    # The limit line of basic is drawn at its limit (2), above its guarantee line (1): y grows downwards.
    lines = {element.get("id"): element for element in root.iter(f"{SVG}polyline")}
    y_of = {name: float(lines[name].get("points", "").split()[0].split(",")[1]) for name in lines}
    assert y_of["limit-max-basic"] < y_of["limit-guaranteed-basic"]
    assert data.borrowed_admissions == 1
