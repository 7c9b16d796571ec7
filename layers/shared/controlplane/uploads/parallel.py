"""Validating a large CSV in parallel: split at line starts, validate the ranges apart, merge exactly.

A run over one range counts its rows and lines from the range's own start; ``merge`` adds the rows and
lines of the ranges before it and combines what each found in file order, so that the report made from
the merged ``Partial`` (``validation.report_of``) is the serial run's: the same reasons in the same order,
the same row and line numbers, the same statistics. One exception, said in the stats: ``bytes`` of a run
that stopped early counts the bytes read before it stopped, which depends on how they arrived (by chunk,
by range), in a serial run as well.

A split is exact only where a line start is a record start. A quoted field may hold a newline, so a range
whose input ends inside a quoted field means the split there was ambiguous: ``merge`` answers
``SplitAmbiguous`` and the caller validates the file serially, saying why. (By induction from the file's
start, every range before it began at a record start, so its own parse is the serial one.)

Pure: no AWS. The store reads the bytes; the use cases in ``parallel_validation`` drive it.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from controlplane.uploads.validation import (
    MAX_LINE_BYTES,
    MAX_PROBLEMS,
    MAX_REASONS,
    ColumnStats,
    Fatal,
    Label,
    Partial,
    Tally,
    TargetStats,
)

_UTF8_BOM: Final = b"\xef\xbb\xbf"
# Bytes read at a nominal boundary to find the next line start: a line is at most MAX_LINE_BYTES long (a
# longer one is a fatal problem its range reports), so the next newline is within this window.
BOUNDARY_WINDOW: Final = MAX_LINE_BYTES + 1
HEAD_BYTES: Final = MAX_LINE_BYTES + len(_UTF8_BOM) + 1


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start`` to ``end`` (exclusive) of the object; both line starts (or the object's ends)."""

    index: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RerunRange:
    """Range ``index`` must be validated again, stopping after ``problem_budget`` rows of the wrong width:
    the ranges before it used up the rest of MAX_PROBLEMS, where the serial run stops."""

    index: int
    problem_budget: int


@dataclass(frozen=True, slots=True)
class SplitAmbiguous:
    """Range ``index`` ended inside a quoted field: its end may not be a record's end."""

    index: int

    def reason(self, ranges: Sequence[ByteRange]) -> str:
        return (
            "a quoted field holding a line break may span the split at byte offset "
            f"{ranges[self.index].end}: the file was validated serially, not in ranges"
        )


def header_names(head: bytes) -> list[str] | None:
    """The column names of the file's first line, read as the validator reads them, when the file's
    first bytes (``head``) make that certain; else None (validate serially: the serial run reports
    whatever is wrong with the start of the file, a binary signature, UTF-16, a header with quotes)."""
    data = head.removeprefix(_UTF8_BOM)
    newline = data.find(b"\n")
    if newline < 0:
        return None
    line = data[: newline + 1]
    if b'"' in line or b"\x00" in line or line.count(b"\r") > (1 if line.endswith(b"\r\n") else 0):
        return None
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    names = next(csv.reader([text], strict=True), None)
    if not names or all(not name.strip() for name in names):
        return None
    return names


def nominal_boundaries(size: int, range_bytes: int) -> list[int]:
    """Where ranges of ``range_bytes`` would split an object of ``size`` bytes, before line alignment."""
    return list(range(range_bytes, size, range_bytes))


def line_start_after(window: bytes, window_start: int) -> int | None:
    """The first line start at or after ``window_start + 1`` (the window begins one byte before a nominal
    boundary, so a boundary that already is a line start stays), or None when the window holds none."""
    newline = window.find(b"\n")
    return None if newline < 0 else window_start + newline + 1


def ranges_from(size: int, starts: Sequence[int | None]) -> list[ByteRange]:
    """The ranges between the aligned line starts (None, or a start not after the previous: dropped)."""
    cuts = [0]
    for start in starts:
        if start is not None and cuts[-1] < start < size:
            cuts.append(start)
    cuts.append(size)
    return [ByteRange(index, begin, end) for index, (begin, end) in enumerate(itertools.pairwise(cuts))]


# ---------------------------------------------------------------------------------------------- merge
def _tally(into: Tally, other: Tally, rows: int, lines: int) -> None:
    if into.first is None and other.first is not None:
        row, line, cell = other.first
        into.first = (row + rows, line + lines, cell)
    into.count += other.count


def _column(into: ColumnStats, other: ColumnStats, rows: int, lines: int) -> None:
    # The serial run keeps the first of equal extremes (0.0 seen before -0.0): so does the merge.
    into.minimum = min(into.minimum, other.minimum)  # min and max keep the first of equal values
    into.maximum = max(into.maximum, other.maximum)
    into.missing += other.missing
    _tally(into.bad, other.bad, rows, lines)
    _tally(into.non_finite, other.non_finite, rows, lines)


def _target(into: TargetStats, other: TargetStats, rows: int, lines: int) -> None:
    for name in ("missing", "bad", "non_finite", "outside"):
        _tally(getattr(into, name), getattr(other, name), rows, lines)
    # Each range keeps its first three distinct labels: enough for the file's first three.
    for label in other.distinct:
        if len(into.distinct) < 3 and all(seen.value != label.value for seen in into.distinct):
            into.distinct.append(Label(label.value, label.row + rows, label.line + lines, label.number))


def _empty_target(like: TargetStats) -> TargetStats:
    return TargetStats(like.name, like.index, like.numeric, like.allowed, like.non_finite_as_missing)


