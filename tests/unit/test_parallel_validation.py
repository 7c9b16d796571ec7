"""Validating in ranges, merged, gives the serial verdict: the same reasons in the same order, the same row
and line numbers, the same statistics.

Files are generated (errors anywhere, CRLF, a BOM, quoted fields with newlines, blank lines, rows of the
wrong width) and split at line starts chosen so that boundaries land on errors, right after the header
(a range holding only the header) and inside quoted fields: each range is validated apart as the Map's
iterations do (``validate_range``), merged (``parallel.merge``, the one rule), and compared with
``validate_csv`` over the whole file, and with the validator from before the fast path
(``reference_validation``) where the contract rules it knows apply.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
import reference_validation as reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validation_equivalence import OPTIONS, chunked, csv_files, rules

from controlplane.uploads import parallel, validation
from controlplane.uploads.parallel import ByteRange, RerunRange, SplitAmbiguous
from controlplane.uploads.validation import ValidationReport, report_of, validate_csv, validate_range


def line_starts(data: bytes) -> list[int]:
    return [index + 1 for index, byte in enumerate(data) if byte == 0x0A and index + 1 < len(data)]


def run_range(
    data: bytes, part: ByteRange, names: list[str] | None, rules_: Any, chunk: int, **kw: Any
) -> Any:
    piece = data[part.start : part.end]
    # What the Map's iteration does: its result goes through JSON (S3) to the merge.
    found = validate_range(
        chunked(piece, chunk), rules_, names=None if part.index == 0 else names, start_offset=part.start, **kw
    )
    return parallel.partial_from_json(json.loads(json.dumps(parallel.partial_to_json(found))))


def in_ranges(
    data: bytes, cuts: list[int], rules_: Any, chunk: int, block: int
) -> tuple[ValidationReport, str]:
    """The use case's loop (controlplane.uploads.large_validation) on bytes in memory."""
    names = parallel.header_names(data[: parallel.HEAD_BYTES])
    ranges = parallel.ranges_from(len(data), cuts)
    if names is None:
        return validate_csv(chunked(data, chunk), rules_, block_bytes=block), "serial: header"
    partials = [run_range(data, part, names, rules_, chunk, block_bytes=block) for part in ranges]
    while True:
        outcome = parallel.merge(partials)
        if isinstance(outcome, RerunRange):
            part = ranges[outcome.index]
            partials[outcome.index] = run_range(
                data, part, names, rules_, chunk, block_bytes=block, problem_budget=outcome.problem_budget
            )
            continue
        if isinstance(outcome, SplitAmbiguous):
            assert b'"' in data[: ranges[outcome.index].end]
            return validate_csv(chunked(data, chunk), rules_, block_bytes=block), "serial: quotes"
        return report_of(outcome, rules_), f"ranges: {len(ranges)}"


def comparable(report: Any) -> tuple[bool, tuple[str, ...], str]:
    stats = dict(report.stats)
    if not stats.get("complete", True):
        # A run that stopped early counts the bytes read before it stopped: that depends on how they
        # arrived (chunks, blocks, ranges), serially as well. Everything else is compared.
        stats.pop("bytes")
    return report.valid, tuple(report.reasons), json.dumps(stats, sort_keys=True)


@st.composite
def split_files(draw: st.DrawFn, *, reference_rules: bool = False) -> tuple[bytes, str, list[int]]:
    data, problem = draw(csv_files(reference=reference_rules))
    starts = line_starts(data)
    cuts = sorted(set(draw(st.lists(st.sampled_from(starts), max_size=6)))) if starts else []
    if starts and draw(st.booleans()):
        cuts = sorted({starts[0], *cuts})  # the first range holds only the header
    return data, problem, cuts


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    split_files(), st.booleans(), st.sampled_from([1, 64, 256 * 1024]), st.sampled_from([1, 40, 300]), OPTIONS
)
def test_ranges_merged_give_the_serial_verdict(
    generated: tuple[bytes, str, list[int]], declared: bool, chunk: int, block: int, options: dict[str, Any]
) -> None:
    data, problem, cuts = generated
    if problem == "regression":
        options = {key: value for key, value in options.items() if key == "non_finite_as_missing"}
    rules_ = rules(problem, declared, new=True, **options)
    serial = validate_csv(chunked(data, chunk), rules_, block_bytes=block)
    merged, mode = in_ranges(data, cuts, rules_, chunk, block)
    assert comparable(merged) == comparable(serial), mode
    if b'"' not in data and parallel.header_names(data) is not None:
        # Not vacuous: without quotes nothing is ambiguous, every split is merged.
        assert mode == f"ranges: {len(cuts) + 1}"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split_files(reference_rules=True), st.booleans())
