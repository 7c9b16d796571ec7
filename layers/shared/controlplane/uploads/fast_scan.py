"""The validator's fast path: one block of whole CSV lines parsed natively (pyarrow's CSV reader).

A block is vouched for only when every rule of the exact row-by-row reader (``validation._Validator``)
would come to the same result; whenever that cannot be told cheaply, ``scan_block`` returns None and the
caller validates the block row by row. So the fast path changes how fast a verdict comes, never what it
says: no quotes, NUL bytes or lone carriage returns, every line shorter than ``csv.field_size_limit()``,
no blank line, the header's number of columns on every line, every feature cell a finite number or
empty, and no block whose extreme is a zero of both signs (the row-by-row minimum keeps the first).

pyarrow ships in the validate_dataset function's own package (about 141 MB unzipped, beside the shared
layer's 44 MB: within Lambda's 250 MB), not in the shared layer: only this module imports it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

# A window this long without a newline may hide a line longer than csv's field limit: not vouched for.
_NEWLINE_WINDOW: Final = 65536
# More distinct target values than this in one block: the row-by-row path keeps the first three.
_MAX_TARGET_UNIQUES: Final = 64


@dataclass(frozen=True, slots=True)
class BlockLayout:
    """Which columns of a header of ``columns`` names are checked, and how."""

    columns: int
    features: tuple[int, ...]
    target: int | None
    numeric_target: bool

    def arrow_options(self) -> tuple[pacsv.ParseOptions, pacsv.ConvertOptions, list[str]]:
        # Positional names: a header may repeat a name, the indices never do.
        names = [f"c{index}" for index in range(self.columns)]
        types: dict[str, pa.DataType] = {names[index]: pa.float64() for index in self.features}
        if self.target is not None:
            types[names[self.target]] = pa.float64() if self.numeric_target else pa.string()
        parse = pacsv.ParseOptions(
            delimiter=",",
            quote_char=False,
            double_quote=False,
            escape_char=False,
            newlines_in_values=False,
            ignore_empty_lines=True,  # then a blank line shows as one row fewer than lines
        )
        convert = pacsv.ConvertOptions(
            column_types=types,
            include_columns=list(types),
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,
            check_utf8=False,  # the caller decoded the block already
            auto_dict_encode=False,
        )
        return parse, convert, names


@dataclass(frozen=True, slots=True)
class FeatureSummary:
    missing: int
    minimum: float  # inf when the block holds no value
    maximum: float  # -inf when the block holds no value


@dataclass(frozen=True, slots=True)
class TargetSummary:
    """``cells`` (every cell, None for an empty one) when the values need the row-by-row rules; else the
    number of empty cells and each distinct value with the 0-based index of its first row."""

    missing: int
    first_missing: int | None
    uniques: tuple[tuple[str, int], ...]
    cells: list[str | None] | None = None


@dataclass(frozen=True, slots=True)
class BlockSummary:
    rows: int
    features: tuple[FeatureSummary, ...]
    target: TargetSummary | None


def lines_in(block: bytes) -> int:
    return block.count(b"\n") + (0 if not block or block.endswith(b"\n") else 1)


def _plain_text(block: bytes) -> bool:
    """No byte whose meaning the row-by-row reader and the native parser could disagree on."""
    if b'"' in block or b"\x00" in block:
        return False
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return False
    # A newline in every window of W bytes bounds every line below 2W - 1 < csv.field_size_limit().
    if csv.field_size_limit() < 2 * _NEWLINE_WINDOW - 1:
        return False
    size = len(block)
    if size <= _NEWLINE_WINDOW:
        return True
    return all(
        block.find(b"\n", start, start + _NEWLINE_WINDOW) >= 0 for start in range(0, size, _NEWLINE_WINDOW)
    )


def _feature(column: pa.ChunkedArray, may_hold_nan: bool) -> FeatureSummary | None:
    missing = column.null_count
    if missing == len(column):
        return FeatureSummary(missing, math.inf, -math.inf)
    # Infinity (which the parser accepts) shows in the extremes; NaN, which min_max skips, can only come
    # from a cell spelling it, so it is looked for only in a block holding the letter n.
    extremes = pc.min_max(column)
    minimum, maximum = float(extremes["min"].as_py()), float(extremes["max"].as_py())
    if not (math.isfinite(minimum) and math.isfinite(maximum)):
        return None
    if may_hold_nan and pc.any(pc.is_nan(column)).as_py():
        return None
    if (minimum == 0 or maximum == 0) and _both_zeros(column):
        return None
    return FeatureSummary(missing, minimum, maximum)


def _both_zeros(column: pa.ChunkedArray) -> bool:
    zeros = pc.filter(column, pc.equal(column, 0.0))
    # 1 / -0.0 is -inf, 1 / 0.0 is inf: both present means both signs of zero are.
    signs = pc.min_max(pc.divide(1.0, zeros))
    return bool(signs["min"].as_py() == -math.inf and signs["max"].as_py() == math.inf)


def _target(
    column: pa.ChunkedArray, numeric: bool, may_hold_nan: bool, plain: Callable[[str], bool]
) -> TargetSummary | None:
    missing = column.null_count
    first_missing = None
    if missing:
        first_missing = int(pc.index(pc.is_null(column), True).as_py())
    if numeric:
        if missing < len(column) and _feature(column, may_hold_nan) is None:
            return None
        return TargetSummary(missing, first_missing, ())
    uniques = pc.unique(column)  # in order of first appearance
    values = [value for value in uniques.to_pylist() if value is not None]
    if len(values) > _MAX_TARGET_UNIQUES or not all(map(plain, values)):
        return TargetSummary(missing, first_missing, (), cells=column.to_pylist())
    firsts = tuple((value, int(pc.index(column, value).as_py())) for value in values)
    return TargetSummary(missing, first_missing, firsts)


def scan_block(
    block: bytes, lines: int, layout: BlockLayout, plain_label: Callable[[str], bool]
) -> BlockSummary | None:
    """Summarise a block of whole lines (text already checked to be UTF-8), or None: validate it row by
    row. The block holds no header; its rows are the next ``lines`` (``lines_in(block)``) lines.
    ``plain_label(value)`` says whether a distinct label needs no row-by-row rule (else every target cell
    of the block comes back in ``TargetSummary.cells``)."""
    if layout.columns < 2 or not block or not _plain_text(block):
        return None  # a one-column file's blank line is a row to arrow and no row to csv
    parse, convert, names = layout.arrow_options()
    read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=max(len(block) + 1, 1 << 20))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(block), read_options=read, parse_options=parse, convert_options=convert
        )
    except pa.ArrowInvalid:
        return None  # a row with another number of columns, or a cell that is not a number
    rows = table.num_rows
    if rows != lines:
        return None  # blank lines
    may_hold_nan = b"n" in block or b"N" in block
    features = []
    for index in layout.features:
        summary = _feature(table.column(names[index]), may_hold_nan)
        if summary is None:
            return None
        features.append(summary)
    target = None
    if layout.target is not None:
        column = table.column(names[layout.target])
        target = _target(column, layout.numeric_target, may_hold_nan, plain_label)
        if target is None:
            return None
    return BlockSummary(rows, tuple(features), target)