def merge(partials: Sequence[Partial]) -> Partial | RerunRange | SplitAmbiguous:
    """The serial run's findings from the ranges' (in file order, the first read the header), or what
    stands in the way: a range to run again with a smaller problem budget, or an ambiguous split."""
    first = partials[0]
    merged = replace(
        first,
        fatal=[],
        target=None if first.target is None else _empty_target(first.target),
        features=[
            ColumnStats(column.name, column.index, column.non_finite_as_missing) for column in first.features
        ],
        row_problems=[],
        row_problem_count=0,
        rows=0,
        lines=0,
        blank_lines=0,
        bytes_read=0,
        stopped_early=False,
        open_quote=False,
    )
    for index, part in enumerate(partials):
        rows, lines = merged.rows, merged.lines
        left = MAX_PROBLEMS - merged.row_problem_count
        if part.row_problem_count >= left and part.problem_budget != left:
            return RerunRange(index, left)  # the serial run stops within this range, at its left-th
        if part.open_quote and index < len(partials) - 1:
            return SplitAmbiguous(index)
        merged.fatal.extend(fatal.shifted(lines) for fatal in part.fatal)
        if merged.target is not None and part.target is not None:
            _target(merged.target, part.target, rows, lines)
        for column, found in zip(merged.features, part.features, strict=True):
            _column(column, found, rows, lines)
        room = MAX_REASONS - len(merged.row_problems)
        merged.row_problems.extend(
            (row + rows, line + lines, width) for row, line, width in part.row_problems[:room]
        )
        merged.row_problem_count += part.row_problem_count
        merged.rows += part.rows
        merged.lines += part.lines
        merged.blank_lines += part.blank_lines
        merged.bytes_read += part.bytes_read
        if part.stopped_early:
            merged.stopped_early = True
            break  # the serial run stops here: what later ranges found, it never reads
    return merged


# ---------------------------------------------------------------------------------------------- storage
def _number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _tally_json(tally: Tally) -> dict[str, Any]:
    return {"count": tally.count, "first": list(tally.first) if tally.first is not None else None}


def _tally_of(data: dict[str, Any]) -> Tally:
    first = data["first"]
    return Tally(data["count"], (int(first[0]), int(first[1]), str(first[2])) if first is not None else None)


def partial_to_json(partial: Partial) -> dict[str, Any]:
    """A range's findings as plain JSON (a range's run writes it; the merge reads it back)."""
    target = partial.target
    return {
        "fatal": [[fatal.before, fatal.line, fatal.after] for fatal in partial.fatal],
        "headerProblems": partial.header_problems,
        "columns": partial.columns,
        "target": None
        if target is None
        else {
            "name": target.name,
            "index": target.index,
            "numeric": target.numeric,
            "allowed": list(target.allowed) if target.allowed is not None else None,
            "nonFiniteAsMissing": target.non_finite_as_missing,
            "tallies": {
                name: _tally_json(getattr(target, name))
                for name in ("missing", "bad", "non_finite", "outside")
            },
            "distinct": [[label.value, label.row, label.line, label.number] for label in target.distinct],
        },
        "features": [
            {
                "name": column.name,
                "index": column.index,
                "nonFiniteAsMissing": column.non_finite_as_missing,
                "min": _number(column.minimum),
                "max": _number(column.maximum),
                "missing": column.missing,
                "bad": _tally_json(column.bad),
                "nonFinite": _tally_json(column.non_finite),
            }
            for column in partial.features
        ],
        "rowProblems": [list(problem) for problem in partial.row_problems],
        "rowProblemCount": partial.row_problem_count,
        "rows": partial.rows,
        "lines": partial.lines,
        "blankLines": partial.blank_lines,
        "bytesRead": partial.bytes_read,
        "bom": partial.bom,
        "stoppedEarly": partial.stopped_early,
        "openQuote": partial.open_quote,
        "problemBudget": partial.problem_budget,
    }


def partial_from_json(data: dict[str, Any]) -> Partial:
    target = None
    if data["target"] is not None:
        found = data["target"]
        allowed = tuple(found["allowed"]) if found["allowed"] is not None else None
        target = TargetStats(
            found["name"], found["index"], found["numeric"], allowed, found["nonFiniteAsMissing"]
        )
        for name, tally in found["tallies"].items():
            setattr(target, name, _tally_of(tally))
        target.distinct = [Label(value, row, line, number) for value, row, line, number in found["distinct"]]
    features = []
    for found in data["features"]:
        column = ColumnStats(found["name"], found["index"], found["nonFiniteAsMissing"])
        column.minimum = math.inf if found["min"] is None else float(found["min"])
        column.maximum = -math.inf if found["max"] is None else float(found["max"])
        column.missing = found["missing"]
        column.bad, column.non_finite = _tally_of(found["bad"]), _tally_of(found["nonFinite"])
        features.append(column)
    return Partial(
        fatal=[Fatal(before, line, after) for before, line, after in data["fatal"]],
        header_problems=list(data["headerProblems"]),
        columns=data["columns"],
        target=target,
        features=features,
        row_problems=[(row, line, width) for row, line, width in data["rowProblems"]],
        row_problem_count=data["rowProblemCount"],
        rows=data["rows"],
        lines=data["lines"],
        blank_lines=data["blankLines"],
        bytes_read=data["bytesRead"],
        bom=data["bom"],
        stopped_early=data["stoppedEarly"],
        open_quote=data["openQuote"],
        problem_budget=data["problemBudget"],
    )
