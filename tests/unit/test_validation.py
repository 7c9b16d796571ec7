from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Iterator

import pytest

from controlplane.tenants.model import ProblemType, TenantContract
from controlplane.uploads.validation import (
    MAX_REASONS,
    DatasetRules,
    ValidationReport,
    check_declared_size,
    format_bytes,
    validate_csv,
    validate_upload,
)

GOOD = b"age,income,churned\n34,52000.5,1\n41,61000,0\n29,,1\n"


def rules(**overrides: object) -> DatasetRules:
    values: dict[str, object] = {
        "target_column": "churned",
        "feature_columns": None,
        "problem_type": ProblemType.BINARY_CLASSIFICATION,
        "min_rows": 3,
        "max_bytes": 10 * 1024 * 1024,
        "tier": "basic",
    } | overrides
    return DatasetRules(**values)  # type: ignore[arg-type]


def run(data: bytes, chunk: int = 7, **overrides: object) -> ValidationReport:
    """Feed ``data`` in small chunks so that lines, multi-byte characters and the BOM straddle chunks."""
    return validate_csv((data[i : i + chunk] for i in range(0, len(data), chunk)), rules(**overrides))


def only_reason(report: ValidationReport) -> str:
    assert not report.valid
    assert len(report.reasons) == 1, report.reasons
    return report.reasons[0]


def test_valid_dataset_with_stats() -> None:
    report = run(GOOD)
    assert report.valid, report.reasons
    assert report.reasons == ()
    assert report.stats["rows"] == 3
    assert report.stats["columns"] == 3
    assert report.stats["bytes"] == len(GOOD)
    assert report.stats["complete"] is True
    assert report.stats["features"] == {
        "age": {"min": 29.0, "max": 41.0, "missing": 0},
        "income": {"min": 52000.5, "max": 61000.0, "missing": 1},
    }
    assert report.stats["target"] == {"column": "churned", "missing": 0, "distinctValues": ["1", "0"]}


@pytest.mark.parametrize("chunk", [1, 2, 3, 64 * 1024])
def test_chunk_boundaries_do_not_matter(chunk: int) -> None:
    data = '\ufeffâge,revenu €,churned\r\n34,1.5e3,1\r\n41,"2,5",0\r\n29,3,1\r\n'.encode()
    report = run(data, chunk=chunk)
    assert not report.valid
    assert report.reasons == ("column 'revenu €' is not numeric in 1 row, first at row 2 (line 3): '2,5'",)
    assert report.stats["utf8Bom"] is True
    assert "âge" in report.stats["features"]


def test_bom_is_not_part_of_the_first_column_name() -> None:
    report = run(b"\xef\xbb\xbfchurned,age\n1,3\n0,4\n1,5\n")
    assert report.valid, report.reasons
    assert report.stats["utf8Bom"] is True


def test_empty_file() -> None:
    assert only_reason(run(b"")) == "the file is empty"


def test_only_a_bom() -> None:
    assert only_reason(run(b"\xef\xbb\xbf")) == "the file contains nothing but a UTF-8 byte order mark"


def test_header_only() -> None:
    assert only_reason(run(b"age,churned\n")) == "the file has a header but no data rows"


def test_blank_first_line() -> None:
    assert "line 1 is blank" in only_reason(run(b"\nage,churned\n1,0\n"))


def test_too_few_rows() -> None:
    assert only_reason(run(b"age,churned\n1,0\n2,1\n")) == (
        "the file has 2 data rows; the contract requires at least 3"
    )


def test_blank_lines_are_skipped_and_counted() -> None:
    report = run(b"age,churned\n1,0\n\n2,1\n3,1\n\n")
    assert report.valid, report.reasons
    assert report.stats["blankLines"] == 2


def test_missing_target_column_with_a_near_match_hint() -> None:
    assert only_reason(run(b"age, Churned\n1,0\n2,1\n3,1\n")) == (
        "the target column 'churned' is missing from the header "
        "(the header has ' Churned'; names must match exactly)"
    )


def test_missing_declared_features() -> None:
    reason = only_reason(run(GOOD, feature_columns=("age", "tenure", "plan")))
    assert reason == "the feature columns 'tenure', 'plan' are missing from the header"


def test_declared_features_limit_the_numeric_check() -> None:
    data = b"customer,age,churned\nalice,34,1\nbob,41,0\ncarol,29,1\n"
    assert run(data, feature_columns=("age",)).valid
    reason = only_reason(run(data))
    assert reason == "column 'customer' is not numeric in 3 rows, first at row 1 (line 2): 'alice'"