def test_ranges_merged_give_the_old_validators_verdict(
    generated: tuple[bytes, str, list[int]], declared: bool
) -> None:
    data, problem, cuts = generated
    expected = reference.validate_csv([data], rules(problem, declared, new=False))
    merged, mode = in_ranges(
        data, cuts, rules(problem, declared, new=True), 256 * 1024, validation.BLOCK_BYTES
    )
    assert comparable(merged) == comparable(expected), mode


def body(rows: int, start: int = 0, *, bad: set[int] | None = None) -> str:
    return "".join(
        f"{i},{'x' if bad and i in bad else i * 0.5},{i % 2}\n" for i in range(start, start + rows)
    )


def split_at_lines(data: bytes, *lines: int) -> list[int]:
    starts = [0, *line_starts(data)]
    return [starts[line - 1] for line in lines]


RULES = rules("binary_classification", False, new=True)


def test_an_error_on_each_side_of_a_boundary_keeps_its_row_and_line() -> None:
    data = ("a,b,churned\n" + body(50, bad={9, 10, 30})).encode()
    cuts = split_at_lines(data, 11, 12, 31)  # lines 11 (row 10) and 12 start ranges
    merged, mode = in_ranges(data, cuts, RULES, 64, 40)
    assert mode == "ranges: 4"
    assert merged.reasons == validate_csv([data], RULES).reasons
    assert "first at row 10 (line 11)" in merged.reasons[0]


def test_a_crlf_file_with_a_bom_and_a_header_only_range() -> None:
    data = ("\ufeffa,b,churned\r\n" + body(30).replace("\n", "\r\n") + "1,2\r\n").encode()
    cuts = split_at_lines(data, 2, 20)
    merged, mode = in_ranges(data, cuts, RULES, 7, 300)
    assert mode == "ranges: 3"
    serial = validate_csv([data], RULES)
    assert (merged.reasons, merged.stats) == (serial.reasons, serial.stats)
    assert merged.stats["utf8Bom"] is True
    assert merged.reasons == ("row 31 (line 32) has 2 columns; the header has 3",)


def test_a_quoted_newline_across_a_split_falls_back_to_serial() -> None:
    data = b'a,b,churned,note\n1,2,0,"first\nsecond"\n3,4,1,plain\n'
    ranges = parallel.ranges_from(len(data), split_at_lines(data, 3))
    names = parallel.header_names(data)
    partials = [run_range(data, part, names, RULES, 64) for part in ranges]
    outcome = parallel.merge(partials)
    assert outcome == SplitAmbiguous(0)
    assert "byte offset 30" in outcome.reason(ranges)
    # Split where the record really ends, the same file merges.
    merged, mode = in_ranges(data, split_at_lines(data, 4), RULES, 64, 40)
    assert mode == "ranges: 2"
    assert comparable(merged) == comparable(validate_csv([data], RULES))


def test_the_problem_limit_spread_over_ranges_stops_where_the_serial_run_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(validation, "MAX_PROBLEMS", 7)
    monkeypatch.setattr(parallel, "MAX_PROBLEMS", 7)
    lines = ["a,b,churned"] + [f"{i},1,0" if i % 3 else f"{i},1" for i in range(40)]
    data = ("\n".join(lines) + "\n").encode()
    cuts = split_at_lines(data, 10, 20, 30)
    merged, mode = in_ranges(data, cuts, RULES, 64, 40)
    serial = validate_csv([data], RULES)
    assert mode == "ranges: 4"
    assert comparable(merged) == comparable(serial)
    assert serial.stats["complete"] is False


def test_a_header_with_quotes_or_a_binary_start_is_validated_serially() -> None:
    assert parallel.header_names(b'"a,b",c\n1,2\n') is None
    assert parallel.header_names(b"\x1f\x8b\x08\x00") is None
    assert parallel.header_names(b"\xef\xbb\xbfa,b\r\n1,2\r\n") == ["a", "b"]


def test_boundaries_move_to_the_next_line_start() -> None:
    data = b"h1,h2\n" + b"1,2\n" * 10
    size = len(data)
    starts = [
        parallel.line_start_after(data[nominal - 1 : nominal - 1 + 16], nominal - 1)
        for nominal in parallel.nominal_boundaries(size, 10)
    ]
    ranges = parallel.ranges_from(size, starts)
    assert (ranges[0].start, ranges[-1].end) == (0, size)
    for before, after in itertools.pairwise(ranges):
        assert before.end == after.start
        assert data[after.start - 1 : after.start] == b"\n"
    assert parallel.line_start_after(b"abc", 5) is None
    assert parallel.ranges_from(10, [None, 0, 10, 4, 4]) == [ByteRange(0, 0, 4), ByteRange(1, 4, 10)]
