"""Streaming CSV validation against a tenant's contract and its tier's limits.

Reads an iterable of byte chunks once, in constant memory: it holds one line at a time (bounded by
``MAX_LINE_BYTES``) and fixed-size statistics per feature column, and never the dataset. Every problem is a
sentence naming the row (1-based data row, header excluded), the physical line and the column.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from math import isfinite
from typing import Any, Final, NoReturn, Protocol

from controlplane.tenants.model import ProblemType, TenantContract
from controlplane.uploads.content import SNIFF_BYTES, ContentError, binary_format, gunzip
from controlplane.uploads.fast_scan import BlockLayout, TargetSummary, lines_in, scan_block

MAX_REASONS: Final = 20
# Stop reading once this many row-level problems were seen: the verdict cannot change, only the time spent.
MAX_PROBLEMS: Final = 10_000
MAX_LINE_BYTES: Final = 1024 * 1024
# Whole lines handed to the fast path at a time: large enough that the native parser's per-call cost
# vanishes, small enough to keep memory constant (a few MiB however large the file).
BLOCK_BYTES: Final = 2 * 1024 * 1024
MAX_FEATURE_STATS: Final = 100
# Cells that mean "no value" (compared case-insensitively, after trimming spaces). NaN is not one: like
# infinity it is a non-finite number, an error unless the contract declares nonFiniteAsMissing.
MISSING_MARKERS: Final = frozenset({"", "na", "n/a", "null", "none"})
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
    target_values: tuple[str, ...] | None = None
    positive_class: str | None = None
    non_finite_as_missing: bool = False

    @classmethod
    def from_contract(cls, contract: TenantContract, *, max_bytes: int, tier: str) -> DatasetRules:
        features = tuple(contract.feature_columns) if contract.feature_columns is not None else None
        values = tuple(contract.target_values) if contract.target_values is not None else None
        return cls(
            contract.target_column,
            features,
            contract.problem_type,
            contract.min_rows,
            max_bytes,
            tier,
            values,
            contract.positive_class,
            contract.non_finite_as_missing,
        )

    @property
    def byte_limit(self) -> int:
        # No cap of S3's own below the tier's: above 5 GiB the validated version is copied in parts.
        return self.max_bytes


@dataclass(frozen=True, slots=True)
class ValidationReport:
    valid: bool
    reasons: tuple[str, ...]
    stats: dict[str, Any]


def version_gone_report() -> ValidationReport:
    """The verdict when the uploaded version was deleted before (or while) it was read."""
    return ValidationReport(
        False,
        ("the uploaded object version no longer exists (it was deleted before it could be validated)",),
        {"rows": 0, "columns": 0, "bytes": 0, "complete": False},
    )


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
    size_bytes: int,
    open_chunks: Callable[[], Iterable[bytes]],
    rules: DatasetRules,
    *,
    gzipped: bool = False,
) -> ValidationReport:
    """Check the declared size first (never opening the object when it is already too big), then stream.

    ``gzipped`` (a ``.csv.gz`` upload): the bytes are decompressed as they stream; the tier's limit then
    applies to the compressed upload (declared size) and to the CSV inside it (counted as it inflates).
    """
    problem = check_declared_size(size_bytes, rules)
    if problem is not None:
        return ValidationReport(False, (problem,), {"rows": 0, "columns": 0, "bytes": 0, "complete": False})
    chunks = open_chunks()
    if not gzipped:
        return validate_csv(chunks, rules)
    try:
        report = validate_csv(gunzip(chunks), rules)
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()
    report.stats["compressedBytes"] = size_bytes
    return report


def validate_csv(
    chunks: Iterable[bytes], rules: DatasetRules, *, fast: bool = True, block_bytes: int = BLOCK_BYTES
) -> ValidationReport:
    """Validate a CSV given as byte chunks. Closes ``chunks`` (if it can be closed) when done.

    ``fast=False`` validates every row with the row-by-row reader only: the reference the fast path is
    tested against (same reasons, row and line numbers and statistics), never slower to be right.
    """
    validator = _Validator(rules, fast=fast, block_bytes=block_bytes)
    try:
        return report_of(validator.run(chunks), rules)
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


def validate_range(
    chunks: Iterable[bytes],
    rules: DatasetRules,
    *,
    names: list[str] | None,
    start_offset: int,
    problem_budget: int | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Partial:
    """One range of a file split at line starts: the first (``names`` None: it reads the header, and
    the file's start) or a later one, given the header's column names. Rows and lines count from the
    range's start; byte offsets are the file's. Stops after ``problem_budget`` rows with the wrong number
    of columns (default MAX_PROBLEMS; what remains of it once the ranges before are counted).
    Closes ``chunks``."""
    validator = _Validator(
        rules, block_bytes=block_bytes, names=names, start_offset=start_offset, problem_budget=problem_budget
    )
    try:
        return validator.run(chunks)
    finally:
        close = getattr(chunks, "close", None)
        if callable(close):
            close()


def _shown(value: str) -> str:
    return repr(value if len(value) <= _SHOWN_VALUE_CHARS else value[:_SHOWN_VALUE_CHARS] + "…")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


@dataclass(frozen=True, slots=True)
class Fatal:
    """A problem that stops reading. ``line`` (when the reason names one) is kept apart from the text, so
    a run over a range of the file can have the lines before its range added: ``before + line + after``."""

    before: str
    line: int | None = None
    after: str = ""

    def shifted(self, lines: int) -> Fatal:
        return self if self.line is None else Fatal(self.before, self.line + lines, self.after)

    @property
    def reason(self) -> str:
        return self.before if self.line is None else f"{self.before}{self.line}{self.after}"


class _Stop(Exception):  # noqa: N818 - control flow, not an error
    """Reading must stop (a fatal problem was recorded)."""


def _until_broken(chunks: Iterable[bytes], broken: list[str]) -> Iterator[bytes]:
    """The chunks until their source says it cannot go on (ContentError): its reason lands in ``broken``."""
    try:
        yield from chunks
    except ContentError as error:
        broken.append(error.reason)


class _CsvReader(Protocol):
    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...


def _where(row: int, line: int) -> str:
    return f"row {row} (line {line})"


class CellKind(Enum):
    MISSING = "missing"
    NON_FINITE = "non-finite"  # NaN or infinity, however spelled ('nan', '-Infinity', '1e400')
    NUMBER = "number"
    TEXT = "text"


def classify(cell: str) -> CellKind:
    """One classification for every cell, feature or target (the pipeline's preprocess agrees)."""
    text = cell.strip()
    if text.lower() in MISSING_MARKERS:
        return CellKind.MISSING
    if "_" in text:  # float() accepts '1_000'; datasets must not
        return CellKind.TEXT
    try:
        number = float(text)
    except ValueError:
        return CellKind.TEXT
    return CellKind.NUMBER if isfinite(number) else CellKind.NON_FINITE


@dataclass(slots=True)
class Tally:
    """How many cells had a problem, and the first: (row, line, cell). Row and line numbers are the
    file's; a partial run over a range would add its offsets before merging."""

    count: int = 0
    first: tuple[int, int, str] | None = None

    def add(self, row: int, line: int, cell: str) -> None:
        self.count += 1
        if self.first is None:
            self.first = (row, line, cell)

    def where(self, *, with_value: bool = True) -> str:
        assert self.first is not None
        row, line, cell = self.first
        return f"{_where(row, line)}: {_shown(cell)}" if with_value else _where(row, line)

    def reason(self, subject: str, what: str, after: str = "", *, with_value: bool = True) -> list[str]:
        """'<subject> <what> in N rows, first at row R (line L): <cell><after>', when there were any."""
        if not self.count:
            return []
        where = self.where(with_value=with_value)
        return [f"{subject} {what} in {_plural(self.count, 'row')}, first at {where}{after}"]


@dataclass(slots=True)
class ColumnStats:
    name: str
    index: int
    non_finite_as_missing: bool = False
    minimum: float = math.inf
    maximum: float = -math.inf
    missing: int = 0
    bad: Tally = field(default_factory=Tally)
    non_finite: Tally = field(default_factory=Tally)

    def add_unusual(self, cell: str, row: int, line: int) -> None:
        """Cells that float() rejects or that it accepts but datasets must not contain (the hot path in
        _Validator._row handles plain numbers)."""
        kind = classify(cell)
        if kind is CellKind.NON_FINITE and self.non_finite_as_missing:
            kind = CellKind.MISSING
        if kind is CellKind.MISSING:
            self.missing += 1
        elif kind is CellKind.NON_FINITE:
            self.non_finite.add(row, line, cell)
        elif kind is CellKind.TEXT:
            self.bad.add(row, line, cell)
        else:
            number = float(cell)
            self.minimum = min(self.minimum, number)
            self.maximum = max(self.maximum, number)

    def problems(self) -> list[str]:
        name = f"column {self.name!r}"
        return self.bad.reason(name, "is not numeric") + self.non_finite.reason(
            name, "holds NaN or infinity", f"; {_NON_FINITE_HINT}"
        )

    def stats(self) -> dict[str, Any]:
        seen = self.minimum <= self.maximum
        return {
            "min": self.minimum if seen else None,
            "max": self.maximum if seen else None,
            "missing": self.missing,
        }


_NON_FINITE_HINT: Final = (
    "leave the cell empty for a missing value (or declare nonFiniteAsMissing in the contract)"
)


@dataclass(slots=True)
class Label:
    value: str
    row: int
    line: int
    number: bool


@dataclass(slots=True)
class TargetStats:
    name: str
    index: int
    numeric: bool
    allowed: tuple[str, ...] | None = None
    non_finite_as_missing: bool = False
    missing: Tally = field(default_factory=Tally)
    bad: Tally = field(default_factory=Tally)
    non_finite: Tally = field(default_factory=Tally)
    outside: Tally = field(default_factory=Tally)  # not one of the declared values
    distinct: list[Label] = field(default_factory=list)

    def add(self, cell: str, row: int, line: int) -> None:
        value = cell.strip()
        kind = classify(value)
        if kind is CellKind.NON_FINITE and self.non_finite_as_missing:
            kind = CellKind.MISSING
        if kind is CellKind.MISSING:
            self.missing.add(row, line, cell)
        elif kind is CellKind.NON_FINITE:
            self.non_finite.add(row, line, cell)
        elif self.numeric and kind is CellKind.TEXT:
            self.bad.add(row, line, cell)
        elif self.allowed is not None and value not in self.allowed:
            self.outside.add(row, line, cell)
        else:
            self._seen(value, row, line, kind is CellKind.NUMBER)

    def _seen(self, value: str, row: int, line: int, number: bool) -> None:
        # Three distinct labels are enough to know a binary target is wrong: keep memory constant.
        if len(self.distinct) < 3 and all(label.value != value for label in self.distinct):
            self.distinct.append(Label(value, row, line, number))

    def plain(self, value: str) -> bool:
        """A distinct value the fast path may count as it is: no rule needs its rows."""
        kind = classify(value)
        return (
            value == value.strip()
            and kind in (CellKind.NUMBER, CellKind.TEXT)
            and (self.allowed is None or value in self.allowed)
        )

    def merge_block(self, block: TargetSummary, first_row: int, first_line: int) -> None:
        """What the fast path found in a block whose rows follow row ``first_row`` (line ``first_line``)."""
        if block.cells is not None:
            for number, cell in enumerate(block.cells, start=1):
                self.add(cell or "", first_row + number, first_line + number)
            return
        if block.missing and block.first_missing is not None:
            if self.missing.first is None:
                offset = block.first_missing + 1
                self.missing.first = (first_row + offset, first_line + offset, "")
            self.missing.count += block.missing
        for value, index in block.uniques:
            self._seen(
                value, first_row + index + 1, first_line + index + 1, classify(value) is CellKind.NUMBER
            )

    def problems(self) -> list[str]:
        name = f"column {self.name!r} (the target)"
        declared = ", ".join(repr(value) for value in self.allowed or ())
        return (
            self.missing.reason(name, "has no value", with_value=False)
            + self.non_finite.reason(name, "holds NaN or infinity")
            + self.bad.reason(name, "is not numeric", "; regression needs numeric targets")
            + self.outside.reason(
                name, f"holds a value that is not one of the declared targetValues ({declared})"
            )
        )


class _Feed:
    """The lines of one block at a time for the row-by-row ``csv.reader`` (terminators kept, as the csv
    module expects); it asks ``_Validator`` for the next block whenever a record runs past the end of
    the current one (a quoted field with newlines). Lines are cut as they are read: a block is never
    held as a list of lines."""

    def __init__(self, validator: _Validator) -> None:
        self.validator = validator
        self.text = ""
        self.position = 0
        self.failure: Fatal | None = None  # raised once the valid lines before it were read
        self.block: _Block | None = None

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        while self.position >= len(self.text):
            if self.failure is not None:
                self.validator.fail(self.failure)
            block = self.validator.next_block()
            if block is None:
                raise StopIteration
            self.load(block)
        start = self.position
        end = self.text.find("\n", start) + 1 or len(self.text)
        self.position = end
        return self.text[start:end]

    @property
    def drained(self) -> bool:
        return self.position >= len(self.text) and self.failure is None

    def load(self, block: _Block) -> None:
        self.block = block
        self.text, self.failure = self.validator.decode(block)
        self.position = 0

    def take_rest(self) -> _Block | None:
        """The lines not read yet, as a block of their own (once, after the header)."""
        block = self.block
        if block is None or self.drained or self.failure is not None:
            return None
        read = self.text[: self.position]
        consumed = len(read.encode("utf-8"))
        done = read.count("\n")
        rest = _Block(block.data[consumed:], block.offset + consumed, block.line + done, block.lines - done)
        self.text, self.position = "", 0
        return rest


@dataclass(frozen=True, slots=True)
class _Block:
    """Whole lines of the file (the last block may end without a terminator), at byte ``offset``; its
    first line is line ``line + 1`` of the file (BOM excluded from neither: offsets count it)."""

    data: bytes
    offset: int
    line: int
    lines: int


class _Validator:
    """One pass over the file, or over one range of it (``names``: the header's column names, read from
    the file's first line by whoever split it; the range holds no header and starts at byte
    ``start_offset``, a line start; its rows and lines are counted from its own start)."""

    def __init__(
        self,
        rules: DatasetRules,
        *,
        fast: bool = True,
        block_bytes: int = BLOCK_BYTES,
        names: list[str] | None = None,
        start_offset: int = 0,
        problem_budget: int | None = None,
    ) -> None:
        self.rules = rules
        self.fast = fast
        self.block_bytes = block_bytes
        self.names = names
        self.start_offset = start_offset
        self.problem_budget = MAX_PROBLEMS if problem_budget is None else problem_budget
        self.open_quote = False  # the input ended inside a quoted field
        self.fatal: list[Fatal] = []
        self.header_problems: list[str] = []
        # (row, line, columns found) of the first MAX_REASONS rows with the wrong number of columns:
        # numbers, not text, so a partial run's can be shifted by the rows and lines before its range.
        self.row_problems: list[tuple[int, int, int]] = []
        self.row_problem_count = 0
        self.stopped_early = False
        self.bytes_read = 0
        self.lines_read = 0  # lines handed out in blocks so far
        self.lines_done = 0  # lines validated so far (by either path)
        self.fast_lines = 0  # lines the fast path validated: the csv reader's line_num does not count them
        self.bom = False
        self.bom_offset = 0
        self.rows = 0
        self.blank_lines = 0
        self.columns = 0
        self.target: TargetStats | None = None
        self.features: list[ColumnStats] = []
        self.layout: BlockLayout | None = None
        self._blocks: Iterator[_Block] = iter(())

    # ---------------------------------------------------------------- reading
    def _check_start(self, data: bytes) -> bytes:
        """Name a binary format by its first bytes; handle a byte order mark at the very start."""
        if data.startswith(_UTF16_BOMS):
            self.fail("the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)")
        binary = binary_format(data)
        if binary is not None:
            self.fail(binary)
        if data.startswith(_UTF8_BOM):
            self.bom = True  # Spreadsheet programs write one; it is not part of the first column name.
            self.bom_offset = len(_UTF8_BOM)
            return data[len(_UTF8_BOM) :]
        return data

    def decode(self, block: _Block) -> tuple[str, Fatal | None]:
        """The block's text, or the text of its lines before the first invalid UTF-8 and the reason that
        stops reading there (raised once those lines were validated: the verdict does not depend on how
        the bytes were chunked)."""
        raw = block.data
        try:
            return raw.decode("utf-8"), None
        except UnicodeDecodeError as error:
            line_start = raw.rfind(b"\n", 0, error.start) + 1
            line = block.line + raw.count(b"\n", 0, error.start) + 1
            column = len(raw[line_start : error.start].decode("utf-8", errors="replace")) + 1
            reason = Fatal(
                "line ",
                line,
                f" is not valid UTF-8: byte 0x{raw[error.start]:02x} at byte offset "
                f"{block.offset + error.start} (character {column} of the line); save the file as UTF-8",
            )
            return raw[:line_start].decode("utf-8"), reason

    def _read(self, chunks: Iterable[bytes]) -> Iterator[_Block]:
        """Cut byte chunks into blocks of whole lines of at least ``block_bytes`` (fewer for the last).

        Splitting on b'\\n' before decoding is safe: in UTF-8 that byte never occurs inside a multi-byte
        character. The size limit and the line length are checked chunk by chunk, as the bytes arrive.
        """
        parts: list[bytes] = []
        buffered = 0
        partial = 0  # bytes since the last newline
        offset = self.start_offset  # absolute offset of the first buffered byte
        limit = self.rules.byte_limit
        started = self.names is not None  # only the file's start may hold a BOM or a binary signature
        pending = b""
        broken: list[str] = []
        for raw in _until_broken(chunks, broken):
            if not raw:
                continue
            chunk = raw
            self.bytes_read += len(chunk)
            if self.bytes_read > limit:
                yield from self._flush(parts, offset, whole_lines=True)
                self.fail(
                    f"the file is larger than the {self.rules.tier} tier allows ({format_bytes(limit)}); "
                    f"reading stopped after {self.bytes_read} bytes"
                )
            if not started:
                pending += chunk
                if len(pending) < SNIFF_BYTES:
                    continue  # Too short to tell a byte order mark or a binary signature.
                started = True
                chunk = self._check_start(pending)
                offset = self.bom_offset
            newline = chunk.rfind(b"\n")
            partial = partial + len(chunk) if newline < 0 else len(chunk) - newline - 1
            parts.append(chunk)
            buffered += len(chunk)
            if partial > MAX_LINE_BYTES:
                yield from self._flush(parts, offset, whole_lines=True)
                self.fail(
                    Fatal(
                        "line ",
                        self.lines_read + 1,
                        f" is longer than {format_bytes(MAX_LINE_BYTES)}; "
                        "is this a CSV file with one record per line?",
                    )
                )
            if buffered - partial >= self.block_bytes:
                data = b"".join(parts)
                end = len(data) - partial
                yield self._emit(data[:end], offset)
                offset += end
                parts, buffered = ([data[end:]], partial) if partial else ([], 0)
        if not started and pending:
            parts, offset = [self._check_start(pending)], self.bom_offset
        # Bytes that cannot be read on (a truncated or corrupt .csv.gz): the whole lines before are checked.
        yield from self._flush(parts, offset, whole_lines=bool(broken))
        if broken:
            self.fail(broken[0])

    def _flush(self, parts: list[bytes], offset: int, *, whole_lines: bool) -> Iterator[_Block]:
        data = b"".join(parts)
        if whole_lines:
            data = data[: data.rfind(b"\n") + 1]
        if data:
            yield self._emit(data, offset)

    def _emit(self, data: bytes, offset: int) -> _Block:
        block = _Block(data, offset, self.lines_read, lines_in(data))
        self.lines_read += block.lines
        return block

    def next_block(self) -> _Block | None:
        return next(self._blocks, None)

    def fail(self, reason: str | Fatal) -> NoReturn:
        self.fatal.append(reason if isinstance(reason, Fatal) else Fatal(reason))
        self.stopped_early = True
        raise _Stop

    def _row_problem(self, row: int, line: int, columns: int) -> None:
        self.row_problem_count += 1
        if len(self.row_problems) < MAX_REASONS:
            self.row_problems.append((row, line, columns))

    # ---------------------------------------------------------------- checks
    def run(self, chunks: Iterable[bytes]) -> Partial:
        self._blocks = self._read(chunks)
        feed = _Feed(self)
        reader = csv.reader(feed, strict=True)
        try:
            if self.names is not None:
                self._header(self.names)
                self.header_problems = []  # the first range's to report
            else:
                header = next(reader, None)
                if header is None:
                    self.fail(
                        "the file contains nothing but a UTF-8 byte order mark"
                        if self.bom
                        else "the file is empty"
                    )
                self._header(header)
                self.lines_done = reader.line_num
            self._body(feed, reader)
        except csv.Error as error:
            line = reader.line_num + self.fast_lines
            self.fatal.append(Fatal("line ", line, f" is not well-formed CSV: {error}"))
            self.stopped_early = True
            # At the end of the input inside a quoted field: where a range ends, the field may go on in
            # the next range (a quoted newline), so a split there is ambiguous.
            self.open_quote = str(error) == "unexpected end of data" and feed.drained
        except _Stop:
            pass
        finally:
            self._blocks = iter(())
        return self._partial()

    def _partial(self) -> Partial:
        return Partial(
            fatal=self.fatal,
            header_problems=self.header_problems,
            columns=self.columns,
            target=self.target,
            features=self.features,
            row_problems=self.row_problems,
            row_problem_count=self.row_problem_count,
            rows=self.rows,
            lines=self.lines_read,
            blank_lines=self.blank_lines,
            bytes_read=self.bytes_read,
            bom=self.bom,
            stopped_early=self.stopped_early,
            open_quote=self.open_quote,
            problem_budget=self.problem_budget,
        )

    def _body(self, feed: _Feed, reader: _CsvReader) -> None:
        """Row by row through ``reader``, except that every block starting at a record boundary is first
        offered to the fast path (and, once, the rest of the header's block)."""
        current = None
        if self.fast and self.columns > 1:
            self.layout = BlockLayout(
                self.columns,
                tuple(column.index for column in self.features),
                self.target.index if self.target is not None else None,
                self.rules.problem_type is ProblemType.REGRESSION,
            )
            current = feed.take_rest()
        while True:
            if current is not None and self._fast(current):
                self.fast_lines += current.lines
                current = None
                continue
            if current is not None:
                feed.load(current)
                current = None
            if feed.drained and self.layout is not None:
                current = self.next_block()
                if current is None:
                    return
                continue
            try:
                row = next(reader)
            except StopIteration:
                return
            self.lines_done = reader.line_num + self.fast_lines
            self._row(row, self.lines_done)
            if self.row_problem_count >= self.problem_budget:
                self.stopped_early = True
                return

    def _fast(self, block: _Block) -> bool:
        """Validate a block with the native parser, or say it must go row by row."""
        data = block.data
        if self.layout is None or not data or (not data.isascii() and self.decode(block)[1] is not None):
            return False
        plain = self.target.plain if self.target is not None else str.isascii
        summary = scan_block(data, block.lines, self.layout, plain)
        if summary is None:
            return False
        first_row, first_line = self.rows, self.lines_done
        for column, found in zip(self.features, summary.features, strict=True):
            column.missing += found.missing
            column.minimum = min(column.minimum, found.minimum)
            column.maximum = max(column.maximum, found.maximum)
        if self.target is not None and summary.target is not None:
            self.target.merge_block(summary.target, first_row, first_line)
        self.rows += summary.rows
        self.lines_done += summary.rows
        return True

    def _header(self, names: list[str]) -> None:
        if not names or all(not name.strip() for name in names):
            self.fail("line 1 is blank; the first line must be the header with the column names")
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
        if all(classify(name) is CellKind.NUMBER for name in names):
            self.header_problems.append(
                "the first line holds numbers, not column names: the file needs a header line"
            )

        target = self.rules.target_column
        if target in positions:
            self.target = TargetStats(
                target,
                names.index(target),
                numeric=self.rules.problem_type is ProblemType.REGRESSION,
                allowed=self.rules.target_values,
                non_finite_as_missing=self.rules.non_finite_as_missing,
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
                self.features.append(ColumnStats(name, names.index(name), self.rules.non_finite_as_missing))

    def _row(self, row: list[str], line: int) -> None:
        if not row:
            self.blank_lines += 1  # csv yields [] for an empty line; pandas and SageMaker skip them too.
            return
        self.rows += 1
        if len(row) != self.columns:
            self._row_problem(self.rows, line, len(row))
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
            if number < column.minimum:  # noqa: PLR1730 - cheaper than min() in the hot loop
                column.minimum = number
            if number > column.maximum:  # noqa: PLR1730
                column.maximum = number

    # ---------------------------------------------------------------- verdict


@dataclass(slots=True)
class Partial:
    """Everything a run found, in the numbers its report is made from: a run over the whole file, or over
    one range of it, whose row and line numbers count from the range's start (``controlplane.uploads.
    parallel.merge`` adds the rows and lines of the ranges before, then reports as one run would)."""

    fatal: list[Fatal]
    header_problems: list[str]
    columns: int
    target: TargetStats | None
    features: list[ColumnStats]
    row_problems: list[tuple[int, int, int]]
    row_problem_count: int
    rows: int
    lines: int  # physical lines read (a range's whole lines, when it ran to its end)
    blank_lines: int
    bytes_read: int
    bom: bool
    stopped_early: bool
    open_quote: bool = False  # the input ended inside a quoted field
    problem_budget: int = MAX_PROBLEMS  # the run stopped once it had seen this many rows of wrong width


def report_of(partial: Partial, rules: DatasetRules) -> ValidationReport:
    """The verdict: the one place reasons are ordered, counted and cut to ``MAX_REASONS``."""
    problems = (
        [fatal.reason for fatal in partial.fatal]
        + partial.header_problems
        + _column_problems(partial)
        + [
            f"{_where(row, line)} has {_plural(found, 'column')}; the header has {partial.columns}"
            for row, line, found in partial.row_problems
        ]
        + _final_problems(partial, rules)
    )
    total = len(problems) + (partial.row_problem_count - len(partial.row_problems))
    reasons = problems[:MAX_REASONS]
    if total > len(reasons):
        more = total - len(reasons)
        if partial.row_problem_count >= MAX_PROBLEMS:
            reasons.append(f"... and at least {more} more problems (validation stopped after {MAX_PROBLEMS})")
        else:
            reasons.append(f"... and {more} more problem{'s' if more > 1 else ''}")
    return ValidationReport(valid=total == 0, reasons=tuple(reasons), stats=_stats(partial, rules))


def _column_problems(partial: Partial) -> list[str]:
    problems = partial.target.problems() if partial.target is not None else []
    for column in partial.features:
        problems.extend(column.problems())
    return problems


def _final_problems(partial: Partial, rules: DatasetRules) -> list[str]:
    if partial.stopped_early or partial.columns == 0:
        return []
    if partial.rows == 0:
        return ["the file has a header but no data rows"]
    problems = []
    if partial.rows < rules.min_rows:
        problems.append(
            f"the file has {_plural(partial.rows, 'data row')}; "
            f"the contract requires at least {rules.min_rows}"
        )
    if partial.target is not None and rules.problem_type is ProblemType.BINARY_CLASSIFICATION:
        problems.extend(_class_problems(partial.target, rules))
    return problems


def _class_problems(target: TargetStats, rules: DatasetRules) -> list[str]:
    name = f"column {target.name!r} (the target)"
    labels = ", ".join(repr(label.value) for label in target.distinct)
    if len(target.distinct) > 2:
        return [
            f"{name} has more than two distinct values ({labels}, ...); "
            "binary classification needs exactly two"
        ]
    if len(target.distinct) == 1:
        return [f"{name} has a single value ({labels}); binary classification needs two classes"]
    problems = []
    kinds = {label.number for label in target.distinct}
    if len(kinds) == 2 and rules.target_values is None:
        # '1' and 'yes' are two classes only by accident: usually a mistyped label. Declared, it is fine.
        number, word = sorted(target.distinct, key=lambda label: not label.number)
        problems.append(
            f"{name} mixes a number and a word: {number.value!r} (first at "
            f"{_where(number.row, number.line)}) and {word.value!r} (first at "
            f"{_where(word.row, word.line)}); declare targetValues in the contract if both are labels"
        )
    positive = rules.positive_class
    if (
        positive is not None
        and target.distinct
        and positive not in (label.value for label in target.distinct)
    ):
        problems.append(f"the positive class {positive!r} does not occur in {name} (its values: {labels})")
    return problems


def _stats(partial: Partial, rules: DatasetRules) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "rows": partial.rows,
        "columns": partial.columns,
        "bytes": partial.bytes_read,
        "blankLines": partial.blank_lines,
        "utf8Bom": partial.bom,
        "complete": not partial.stopped_early,
    }
    if partial.target is not None:
        target: dict[str, Any] = {"column": partial.target.name, "missing": partial.target.missing.count}
        if rules.problem_type is ProblemType.BINARY_CLASSIFICATION:
            target["distinctValues"] = [label.value for label in partial.target.distinct]
        stats["target"] = target
    # Bounded so the job item (400 KB) and the state payload (256 KB) stay small for wide datasets.
    shown = partial.features[:MAX_FEATURE_STATS]
    stats["features"] = {column.name: column.stats() for column in shown}
    if len(partial.features) > len(shown):
        stats["featuresOmitted"] = len(partial.features) - len(shown)
    return stats