@pytest.mark.parametrize("value", ["abc", "1_000", "0x10", "12%"])
def test_non_numeric_feature_names_row_line_and_column(value: str) -> None:
    data = f"age,churned\n1,0\n{value},1\n3,1\n".encode()
    assert (
        only_reason(run(data)) == f"column 'age' is not numeric in 1 row, first at row 2 (line 3): {value!r}"
    )


@pytest.mark.parametrize("value", ["", "NA", "n/a", "null", "None", "  "])
def test_missing_markers_count_as_missing_not_invalid(value: str) -> None:
    report = run(f"age,churned\n1,0\n{value},1\n3,1\n".encode())
    assert report.valid, report.reasons
    assert report.stats["features"]["age"]["missing"] == 1


def test_ragged_rows() -> None:
    report = run(b"age,income,churned\n1,2,0\n1,2\n1,2,1,4\n5,6,1\n")
    assert not report.valid
    assert report.reasons == (
        "row 2 (line 3) has 2 columns; the header has 3",
        "row 3 (line 4) has 4 columns; the header has 3",
    )


def test_quoted_newlines_report_the_line_where_the_record_ends() -> None:
    report = run(b'note,age,churned\n"multi\nline",1,0\n"x",two,1\n"y",3,1\n', feature_columns=("age",))
    assert report.reasons == ("column 'age' is not numeric in 1 row, first at row 2 (line 4): 'two'",)


def test_malformed_csv() -> None:
    reason = only_reason(run(b'age,churned\n1,0\n"2"x,1\n'))
    assert reason.startswith("line 3 is not well-formed CSV:")


def test_unterminated_quote() -> None:
    reason = only_reason(run(b'age,churned\n1,0\n"2,1\n3,1\n'))
    assert "not well-formed CSV" in reason


def test_invalid_utf8_reports_where_it_breaks() -> None:
    data = b"age,churned\n1,0\n2,1\ncaf\xe9,1\n"
    assert only_reason(run(data)) == (
        "line 4 is not valid UTF-8: byte 0xe9 at byte offset 23 (character 4 of the line); "
        "save the file as UTF-8"
    )


def test_utf16_file() -> None:
    data = "age,churned\n1,0\n".encode("utf-16")
    assert only_reason(run(data)) == "the file is UTF-16 encoded; save it as UTF-8 (CSV UTF-8)"


def test_semicolon_delimited_file_gets_a_hint() -> None:
    report = run(b"age;churned\n1;0\n2;1\n3;1\n")
    assert (
        "the header has a single column and contains ';'; columns must be separated by ','" in report.reasons
    )
    assert "the target column 'churned' is missing from the header" in report.reasons


def test_header_problems() -> None:
    report = run(b"age,,age,churned\n1,2,3,0\n1,2,3,1\n1,2,3,1\n")
    assert "column 2 has no name in the header (line 1)" in report.reasons
    assert "the column name 'age' appears more than once in the header (columns 1, 3)" in report.reasons


def test_data_without_a_header() -> None:
    report = run(b"1,2,0\n3,4,1\n")
    assert "the first line holds numbers, not column names: the file needs a header line" in report.reasons


def test_binary_target_must_have_two_classes() -> None:
    assert only_reason(run(b"age,churned\n1,a\n2,b\n3,c\n4,a\n")) == (
        "column 'churned' (the target) has more than two distinct values ('a', 'b', 'c', ...); "
        "binary classification needs exactly two"
    )
    assert only_reason(run(b"age,churned\n1,1\n2,1\n3,1\n")) == (
        "column 'churned' (the target) has a single value ('1'); binary classification needs two classes"
    )


def test_empty_target_values() -> None:
    assert only_reason(run(b"age,churned\n1,0\n2,\n3,1\n4,0\n")) == (
        "column 'churned' (the target) has no value in 1 row, first at row 2 (line 3)"
    )


def test_regression_target_must_be_numeric() -> None:
    reason = only_reason(
        run(b"age,price\n1,10.5\n2,cheap\n3,7\n", target_column="price", problem_type=ProblemType.REGRESSION)
    )
    assert reason == (
        "column 'price' (the target) is not numeric in 1 row, first at row 2 (line 3): 'cheap'; "
        "regression needs numeric targets"
    )


