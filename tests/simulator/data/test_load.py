"""Finding the Parquet files of a dataset and scanning them with canonical names (simulator/data/load.py)."""

from __future__ import annotations

import re
from pathlib import Path

import polars as pl
import pytest

from simulator.errors import InvalidData
from simulator.data.load import dataset_files, scan_dataset
from simulator.schema import Schema
from tests.factories import make_transactions, write_parquet


def write_hive(root: Path, frame: pl.DataFrame) -> list[Path]:
    """`frame` split in two hive partitions under `root`, plus the debris real writers leave."""
    files = [
        write_parquet(frame.head(3), root / "dt=2026-01-02" / "part-0.parquet"),
        write_parquet(frame.slice(3, 3), root / "dt=2026-01-01" / "part-0.parquet"),
    ]
    (root / "_SUCCESS").touch()
    (root / "dt=2026-01-01" / "notes.txt").write_text("not data")
    write_parquet(frame.head(1), root / "dt=2026-01-01" / ".part-0.parquet.crc.parquet")
    write_parquet(frame.head(1), root / "_temporary" / "0" / "part-9.parquet")
    return sorted(files)


def test_dataset_files_of_a_single_file(tmp_path: Path) -> None:
    path = write_parquet(make_transactions(n=5), tmp_path / "data.parquet")
    assert dataset_files(path) == [str(path)]


def test_dataset_files_searches_directories_recursively_and_skips_debris(tmp_path: Path) -> None:
    expected = write_hive(tmp_path, make_transactions(n=6))
    files = dataset_files(tmp_path)
    assert files == [str(file) for file in expected]
    assert [Path(file).parent.name for file in files] == ["dt=2026-01-01", "dt=2026-01-02"]


def test_dataset_files_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(InvalidData, match=re.escape(f"data path {missing} does not exist")):
        dataset_files(missing)


def test_dataset_files_directory_without_parquet(tmp_path: Path) -> None:
    (tmp_path / "_SUCCESS").touch()
    (tmp_path / "readme.txt").write_text("no data here")
    with pytest.raises(InvalidData, match=re.escape(f"data directory {tmp_path} holds no .parquet files")):
        dataset_files(tmp_path)


