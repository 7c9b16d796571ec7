"""The fast path changes how fast a verdict comes, never what it says.

Generated files (errors anywhere, CRLF, a BOM, quoted fields with newlines, blank lines, header only)
are validated by the validator as it was before the fast path (``reference_validation``, kept verbatim)
and by today's validator with and without the fast path, with blocks of many sizes so that every error
lands on, before and after a block boundary: reasons, row and line numbers and statistics are equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import reference_validation as reference
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.tenants.model import ProblemType
from controlplane.uploads import validation
from controlplane.uploads.fast_scan import BlockLayout, scan_block
from controlplane.uploads.validation import DatasetRules, ValidationReport, validate_csv

# The first CLEAN are what the fast path takes: numbers of every spelling, both zeros, empty cells.
FEATURE_CELLS = [
    "0", "-0", "1", "42", "-7", "3.25", "-0.5", "0.0", "", "1e3", "2.5E-4", ".5", "5.", "+2", "007",
    "123456789.123456789", "1e-400", "-0.0", "", " 12", "12 ", "NA", "n/a", "null", "None", "NaN", "nan",
    "inf", "-Infinity", "1_000", "abc", "0x10", "12%", "1e400", "١٢", "  ",
]  # fmt: skip
CLEAN = 18
LABELS = ["0", "1", "0", "1", "yes", "no", " 1", "", "NA", "nan", "2.5", "été", "inf"]
# What the contract rules of issue 13 changed (NaN and infinity are errors unless declared missing; a
# binary target mixing a number and a word is rejected): the old validator is compared on the rest.
CHANGED = {"NaN", "nan", "inf", "-Infinity", "1e400"}
NUMBER_LABELS = ["0", "1", " 1", "2.5", "", "NA"]
WORD_LABELS = ["yes", "no", "été", "", "NA"]
TEXT_CELLS = ["alice", "bob", '"quoted, with comma"', '"multi\nline"', '"say ""hi"""', "", "x y"]


@st.composite
def csv_files(draw: st.DrawFn, *, reference: bool = False) -> tuple[bytes, str]:
    features = draw(st.integers(min_value=1, max_value=4))
    with_text = draw(st.booleans())
    names = [f"f{i}" for i in range(features)] + ["churned"] + (["note"] if with_text else [])
    order = draw(st.permutations(names))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    rows = draw(st.integers(min_value=0, max_value=60))
    clean = draw(st.booleans())  # most rows plain numbers, so that the fast path takes whole blocks
    features_pool = [cell for cell in FEATURE_CELLS if not reference or cell not in CHANGED]
    labels = draw(st.sampled_from([NUMBER_LABELS, WORD_LABELS])) if reference else LABELS
    # Clean blocks' labels: two numbers, or (new rules only) a number and a word.
    clean_labels = labels[:2] if reference else draw(st.sampled_from([["0", "1"], ["1", "yes"]]))
    lines = [",".join(order)]
    for _ in range(rows):
        shape = draw(st.integers(min_value=0, max_value=40))
        if shape == 0:
            lines.append("")  # a blank line
            continue
        cells = []
        for name in order:
            if name == "churned":
                cells.append(draw(st.sampled_from(clean_labels if clean else labels)))
            elif name == "note":
                cells.append(draw(st.sampled_from(TEXT_CELLS[:2] if clean else TEXT_CELLS)))
            else:
                pool = FEATURE_CELLS[:CLEAN] if clean and shape > 3 else features_pool
                cells.append(draw(st.sampled_from(pool)))
        if shape == 1:
            cells = cells[:-1]  # a row short of a column
        elif shape == 2:
            cells = [*cells, "9"]  # a row with a column too many
        lines.append(",".join(cells))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    bom = "\ufeff" if draw(st.booleans()) else ""
    problem = draw(st.sampled_from(["binary_classification", "regression"]))
    return (bom + text).encode("utf-8"), problem


def rules(problem: str, declared: bool, *, new: bool, **options: Any) -> Any:
    features = ("f0",) if declared else None
    values = ("churned", features, ProblemType(problem), 5, 10 * 1024 * 1024, "basic")
    if new:
        return DatasetRules(*values, **options)
    return reference.DatasetRules(*values)