def test_reasons_are_capped() -> None:
    lines = [b"age,income,churned"] + [b"1,2" for _ in range(45)] + [b"1,2,0", b"3,4,1"]
    report = run(b"\n".join(lines) + b"\n", chunk=4096)
    assert len(report.reasons) == MAX_REASONS + 1
    assert report.reasons[0] == "row 1 (line 2) has 2 columns; the header has 3"
    assert report.reasons[-1] == "... and 25 more problems"


def test_declared_size_is_checked_before_reading() -> None:
    def never_opened() -> Iterator[bytes]:
        raise AssertionError("the object must not be read")

    report = validate_upload(11 * 1024 * 1024, never_opened, rules())
    assert report.reasons == (
        "the file is 11.0 MiB (11534336 bytes); the basic tier allows at most 10.0 MiB (10485760 bytes)",
    )
    assert validate_upload(0, never_opened, rules()).reasons == ("the file is empty",)
    assert check_declared_size(10 * 1024 * 1024, rules()) is None


def test_reading_stops_as_soon_as_the_stream_exceeds_the_limit() -> None:
    pulled = 0

    def endless() -> Iterator[bytes]:
        nonlocal pulled
        yield b"age,churned\n"
        while True:
            pulled += 1
            yield b"1,0\n" * 256

    report = validate_csv(endless(), rules(max_bytes=64 * 1024))
    assert not report.valid
    assert report.reasons[0].startswith(
        "the file is larger than the basic tier allows (64.0 KiB (65536 bytes))"
    )
    assert pulled == 64
    assert report.stats["complete"] is False


def test_overlong_line_stops_reading() -> None:
    def one_line() -> Iterator[bytes]:
        yield b"age,churned\n"
        while True:
            yield b"9" * 65536

    reason = only_reason(validate_csv(one_line(), rules()))
    assert (
        reason
        == "line 2 is longer than 1.0 MiB (1048576 bytes); is this a CSV file with one record per line?"
    )


def test_the_chunk_source_is_closed_when_validation_stops_early() -> None:
    closed = False

    def source() -> Iterator[bytes]:
        nonlocal closed
        try:
            yield b"age,churned\n\xff\xfe\n"
            yield b"1,0\n" * 1000
        finally:
            closed = True

    validate_csv(source(), rules())
    assert closed


@pytest.mark.parametrize("fast", [True, False])
def test_streaming_runs_in_constant_memory(fast: bool) -> None:
    """An 8 MB dataset produced chunk by chunk is never materialised: peak allocations stay at a few
    blocks (the fast path's native buffers are measured by `make bench`, as RSS)."""
    row = b"123456789.123456789,-987654321.987654321,1\n"
    rows_per_chunk = 64 * 1024 // len(row)
    chunks = 8 * 1024 * 1024 // (rows_per_chunk * len(row))

    def generate() -> Iterator[bytes]:
        yield b"a,b,churned\n"
        block = row * (rows_per_chunk - 1) + b"7,8,0\n"
        for _ in range(chunks):
            yield block

    tracemalloc.start()
    try:
        report = validate_csv(generate(), rules(), fast=fast, block_bytes=256 * 1024)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.valid, report.reasons
    assert report.stats["bytes"] > 8 * 1024 * 1024 - 64 * 1024
    assert report.stats["rows"] == rows_per_chunk * chunks
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes"


def test_rules_from_contract() -> None:
    contract = TenantContract.model_validate(
        {"targetColumn": "y", "featureColumns": ["a", "b"], "problemType": "regression", "minRows": 10}
    )
    built = DatasetRules.from_contract(contract, max_bytes=100, tier="premium")
    assert built == DatasetRules("y", ("a", "b"), ProblemType.REGRESSION, 10, 100, "premium")


def test_format_bytes() -> None:
    assert format_bytes(512) == "512 bytes"
    assert format_bytes(1536) == "1.5 KiB (1536 bytes)"
    assert format_bytes(5 * 1024**3) == "5.0 GiB (5368709120 bytes)"


# ---------------------------------------------------------------- the target's values (issue 13)
def test_a_binary_target_mixing_a_number_and_a_word_is_rejected_showing_both() -> None:
    assert only_reason(run(b"age,churned\n1,1\n2,no\n3,1\n4,no\n")) == (
        "column 'churned' (the target) mixes a number and a word: '1' (first at row 1 (line 2)) and 'no' "
        "(first at row 2 (line 3)); declare targetValues in the contract if both are labels"
    )


