"""The validator as it was before the fast path (commit 3e0d68d), kept verbatim as the reference that the
fast path is tested against (tests/unit/test_validation_equivalence.py). Not used by the product."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from math import isfinite
from typing import Any, Final, NoReturn

from controlplane.tenants.model import ProblemType, TenantContract

MAX_REASONS: Final = 20
# Stop reading once this many row-level problems were seen: the verdict cannot change, only the time spent.
MAX_PROBLEMS: Final = 10_000
MAX_LINE_BYTES: Final = 1024 * 1024
MAX_FEATURE_STATS: Final = 100
# CopyObject copies at most 5 GiB in one request; the validated version is copied in one request.
MAX_SINGLE_COPY_BYTES: Final = 5 * 1024**3
# Cells that mean "no value" (compared case-insensitively, after trimming spaces).
MISSING_MARKERS: Final = frozenset({"", "na", "n/a", "nan", "null", "none"})
_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_SHOWN_VALUE_CHARS: Final = 40


@dataclass(frozen=True, slots=True)
class DatasetRules:
    target_column: str
    feature_columns: tuple[str, ...] | None
    problem_type: ProblemType
    min_rows: int
    max_bytes: int
    tier: str

    @classmethod
    def from_contract(cls, contract: TenantContract, *, max_bytes: int, tier: str) -> DatasetRules:
        features = tuple(contract.feature_columns) if contract.feature_columns is not None else None
        return cls(
            contract.target_column, features, contract.problem_type, contract.min_rows, max_bytes, tier
        )

    @property
    def byte_limit(self) -> int:
        return min(self.max_bytes, MAX_SINGLE_COPY_BYTES)


@dataclass(frozen=True, slots=True)
class ValidationReport:
    valid: bool
    reasons: tuple[str, ...]
    stats: dict[str, Any]


def format_bytes(size: int) -> str:
    value = float(size)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} bytes" if unit == "bytes" else f"{value:.1f} {unit} ({size} bytes)"
        value /= 1024
    raise AssertionError("unreachable")


def check_declared_size(size_bytes: int, rules: DatasetRules) -> str | None:
    """The size S3 reported, checked before a byte is read."""
    if size_bytes == 0:
        return "the file is empty"
    if size_bytes > rules.byte_limit:
        return (
            f"the file is {format_bytes(size_bytes)}; "
            f"the {rules.tier} tier allows at most {format_bytes(rules.byte_limit)}"
        )
    return None


def validate_upload(
    size_bytes: int, open_chunks: Callable[[], Iterable[bytes]], rules: DatasetRules
) -> ValidationReport:
    """Check the declared size first (never opening the object when it is already too big), then stream."""
    problem = check_declared_size(size_bytes, rules)
    if problem is not None:
        return ValidationReport(False, (problem,), {"rows": 0, "columns": 0, "bytes": 0, "complete": False})
    return validate_csv(open_chunks(), rules)


def validate_csv(chunks: Iterable[bytes], rules: DatasetRules) -> ValidationReport:
    """Validate a CSV given as byte chunks. Closes ``chunks`` (if it can be closed) when done."""
    validator = _Validator(rules)
    try:
        return validator.run(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


def _to_number(text: str) -> float | None:
    """A finite number, or None. Python's float() also accepts '1_000' and 'inf'; datasets must not."""
    if "_" in text:
        return None
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _is_missing(cell: str) -> bool:
    return cell.strip().lower() in MISSING_MARKERS


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN_VALUE_CHARS else value[:_SHOWN_VALUE_CHARS] + "…")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Reading must stop (a fatal problem was recorded)."""


def _where(row: int, line: int) -> str:
    return f"row {row} (line {line})"


@dataclass(slots=True)
class _ColumnStats:
    name: str
    index: int
    minimum: float = math.inf
    maximum: float = -math.inf
    missing: int = 0
    bad: int = 0
    first_bad: str = ""

    def add_unusual(self, cell: str, row: int, line: int) -> None:
        """Cells that float() rejects or that it accepts but datasets must not contain (the hot path in
        _Validator._row handles plain numbers)."""
        if _is_missing(cell):
            self.missing += 1
            return
        number = _to_number(cell)
        if number is None:
            self.bad += 1
            if self.bad == 1:
                self.first_bad = f"{_where(row, line)}: {_shown(cell)}"
            return
        self.minimum = min(self.minimum, number)
        self.maximum = max(self.maximum, number)

    def stats(self) -> dict[str, Any]:
        seen = self.minimum <= self.maximum
        return {
            "min": self.minimum if seen else None,
            "max": self.maximum if seen else None,
            "missing": self.missing,
        }


@dataclass(slots=True)
class _Target:
    name: str
    index: int
    numeric: bool
    missing: int = 0
    first_missing: str = ""
    bad: int = 0
    first_bad: str = ""
    distinct: list[str] = field(default_factory=list)

    def add(self, cell: str, row: int, line: int) -> None:
        value = cell.strip()
        if _is_missing(value):
            self.missing += 1
            if self.missing == 1:
                self.first_missing = _where(row, line)
            return
        if self.numeric and _to_number(value) is None:
            self.bad += 1
            if self.bad == 1:
                self.first_bad = f"{_where(row, line)}: {_shown(cell)}"
            return
        # Three distinct labels are enough to know a binary target is wrong: keep memory constant.
        if len(self.distinct) < 3 and value not in self.distinct:
            self.distinct.append(value)


class _Validator:
    def __init__(self, rules: DatasetRules) -> None:
        self.rules = rules
        self.fatal: list[str] = []
        self.header_problems: list[str] = []
        self.row_problems: list[str] = []
        self.row_problem_count = 0
        self.stopped_early = False
        self.bytes_read = 0
        self.lines_read = 0
        self.bom = False
        self.bom_offset = 0
        self.rows = 0
        self.blank_lines = 0
        self.columns = 0
        self.target: _Target | None = None
        self.features: list[_ColumnStats] = []

    # ---------------------------------------------------------------- reading
    def _check_start(self, data: bytes) -> bytes:
        """Handle a byte order mark at the very start of the file."""
        if data.startswith(_UTF16_BOMS):
            self._fail("the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)")
        if data.startswith(_UTF8_BOM):
            self.bom = True  # Spreadsheet programs write one; it is not part of the first column name.
            self.bom_offset = len(_UTF8_BOM)
            return data[len(_UTF8_BOM) :]
        return data

    def _decode(self, raw: bytes, offset: int) -> str:
        """Decode whole lines at once; on failure, say on which line, at which byte and character."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            line_start = raw.rfind(b"\n", 0, error.start) + 1
            line = self.lines_read + raw.count(b"\n", 0, error.start) + 1
            column = len(raw[line_start : error.start].decode("utf-8", errors="replace")) + 1
            self._fail(
                f"line {line} is not valid UTF-8: byte 0x{raw[error.start]:02x} at byte offset "
                f"{offset + error.start} (character {column} of the line); save the file as UTF-8"
            )

    def _lines(self, chunks: Iterable[bytes]) -> Iterator[str]:
        """Split byte chunks into decoded lines (terminators kept, as the csv module expects).

        The complete lines of each chunk are decoded in one call. Splitting on b'\\n' before decoding is
        safe: in UTF-8 that byte never occurs inside a multi-byte character.
        """
        pending = b""
        offset = 0  # absolute offset of pending[0] in the file
        limit = self.rules.byte_limit
        started = False
        for chunk in chunks:
            if not chunk:
                continue
            self.bytes_read += len(chunk)
            if self.bytes_read > limit:
                self._fail(
                    f"the file is larger than the {self.rules.tier} tier allows ({format_bytes(limit)}); "
                    f"reading stopped after {self.bytes_read} bytes"
                )
            data = pending + chunk if pending else chunk
            if not started:
                if len(data) < len(_UTF8_BOM) and _UTF8_BOM.startswith(data):
                    pending = data  # Too short to tell whether a byte order mark starts here.
                    continue
                started = True
                data = self._check_start(data)
                offset = self.bom_offset
            end = data.rfind(b"\n") + 1
            if end:
                text = self._decode(data[:end], offset)
                lines = text.split("\n")
                lines.pop()  # empty: the text ends with the terminator
                for line in lines:
                    self.lines_read += 1
                    yield line + "\n"
            pending = data[end:]
            offset += end
            if len(pending) > MAX_LINE_BYTES:
                self._fail(
                    f"line {self.lines_read + 1} is longer than {format_bytes(MAX_LINE_BYTES)}; "
                    "is this a CSV file with one record per line?"
                )
        if not started and pending:
            pending = self._check_start(pending)
            offset = self.bom_offset
        if pending:
            text = self._decode(pending, offset)
            self.lines_read += 1
            yield text

    def _fail(self, reason: str) -> NoReturn:
        self.fatal.append(reason)
        self.stopped_early = True
        raise _Stop

    def _row_problem(self, reason: str) -> None:
        self.row_problem_count += 1
        if len(self.row_problems) < MAX_REASONS:
            self.row_problems.append(reason)

    # ---------------------------------------------------------------- checks
    def run(self, chunks: Iterable[bytes]) -> ValidationReport:
        reader = csv.reader(self._lines(chunks), strict=True)
        try:
            header = next(reader, None)
            if header is None:
                self._fail(
                    "the file contains nothing but a UTF-8 byte order mark"
                    if self.bom
                    else "the file is empty"
                )
            self._header(header)
            for row in reader:
                self._row(row, reader.line_num)
                if self.row_problem_count >= MAX_PROBLEMS:
                    self.stopped_early = True
                    break
        except csv.Error as error:
            self.fatal.append(f"line {reader.line_num} is not well-formed CSV: {error}")
            self.stopped_early = True
        except _Stop:
            pass
        return self._report()

    def _header(self, names: list[str]) -> None:
        if not names or all(not name.strip() for name in names):
            self._fail("line 1 is blank; the first line must be the header with the column names")
        self.columns = len(names)
        positions: dict[str, list[int]] = {}
        for number, name in enumerate(names, start=1):
            if not name.strip():
                self.header_problems.append(f"column {number} has no name in the header (line 1)")
            positions.setdefault(name, []).append(number)
        for name, numbers in positions.items():
            if name.strip() and len(numbers) > 1:
                columns = ", ".join(str(number) for number in numbers)
                self.header_problems.append(
                    f"the column name {name!r} appears more than once in the header (columns {columns})"
                )
        if len(names) == 1:
            for delimiter, label in ((";", "';'"), ("\t", "tabs"), ("|", "'|'")):
                if delimiter in names[0]:
                    self.header_problems.append(
                        f"the header has a single column and contains {label}; "
                        "columns must be separated by ','"
                    )
                    break
        if all(_to_number(name) is not None for name in names):
            self.header_problems.append(
                "the first line holds numbers, not column names: the file needs a header line"
            )

        target = self.rules.target_column
        if target in positions:
            self.target = _Target(
                target, names.index(target), numeric=self.rules.problem_type is ProblemType.REGRESSION
            )
        else:
            near = [name for name in names if name.strip().lower() == target.lower()]
            hint = f" (the header has {near[0]!r}; names must match exactly)" if near else ""
            self.header_problems.append(f"the target column {target!r} is missing from the header{hint}")

        if self.rules.feature_columns is not None:
            absent = [name for name in self.rules.feature_columns if name not in positions]
            if absent:
                listed = ", ".join(repr(name) for name in absent)
                self.header_problems.append(
                    f"the feature column{'s' if len(absent) > 1 else ''} {listed} "
                    f"{'are' if len(absent) > 1 else 'is'} missing from the header"
                )
            wanted = [name for name in self.rules.feature_columns if name in positions]
        else:
            wanted = [name for name in names if name != target and name.strip()]
        seen: set[str] = set()
        for name in wanted:
            if name not in seen:
                seen.add(name)
                self.features.append(_ColumnStats(name, names.index(name)))

    def _row(self, row: list[str], line: int) -> None:
        if not row:
            self.blank_lines += 1  # csv yields [] for an empty line; pandas and SageMaker skip them too.
            return
        self.rows += 1
        if len(row) != self.columns:
            self._row_problem(
                f"{_where(self.rows, line)} has {_plural(len(row), 'column')}; the header has {self.columns}"
            )
            return
        if self.target is not None:
            self.target.add(row[self.target.index], self.rows, line)
        # The hot loop: every cell of every feature. Plain numbers take the inlined path; anything float()
        # rejects (blank, text) or accepts but must not pass (nan, inf, "1_000") goes the slow way.
        for column in self.features:
            cell = row[column.index]
            try:
                number = float(cell)
            except ValueError:
                column.add_unusual(cell, self.rows, line)
                continue
            if not isfinite(number) or "_" in cell:
                column.add_unusual(cell, self.rows, line)
                continue
            if number < column.minimum:
                column.minimum = number
            if number > column.maximum:
                column.maximum = number

    # ---------------------------------------------------------------- verdict
    def _column_problems(self) -> list[str]:
        problems = []
        target = self.target
        if target is not None:
            if target.missing:
                problems.append(
                    f"column {target.name!r} (the target) has no value in {_plural(target.missing, 'row')}, "
                    f"first at {target.first_missing}"
                )
            if target.bad:
                problems.append(
                    f"column {target.name!r} (the target) is not numeric in {_plural(target.bad, 'row')}, "
                    f"first at {target.first_bad}; regression needs numeric targets"
                )
        for column in self.features:
            if column.bad:
                problems.append(
                    f"column {column.name!r} is not numeric in {_plural(column.bad, 'row')}, "
                    f"first at {column.first_bad}"
                )
        return problems

    def _final_problems(self) -> list[str]:
        if self.stopped_early or self.columns == 0:
            return []
        if self.rows == 0:
            return ["the file has a header but no data rows"]
        problems = []
        if self.rows < self.rules.min_rows:
            problems.append(
                f"the file has {_plural(self.rows, 'data row')}; "
                f"the contract requires at least {self.rules.min_rows}"
            )
        target = self.target
        if target is not None and self.rules.problem_type is ProblemType.BINARY_CLASSIFICATION:
            labels = ", ".join(repr(value) for value in target.distinct)
            if len(target.distinct) > 2:
                problems.append(
                    f"column {target.name!r} (the target) has more than two distinct values ({labels}, ...); "
                    "binary classification needs exactly two"
                )
            elif len(target.distinct) == 1:
                problems.append(
                    f"column {target.name!r} (the target) has a single value ({labels}); "
                    "binary classification needs two classes"
                )
        return problems

    def _report(self) -> ValidationReport:
        problems = (
            self.fatal
            + self.header_problems
            + self._column_problems()
            + self.row_problems
            + self._final_problems()
        )
        total = len(problems) + (self.row_problem_count - len(self.row_problems))
        reasons = problems[:MAX_REASONS]
        if total > len(reasons):
            more = total - len(reasons)
            if self.row_problem_count >= MAX_PROBLEMS:
                reasons.append(
                    f"... and at least {more} more problems (validation stopped after {MAX_PROBLEMS})"
                )
            else:
                reasons.append(f"... and {more} more problem{'s' if more > 1 else ''}")
        return ValidationReport(valid=total == 0, reasons=tuple(reasons), stats=self._stats())

    def _stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {
            "rows": self.rows,
            "columns": self.columns,
            "bytes": self.bytes_read,
            "blankLines": self.blank_lines,
            "utf8Bom": self.bom,
            "complete": not self.stopped_early,
        }
        if self.target is not None:
            target: dict[str, Any] = {"column": self.target.name, "missing": self.target.missing}
            if self.rules.problem_type is ProblemType.BINARY_CLASSIFICATION:
                target["distinctValues"] = list(self.target.distinct)
            stats["target"] = target
        # Bounded so the job item (400 KB) and the state payload (256 KB) stay small for wide datasets.
        shown = self.features[:MAX_FEATURE_STATS]
        stats["features"] = {column.name: column.stats() for column in shown}
        if len(self.features) > len(shown):
            stats["featuresOmitted"] = len(self.features) - len(shown)
        return stats