def chunked(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


def comparable(report: Any) -> tuple[bool, tuple[str, ...], str]:
    # As JSON: -0.0 == 0.0 in Python, but a job's stats show the sign.
    return report.valid, tuple(report.reasons), json.dumps(report.stats, sort_keys=True)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    csv_files(reference=True),
    st.booleans(),
    st.sampled_from([1, 7, 64, 256 * 1024]),
    st.sampled_from([1, 40, 97, 300, validation.BLOCK_BYTES]),
)
def test_fast_path_gives_exactly_the_old_validators_verdict(
    generated: tuple[bytes, str], declared: bool, chunk: int, block: int
) -> None:
    data, problem = generated
    expected = comparable(reference.validate_csv(chunked(data, chunk), rules(problem, declared, new=False)))
    new_rules = rules(problem, declared, new=True)
    fast = validate_csv(chunked(data, chunk), new_rules, block_bytes=block)
    slow = validate_csv(chunked(data, chunk), new_rules, fast=False, block_bytes=block)
    assert comparable(fast) == expected
    assert comparable(slow) == expected


OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "target_values": st.sampled_from([("0", "1"), ("yes", "no"), ("1", "yes")]),
        "positive_class": st.sampled_from(["1", "yes"]),
        "non_finite_as_missing": st.booleans(),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), st.booleans(), st.sampled_from([1, 64]), st.sampled_from([1, 40, 300]), OPTIONS)
def test_fast_path_gives_the_row_by_row_verdict_under_every_contract_option(
    generated: tuple[bytes, str], declared: bool, chunk: int, block: int, options: dict[str, Any]
) -> None:
    data, problem = generated
    if problem == "regression":
        options = {key: value for key, value in options.items() if key == "non_finite_as_missing"}
    new_rules = rules(problem, declared, new=True, **options)
    slow = validate_csv(chunked(data, chunk), new_rules, fast=False, block_bytes=block)
    fast = validate_csv(chunked(data, chunk), new_rules, block_bytes=block)
    assert comparable(fast) == comparable(slow)


def test_the_fast_path_takes_clean_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The equivalence above is not vacuous: clean blocks do go through the native parser."""
    taken: list[int] = []
    scan = validation.scan_block

    def counting(*args: Any) -> Any:
        summary = scan(*args)
        if summary is not None:
            taken.append(summary.rows)
        return summary

    monkeypatch.setattr(validation, "scan_block", counting)
    body = "".join(f"{i},{i * 0.5},{i % 2}\n" for i in range(1000))
    report: ValidationReport = validate_csv(
        chunked(f"a,b,churned\n{body}".encode(), 1000), rules("binary_classification", False, new=True),
        block_bytes=2048,
    )  # fmt: skip
    assert report.valid, report.reasons
    assert sum(taken) == 1000
    assert len(taken) > 3


@pytest.mark.parametrize("block", [1, 12, 30, validation.BLOCK_BYTES])
@pytest.mark.parametrize(
    "column", [["0", "-0", "3"], ["-0", "0", "3"], ["3", "-0.0", "0"], ["-3", "0", "-0"]]
)
def test_a_zero_of_either_sign_as_the_extreme_is_the_first_seen(column: list[str], block: int) -> None:
    data = ("a,churned\n" + "".join(f"{value},{i % 2}\n" for i, value in enumerate(column * 3))).encode()
    expected = comparable(reference.validate_csv([data], rules("binary_classification", False, new=False)))
    fast = validate_csv([data], rules("binary_classification", False, new=True), block_bytes=block)
    assert comparable(fast) == expected


def test_a_block_whose_extreme_is_a_zero_of_both_signs_goes_row_by_row() -> None:
    """The row-by-row minimum keeps the first zero it saw; a vectorised one need not."""
    layout = BlockLayout(columns=2, features=(0,), target=None, numeric_target=False)
    assert scan_block(b"0,1\n-0,1\n3,1\n", 3, layout, str.isalnum) is None
    summary = scan_block(b"0,1\n0.0,1\n3,1\n", 3, layout, str.isalnum)
    assert summary is not None
    assert (summary.features[0].minimum, summary.features[0].maximum) == (0.0, 3.0)