def test_declared_target_values_accept_exactly_those_labels() -> None:
    data = b"age,churned\n1,1\n2,no\n3,1\n4,maybe\n5,no\n6,maybe\n"
    assert only_reason(run(data, target_values=("1", "no"))) == (
        "column 'churned' (the target) holds a value that is not one of the declared targetValues "
        "('1', 'no') in 2 rows, first at row 4 (line 5): 'maybe'"
    )
    report = run(b"age,churned\n1,1\n2,no\n3,1\n", target_values=("1", "no"))
    assert report.valid, report.reasons
    assert report.stats["target"]["distinctValues"] == ["1", "no"]


def test_declared_values_must_both_occur() -> None:
    assert only_reason(run(b"age,churned\n1,yes\n2,yes\n3,yes\n", target_values=("yes", "no"))) == (
        "column 'churned' (the target) has a single value ('yes'); binary classification needs two classes"
    )


def test_the_positive_class_must_occur_in_the_target() -> None:
    assert run(GOOD, positive_class="1").valid
    assert only_reason(run(GOOD, positive_class="yes")) == (
        "the positive class 'yes' does not occur in column 'churned' (the target) (its values: '1', '0')"
    )


# ---------------------------------------------------------------- NaN and infinity, one policy
@pytest.mark.parametrize("value", ["NaN", "nan", "inf", "-Infinity", "1e400"])
def test_nan_and_infinity_in_a_feature_are_errors(value: str) -> None:
    data = f"age,churned\n1,0\n{value},1\n3,1\n".encode()
    assert only_reason(run(data)) == (
        f"column 'age' holds NaN or infinity in 1 row, first at row 2 (line 3): {value!r}; "
        "leave the cell empty for a missing value (or declare nonFiniteAsMissing in the contract)"
    )


@pytest.mark.parametrize("problem", [ProblemType.BINARY_CLASSIFICATION, ProblemType.REGRESSION])
def test_nan_and_infinity_in_the_target_are_errors(problem: ProblemType) -> None:
    data = b"age,churned\n1,0\n2,nan\n3,1\n4,inf\n"
    reasons = run(data, problem_type=problem).reasons
    assert reasons[0] == (
        "column 'churned' (the target) holds NaN or infinity in 2 rows, first at row 2 (line 3): 'nan'"
    )


def test_non_finite_as_missing_counts_them_missing_everywhere() -> None:
    data = b"age,churned\n1,0\nNaN,1\ninf,1\n4,0\n"
    report = run(data, non_finite_as_missing=True)
    assert report.valid, report.reasons
    assert report.stats["features"]["age"] == {"min": 1.0, "max": 4.0, "missing": 2}
    # A target without a value is still an error: missing is missing.
    reason = only_reason(run(b"age,churned\n1,0\n2,nan\n3,1\n4,0\n", non_finite_as_missing=True))
    assert reason == "column 'churned' (the target) has no value in 1 row, first at row 2 (line 3)"


# ---------------------------------------------------------------- binary content, gzip
@pytest.mark.parametrize(
    ("head", "named"),
    [
        (
            b"\x1f\x8b\x08\x00\x00\x00\x00\x00",
            "gzip-compressed data; upload it with a name ending in .csv.gz",
        ),
        (b"PK\x03\x04\x14\x00\x06\x00", "a zip archive (an Excel .xlsx workbook is one)"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "a legacy Office file"),
        (b"BZh91AY&SY", "bzip2-compressed data"),
        (b"PAR1\x15\x04", "a Parquet file"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"age\x00,churned\n", "a NUL byte at byte offset 3: it is a binary file"),
    ],
)
def test_binary_content_is_named_not_called_invalid_utf8(head: bytes, named: str) -> None:
    reason = only_reason(run(head + bytes(range(256)) * 4, chunk=3))
    assert named in reason
    assert "UTF-8" not in reason or "CSV UTF-8" in reason


def gzip_upload(data: bytes, **overrides: object) -> ValidationReport:
    packed = gzip.compress(data)
    chunks = [packed[i : i + 5] for i in range(0, len(packed), 5)]
    return validate_upload(len(packed), lambda: iter(chunks), rules(**overrides), gzipped=True)


def test_a_gzip_upload_is_decompressed_as_it_streams_and_validated() -> None:
    report = gzip_upload(GOOD)
    assert report.valid, report.reasons
    assert report.stats["bytes"] == len(GOOD)
    assert report.stats["compressedBytes"] == len(gzip.compress(GOOD))
    assert report.stats == run(GOOD).stats | {"compressedBytes": report.stats["compressedBytes"]}
    assert gzip_upload(b"age,churned\n1,0\nabc,1\n3,1\n").reasons == (
        "column 'age' is not numeric in 1 row, first at row 2 (line 3): 'abc'",
    )


