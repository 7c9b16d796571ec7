"""The validation benchmark's harness on a small file: same bytes for both readers, figures in place."""

from __future__ import annotations

from pathlib import Path

from bench import validation


def test_generated_dataset_is_valid_and_both_readers_read_it(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    size = validation.write_dataset(path, 0.3)
    assert size >= 300_000
    lines = path.read_text().splitlines()
    assert len(lines[0].split(",")) == validation.FEATURES + 1
    elapsed, valid = validation.time_validator(path, size)
    assert valid
    assert elapsed > 0
    assert validation.time_csv_reader(path) > 0


def test_measure_reports_the_figures_under_their_names() -> None:
    result = validation.measure(megabytes=0.2, repeat=1)
    assert result["valid"] is True
    for key in ("validator_mb_s", "csv_reader_mb_s", "ratio", "peak_rss_bytes", "peak_traced_bytes"):
        assert result[key] > 0, key
    # From the unrounded rates: within rounding of the rounded ones.
    assert abs(result["ratio"] - result["validator_mb_s"] / result["csv_reader_mb_s"]) < 0.05


def test_the_large_file_is_one_block_repeated_and_valid(tmp_path: Path) -> None:
    from bench import parallel_validation  # noqa: PLC0415

    path = tmp_path / "large.csv"
    size = parallel_validation.write_large(path, 20_000_000)
    assert size >= 20_000_000
    elapsed, valid = validation.time_validator(path, size)
    assert valid
    assert elapsed > 0
    assert not parallel_validation.ok({"verdict_equal": True, "ranges": 9, "bytes": size}), (
        "below 1 GiB the target is not met"
    )
    assert parallel_validation.ok({"verdict_equal": True, "ranges": 9, "bytes": parallel_validation.GIB})
    assert not parallel_validation.ok({"verdict_equal": False, "ranges": 9, "bytes": parallel_validation.GIB})
