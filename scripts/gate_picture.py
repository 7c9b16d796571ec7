"""A picture of the gate: slots over time per tier, drawn as SVG by plain Python (no plotting dependency).

Used by ``make demo`` (scripts/demo.py -> build/demo-gate.svg) and ``make bench`` (bench/stack.py ->
build/bench-gate.svg). The data are the jobs' own records, read after the run: ``queuedAt``,
``admittedAt``, ``slotReleasedAt`` (the interval a job held a slot), ``tier``, and ``slotBorrowed`` (set by
the gate's take transaction). Per tier the picture stacks the slots held on the tier's own guarantee and the
borrowed ones, draws the waiting jobs as a line, and the tier's guaranteed slots and its limit (guaranteed +
borrowable) as horizontal lines; a last panel draws the account's running pipelines against its cap.

Whether a limit was crossed is computed from the same step series (``GateData.crossings``), not read off the
drawing: the caption states it, and the callers fail their run when it is not empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from xml.sax.saxutils import escape

WIDTH: Final = 900
PANEL_HEIGHT: Final = 170
MARGIN_LEFT: Final = 60
MARGIN_RIGHT: Final = 170
MARGIN_TOP: Final = 56
PANEL_GAP: Final = 40
COLOURS: Final = {
    "own": "#4e79a7",
    "borrowed": "#f28e2b",
    "queued": "#59a14f",
    "guaranteed": "#4e79a7",
    "limit": "#e15759",
    "account": "#76b7b2",
}
_FAR_FUTURE: Final = float("inf")


@dataclass(frozen=True, slots=True)
class TierLimits:
    guaranteed: int
    borrowable: int

    @property
    def limit(self) -> int:
        return self.guaranteed + self.borrowable


@dataclass(frozen=True, slots=True)
class Step:
    """From ``at`` (seconds since the first event) until the next step, these many jobs."""

    at: float
    own: int
    borrowed: int
    queued: int

    @property
    def held(self) -> int:
        return self.own + self.borrowed


@dataclass(frozen=True, slots=True)
class TierSeries:
    tier: str
    limits: TierLimits
    steps: list[Step]
    borrowed_admissions: int

    @property
    def max_held(self) -> int:
        return max((step.held for step in self.steps), default=0)

    @property
    def max_queued(self) -> int:
        return max((step.queued for step in self.steps), default=0)


@dataclass(frozen=True, slots=True)
class GateData:
    duration: float  # seconds from the first event to the last
    tiers: list[TierSeries]
    account_cap: int
    account: list[tuple[float, int]]  # (at, slots held across tiers)
    crossings: list[str] = field(default_factory=list)  # every limit crossed, in words; empty: none

    @property
    def borrowed_admissions(self) -> int:
        return sum(series.borrowed_admissions for series in self.tiers)

    @property
    def max_account(self) -> int:
        return max((held for _, held in self.account), default=0)


def _seconds(value: Any) -> float | None:
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


def _events(jobs: Iterable[Mapping[str, Any]], tier: str) -> list[tuple[float, int, str, int]]:
    """(time, order, kind, delta), sorted. The series has one step per instant, after every change at it
    (a slot freed and taken in the same millisecond is one slot held throughout)."""
    events: list[tuple[float, int, str, int]] = []
    for job in jobs:
        if job.get("tier") != tier:
            continue
        queued, admitted = _seconds(job.get("queuedAt")), _seconds(job.get("admittedAt"))
        released = _seconds(job.get("slotReleasedAt"))
        if queued is not None:
            left_queue = admitted if admitted is not None else _seconds(job.get("finishedAt"))
            if admitted is None or queued <= admitted:
                events.append((queued, 2, "queued", 1))
                if left_queue is not None:
                    events.append((left_queue, 1, "queued", -1))
        if admitted is not None:
            kind = "borrowed" if job.get("slotBorrowed") else "own"
            events.append((admitted, 1, kind, 1))
            if released is not None:
                events.append((released, 0, kind, -1))
    return sorted(events)


def _steps(events: Sequence[tuple[float, int, str, int]], origin: float) -> list[Step]:
    counts = {"own": 0, "borrowed": 0, "queued": 0}
    steps: list[Step] = []
    for index, (at, _, kind, delta) in enumerate(events):
        counts[kind] += delta
        if index + 1 < len(events) and events[index + 1][0] == at:
            continue  # one step per instant, after every change at it
        steps.append(
            Step(at=at - origin, own=counts["own"], borrowed=counts["borrowed"], queued=counts["queued"])
        )
    return steps


def _held_at(steps: Sequence[Step], at: float) -> int:
    held = 0
    for step in steps:
        if step.at > at:
            break
        held = step.held
    return held


def gate_data(
    jobs: Iterable[Mapping[str, Any]], limits: Mapping[str, TierLimits], account_cap: int
) -> GateData:
    """The step series of every tier and of the account, and every limit they cross."""
    jobs = list(jobs)
    per_tier = {tier: _events(jobs, tier) for tier in limits}
    times = [event[0] for events in per_tier.values() for event in events]
    origin = min(times, default=0.0)
    duration = max(times, default=0.0) - origin
    tiers: list[TierSeries] = []
    crossings: list[str] = []
    for tier, tier_limits in limits.items():
        steps = _steps(per_tier[tier], origin)
        borrowed = sum(
            1 for job in jobs if job.get("tier") == tier and job.get("admittedAt") and job.get("slotBorrowed")
        )
        series = TierSeries(tier=tier, limits=tier_limits, steps=steps, borrowed_admissions=borrowed)
        tiers.append(series)
        for step in steps:
            if step.held > tier_limits.limit:
                crossings.append(
                    f"tier {tier} held {step.held} slots at t+{step.at:.1f}s, "
                    f"above its limit of {tier_limits.limit}"
                )
    instants = sorted({step.at for series in tiers for step in series.steps})
    account = [(at, sum(_held_at(series.steps, at) for series in tiers)) for at in instants]
    crossings += [
        f"the account held {held} slots at t+{at:.1f}s, above its cap of {account_cap}"
        for at, held in account
        if held > account_cap
    ]
    return GateData(
        duration=duration, tiers=tiers, account_cap=account_cap, account=account, crossings=crossings
    )


# --------------------------------------------------------------------------- drawing


def _el(tag: str, text: str | None = None, **attributes: Any) -> str:
    """One SVG element; attribute names in snake_case become kebab-case (stroke_width -> stroke-width)."""
    attrs = " ".join(
        f'{name.rstrip("_").replace("_", "-")}="{escape(str(value), {chr(34): "&quot;"})}"'
        for name, value in attributes.items()
    )
    return f"<{tag} {attrs}/>" if text is None else f"<{tag} {attrs}>{escape(text)}</{tag}>"


@dataclass(frozen=True, slots=True)
class _Panel:
    top: float
    height: float
    duration: float
    y_max: float

    def x(self, at: float) -> float:
        span = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
        return MARGIN_LEFT + (at / self.duration if self.duration > 0 else 0.0) * span

    def y(self, value: float) -> float:
        return self.top + self.height - (value / self.y_max) * self.height


def _step_points(panel: _Panel, points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """A step line through ``points`` (a value holds until the next point, the last until the end)."""
    out: list[tuple[float, float]] = []
    for index, (at, value) in enumerate(points):
        following = points[index + 1][0] if index + 1 < len(points) else panel.duration
        out += [(panel.x(at), panel.y(value)), (panel.x(following), panel.y(value))]
    return out


def _coords(points: Iterable[tuple[float, float]]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in points)


def _line(
    points: Sequence[tuple[float, float]], *, ident: str, colour: str, dash: str = "", width: float = 2
) -> str:
    extra = {"stroke_dasharray": dash} if dash else {}
    return _el(
        "polyline", id=ident, points=_coords(points), fill="none", stroke=colour, stroke_width=width, **extra
    )


def _area(
    panel: _Panel, lower: Sequence[float], upper: Sequence[float], times: Sequence[float], **style: str
) -> str:
    top = _step_points(panel, list(zip(times, upper, strict=True)))
    bottom = _step_points(panel, list(zip(times, lower, strict=True)))
    return _el(
        "polygon",
        id=style["ident"],
        points=_coords([*top, *reversed(bottom)]),
        fill=style["colour"],
        fill_opacity="0.75",
        stroke="none",
    )


def _limit_line(
    panel: _Panel, value: float, *, ident: str, colour: str, label: str, dash: str = ""
) -> list[str]:
    y = panel.y(value)
    ends = [(panel.x(0), y), (panel.x(panel.duration), y)]
    return [
        _line(ends, ident=ident, colour=colour, dash=dash, width=1.5),
        _el(
            "text", label, x=f"{panel.x(panel.duration) + 6:.1f}", y=f"{y + 4:.1f}", font_size=11, fill=colour
        ),
    ]


def _axes(panel: _Panel, title: str) -> list[str]:
    bottom, right = panel.y(0), panel.x(panel.duration)
    parts = [
        _el("text", title, x=MARGIN_LEFT, y=f"{panel.top - 8:.1f}", font_size=12, font_weight="bold"),
        _el("line", x1=MARGIN_LEFT, y1=f"{bottom:.1f}", x2=f"{right:.1f}", y2=f"{bottom:.1f}", stroke="#333"),
        _el("line", x1=MARGIN_LEFT, y1=f"{panel.top:.1f}", x2=MARGIN_LEFT, y2=f"{bottom:.1f}", stroke="#333"),
    ]
    top_value = max(1, int(panel.y_max))
    for value in range(0, top_value + 1, max(1, top_value // 5)):
        y = f"{panel.y(value) + 4:.1f}"
        parts.append(_el("text", str(value), x=MARGIN_LEFT - 6, y=y, font_size=10, text_anchor="end"))
    for index in range(6):
        at = panel.duration * index / 5
        x, y = f"{panel.x(at):.1f}", f"{bottom + 14:.1f}"
        parts.append(_el("text", f"{at:.0f}s", x=x, y=y, font_size=10, text_anchor="middle"))
    return parts


def _tier_panel(series: TierSeries, panel: _Panel) -> list[str]:
    tier, limits = series.tier, series.limits
    parts = _axes(
        panel,
        f"tier {tier}: max {series.max_held} held of limit {limits.limit} ({limits.guaranteed} guaranteed + "
        f"{limits.borrowable} borrowable), {series.borrowed_admissions} borrowed admissions, "
        f"up to {series.max_queued} queued",
    )
    if series.steps:
        times = [step.at for step in series.steps]
        own = [float(step.own) for step in series.steps]
        held = [float(step.held) for step in series.steps]
        parts.append(
            _area(panel, [0.0] * len(times), own, times, ident=f"series-own-{tier}", colour=COLOURS["own"])
        )
        parts.append(
            _area(panel, own, held, times, ident=f"series-borrowed-{tier}", colour=COLOURS["borrowed"])
        )
        queued = _step_points(panel, [(step.at, float(step.queued)) for step in series.steps])
        parts.append(_line(queued, ident=f"series-queued-{tier}", colour=COLOURS["queued"], width=1.5))
    guaranteed = f"guaranteed {limits.guaranteed}"
    parts += _limit_line(
        panel,
        limits.guaranteed,
        ident=f"limit-guaranteed-{tier}",
        colour=COLOURS["guaranteed"],
        label=guaranteed,
        dash="6,4",
    )
    parts += _limit_line(
        panel, limits.limit, ident=f"limit-max-{tier}", colour=COLOURS["limit"], label=f"limit {limits.limit}"
    )
    return parts


def _account_panel(data: GateData, panel: _Panel) -> list[str]:
    parts = _axes(panel, f"account: max {data.max_account} running of cap {data.account_cap}")
    if data.account:
        points = _step_points(panel, [(at, float(held)) for at, held in data.account])
        parts.append(_line(points, ident="series-account-running", colour=COLOURS["account"]))
    parts += _limit_line(
        panel,
        data.account_cap,
        ident="limit-account-cap",
        colour=COLOURS["limit"],
        label=f"cap {data.account_cap}",
    )
    return parts


def _legend(y: float) -> list[str]:
    items = [
        ("own", True, "held on the tier's guarantee"),
        ("borrowed", True, "held on a borrowed slot"),
        ("queued", False, "jobs waiting"),
        ("account", False, "account running"),
        ("limit", False, "limit (guaranteed + borrowable) / cap"),
    ]
    parts: list[str] = []
    x = MARGIN_LEFT
    for colour, filled, label in items:
        if filled:
            parts.append(_el("rect", x=x, y=y - 9, width=14, height=10, fill=COLOURS[colour]))
        else:
            parts.append(
                _el("line", x1=x, y1=y - 4, x2=x + 14, y2=y - 4, stroke=COLOURS[colour], stroke_width=2)
            )
        parts.append(_el("text", label, x=x + 18, y=y, font_size=11))
        x += 30 + 6 * len(label)
    return parts


def render_svg(data: GateData, *, title: str) -> str:
    height = MARGIN_TOP + (len(data.tiers) + 1) * (PANEL_HEIGHT + PANEL_GAP) + 20
    verdict = (
        "no limit was crossed" if not data.crossings else f"LIMITS CROSSED: {'; '.join(data.crossings[:3])}"
    )
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">',
        f"<title>{escape(title)}</title>",
        _el("rect", width=WIDTH, height=height, fill="white"),
        _el("text", title, x=MARGIN_LEFT, y=22, font_size=15, font_weight="bold"),
        _el(
            "text",
            f"{verdict}; {data.borrowed_admissions} admissions on borrowed slots",
            id="verdict",
            x=MARGIN_LEFT,
            y=40,
            font_size=12,
        ),
    ]
    duration = data.duration or 1.0
    for index, series in enumerate(data.tiers):
        top = MARGIN_TOP + 20 + index * (PANEL_HEIGHT + PANEL_GAP)
        y_max = max(series.limits.limit, series.max_held, series.max_queued, 1) * 1.1
        parts += _tier_panel(series, _Panel(top=top, height=PANEL_HEIGHT, duration=duration, y_max=y_max))
    top = MARGIN_TOP + 20 + len(data.tiers) * (PANEL_HEIGHT + PANEL_GAP)
    y_max = max(data.account_cap, data.max_account, 1) * 1.1
    parts += _account_panel(data, _Panel(top=top, height=PANEL_HEIGHT, duration=duration, y_max=y_max))
    parts += _legend(height - 8)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write(
    path: Path,
    jobs: Iterable[Mapping[str, Any]],
    limits: Mapping[str, TierLimits],
    account_cap: int,
    *,
    title: str,
) -> GateData:
    """Draw the run's gate into ``path`` (SVG); returns the data drawn (``crossings`` empty: none crossed)."""
    data = gate_data(jobs, limits, account_cap)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_svg(data, title=title))
    return data


def limits_from_items(items: Mapping[str, Mapping[str, Any]]) -> dict[str, TierLimits]:
    """Tier limits from the Tiers table's items as DynamoDB returns them (attribute-value form)."""
    return {
        tier: TierLimits(
            guaranteed=int(item["concurrencyLimit"]["N"]),
            borrowable=int(item.get("borrowingLimit", {"N": "0"})["N"]),
        )
        for tier, item in items.items()
    }