def test_a_truncated_gzip_upload_says_so_after_checking_what_it_holds() -> None:
    body = b"age,churned\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(5000))
    packed = gzip.compress(body)[:-2000]
    report = validate_upload(len(packed), lambda: iter([packed]), rules(), gzipped=True)
    assert not report.valid
    assert report.reasons[0] == (
        f"the gzip data ends after {len(packed)} bytes, before the end of its compressed stream: "
        "the upload is truncated (upload it again)"
    )
    assert report.stats["rows"] > 0
    assert report.stats["complete"] is False


def test_a_csv_gz_upload_that_is_not_gzip_is_named() -> None:
    report = validate_upload(len(GOOD), lambda: iter([GOOD]), rules(), gzipped=True)
    assert report.reasons == (
        "the file name ends in .csv.gz but the content is not gzip (it looks like plain text); "
        "name a plain CSV file .csv",
    )
    zipped = b"PK\x03\x04" + bytes(40)
    report = validate_upload(len(zipped), lambda: iter([zipped]), rules(), gzipped=True)
    assert "the content is a zip archive" in report.reasons[0]


def test_a_gzip_bomb_stops_at_the_tiers_limit_without_inflating_it_all() -> None:
    packed = gzip.compress(b"age,churned\n" + b"1,0\n" * (8 * 1024 * 1024))
    report = validate_upload(len(packed), lambda: iter([packed]), rules(max_bytes=1024 * 1024), gzipped=True)
    assert report.reasons[0].startswith("the file is larger than the basic tier allows (1.0 MiB")
    assert report.stats["bytes"] <= 2 * 1024 * 1024


def test_contract_carries_the_target_declaration_to_the_rules() -> None:
    contract = TenantContract.model_validate(
        {
            "targetColumn": "y",
            "problemType": "binary_classification",
            "minRows": 10,
            "targetValues": ["yes", "no"],
            "positiveClass": "yes",
            "nonFiniteAsMissing": True,
        }
    )
    built = DatasetRules.from_contract(contract, max_bytes=100, tier="basic")
    assert (built.target_values, built.positive_class, built.non_finite_as_missing) == (
        ("yes", "no"),
        "yes",
        True,
    )
    assert contract.wire()["targetValues"] == ["yes", "no"]


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"targetValues": ["a", "b", "c"]}, "exactly two different labels"),
        ({"targetValues": ["a", "a"]}, "exactly two different labels"),
        ({"targetValues": ["a", " b"]}, "must not be empty or start or end with spaces"),
        ({"targetValues": ["a", "b"], "positiveClass": "c"}, "positiveClass 'c' is not one of targetValues"),
        ({"problemType": "regression", "positiveClass": "1"}, "for binary_classification only"),
    ],
)
def test_contract_refuses_a_target_declaration_that_cannot_hold(
    declaration: dict[str, object], message: str
) -> None:
    base: dict[str, object] = {"targetColumn": "y", "problemType": "binary_classification", "minRows": 1}
    with pytest.raises(ValueError, match=message):
        TenantContract.model_validate(base | declaration)
    from controlplane.api.models import ContractInput  # noqa: PLC0415 - the API's own request model

    with pytest.raises(ValueError, match=message):
        ContractInput.model_validate(base | declaration)


def test_a_header_that_starts_like_a_signature_is_still_a_csv() -> None:
    report = run(b"PAR1,churned\n1,0\n2,1\n3,0\n")
    assert report.valid, report.reasons
    pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n"
    assert only_reason(run(pdf)) == "the file is a PDF document; upload CSV"


def test_a_gzip_upload_of_several_members_reads_as_one_file() -> None:
    """`cat a.gz b.gz` is valid gzip (gzip -d reads both): so is it here."""
    packed = gzip.compress(b"age,churned\n1,0\n2,1\n") + gzip.compress(b"3,0\n4,1\n")
    report = validate_upload(len(packed), lambda: iter([packed[:7], packed[7:]]), rules(), gzipped=True)
    assert report.valid, report.reasons
    assert report.stats["rows"] == 4
    corrupt = packed[:20] + b"\x00" * 8 + packed[28:]
    reason = validate_upload(len(corrupt), lambda: iter([corrupt]), rules(), gzipped=True).reasons[0]
    assert reason.startswith("the gzip data is corrupt (")