def test_dataset_files_rejects_a_file_that_is_not_parquet_or_csv(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text("{}")
    with pytest.raises(InvalidData, match=re.escape(f"data path {path} is not a Parquet file")):
        dataset_files(path)


def test_scan_dataset_reads_every_file_with_hive_columns(tmp_path: Path) -> None:
    write_hive(tmp_path, make_transactions(n=6))
    frame = scan_dataset(tmp_path, Schema()).collect()
    assert frame.height == 6
    # Sorted file order: the dt=2026-01-01 partition (rows 3..5) comes first.
    assert frame["transaction_id"].to_list() == [f"tx_00000{i}" for i in (3, 4, 5, 0, 1, 2)]
    assert frame["dt"].dtype == pl.Date


def test_scan_dataset_renames_file_columns_to_canonical_names(tmp_path: Path) -> None:
    frame = make_transactions(n=4).rename({"transaction_id": "txn_id", "propensity": "p_logged"})
    path = write_parquet(frame, tmp_path / "data.parquet")
    schema = Schema(rename={"transaction_id": "txn_id", "propensity": "p_logged", "mcc": "mcc"})
    scanned = scan_dataset(path, schema).collect()
    assert "transaction_id" in scanned.columns
    assert "propensity" in scanned.columns
    assert "txn_id" not in scanned.columns
    assert "p_logged" not in scanned.columns
    assert scanned["propensity"].to_list() == frame["p_logged"].to_list()


def test_scan_dataset_projects_canonical_columns_in_the_order_asked(tmp_path: Path) -> None:
    frame = make_transactions(n=4).rename({"amount": "amt"})
    path = write_parquet(frame, tmp_path / "data.parquet")
    scanned = scan_dataset(path, Schema(rename={"amount": "amt"}), columns=["amount", "transaction_id"]).collect()
    assert scanned.columns == ["amount", "transaction_id"]
    assert scanned["amount"].to_list() == frame["amt"].to_list()


def test_scan_dataset_projection_names_a_missing_column(tmp_path: Path) -> None:
    path = write_parquet(make_transactions(n=4).drop("fraud_score"), tmp_path / "data.parquet")
    with pytest.raises(InvalidData, match=re.escape("fraud_score: missing column (looked for 'fraud_score'")):
        scan_dataset(path, Schema(), columns=["amount", "fraud_score"])


def test_scan_dataset_rename_clash(tmp_path: Path) -> None:
    frame = make_transactions(n=4).with_columns(amt=pl.col("amount") * 2)
    path = write_parquet(frame, tmp_path / "data.parquet")
    with pytest.raises(InvalidData, match=re.escape("amount: the files have both 'amt' (renamed to 'amount')")):
        scan_dataset(path, Schema(rename={"amount": "amt"}))


def test_scan_dataset_names_file_and_column_of_a_type_mismatch(tmp_path: Path) -> None:
    frame = make_transactions(n=6)
    write_parquet(frame.head(3), tmp_path / "part-0.parquet")
    other = write_parquet(frame.tail(3).with_columns(pl.col("amount").cast(pl.Int64)), tmp_path / "part-1.parquet")
    with pytest.raises(InvalidData) as err:
        scan_dataset(tmp_path, Schema())
    assert f"{other}: column 'amount' has type Int64" in str(err.value)
    assert err.value.problems == (
        f"{other}: column 'amount' has type Int64, but {tmp_path / 'part-0.parquet'} has Float64",
    )


def test_scan_dataset_names_file_and_column_of_a_missing_or_extra_column(tmp_path: Path) -> None:
    frame = make_transactions(n=6)
    write_parquet(frame.head(2), tmp_path / "part-0.parquet")
    missing = write_parquet(frame.slice(2, 2).drop("mcc"), tmp_path / "part-1.parquet")
    extra = write_parquet(frame.tail(2).with_columns(region=pl.lit("eu")), tmp_path / "part-2.parquet")
    with pytest.raises(InvalidData) as err:
        scan_dataset(tmp_path, Schema())
    assert f"{missing}: column 'mcc' is missing" in str(err.value)
    assert f"{extra}: column 'region' is not in" in str(err.value)


def test_scan_dataset_projection_ignores_mismatches_in_columns_it_does_not_read(tmp_path: Path) -> None:
    frame = make_transactions(n=6)
    write_parquet(frame.head(3), tmp_path / "part-0.parquet")
    write_parquet(frame.tail(3).with_columns(pl.col("mcc").cast(pl.Categorical)), tmp_path / "part-1.parquet")
    scanned = scan_dataset(tmp_path, Schema(), columns=["transaction_id", "amount"]).collect()
    assert scanned.height == 6


def test_a_mapping_to_a_missing_column_is_an_error_not_a_silent_fallback(tmp_path: Path) -> None:
    pl.DataFrame({"transaction_id": ["a"], "amount": [1.0]}).write_parquet(tmp_path / "t.parquet")
    with pytest.raises(InvalidData, match="maps it to 'amt_usd', which is not in the data"):
        scan_dataset(tmp_path / "t.parquet", Schema(rename={"amount": "amt_usd"}))


def _as_of_by_reading(path: Path, schema: Schema = Schema()) -> object:
    """The latest created_at or disputed_at, read from every row as `compile_plan` does without footers."""
    from simulator.plan.compiled import data_as_of

    scan = scan_dataset(path, schema)
    return data_as_of(scan, set(scan.collect_schema().names()))


@pytest.mark.parametrize("zone", ["UTC", None, "America/Sao_Paulo"])
def test_latest_timestamp_from_footers_equals_reading_every_row(tmp_path: Path, zone: str | None) -> None:
    from simulator.data.load import latest_timestamp, open_source

    frame = make_transactions(n=400)
    for name in ("created_at", "disputed_at"):
        stamp = pl.col(name).dt.replace_time_zone(None)
        frame = frame.with_columns(stamp if zone is None else stamp.dt.replace_time_zone(zone))
    write_parquet(frame.head(150), tmp_path / "a.parquet")
    frame.tail(250).write_parquet(tmp_path / "b.parquet", row_group_size=60)
    latest = latest_timestamp(open_source(tmp_path, Schema()), Schema())
    assert latest is not None and latest == _as_of_by_reading(tmp_path)
    assert latest.isoformat() == _as_of_by_reading(tmp_path).isoformat()


def test_latest_timestamp_counts_dispute_dates_and_skips_all_null_ones(tmp_path: Path) -> None:
    from simulator.data.load import latest_timestamp, open_source

    frame = make_transactions(n=300)
    later = frame["created_at"].max() + pl.duration(days=30)
    disputed = frame.with_columns(pl.when(pl.int_range(pl.len()) == 7).then(later).otherwise(None).alias("disputed_at"))
    write_parquet(disputed, tmp_path / "late" / "a.parquet")
    write_parquet(frame.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("disputed_at")),
                  tmp_path / "none" / "a.parquet")
    for folder in ("late", "none"):
        latest = latest_timestamp(open_source(tmp_path / folder, Schema()), Schema())
        assert latest == _as_of_by_reading(tmp_path / folder)


def test_latest_timestamp_gives_up_where_footers_cannot_say(tmp_path: Path) -> None:
    from simulator.data.load import latest_timestamp, open_source

    frame = make_transactions(n=50)
    nanoseconds = write_parquet(frame.with_columns(pl.col("created_at").dt.cast_time_unit("ns")), tmp_path / "ns.parquet")
    text = write_parquet(frame.with_columns(pl.col("created_at").dt.to_string("%Y-%m-%dT%H:%M:%S%.f")),
                         tmp_path / "text" / "a.parquet")
    frame.write_csv(tmp_path / "a.csv")
    no_stats = tmp_path / "no_stats.parquet"
    frame.write_parquet(no_stats, statistics=False)
    for path in (nanoseconds, text, tmp_path / "a.csv", no_stats):
        assert latest_timestamp(open_source(path, Schema()), Schema()) is None
